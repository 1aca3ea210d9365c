// The pre-training recipes of docs/method.md as one configurable run: builds the student (a MoCo
// wrapper, as the official code builds every student), loads the step-1 init and the teacher, and
// trains with checkpoints every epoch (atomic, in the official layout), on stop requests, and a
// resume that continues the same trajectory.
import * as fs from 'fs';
import * as path from 'path';

import { Checkpoint, PyValue, encoderState, loadCheckpoint, saveCheckpoint } from '../checkpoint';
import { Model, ReActNetOptions, ResNetArch, ResNetOptions, moco, resnet } from '../models';
import { Transform, transforms } from '../data';
import { manualSeed } from '../tensor';
import { BatchSource, Callback, EpochInfo, FitResult, Position, StepInfo, fit } from './loop';
import { Schedule, ScheduleName, parseSchedule } from './schedule';
import { leanParameterNames, readCheckpoint } from './specs';
import { OptimizerOptions, Recipe, PRECISIONS, Precision, Trainer } from './trainer';

/**
 * 'moco-v2': the plain MoCo v2 baseline (SGD, cosine, one step; also how real-valued teachers are
 * pre-trained). 'contrastive': enhanced MoCo v2 (Adam, linear decay). 'contrastive+distill' and
 * 'distill': the S2-BNN recipes with a frozen teacher.
 */
export type PretrainRecipe = 'moco-v2' | 'contrastive' | 'contrastive+distill' | 'distill';
export const PRETRAIN_RECIPES: readonly PretrainRecipe[] = ['moco-v2', 'contrastive', 'contrastive+distill', 'distill'];

export type Arch = 'reactnet-a' | ResNetArch;

export interface PretrainConfig {
  recipe: PretrainRecipe;
  arch: Arch;
  /** ReActNet-A two-step binarization: 1 = activations only, 2 = weights too (default 2). */
  step: 1 | 2;
  /** Stage width multiplier of ReActNet-A or the ResNet (default 1). */
  width: number;
  stem: 'imagenet' | 'small';
  inChannels: number;
  /** Step-1 checkpoint that step 2 starts from. */
  init?: string;
  /** Teacher checkpoint (distillation recipes): a MoCo checkpoint or a bare encoder with its MLP head. */
  teacher?: string;
  teacherArch: ResNetArch;
  epochs: number;
  batchSize: number;
  optimizer: 'adam' | 'sgd';
  lr: number;
  weightDecay: number;
  schedule: ScheduleName;
  /** InfoNCE temperature. */
  temperature: number;
  distillTemperature: number;
  /** The frozen teacher's precision (distillation recipes): bfloat16 is about 2.3x faster on CPUs with AVX-512 BF16. */
  teacherPrecision: Precision;
  /** The trained network's arithmetic: bfloat16 is mixed precision (autocast), for real-valued ResNets. */
  precision: Precision;
  /** Weights of the two losses of contrastive+distill (docs/method.md: 1:1); ignored by the other recipes. */
  contrastiveWeight: number;
  distillWeight: number;
  /** MoCo projection dim, queue size K and key-encoder momentum m. */
  dim: number;
  queueSize: number;
  momentum: number;
  /** Single-device shuffle-BN groups of the key batch. */
  keyGroups: number;
  seed: number;
}

/** The two augmentation pipelines of docs/method.md (lib/data.ts `transforms`). */
export type Augmentation = 'moco-v2' | 's2bnn-lite';

export interface RecipeSpec {
  /** The native Trainer's loss: InfoNCE, the distribution loss, or both. */
  loss: Recipe;
  optimizer: 'adam' | 'sgd';
  lr: number;
  weightDecay: number;
  schedule: ScheduleName;
  step: 1 | 2;
  augmentation: Augmentation;
  /** Two views per image: keys from encoder_k, the queue. */
  contrastive: boolean;
  /** A frozen real-valued teacher. */
  teacher: boolean;
}

