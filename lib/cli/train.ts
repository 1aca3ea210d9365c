// The training commands: pretrain, lincls, knn, eval. Each is a thin layer over the public API
// (lib/train): flags -> config, the dataset, progress/metrics/plots, signals, one-line errors.
import * as fs from 'fs';
import * as path from 'path';

import { saveCheckpoint } from '../checkpoint';
import { DataLoader, transforms } from '../data';
import { ResNetArch } from '../models';
import { writeCalibrationPlots } from '../train/calibration';
import { evaluate, extractFeatures, fineTune, knnAccuracy, labelFraction, linearEvaluation, loadBackbone, saveEvaluationCheckpoint } from '../train/evaluate';
import { Position } from '../train/loop';
import { Arch, PRETRAIN_RECIPES, defaultConfig, pretrain, recipeDefaults, isContrastive, usesTeacher } from '../train/pretrain';
import { RunReporter } from '../train/report';
import { PRECISIONS } from '../train/trainer';
import { PRESETS, REPRODUCE_ROWS, ReproduceRow, StudentChanges, TeacherChanges, formatReproduceTable, reproduce } from '../train/reproduce';
import { SCHEDULES } from '../train/schedule';
import { classifierFor, encoderSpec, headClasses, readCheckpoint } from '../train/specs';
import { Tensor, manualSeed, setNumThreads } from '../tensor';
import { Flags, FlagKind, UsageError, choice, deviceFlag, optionalNumber, optionalString, parseFlags, positiveInteger } from './flags';
import { EvaluationData, OpenedData, loader, openData } from './data';

export const TRAIN_USAGE = `  pretrain [options]            self-supervised pre-training (docs/method.md recipes)
      --recipe moco-v2|contrastive|contrastive+distill|distill   (default distill)
      --arch reactnet-a|resnet18|resnet34|resnet50               (default reactnet-a)
      --step 1|2                two-step binarization of ReActNet-A (default 2)
      --init CKPT               start from a (step-1) checkpoint, s2bnn's or the official code's
      --teacher CKPT            frozen real-valued teacher (distillation recipes)
      --teacher-arch A          resnet18|resnet34|resnet50 (default resnet50)
      --teacher-precision float32|bfloat16   the teacher's arithmetic (default float32; bfloat16 is
                                about 2.3x faster on CPUs with AVX-512 BF16, outputs move by ~2e-3)
      --precision float32|bfloat16   the trained network's arithmetic (default float32; bfloat16 is
                                mixed precision, for the ResNet archs: weights and losses stay float32)
      --data fashion-mnist|DIR  dataset: the built-in default, or DIR/train + DIR/val ImageFolders
      --size N                  image side (default 28 for fashion-mnist, 224 for folders)
      --epochs N --batch-size N --lr X --wd X --schedule linear|cosine|step|constant
      --temperature X --distill-temperature X --queue-size K --moco-momentum M --dim D
      --contrastive-weight X --distill-weight X   the two losses of contrastive+distill (1:1)
      --key-groups G            single-device shuffle-BN sub-batches of the key batch (default 8)
      --width W                 width multiplier of ReActNet-A or the ResNet (default 1)
      --resume [CKPT]           continue the run in --out (its checkpoint.pth), or from CKPT: an s2bnn
                                run checkpoint or an official main_moco.py one (from its next epoch)
      --out DIR --device cpu|cuda --workers N --seed N --subset N --json
      --threads N               libtorch threads, in every training command (default: all cores)
  lincls --pretrained CKPT [options]   linear evaluation of a frozen backbone (docs/method.md)
      --data, --epochs N (100), --batch-size N (256), --lr X (0.1), --out DIR, --eval-every N,
      --subset N, --workers N, --device, --json
      --no-standardize          train the Linear on raw features (docs/method.md's literal recipe; by
                                default it trains on standardized features and folds them in)
  finetune --pretrained CKPT [options] semi-supervised fine-tuning of the whole network on a
                                class-balanced label fraction, then top-1/top-5
      --label-fraction F (0.01 or 0.1; default 0.1), --epochs N (30), --lr X (0.01, SGD,
      cosine), --batch-size N (256), --out DIR, --subset N, --workers N, --device, --json
  knn --pretrained CKPT [options]      weighted kNN accuracy (k 200, T 0.07) of the backbone features
      --data, --k N, --temperature X, --batch-size N, --subset N, --json   (a DIR without train/:
                                leave-one-out over val/)
  eval --checkpoint CKPT [options]     top-1/top-5 of a classifier (lincls output or an official
                                main_lincls.py checkpoint); a DIR needs only val/
      --data, --resize N --crop N, --save-logits FILE.safetensors, --batch-size N, --json`;

