// The training commands: pretrain, lincls, finetune, knn, eval, reproduce. Each is a table of
// flags (lib/cli/command.ts) over the public API (lib/train): the flags the user set -> the
// library's config, the dataset, progress/metrics/plots, signals, one-line errors.
import * as fs from 'fs';
import * as path from 'path';

import { saveCheckpoint } from '../checkpoint';
import { DataLoader, transforms } from '../data';
import { writeCalibrationPlots } from '../train/calibration';
import {
  EVALUATION_BATCH_SIZE, FINETUNE_DEFAULTS, KNN_DEFAULTS, LINEAR_EVAL_DEFAULTS, evaluate, extractFeatures, fineTune, knnAccuracy,
  labelFraction, linearEvaluation, loadBackbone, saveEvaluationCheckpoint,
} from '../train/evaluate';
import { Position } from '../train/loop';
import { PRETRAIN_RECIPES, PretrainConfig, defaultConfig, pretrain, isContrastive, recipeTransform, usesTeacher } from '../train/pretrain';
import { RunReporter } from '../train/report';
import { PRECISIONS } from '../train/trainer';
import { PRESETS, REPRODUCE_ROWS, ReproduceRow, StudentChanges, TeacherChanges, formatReproduceTable, reproduce } from '../train/reproduce';
import { SCHEDULES } from '../train/schedule';
import { classifierFor, encoderSpec, headClasses, readCheckpoint } from '../train/specs';
import { Tensor, manualSeed, setNumThreads } from '../tensor';
import { FlagValues, UsageError, command } from './command';
import { DATA_FLAGS, checkDevice, defined } from './flags';
import { EvaluationData, OpenedData, keepSkippedListIn, loader, openData } from './data';

type DataFlags = FlagValues<typeof DATA_FLAGS>;

// Every training command opens its data first: the place to apply the shared --threads too.
export async function data(flags: DataFlags): Promise<OpenedData>;
export async function data(flags: DataFlags, options: { trainOptional: true }): Promise<EvaluationData>;
export async function data(flags: DataFlags, options: { trainOptional?: boolean } = {}): Promise<EvaluationData> {
  if (flags.threads !== undefined) setNumThreads(flags.threads);
  // Every weight a command initializes (a classifier's new Linear, the probe) draws from
  // libtorch's generator, which each process seeds from the OS unless told.
  manualSeed(flags.seed ?? 0);
  return openData(flags.data ?? 'fashion-mnist', {
    subset: flags.subset,
    testSubset: flags['test-subset'],
    size: flags.size,
    stem: flags.stem,
    trainOptional: options.trainOptional ?? false,
  });
}

function note(command: string, message: string): void {
  process.stderr.write(`s2bnn ${command}: note: ${message}\n`);
}