/**
 * Every pre-training recipe in one table (docs/method.md): its loss, optimizer defaults and
 * augmentation. The CLI, `reproduce`, the benchmarks and the Trainer all read it.
 */
export const RECIPES: Readonly<Record<PretrainRecipe, Readonly<RecipeSpec>>> = {
  'moco-v2': { loss: 'contrastive', optimizer: 'sgd', lr: 0.03, weightDecay: 1e-4, schedule: 'cosine', step: 2, augmentation: 'moco-v2', contrastive: true, teacher: false },
  contrastive: { loss: 'contrastive', optimizer: 'adam', lr: 3e-4, weightDecay: 1e-4, schedule: 'linear', step: 2, augmentation: 's2bnn-lite', contrastive: true, teacher: false },
  'contrastive+distill': {
    loss: 'contrastive+distill', optimizer: 'adam', lr: 3e-4, weightDecay: 0, schedule: 'linear', step: 2, augmentation: 's2bnn-lite', contrastive: true, teacher: true,
  },
  distill: { loss: 'distill', optimizer: 'adam', lr: 3e-4, weightDecay: 0, schedule: 'linear', step: 2, augmentation: 's2bnn-lite', contrastive: false, teacher: true },
};

/** The pre-training views of an augmentation at an image size. */
export function augmentationTransform(augmentation: Augmentation, size: number, channels = 3): Transform {
  return augmentation === 'moco-v2' ? transforms.mocoV2(size, channels) : transforms.s2bnnLite(size, channels);
}

/** A recipe's pre-training views. */
export function recipeTransform(recipe: PretrainRecipe, size: number, channels: number): Transform {
  return augmentationTransform(RECIPES[recipe].augmentation, size, channels);
}

/** docs/method.md's recipe per name (batch size and epochs are the caller's). */
export function recipeDefaults(recipe: PretrainRecipe): Pick<PretrainConfig, 'optimizer' | 'lr' | 'weightDecay' | 'schedule' | 'step'> {
  const { optimizer, lr, weightDecay, schedule, step } = RECIPES[recipe];
  return { optimizer, lr, weightDecay, schedule, step };
}

export function defaultConfig(recipe: PretrainRecipe, overrides: Partial<PretrainConfig> = {}): PretrainConfig {
  return {
    recipe,
    arch: 'reactnet-a',
    width: 1,
    stem: 'imagenet',
    inChannels: 3,
    teacherArch: 'resnet50',
    epochs: 200,
    batchSize: 256,
    temperature: 0.2,
    distillTemperature: 0.2,
    teacherPrecision: 'float32',
    precision: 'float32',
    contrastiveWeight: 1,
    distillWeight: 1,
    dim: 128,
    queueSize: 65536,
    momentum: 0.999,
    keyGroups: 8,
    seed: 0,
    ...recipeDefaults(recipe),
    ...overrides,
  };
}

export const usesTeacher = (recipe: PretrainRecipe): boolean => RECIPES[recipe].teacher;
/** The recipes with a contrastive loss: two views per image, keys from encoder_k, the queue. */
export const isContrastive = (recipe: PretrainRecipe): boolean => RECIPES[recipe].contrastive;

/** The encoder a config trains, as the model builders take it. */
export function encoderOptions(config: PretrainConfig): ({ arch: 'reactnet-a' } & ReActNetOptions) | ({ arch: ResNetArch } & ResNetOptions) {
  if (config.arch === 'reactnet-a') {
    return {
      arch: 'reactnet-a',
      binarize: config.step === 1 ? 'activations' : 'both',
      width: config.width,
      inChannels: config.inChannels,
      stem: config.stem,
    };
  }
  return { arch: config.arch, inChannels: config.inChannels, stem: config.stem, width: config.width };
}