export const COMMON: Record<string, FlagKind> = {
  data: 'string', workers: 'number', subset: 'number', 'test-subset': 'number', json: 'boolean', device: 'string', seed: 'nonnegative',
  threads: 'number', size: 'number',
};

// Every training command opens its data first: the place to apply the shared --threads too.
export async function data(flags: Flags): Promise<OpenedData>;
export async function data(flags: Flags, options: { trainOptional: true }): Promise<EvaluationData>;
export async function data(flags: Flags, options: { trainOptional?: boolean } = {}): Promise<EvaluationData> {
  const threads = positiveInteger(flags, 'threads');
  if (threads !== undefined) setNumThreads(threads);
  // Every weight a command initializes (a classifier's new Linear, the probe) draws from
  // libtorch's generator, which each process seeds from the OS unless told.
  manualSeed(optionalNumber(flags, 'seed') ?? 0);
  return openData(optionalString(flags, 'data') ?? 'fashion-mnist', {
    subset: positiveInteger(flags, 'subset'),
    testSubset: positiveInteger(flags, 'test-subset'),
    size: positiveInteger(flags, 'size'),
    trainOptional: options.trainOptional ?? false,
  });
}

function note(command: string, message: string): void {
  process.stderr.write(`s2bnn ${command}: note: ${message}\n`);
}