/** SIGINT/SIGTERM stop the run after the step in flight (with a checkpoint); a second one exits at once. */
function stopOnSignals(onFirst: (signal: string) => void): { signal: AbortSignal; received: () => string | null; dispose: () => void } {
  const controller = new AbortController();
  let received: string | null = null;
  const handler = (signal: NodeJS.Signals) => {
    if (received) process.exit(signal === 'SIGINT' ? 130 : 143);
    received = signal;
    onFirst(signal);
    controller.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    received: () => received,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

const PRETRAIN_DEFAULTS = defaultConfig('distill');
const RESNETS = ['resnet18', 'resnet34', 'resnet50'] as const;

export const pretrainCommand = command({
  name: 'pretrain',
  summary: 'self-supervised pre-training (docs/method.md recipes)',
  flags: {
    recipe: { type: PRETRAIN_RECIPES, help: 'moco-v2: the plain MoCo v2 baseline (also how teachers are made)', default: 'distill' },
    arch: { type: ['reactnet-a', ...RESNETS] as const, help: 'the trained network', default: PRETRAIN_DEFAULTS.arch },
    step: { type: ['1', '2'] as const, help: 'two-step binarization of ReActNet-A: 1 binarizes activations only', default: PRETRAIN_DEFAULTS.step },
    init: { type: 'file', value: 'CKPT', help: "start from a (step-1) checkpoint, s2bnn's or the official code's" },
    teacher: { type: 'file', value: 'CKPT', help: 'frozen real-valued teacher (distillation recipes)' },
    'teacher-arch': { type: RESNETS, help: "the teacher's network", default: PRETRAIN_DEFAULTS.teacherArch },
    'teacher-precision': {
      type: PRECISIONS, default: PRETRAIN_DEFAULTS.teacherPrecision,
      help: "the teacher's arithmetic: bfloat16 is about 2.3x faster on CPUs with AVX-512 BF16, outputs move by ~2e-3",
    },
    precision: {
      type: PRECISIONS, default: PRETRAIN_DEFAULTS.precision,
      help: "the trained network's arithmetic: bfloat16 is mixed precision, for the ResNet archs (weights and losses stay float32)",
    },
    ...DATA_FLAGS,
    epochs: { type: 'integer', help: 'epochs', default: PRETRAIN_DEFAULTS.epochs },
    'batch-size': { type: 'integer', help: 'images per step', default: PRETRAIN_DEFAULTS.batchSize },
    lr: { type: 'number', help: 'learning rate', default: "the recipe's" },
    wd: { type: 'nonnegative', help: 'weight decay', default: "the recipe's" },
    schedule: { type: SCHEDULES, help: 'learning-rate schedule', default: "the recipe's" },
    temperature: { type: 'number', help: 'InfoNCE temperature', default: PRETRAIN_DEFAULTS.temperature },
    'distill-temperature': { type: 'number', help: 'distribution-loss temperature', default: PRETRAIN_DEFAULTS.distillTemperature },
    'queue-size': { type: 'integer', value: 'K', help: 'MoCo queue size (a multiple of --batch-size)', default: PRETRAIN_DEFAULTS.queueSize },
    'moco-momentum': { type: 'nonnegative', value: 'M', help: 'key-encoder momentum', default: PRETRAIN_DEFAULTS.momentum },
    dim: { type: 'integer', value: 'D', help: 'projection dimension', default: PRETRAIN_DEFAULTS.dim },
    'contrastive-weight': { type: 'nonnegative', help: 'the InfoNCE weight of contrastive+distill', default: PRETRAIN_DEFAULTS.contrastiveWeight },
    'distill-weight': { type: 'nonnegative', help: 'the distribution-loss weight of contrastive+distill', default: PRETRAIN_DEFAULTS.distillWeight },
    'key-groups': { type: 'integer', value: 'G', help: 'single-device shuffle-BN sub-batches of the key batch', default: PRETRAIN_DEFAULTS.keyGroups },
    width: { type: 'number', value: 'W', help: 'width multiplier of ReActNet-A or the ResNet', default: PRETRAIN_DEFAULTS.width },
    resume: {
      type: 'file-or-true', value: '[CKPT]',
      help: "continue the run in --out (its checkpoint.pth), or from CKPT: an s2bnn run checkpoint or an official main_moco.py one (from its next epoch)",
    },
    out: { type: 'string', value: 'DIR', help: 'where the checkpoints, metrics and plots go', default: 'runs/<recipe>-<arch>-step<step>' },
  },
  async run(flags) {
    const recipe = flags.recipe ?? 'distill';
    if (usesTeacher(recipe) && !flags.teacher) {
      throw new UsageError(`the ${recipe} recipe needs --teacher CKPT (a real-valued MoCo checkpoint; 'pretrain --recipe moco-v2 --arch resnet18' makes one)`);
    }
    const dataset = await data(flags);
    const config = defaultConfig(recipe, {
      stem: dataset.stem,
      inChannels: dataset.channels,
      ...defined({
        arch: flags.arch,
        step: flags.step === undefined ? undefined : (Number(flags.step) as 1 | 2),
        width: flags.width,
        init: flags.init,
        teacher: flags.teacher,
        teacherArch: flags['teacher-arch'],
        epochs: flags.epochs,
        batchSize: flags['batch-size'],
        lr: flags.lr,
        weightDecay: flags.wd,
        schedule: flags.schedule,
        temperature: flags.temperature,
        distillTemperature: flags['distill-temperature'],
        teacherPrecision: flags['teacher-precision'],
        precision: flags.precision,
        contrastiveWeight: flags['contrastive-weight'],
        distillWeight: flags['distill-weight'],
        queueSize: flags['queue-size'],
        momentum: flags['moco-momentum'],
        dim: flags.dim,
        keyGroups: flags['key-groups'],
        seed: flags.seed,
      }),
    });
    const { arch, step } = config;
    if (isContrastive(recipe) && config.queueSize % config.batchSize !== 0) {
      throw new UsageError(`--queue-size (${config.queueSize}) must be a multiple of --batch-size (${config.batchSize})`);
    }
    return pretrainRun({
      dataset,
      config,
      out: flags.out ?? path.join('runs', `${recipe.replace('+', '-')}-${arch}-step${step}`),
      json: flags.json === true,
      workers: flags.workers,
      resume: flags.resume ?? false,
      device: checkDevice(flags.device),
    });
  },
});

interface PretrainRun {
  dataset: OpenedData;
  config: PretrainConfig;
  out: string;
  json: boolean;
  workers?: number;
  resume: boolean | string;
  device: 'cpu' | 'cuda';
}

async function pretrainRun({ dataset, config, out, json, workers, resume, device }: PretrainRun): Promise<number> {
  keepSkippedListIn(out);
  const { recipe, arch, step } = config;
  const transform = recipeTransform(recipe, dataset.size, dataset.channels);
  const trainData = loader(dataset.train, { batchSize: config.batchSize, transform, views: isContrastive(recipe) ? 2 : 1, train: true, seed: config.seed, workers });
  if (trainData.batchesPerEpoch < 1) throw new UsageError(`--batch-size ${config.batchSize} is larger than the training set (${dataset.train.length} images)`);

  let reporter: RunReporter | undefined;
  const stops = stopOnSignals((signal) => reporter?.log(`${signal}: stopping after this step; the checkpoint will hold the position (continue with --resume)`));
  const started = Date.now();
  let result;
  try {
    result = await pretrain({
      config,
      data: trainData,
      out,
      resume,
      onNotice: (message) => note('pretrain', message),
      device,
      signal: stops.signal,
      onStart: (start: Position) => {
        reporter = new RunReporter({ out, epochs: config.epochs, stepsPerEpoch: trainData.batchesPerEpoch, batchSize: config.batchSize, start, quiet: json, phase: 'pretrain' });
        if (!json) {
          process.stderr.write(
            `s2bnn pretrain: ${recipe} on ${dataset.name} (${dataset.train.length} images), ${arch}${arch === 'reactnet-a' ? ` step ${step}, width ${config.width}` : ''}, ` +
              `batch ${config.batchSize}, ${config.optimizer} lr ${config.lr}, ${config.epochs} epochs -> ${out}` +
              `${start.epoch || start.batch ? ` (resuming at epoch ${start.epoch + 1}, batch ${start.batch + 1})` : ''}\n`,
          );
        }
      },
      onStepEnd: (info) => reporter?.onStepEnd(info),
      onEpochEnd: (info) => reporter?.onEpochEnd(info),
    });
  } finally {
    stops.dispose();
    reporter?.close();
    trainData.close();
  }
  let calibration;
  if (result.teacher && result.fit.completed) {
    const evalData = loader(dataset.test, { batchSize: 256, transform: transforms.evaluation(dataset.size, dataset.size, dataset.channels), train: false, workers });
    try {
      calibration = await writeCalibrationPlots(out, { teacher: result.teacher, student: result.student }, evalData, { temperature: config.distillTemperature, maxImages: 2048 });
    } finally {
      evalData.close();
    }
  }
  const summary = {
    checkpoint: result.checkpoint,
    completed: result.fit.completed,
    position: result.fit.position,
    seconds: (Date.now() - started) / 1000,
    epochs: result.fit.history.map((h) => ({ epoch: h.epoch + 1, ...h.means })),
    ...(calibration ? { calibration } : {}),
  };
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else if (result.fit.completed) process.stderr.write(`s2bnn pretrain: done in ${summary.seconds.toFixed(0)} s; checkpoint ${result.checkpoint}\n`);
  if (!result.fit.completed) {
    if (!json) {
      process.stderr.write(
        `s2bnn pretrain: stopped at epoch ${result.fit.position.epoch + 1}, batch ${result.fit.position.batch + 1}; ` +
          `checkpoint ${result.checkpoint}; continue with the same command and --resume\n`,
      );
    }
    return stops.received() === 'SIGTERM' ? 143 : 130;
  }
  return 0;
}

async function pretrainedClassifier(file: string, dataset: EvaluationData, command: string) {
  const checkpoint = await readCheckpoint(file, (message) => note(command, message));
  const spec = encoderSpec(checkpoint, { stem: dataset.stem });
  if (spec.inChannels !== dataset.channels) {
    throw new UsageError(`${file} takes ${spec.inChannels}-channel images, ${dataset.name} has ${dataset.channels}`);
  }
  const model = classifierFor(spec, dataset.numClasses);
  loadBackbone(model, checkpoint);
  return { model, spec };
}

const PRETRAINED = { type: 'file', value: 'CKPT', required: true, help: "the pre-trained network: an s2bnn run checkpoint or the official code's" } as const;

export const linclsCommand = command({
  name: 'lincls',
  summary: 'linear evaluation of a frozen backbone (docs/method.md)',
  flags: {
    pretrained: PRETRAINED,
    ...DATA_FLAGS,
    epochs: { type: 'integer', help: 'epochs', default: LINEAR_EVAL_DEFAULTS.epochs },
    'batch-size': { type: 'integer', help: 'images per step', default: EVALUATION_BATCH_SIZE },
    lr: { type: 'number', help: 'SGD learning rate (x0.1 at 60 % and 80 % of the epochs)', default: LINEAR_EVAL_DEFAULTS.lr },
    'eval-every': { type: 'integer', help: 'also evaluate after every N epochs', default: 'only at the end' },
    'no-standardize': {
      type: 'boolean',
      help: "train the Linear on raw features (docs/method.md's literal recipe; by default it trains on standardized features and folds them in)",
    },
    out: { type: 'string', value: 'DIR', help: 'where lincls.pth and the metrics go', default: 'CKPT\'s folder/lincls' },
  },
  async run(flags) {
    const pretrained = flags.pretrained!;
    const dataset = await data(flags);
    const { model, spec } = await pretrainedClassifier(pretrained, dataset, 'lincls');
    if (checkDevice(flags.device) === 'cuda') model.to('cuda');
    const epochs = flags.epochs ?? LINEAR_EVAL_DEFAULTS.epochs;
    const batchSize = flags['batch-size'] ?? EVALUATION_BATCH_SIZE;
    const out = flags.out ?? path.join(path.dirname(pretrained), 'lincls');
    keepSkippedListIn(out);
    fs.mkdirSync(out, { recursive: true });
    const json = flags.json === true;
    const workers = flags.workers;
    const train = loader(dataset.train, { batchSize, transform: transforms.linearTrain(dataset.size, dataset.channels), train: true, seed: flags.seed ?? 0, workers });
    const test = loader(dataset.test, { batchSize, transform: testTransform(dataset), train: false, workers });
    const reporter = new RunReporter({ out, epochs, stepsPerEpoch: train.batchesPerEpoch, batchSize, quiet: json, phase: 'lincls' });
    if (!json) process.stderr.write(`s2bnn lincls: ${spec.arch} from ${pretrained} on ${dataset.name}, ${epochs} epochs, batch ${batchSize} -> ${out}\n`);
    let result;
    try {
      result = await linearEvaluation({
        model,
        train,
        test,
        epochs,
        lr: flags.lr,
        evalEvery: flags['eval-every'],
        standardize: flags['no-standardize'] !== true,
        onEpochEnd: reporter.onEpochEnd,
        onStepEnd: reporter.onStepEnd,
        onEvaluation: (epoch, accuracy) => {
          reporter.record(epoch, { top1: accuracy.top1, top5: accuracy.top5 });
          reporter.log(`epoch ${epoch + 1}: top-1 ${accuracy.top1.toFixed(2)} top-5 ${accuracy.top5.toFixed(2)}`);
        },
      });
      reporter.record(epochs - 1, { top1: result.top1, top5: result.top5 });
    } finally {
      reporter.close();
      train.close();
      test.close();
    }
    const file = path.join(out, 'lincls.pth');
    await saveEvaluationCheckpoint(file, model, spec, epochs, result);
    const summary = { top1: result.top1, top5: result.top5, count: result.count, checkpoint: file };
    if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else process.stdout.write(`top-1 ${result.top1.toFixed(2)}  top-5 ${result.top5.toFixed(2)}  (${result.count} test images; ${file})\n`);
  },
});

export function testTransform(dataset: EvaluationData, resize?: number, crop?: number) {
  // Small datasets are evaluated at their native size; ImageNet-like ones as resize 256 + crop 224.
  const c = crop ?? dataset.size;
  return transforms.evaluation(resize ?? (dataset.stem === 'small' ? c : Math.round((c * 256) / 224)), c, dataset.channels);
}

export const finetuneCommand = command({
  name: 'finetune',
  summary: 'semi-supervised fine-tuning of the whole network on a class-balanced label fraction, then top-1/top-5',
  flags: {
    pretrained: PRETRAINED,
    ...DATA_FLAGS,
    'label-fraction': { type: 'number', value: 'F', help: 'the labelled fraction of the training set (the paper: 0.01, 0.1)', default: FINETUNE_DEFAULTS.labelFraction },
    epochs: { type: 'integer', help: 'epochs', default: FINETUNE_DEFAULTS.epochs },
    'batch-size': { type: 'integer', help: 'images per step (at most the labelled images)', default: EVALUATION_BATCH_SIZE },
    lr: { type: 'number', help: 'SGD learning rate, cosine schedule', default: FINETUNE_DEFAULTS.lr },
    out: { type: 'string', value: 'DIR', help: 'where finetune.pth and the metrics go', default: "CKPT's folder/finetune-<fraction>" },
  },
  async run(flags) {
    const pretrained = flags.pretrained!;
    const fraction = flags['label-fraction'] ?? FINETUNE_DEFAULTS.labelFraction;
    if (fraction > 1) throw new UsageError(`--label-fraction must be in (0, 1], got ${fraction}`);
    const dataset = await data(flags);
    const { model, spec } = await pretrainedClassifier(pretrained, dataset, 'finetune');
    if (checkDevice(flags.device) === 'cuda') model.to('cuda');
    const labels = dataset.train.labels();
    const labelled = dataset.train.subset(labelFraction(labels.toTypedArray() as BigInt64Array, fraction));
    labels.dispose();
    const epochs = flags.epochs ?? FINETUNE_DEFAULTS.epochs;
    const batchSize = Math.min(flags['batch-size'] ?? EVALUATION_BATCH_SIZE, labelled.length);
    const out = flags.out ?? path.join(path.dirname(pretrained), `finetune-${fraction}`);
    keepSkippedListIn(out);
    const json = flags.json === true;
    const workers = flags.workers;
    const train = loader(labelled, { batchSize, transform: transforms.linearTrain(dataset.size, dataset.channels), train: true, seed: flags.seed ?? 0, workers });
    const test = loader(dataset.test, { batchSize: EVALUATION_BATCH_SIZE, transform: testTransform(dataset), train: false, workers });
    const reporter = new RunReporter({ out, epochs, stepsPerEpoch: train.batchesPerEpoch, batchSize, quiet: json, phase: 'finetune' });
    if (!json) process.stderr.write(`s2bnn finetune: ${spec.arch} from ${pretrained}, ${labelled.length} labelled images (${fraction * 100} %), ${epochs} epochs -> ${out}\n`);
    let result;
    try {
      result = await fineTune({ model, train, test, epochs, lr: flags.lr, onStepEnd: reporter.onStepEnd, onEpochEnd: reporter.onEpochEnd });
      reporter.record(epochs - 1, { top1: result.top1, top5: result.top5 });
    } finally {
      reporter.close();
      train.close();
      test.close();
    }
    const file = path.join(out, 'finetune.pth');
    await saveEvaluationCheckpoint(file, model, spec, epochs, result);
    const summary = { top1: result.top1, top5: result.top5, count: result.count, labelled: labelled.length, checkpoint: file };
    if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else process.stdout.write(`top-1 ${result.top1.toFixed(2)}  top-5 ${result.top5.toFixed(2)}  (${labelled.length} labelled images; ${file})\n`);
  },
});

export const knnCommand = command({
  name: 'knn',
  summary: 'weighted kNN accuracy of the backbone features (a DIR without train/: leave-one-out over val/)',
  flags: {
    pretrained: PRETRAINED,
    ...DATA_FLAGS,
    k: { type: 'integer', help: 'neighbours', default: KNN_DEFAULTS.k },
    temperature: { type: 'number', help: 'vote weight exp(similarity / T)', default: KNN_DEFAULTS.temperature },
    'batch-size': { type: 'integer', help: 'images per forward', default: EVALUATION_BATCH_SIZE },
  },
  async run(flags) {
    const dataset = await data(flags, { trainOptional: true });
    const { model } = await pretrainedClassifier(flags.pretrained!, dataset, 'knn');
    if (checkDevice(flags.device) === 'cuda') model.to('cuda');
    const batchSize = flags['batch-size'] ?? EVALUATION_BATCH_SIZE;
    const workers = flags.workers;
    const transform = testTransform(dataset);
    // Without a train split the val images are their own bank, each classified by the others.
    const leaveOneOut = dataset.train === undefined;
    if (leaveOneOut) note('knn', `${dataset.name} has no train/ folder: leave-one-out kNN over val/ (each image's neighbours are the other val images)`);
    const bankData = dataset.train && loader(dataset.train, { batchSize, transform, train: false, workers });
    const testData = loader(dataset.test, { batchSize, transform, train: false, workers });
    try {
      const queries = await extractFeatures(model, testData);
      const bank = bankData ? await extractFeatures(model, bankData) : queries;
      const accuracy = await knnAccuracy(bank, queries, { k: flags.k, temperature: flags.temperature, classes: dataset.numClasses, leaveOneOut });
      const k = flags.k ?? KNN_DEFAULTS.k;
      const temperature = flags.temperature ?? KNN_DEFAULTS.temperature;
      const bankSplit = leaveOneOut ? 'val (leave-one-out)' : 'train';
      if (flags.json) process.stdout.write(`${JSON.stringify({ ...accuracy, k, temperature, bank: bankSplit })}\n`);
      else process.stdout.write(`kNN (k ${k}, T ${temperature}, bank ${bankSplit}): top-1 ${accuracy.top1.toFixed(2)}  top-5 ${accuracy.top5.toFixed(2)}  (${accuracy.count} test images)\n`);
    } finally {
      bankData?.close();
      testData.close();
    }
  },
});

/** The flags of the commands that score a test split (eval, infer). */
export const SCORING_FLAGS = {
  ...DATA_FLAGS,
  resize: { type: 'integer', help: 'resize the shorter side to N before the center crop', default: 'crop x 256/224, or the crop for small images' },
  crop: { type: 'integer', help: 'center crop side', default: '--size' },
  'save-logits': { type: 'string', value: 'FILE.safetensors', help: 'also write the logits and labels, in dataset order' },
  'batch-size': { type: 'integer', help: 'images per forward', default: EVALUATION_BATCH_SIZE },
} as const;

type ScoringFlags = FlagValues<typeof SCORING_FLAGS>;

export function checkSaveLogits(flags: ScoringFlags): string | undefined {
  const saveLogits = flags['save-logits'];
  if (saveLogits !== undefined && !saveLogits.endsWith('.safetensors')) throw new UsageError('--save-logits writes a .safetensors file');
  return saveLogits;
}

/**
 * One pass of `score` over the test split with eval's transform and batch size; with
 * --save-logits, writes the logits and labels it kept.
 */
export async function scoreTestSplit<R extends { logits?: Tensor; labels?: Tensor }>(
  flags: ScoringFlags,
  dataset: EvaluationData,
  score: (test: DataLoader, keepLogits: boolean) => Promise<R>,
): Promise<R> {
  const saveLogits = checkSaveLogits(flags);
  const test = loader(dataset.test, {
    batchSize: flags['batch-size'] ?? EVALUATION_BATCH_SIZE,
    transform: testTransform(dataset, flags.resize, flags.crop),
    train: false,
    workers: flags.workers,
  });
  let result: R;
  try {
    result = await score(test, saveLogits !== undefined);
  } finally {
    test.close();
  }
  if (saveLogits !== undefined) await saveCheckpoint(saveLogits, { logits: result.logits!, labels: result.labels! });
  return result;
}

export const evalCommand = command({
  name: 'eval',
  summary: "top-1/top-5 of a classifier (lincls output or an official main_lincls.py checkpoint); a DIR needs only val/",
  flags: {
    checkpoint: { type: 'file', value: 'CKPT', required: true, help: 'the classifier' },
    ...SCORING_FLAGS,
  },
  async run(flags) {
    const file = flags.checkpoint!;
    checkSaveLogits(flags);
    const dataset = await data(flags, { trainOptional: true });
    const checkpoint = await readCheckpoint(file, (message) => note('eval', message));
    const spec = encoderSpec(checkpoint, { stem: dataset.stem });
    const classes = headClasses(checkpoint);
    if (classes !== dataset.numClasses) throw new UsageError(`${file} classifies ${classes} classes, ${dataset.name} has ${dataset.numClasses}`);
    const model = classifierFor(spec, classes);
    model.loadStateDict(checkpoint);
    if (checkDevice(flags.device) === 'cuda') model.to('cuda');
    const result = await scoreTestSplit(flags, dataset, (test, keepLogits) => evaluate(model, test, { keepLogits }));
    const summary = { top1: result.top1, top5: result.top5, loss: result.loss, count: result.count };
    if (flags.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else process.stdout.write(`top-1 ${result.top1.toFixed(2)}  top-5 ${result.top5.toFixed(2)}  loss ${result.loss.toFixed(4)}  (${result.count} images)\n`);
  },
});

export const reproduceCommand = command({
  name: 'reproduce',
  summary: "the paper's experiment at small scale: a real-valued MoCo v2 teacher, the four BNN rows (MoCo v2 baseline, enhanced MoCo v2, contrastive + distillation, distillation only), linear evaluation of each, a table",
  flags: {
    preset: { type: Object.keys(PRESETS), help: 'default: 2 CPU cores, ~30 min; full: GPU scale; smoke: seconds', default: 'default' },
    ...DATA_FLAGS,
    out: { type: 'string', value: 'DIR', help: 'where every phase and the table go', default: 'runs/reproduce-<preset>' },
    json: { type: 'string', value: 'FILE', help: 'also write the table as JSON' },
    teacher: {
      type: 'file', value: 'CKPT',
      help: 'use this real-valued MoCo v2 ResNet-18 (e.g. OUT/teacher/checkpoint.pth of an earlier run) instead of pre-training a teacher',
    },
    rows: { type: 'string', value: 'LIST', help: `comma-separated subset of ${REPRODUCE_ROWS.join(',')}`, default: 'all' },
    validation: {
      type: 'integer',
      help: 'hold out N training images (never trained on) and add every linear classifier\'s top-1 on them: the column to choose hyperparameters by, leaving the test split to report',
    },
    'student-epochs': { type: 'integer', help: "every student row's epochs", default: "the preset's" },
    wd: { type: 'nonnegative', help: "every student row's weight decay", default: "the preset's" },
    'distill-temperature': { type: 'number', help: "every distilling row's temperature", default: "the preset's" },
    'contrastive-weight': { type: 'nonnegative', help: 'the InfoNCE weight of contrastive + distillation', default: "the preset's" },
    'distill-weight': { type: 'nonnegative', help: 'the distribution-loss weight of contrastive + distillation', default: "the preset's" },
    'student-lr': { type: 'number', help: "the Adam rows' learning rate (enhanced, contrastive + distillation, distillation only)", default: "the preset's" },
    'baseline-lr': { type: 'number', help: 'the SGD learning rate of the plain MoCo v2 baseline', default: "the preset's" },
    'teacher-precision': { type: PRECISIONS, help: "the frozen teacher's arithmetic in the student rows", default: "the preset's" },
    'teacher-epochs': { type: 'integer', help: 'epochs of the teacher the run pre-trains (not with --teacher)', default: "the preset's" },
    'teacher-width': { type: 'number', help: 'width of the teacher the run pre-trains, at most 16 (not with --teacher)', default: "the preset's" },
    'teacher-training-precision': {
      type: PRECISIONS, help: 'bfloat16 pre-trains the teacher in mixed precision (not with --teacher)', default: "the preset's",
    },
  },
  async run(flags) {
    const presetName = flags.preset ?? 'default';
    const preset = PRESETS[presetName];
    const rows = flags.rows?.split(',').map((row) => {
      if (!(REPRODUCE_ROWS as readonly string[]).includes(row)) throw new UsageError(`--rows: unknown row '${row}' (expected ${REPRODUCE_ROWS.join(', ')})`);
      return row as ReproduceRow;
    });
    const student: StudentChanges = defined({
      epochs: flags['student-epochs'],
      weightDecay: flags.wd,
      lr: flags['student-lr'],
      baselineLr: flags['baseline-lr'],
      distillTemperature: flags['distill-temperature'],
      contrastiveWeight: flags['contrastive-weight'],
      distillWeight: flags['distill-weight'],
      teacherPrecision: flags['teacher-precision'],
    });
    const teacher = flags.teacher;
    const teacherWidth = flags['teacher-width'];
    if (teacherWidth !== undefined && teacherWidth > 16) {
      throw new UsageError(`--teacher-width must be at most 16 (the widest ResNet-18 s2bnn builds), got ${teacherWidth}`);
    }
    const teacherChanges: TeacherChanges = defined({
      epochs: flags['teacher-epochs'],
      width: teacherWidth,
      precision: flags['teacher-training-precision'],
    });
    if (teacher !== undefined && Object.keys(teacherChanges).length > 0) {
      throw new UsageError('--teacher-epochs, --teacher-width and --teacher-training-precision change the teacher the run trains; they do not go with --teacher CKPT');
    }
    const dataset = await data({ ...flags, json: undefined });
    const out = flags.out ?? path.join('runs', `reproduce-${presetName}`);
    const reporters: RunReporter[] = [];
    const stops = stopOnSignals((signal) => process.stderr.write(`\n${signal}: stopping after this step\n`));
    let result;
    try {
      result = await reproduce({
        preset,
        data: dataset,
        out,
        workers: flags.workers,
        seed: flags.seed,
        device: checkDevice(flags.device),
        teacher,
        rows,
        validation: flags.validation,
        student,
        teacherChanges,
        signal: stops.signal,
        log: (message) => process.stderr.write(`s2bnn reproduce: ${message}\n`),
        reporter: (phase, info) => {
          const reporter = new RunReporter({ out: path.join(out, phase), epochs: info.epochs, stepsPerEpoch: info.stepsPerEpoch, batchSize: info.batchSize, phase });
          reporters.push(reporter);
          return { onStepEnd: reporter.onStepEnd, onEpochEnd: reporter.onEpochEnd, close: () => reporter.close() };
        },
      });
    } finally {
      stops.dispose();
    }
    const table = formatReproduceTable(result);
    fs.writeFileSync(path.join(out, 'results.md'), `${table}\n`);
    if (flags.json) fs.writeFileSync(flags.json, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${table}\n\n${result.dataset}, preset ${result.preset}: ${(result.seconds / 60).toFixed(1)} minutes\n`);
  },
});