/**
 * The network a recipe trains: a MoCo wrapper, for distillation only too, as the official code
 * builds every student (docs/checkpoints.md: there encoder_k and the queue keep their initial
 * values, and checkpoints carry them so that the official scripts load them).
 */
export function buildStudent(config: PretrainConfig): Model {
  return moco(encoderOptions(config), { dim: config.dim, queueSize: config.queueSize });
}

/** A frozen teacher encoder with its MLP head from a MoCo checkpoint (s2bnn's or the reference's) or a bare encoder's. */
export async function loadTeacher(file: string, arch: ResNetArch, options: { dim: number; inChannels: number; stem: 'imagenet' | 'small' }): Promise<Model> {
  const encoder = encoderState(await loadCheckpoint(file));
  // Slim teachers (small-scale runs) are recognized by their stem width.
  const stem = encoder.get('conv1.weight');
  const width = stem ? stem.shape[0] / 64 : 1;
  const teacher = resnet(arch, { head: 'mlp', mlpDim: options.dim, inChannels: options.inChannels, stem: options.stem, width });
  try {
    teacher.loadStateDict(encoder);
  } catch (err) {
    throw new Error(`teacher ${file} does not fit a ${arch} with a ${options.dim}-d MLP head: ${(err as Error).message}`);
  }
  teacher.freeze();
  return teacher.eval();
}

/**
 * Step 2 starts from step 1: every weight of the trained encoder must be in the init checkpoint,
 * in any layout `Model.loadStateDict` reads (official or s2bnn, MoCo or a bare encoder).
 */
export function loadInit(student: Model, checkpoint: Checkpoint, file: string): void {
  const { missing } = student.loadStateDict(checkpoint, { strict: false });
  if (missing.length > 0) {
    throw new Error(`--init ${file} lacks ${missing.length} weights of the student (first: ${missing.slice(0, 3).join(', ')})`);
  }
}

export function optimizerOptions(config: PretrainConfig): OptimizerOptions {
  return config.optimizer === 'adam'
    ? { kind: 'adam', lr: config.lr, weightDecay: config.weightDecay }
    : { kind: 'sgd', lr: config.lr, weightDecay: config.weightDecay, momentum: 0.9 };
}

/** What a run checkpoint holds beyond the reference's {epoch, arch, state_dict, optimizer}. */
interface RunState {
  batch: number;
  steps: number;
  config: PretrainConfig;
}

export async function saveRunCheckpoint(file: string, student: Model, trainer: Trainer, position: Position, config: PretrainConfig): Promise<void> {
  const run: RunState = { batch: position.batch, steps: trainer.steps, config };
  await saveCheckpoint(file, {
    epoch: position.epoch,
    arch: config.arch,
    state_dict: student.stateDict({ prefix: 'module.' }), // as main_moco.py saves it, through DDP
    optimizer: trainer.optimizerStateDict(),
    s2bnn: JSON.stringify(run),
  } as unknown as PyValue);
}

/**
 * An optimizer state dict in the trainer's parameter order. s2bnn's files before the official
 * layout indexed only the query encoder's parameters, in the lean order (leanParameterNames);
 * other counts go on to the trainer, whose error names both.
 */
function inTrainerOrder(optimizer: Map<string, PyValue>, student: Model, trainer: Trainer): Map<string, PyValue> {
  const names = trainer.parameterNames();
  const state = optimizer.get('state');
  const groups = optimizer.get('param_groups');
  const group = Array.isArray(groups) && groups.length === 1 && groups[0] instanceof Map ? (groups[0] as Map<string, PyValue>) : null;
  const params = group?.get('params');
  const lean = leanParameterNames(names, student.unusedModules);
  if (!(state instanceof Map) || !group || !Array.isArray(params) || params.length === names.length || params.length !== lean.length) {
    return optimizer;
  }
  const position = new Map(names.map((name, i) => [name, i]));
  const remapped = new Map<number, PyValue>();
  params.forEach((id, i) => {
    const entry = state.get(Number(id));
    if (entry !== undefined) remapped.set(position.get(lean[i])!, entry);
  });
  const current = new Map(group);
  current.set('params', names.map((_, i) => i));
  return new Map<string, PyValue>([['state', remapped], ['param_groups', [current]]]);
}