function existingFile(flags: Flags, name: string): string | undefined {
  const file = optionalString(flags, name);
  if (file !== undefined && !fs.existsSync(file)) throw new UsageError(`--${name}: no such file '${file}'`);
  return file;
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

export async function pretrainCommand(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    ...COMMON, recipe: 'string', arch: 'string', step: 'number', init: 'string', teacher: 'string', 'teacher-arch': 'string',
    epochs: 'number', 'batch-size': 'number', lr: 'number', wd: 'nonnegative', schedule: 'string', temperature: 'number',
    'distill-temperature': 'number', 'queue-size': 'number', 'moco-momentum': 'nonnegative', dim: 'number', 'key-groups': 'number',
    'contrastive-weight': 'nonnegative', 'distill-weight': 'nonnegative', width: 'number', out: 'string', resume: 'boolean-or-string',
    'teacher-precision': 'string', precision: 'string',
  });
  const recipe = choice(flags, 'recipe', PRETRAIN_RECIPES, 'distill');
  const arch = choice(flags, 'arch', ['reactnet-a', 'resnet18', 'resnet34', 'resnet50'] as const, 'reactnet-a');
  const teacherFile = existingFile(flags, 'teacher');
  if (usesTeacher(recipe) && !teacherFile) throw new UsageError(`the ${recipe} recipe needs --teacher CKPT (a real-valued MoCo checkpoint; 'pretrain --recipe moco-v2 --arch resnet18' makes one)`);
  const dataset = await data(flags);
  const defaults = recipeDefaults(recipe);
  const step = optionalNumber(flags, 'step') ?? (arch === 'reactnet-a' ? defaults.step : 2);
  if (step !== 1 && step !== 2) throw new UsageError(`--step must be 1 or 2, got ${step}`);
  const config = defaultConfig(recipe, {
    arch: arch as Arch,
    step,
    width: optionalNumber(flags, 'width') ?? 1,
    stem: dataset.stem,
    inChannels: dataset.channels,
    init: existingFile(flags, 'init'),
    teacher: teacherFile,
    teacherArch: choice(flags, 'teacher-arch', ['resnet18', 'resnet34', 'resnet50'] as const, 'resnet50') as ResNetArch,
    epochs: positiveInteger(flags, 'epochs') ?? 200,
    batchSize: positiveInteger(flags, 'batch-size') ?? 256,
    lr: optionalNumber(flags, 'lr') ?? defaults.lr,
    weightDecay: optionalNumber(flags, 'wd') ?? defaults.weightDecay,
    schedule: choice(flags, 'schedule', SCHEDULES, defaults.schedule),
    temperature: optionalNumber(flags, 'temperature') ?? 0.2,
    distillTemperature: optionalNumber(flags, 'distill-temperature') ?? 0.2,
    teacherPrecision: choice(flags, 'teacher-precision', PRECISIONS, 'float32'),
    precision: choice(flags, 'precision', PRECISIONS, 'float32'),
    contrastiveWeight: optionalNumber(flags, 'contrastive-weight') ?? 1,
    distillWeight: optionalNumber(flags, 'distill-weight') ?? 1,
    queueSize: positiveInteger(flags, 'queue-size') ?? 65536,
    momentum: optionalNumber(flags, 'moco-momentum') ?? 0.999,
    dim: positiveInteger(flags, 'dim') ?? 128,
    keyGroups: positiveInteger(flags, 'key-groups') ?? 8,
    seed: optionalNumber(flags, 'seed') ?? 0,
  });
  if (isContrastive(recipe) && config.queueSize % config.batchSize !== 0) {
    throw new UsageError(`--queue-size (${config.queueSize}) must be a multiple of --batch-size (${config.batchSize})`);
  }
  const out = optionalString(flags, 'out') ?? path.join('runs', `${recipe.replace('+', '-')}-${arch}-step${step}`);
  const json = flags.json === true;
  const transform = recipe === 'moco-v2' ? transforms.mocoV2(dataset.size, dataset.channels) : transforms.s2bnnLite(dataset.size, dataset.channels);
  const workers = positiveInteger(flags, 'workers');
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
      resume: typeof flags.resume === 'string' ? existingFile(flags, 'resume') : flags.resume === true,
      onNotice: (message) => note('pretrain', message),
      device: deviceFlag(flags),
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

export async function linclsCommand(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    ...COMMON, pretrained: 'string', epochs: 'number', 'batch-size': 'number', lr: 'number', out: 'string', 'eval-every': 'number',
    'no-standardize': 'boolean',
  });
  const pretrained = existingFile(flags, 'pretrained');
  if (!pretrained) throw new UsageError('lincls needs --pretrained CKPT');
  const dataset = await data(flags);
  const { model, spec } = await pretrainedClassifier(pretrained, dataset, 'lincls');
  const dev = deviceFlag(flags);
  if (dev === 'cuda') model.to('cuda');
  const epochs = positiveInteger(flags, 'epochs') ?? 100;
  const batchSize = positiveInteger(flags, 'batch-size') ?? 256;
  const out = optionalString(flags, 'out') ?? path.join(path.dirname(pretrained), 'lincls');
  fs.mkdirSync(out, { recursive: true });
  const json = flags.json === true;
  const workers = positiveInteger(flags, 'workers');
  const seed = optionalNumber(flags, 'seed') ?? 0;
  const train = loader(dataset.train, { batchSize, transform: transforms.linearTrain(dataset.size, dataset.channels), train: true, seed, workers });
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
      lr: optionalNumber(flags, 'lr') ?? 0.1,
      evalEvery: positiveInteger(flags, 'eval-every'),
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
}

export function testTransform(dataset: EvaluationData, resize?: number, crop?: number) {
  // Small datasets are evaluated at their native size; ImageNet-like ones as resize 256 + crop 224.
  const c = crop ?? dataset.size;
  return transforms.evaluation(resize ?? (dataset.stem === 'small' ? c : Math.round((c * 256) / 224)), c, dataset.channels);
}