/**
 * Restores a run from an s2bnn checkpoint (the exact position, checked against this run's
 * configuration) or from an official main_moco.py checkpoint (the start of its next epoch), in
 * the official layout or s2bnn's earlier lean one.
 */
async function restoreRun(
  checkpoint: Checkpoint, file: string, student: Model, trainer: Trainer, config: PretrainConfig, batchesPerEpoch: number,
): Promise<Position> {
  const root = checkpoint.toObject();
  if (!(root instanceof Map) || !(root.get('state_dict') instanceof Map) || !(root.get('optimizer') instanceof Map)) {
    throw new Error(`--resume ${file}: not a training checkpoint (expected 'state_dict' and 'optimizer' entries); use --init to start from weights`);
  }
  const recorded = typeof root.get('s2bnn') === 'string' ? (JSON.parse(root.get('s2bnn') as string) as RunState) : null;
  if (recorded) {
    for (const key of ['recipe', 'arch', 'step', 'width', 'batchSize', 'dim', 'queueSize'] as const) {
      if (recorded.config[key] !== config[key]) {
        throw new Error(`--resume: the checkpoint was written with ${key} = ${recorded.config[key]}, this run has ${config[key]}`);
      }
    }
  }
  student.loadStateDict(checkpoint);
  const optimizer = root.get('optimizer') as Map<string, PyValue>;
  trainer.loadOptimizerStateDict(inTrainerOrder(optimizer, student, trainer));
  // main_moco.py writes its checkpoints at epoch ends.
  const epoch = Number(root.get('epoch'));
  trainer.steps = recorded?.steps ?? epoch * batchesPerEpoch;
  return { epoch, batch: recorded?.batch ?? 0 };
}

export interface PretrainOptions {
  config: PretrainConfig;
  data: BatchSource;
  /** Output folder: checkpoint.pth (the latest state) and config.json. */
  out: string;
  /**
   * Continue a run: `true` from `out`/checkpoint.pth, or from the given file (an s2bnn run
   * checkpoint, or an official main_moco.py one: from the start of the epoch after it).
   */
  resume?: boolean | string;
  /** Called with one-line notes on the checkpoints read (a file in s2bnn's earlier lean layout). */
  onNotice?: (message: string) => void;
  /** Called once the start position is known (after a resume's restore), before the first step. */
  onStart?: (start: Position) => void;
  onStepEnd?: Callback<StepInfo>;
  onEpochEnd?: Callback<EpochInfo>;
  signal?: AbortSignal;
  /** 'cpu' (default) or 'cuda': where the student and teacher train. */
  device?: 'cpu' | 'cuda';
}

export interface PretrainResult {
  student: Model;
  teacher?: Model;
  checkpoint: string;
  fit: FitResult;
  start: Position;
}