export async function finetuneCommand(args: string[]): Promise<void> {
  const flags = parseFlags(args, { ...COMMON, pretrained: 'string', epochs: 'number', 'batch-size': 'number', lr: 'number', out: 'string', 'label-fraction': 'number' });
  const pretrained = existingFile(flags, 'pretrained');
  if (!pretrained) throw new UsageError('finetune needs --pretrained CKPT');
  const fraction = optionalNumber(flags, 'label-fraction') ?? 0.1;
  if (fraction > 1) throw new UsageError(`--label-fraction must be in (0, 1], got ${fraction}`);
  const dataset = await data(flags);
  const { model, spec } = await pretrainedClassifier(pretrained, dataset, 'finetune');
  if (deviceFlag(flags) === 'cuda') model.to('cuda');
  const labels = dataset.train.labels();
  const labelled = dataset.train.subset(labelFraction(labels.toTypedArray() as BigInt64Array, fraction));
  labels.dispose();
  const epochs = positiveInteger(flags, 'epochs') ?? 30;
  const batchSize = Math.min(positiveInteger(flags, 'batch-size') ?? 256, labelled.length);
  const out = optionalString(flags, 'out') ?? path.join(path.dirname(pretrained), `finetune-${fraction}`);
  const json = flags.json === true;
  const workers = positiveInteger(flags, 'workers');
  const seed = optionalNumber(flags, 'seed') ?? 0;
  const train = loader(labelled, { batchSize, transform: transforms.linearTrain(dataset.size, dataset.channels), train: true, seed, workers });
  const test = loader(dataset.test, { batchSize: 256, transform: testTransform(dataset), train: false, workers });
  const reporter = new RunReporter({ out, epochs, stepsPerEpoch: train.batchesPerEpoch, batchSize, quiet: json, phase: 'finetune' });
  if (!json) process.stderr.write(`s2bnn finetune: ${spec.arch} from ${pretrained}, ${labelled.length} labelled images (${fraction * 100} %), ${epochs} epochs -> ${out}\n`);
  let result;
  try {
    result = await fineTune({ model, train, test, epochs, lr: optionalNumber(flags, 'lr'), onStepEnd: reporter.onStepEnd, onEpochEnd: reporter.onEpochEnd });
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
}

export async function knnCommand(args: string[]): Promise<void> {
  const flags = parseFlags(args, { ...COMMON, pretrained: 'string', k: 'number', temperature: 'number', 'batch-size': 'number' });
  const pretrained = existingFile(flags, 'pretrained');
  if (!pretrained) throw new UsageError('knn needs --pretrained CKPT');
  const dataset = await data(flags, { trainOptional: true });
  const { model } = await pretrainedClassifier(pretrained, dataset, 'knn');
  if (deviceFlag(flags) === 'cuda') model.to('cuda');
  const batchSize = positiveInteger(flags, 'batch-size') ?? 256;
  const workers = positiveInteger(flags, 'workers');
  const transform = testTransform(dataset);
  // Without a train split the val images are their own bank, each classified by the others.
  const leaveOneOut = dataset.train === undefined;
  if (leaveOneOut) note('knn', `${dataset.name} has no train/ folder: leave-one-out kNN over val/ (each image's neighbours are the other val images)`);
  const bankData = dataset.train && loader(dataset.train, { batchSize, transform, train: false, workers });
  const testData = loader(dataset.test, { batchSize, transform, train: false, workers });
  try {
    const queries = await extractFeatures(model, testData);
    const bank = bankData ? await extractFeatures(model, bankData) : queries;
    const k = positiveInteger(flags, 'k') ?? 200;
    const temperature = optionalNumber(flags, 'temperature') ?? 0.07;
    const accuracy = await knnAccuracy(bank, queries, { k, temperature, classes: dataset.numClasses, leaveOneOut });
    const bankSplit = leaveOneOut ? 'val (leave-one-out)' : 'train';
    if (flags.json) process.stdout.write(`${JSON.stringify({ ...accuracy, k, temperature, bank: bankSplit })}\n`);
    else process.stdout.write(`kNN (k ${k}, T ${temperature}, bank ${bankSplit}): top-1 ${accuracy.top1.toFixed(2)}  top-5 ${accuracy.top5.toFixed(2)}  (${accuracy.count} test images)\n`);
  } finally {
    bankData?.close();
    testData.close();
  }
}

/** The flags of the commands that score a test split (eval, infer). */
export const SCORING_FLAGS: Record<string, FlagKind> = { ...COMMON, resize: 'number', crop: 'number', 'save-logits': 'string', 'batch-size': 'number' };

export function saveLogitsFlag(flags: Flags): string | undefined {
  const saveLogits = optionalString(flags, 'save-logits');
  if (saveLogits !== undefined && !saveLogits.endsWith('.safetensors')) throw new UsageError('--save-logits writes a .safetensors file');
  return saveLogits;
}

/**
 * One pass of `score` over the test split with eval's transform and batch size; with
 * --save-logits, writes the logits and labels it kept.
 */
export async function scoreTestSplit<R extends { logits?: Tensor; labels?: Tensor }>(
  flags: Flags,
  dataset: EvaluationData,
  score: (test: DataLoader, keepLogits: boolean) => Promise<R>,
): Promise<R> {
  const saveLogits = saveLogitsFlag(flags);
  const test = loader(dataset.test, {
    batchSize: positiveInteger(flags, 'batch-size') ?? 256,
    transform: testTransform(dataset, positiveInteger(flags, 'resize'), positiveInteger(flags, 'crop')),
    train: false,
    workers: positiveInteger(flags, 'workers'),
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

export async function evalCommand(args: string[]): Promise<void> {
  const flags = parseFlags(args, { ...SCORING_FLAGS, checkpoint: 'string' });
  const file = existingFile(flags, 'checkpoint');
  if (!file) throw new UsageError('eval needs --checkpoint CKPT');
  saveLogitsFlag(flags);
  const dataset = await data(flags, { trainOptional: true });
  const checkpoint = await readCheckpoint(file, (message) => note('eval', message));
  const spec = encoderSpec(checkpoint, { stem: dataset.stem });
  const classes = headClasses(checkpoint);
  if (classes !== dataset.numClasses) throw new UsageError(`${file} classifies ${classes} classes, ${dataset.name} has ${dataset.numClasses}`);
  const model = classifierFor(spec, classes);
  model.loadStateDict(checkpoint);
  if (deviceFlag(flags) === 'cuda') model.to('cuda');
  const result = await scoreTestSplit(flags, dataset, (test, keepLogits) => evaluate(model, test, { keepLogits }));
  const summary = { top1: result.top1, top5: result.top5, loss: result.loss, count: result.count };
  if (flags.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else process.stdout.write(`top-1 ${result.top1.toFixed(2)}  top-5 ${result.top5.toFixed(2)}  loss ${result.loss.toFixed(4)}  (${result.count} images)\n`);
}

export const REPRODUCE_USAGE = `  reproduce [options]           the paper's experiment at small scale: a real-valued MoCo v2 teacher,
                                the four BNN rows (MoCo v2 baseline, enhanced MoCo v2, contrastive +
                                distillation, distillation only), linear evaluation of each, a table
      --preset default|full|smoke   default: 2 CPU cores, ~30 min; full: GPU scale; smoke: seconds
      --data fashion-mnist      dataset (default)
      --out DIR                 (default runs/reproduce-<preset>)
      --json FILE               also write the table as JSON
      --workers N, --device cpu|cuda, --seed N
      --teacher CKPT            use this real-valued MoCo v2 ResNet-18 (e.g. OUT/teacher/checkpoint.pth
                                of an earlier run) instead of pre-training a teacher
      --rows LIST               comma-separated subset of moco-baseline,contrastive,contrastive+distill,distill
      --student-epochs N --wd X --distill-temperature X --contrastive-weight X --distill-weight X
                                change every student row (the knobs to study at small scale)
      --student-lr X            the Adam rows' learning rate (enhanced, contrastive + distillation,
                                distillation only)
      --baseline-lr X           the SGD learning rate of the plain MoCo v2 baseline
      --teacher-precision float32|bfloat16   the frozen teacher's arithmetic in the student rows
      --teacher-epochs N --teacher-width X --teacher-training-precision float32|bfloat16
                                change the teacher the run pre-trains (not with --teacher; bfloat16
                                pre-trains it in mixed precision)`;

export async function reproduceCommand(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    ...COMMON, preset: 'string', out: 'string', json: 'string', teacher: 'string', rows: 'string', 'student-epochs': 'number',
    'distill-temperature': 'number', 'contrastive-weight': 'nonnegative', 'distill-weight': 'nonnegative', wd: 'nonnegative',
    'student-lr': 'number', 'baseline-lr': 'number', 'teacher-epochs': 'number', 'teacher-width': 'number', 'teacher-precision': 'string',
    'teacher-training-precision': 'string',
  });
  const presetName = choice(flags, 'preset', Object.keys(PRESETS), 'default');
  const preset = PRESETS[presetName];
  const rowsFlag = optionalString(flags, 'rows');
  const rows = rowsFlag?.split(',').map((row) => {
    if (!(REPRODUCE_ROWS as readonly string[]).includes(row)) throw new UsageError(`--rows: unknown row '${row}' (expected ${REPRODUCE_ROWS.join(', ')})`);
    return row as ReproduceRow;
  });
  const student: StudentChanges = {};
  const studentEpochs = positiveInteger(flags, 'student-epochs');
  if (studentEpochs !== undefined) student.epochs = studentEpochs;
  const studentKnobs = [['wd', 'weightDecay'], ['student-lr', 'lr'], ['baseline-lr', 'baselineLr'], ['distill-temperature', 'distillTemperature'],
    ['contrastive-weight', 'contrastiveWeight'], ['distill-weight', 'distillWeight']] as const;
  for (const [flag, key] of studentKnobs) {
    const value = optionalNumber(flags, flag);
    if (value !== undefined) student[key] = value;
  }
  if (flags['teacher-precision'] !== undefined) student.teacherPrecision = choice(flags, 'teacher-precision', PRECISIONS, 'float32');
  const teacher = existingFile(flags, 'teacher');
  const teacherChanges: TeacherChanges = {};
  const teacherEpochs = positiveInteger(flags, 'teacher-epochs');
  if (teacherEpochs !== undefined) teacherChanges.epochs = teacherEpochs;
  const teacherWidth = optionalNumber(flags, 'teacher-width');
  if (teacherWidth !== undefined) {
    if (teacherWidth > 16) throw new UsageError(`--teacher-width must be at most 16 (the widest ResNet-18 s2bnn builds), got ${teacherWidth}`);
    teacherChanges.width = teacherWidth;
  }
  if (flags['teacher-training-precision'] !== undefined) teacherChanges.precision = choice(flags, 'teacher-training-precision', PRECISIONS, 'float32');
  if (teacher !== undefined && Object.keys(teacherChanges).length > 0) {
    throw new UsageError('--teacher-epochs, --teacher-width and --teacher-training-precision change the teacher the run trains; they do not go with --teacher CKPT');
  }
  const dataset = await data(flags);
  const out = optionalString(flags, 'out') ?? path.join('runs', `reproduce-${presetName}`);
  const jsonFile = optionalString(flags, 'json');
  const reporters: RunReporter[] = [];
  const stops = stopOnSignals((signal) => process.stderr.write(`\n${signal}: stopping after this step\n`));
  let result;
  try {
    result = await reproduce({
      preset,
      data: dataset,
      out,
      workers: positiveInteger(flags, 'workers'),
      seed: optionalNumber(flags, 'seed'),
      device: deviceFlag(flags),
      teacher,
      rows,
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
  if (jsonFile) fs.writeFileSync(jsonFile, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${table}\n\n${result.dataset}, preset ${result.preset}: ${(result.seconds / 60).toFixed(1)} minutes\n`);
}