export async function pretrain(options: PretrainOptions): Promise<PretrainResult> {
  const { config } = options;
  validateConfig(config);
  fs.mkdirSync(options.out, { recursive: true });
  const checkpointFile = path.join(options.out, 'checkpoint.pth');
  // libtorch seeds its generator from the OS in every process: without this the initial weights
  // (and the MoCo queue) would differ between runs of the same command.
  manualSeed(config.seed);
  const student = buildStudent(config);
  let teacher: Model | undefined;
  if (usesTeacher(config.recipe)) {
    if (!config.teacher) throw new Error(`the ${config.recipe} recipe needs a teacher checkpoint (--teacher)`);
    teacher = await loadTeacher(config.teacher, config.teacherArch, config);
  }
  const read = (file: string) => readCheckpoint(file, options.onNotice);
  if (config.init && !options.resume) loadInit(student, await read(config.init), config.init);
  if (options.device === 'cuda') {
    student.to('cuda');
    teacher?.to('cuda');
  }
  const trainer = new Trainer({
    model: student,
    teacher,
    recipe: RECIPES[config.recipe].loss,
    optimizer: optimizerOptions(config),
    temperature: config.temperature,
    distillTemperature: config.distillTemperature,
    contrastiveWeight: config.contrastiveWeight,
    distillWeight: config.distillWeight,
    teacherDtype: config.teacherPrecision,
    computeDtype: config.precision,
    momentum: config.momentum,
    keyGroups: config.keyGroups,
    seed: config.seed,
  });
  let start: Position = { epoch: 0, batch: 0 };
  if (options.resume) {
    const resumeFile = typeof options.resume === 'string' ? options.resume : checkpointFile;
    if (!fs.existsSync(resumeFile)) throw new Error(`--resume: no checkpoint at ${resumeFile}`);
    start = await restoreRun(await read(resumeFile), resumeFile, student, trainer, config, options.data.batchesPerEpoch);
  }
  fs.writeFileSync(path.join(options.out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  options.onStart?.(start);
  const schedule: Schedule = parseSchedule(config.schedule, config.epochs);
  const result = await fit({
    trainer,
    data: options.data,
    epochs: config.epochs,
    schedule,
    baseLr: config.lr,
    start,
    onStepEnd: options.onStepEnd,
    onEpochEnd: options.onEpochEnd,
    signal: options.signal,
    checkpoint: (position) => saveRunCheckpoint(checkpointFile, student, trainer, position, config),
  });
  return { student, teacher, checkpoint: checkpointFile, fit: result, start };
}

export function validateConfig(config: PretrainConfig): void {
  const positiveInt = (name: keyof PretrainConfig) => {
    const v = config[name] as number;
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be an integer >= 1, got ${v}`);
  };
  for (const name of ['epochs', 'batchSize', 'dim', 'queueSize', 'keyGroups', 'inChannels'] as const) positiveInt(name);
  if (!PRETRAIN_RECIPES.includes(config.recipe)) throw new Error(`unknown recipe '${config.recipe}' (expected ${PRETRAIN_RECIPES.join(', ')})`);
  if (config.step !== 1 && config.step !== 2) throw new Error(`step must be 1 or 2, got ${config.step}`);
  if (config.step === 1 && config.arch !== 'reactnet-a') throw new Error('two-step binarization applies to reactnet-a only');
  if (isContrastive(config.recipe) && config.queueSize % config.batchSize !== 0) {
    throw new Error(`the queue size (${config.queueSize}) must be a multiple of the batch size (${config.batchSize})`);
  }
  for (const name of ['lr', 'temperature', 'distillTemperature', 'width'] as const) {
    if (!(config[name] > 0)) throw new Error(`${name} must be > 0, got ${config[name]}`);
  }
  for (const name of ['weightDecay', 'contrastiveWeight', 'distillWeight'] as const) {
    if (!(config[name] >= 0)) throw new Error(`${name} must be >= 0, got ${config[name]}`);
  }
  if (config.recipe === 'contrastive+distill' && config.contrastiveWeight + config.distillWeight === 0) {
    throw new Error('contrastiveWeight and distillWeight are both 0: nothing to train');
  }
  if (!(config.momentum >= 0 && config.momentum <= 1)) throw new Error(`momentum must be in [0, 1], got ${config.momentum}`);
  for (const name of ['teacherPrecision', 'precision'] as const) {
    if (!PRECISIONS.includes(config[name])) throw new Error(`${name} must be ${PRECISIONS.join(' or ')}, got '${config[name]}'`);
  }
  if (config.precision !== 'float32' && config.arch === 'reactnet-a') {
    throw new Error(`mixed precision (${config.precision}) trains real-valued ResNets; reactnet-a keeps its binary operators in float32`);
  }
}
