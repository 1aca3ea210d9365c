// The Trainer: one native training step per call (native/train), run on a worker thread so the
// event loop stays free. The optimizer state reads and writes in torch.optim's state_dict layout,
// so a run resumes from a checkpoint in s2bnn or in the reference code.
import { PyValue } from '../checkpoint';
import { Model } from '../models';
import type { NativeOptimizerOptions, NativeTrainerSpec, ParamStateHandle, StepResult, TrainerHandle } from '../binding';
import { TensorHandle, native } from '../native';
import { withDefaults } from '../defaults';
import { Tensor, tensor } from '../tensor';

export type Recipe = 'supervised' | 'contrastive' | 'contrastive+distill' | 'distill';
export const RECIPES: readonly Recipe[] = ['supervised', 'contrastive', 'contrastive+distill', 'distill'];

export interface AdamOptions {
  kind: 'adam';
  lr: number;
  /** L2 penalty added to the gradient, as torch.optim.Adam does (not AdamW). */
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
}

export interface SgdOptions {
  kind: 'sgd';
  lr: number;
  weightDecay?: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
}

export type OptimizerOptions = AdamOptions | SgdOptions;

/** Arithmetic: of the frozen teacher (TrainerOptions.teacherDtype), of the trained network (computeDtype). */
export type Precision = 'float32' | 'bfloat16';
export const PRECISIONS: readonly Precision[] = ['float32', 'bfloat16'];

export interface TrainerOptions {
  /** The trained network: a MoCo model for the contrastive recipes. */
  model: Model;
  /** Frozen real-valued teacher with an MLP head of the student's dim (distillation recipes). */
  teacher?: Model;
  recipe: Recipe;
  optimizer: OptimizerOptions;
  /** InfoNCE temperature (default 0.2). */
  temperature?: number;
  /** Distribution-loss temperature (default 0.2). */
  distillTemperature?: number;
  /** Key-encoder momentum m (default 0.999). */
  momentum?: number;
  contrastiveWeight?: number;
  distillWeight?: number;
  /**
   * The frozen teacher's weights and arithmetic (default float32). bfloat16 runs its forward about
   * 2.3x faster on a CPU with AVX-512 BF16 and moves its outputs by about 2e-3; the trainer casts
   * the teacher in place (evaluate and extractFeatures still accept float images for it).
   */
  teacherDtype?: Precision;
  /**
   * The trained network's convolutions and matrix products (default float32). bfloat16 is mixed
   * precision, torch.autocast's: parameters, gradients, optimizer state and losses stay float32.
   * Real-valued ResNets only (ReActNet's binary operators stay float32); a MoCo step of the
   * reproduction's teacher runs about 1.5x faster per epoch on a CPU with AVX-512 BF16.
   */
  computeDtype?: Precision;
  /** Sub-batches the shuffled key batch is encoded in (single-device shuffle BN; default 8). */
  keyGroups?: number;
  /** Seeds the per-step key permutation (with the step count). */
  seed?: number;
  /**
   * Supervised only: train a linear probe on (features - mean) / std instead of the model's fc
   * directly; fold() writes the equivalent Linear over raw features into fc.
   */
  featureMean?: Tensor;
  featureStd?: Tensor;
  /**
   * Report each phase's wall time in StepResult.phases (a benchmark aid: on a GPU every phase
   * ends with a device sync).
   */
  timePhases?: boolean;
}

export type { StepResult } from '../binding';

// The defaults of TrainerOptions and OptimizerOptions, in one place: the native trainer receives
// every field resolved.
const TRAINER_DEFAULTS: Omit<NativeTrainerSpec, 'model' | 'teacher' | 'recipe' | 'optimizer' | 'featureMean' | 'featureStd'> = {
  temperature: 0.2,
  distillTemperature: 0.2,
  momentum: 0.999,
  contrastiveWeight: 1,
  distillWeight: 1,
  keyGroups: 8,
  seed: 0,
  timePhases: false,
  teacherDtype: 'float32',
  computeDtype: 'float32',
};
const ADAM_DEFAULTS = { weightDecay: 0, betas: [0.9, 0.999] as [number, number], eps: 1e-8 };
const SGD_DEFAULTS = { weightDecay: 0, momentum: 0.9, dampening: 0, nesterov: false };

function resolveOptimizer(options: OptimizerOptions): NativeOptimizerOptions {
  if (options === null || typeof options !== 'object') throw trainerArgument('optimizer must be an object');
  if (options.kind === 'adam') return { kind: 'adam', lr: options.lr, ...withDefaults(ADAM_DEFAULTS, options) };
  if (options.kind === 'sgd') return { kind: 'sgd', lr: options.lr, ...withDefaults(SGD_DEFAULTS, options) };
  throw trainerArgument(`optimizer.kind must be 'adam' or 'sgd', got '${String((options as { kind?: unknown }).kind)}'`);
}

function trainerArgument(message: string): Error {
  return Object.assign(new Error(message), { code: 'S2BNN_ARGUMENT' });
}

function resolveTrainerSpec(options: TrainerOptions): NativeTrainerSpec {
  if (!(options.model instanceof Model)) throw trainerArgument('model must be a Model');
  if (options.teacher !== undefined && !(options.teacher instanceof Model)) throw trainerArgument('teacher must be a Model');
  return {
    ...withDefaults(TRAINER_DEFAULTS, options),
    model: options.model.nativeHandle,
    teacher: options.teacher?.nativeHandle ?? null,
    recipe: options.recipe,
    optimizer: resolveOptimizer(options.optimizer),
    featureMean: options.featureMean?.handle ?? null,
    featureStd: options.featureStd?.handle ?? null,
  };
}

/** A NaN or infinite loss: the step stopped before updating the weights. */
export class NonFiniteLossError extends Error {
  readonly code = 'S2BNN_NONFINITE_LOSS';
  constructor(message: string, readonly step: number) {
    super(message);
    this.name = 'NonFiniteLossError';
  }
}

export class Trainer {
  private readonly handle: TrainerHandle;
  readonly recipe: Recipe;
  readonly optimizerOptions: OptimizerOptions;

  constructor(readonly options: TrainerOptions) {
    this.recipe = options.recipe;
    this.optimizerOptions = options.optimizer;
    this.handle = native().createTrainer(resolveTrainerSpec(options));
  }

  /** Linear probes: writes the probe, folded over the standardization, into the model's fc. */
  fold(): void {
    this.handle.fold();
  }

  /**
   * The frozen teacher's outputs for `images` [N, C, H, W] as the distillation step computes its
   * targets (float; on CPU a ResNet teacher runs with its BatchNorm folded in oneDNN's layout,
   * from the weights it had when the trainer was built).
   */
  teacherTargets(images: Tensor): Tensor {
    return new Tensor(this.handle.teacherTargets(images.handle));
  }

  /**
   * One step: `views` holds one batch (supervised, distill) or the query and key batches
   * (contrastive recipes); `labels` is for the supervised recipe. Resolves when the weights are
   * updated. Only one step runs at a time; the model must not be used until it resolves.
   */
  async step(views: Tensor[], labels?: Tensor): Promise<StepResult> {
    try {
      return await this.handle.step(views.map((v) => v.handle), labels ? labels.handle : null);
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.code === 'S2BNN_NONFINITE_LOSS') throw new NonFiniteLossError(e.message, this.handle.steps + 1);
      throw err;
    }
  }

  get lr(): number {
    return this.handle.lr;
  }
  set lr(value: number) {
    this.handle.setLr(value);
  }
  /** Steps taken (restored on resume: it seeds the per-step key permutation). */
  get steps(): number {
    return this.handle.steps;
  }
  set steps(value: number) {
    this.handle.setSteps(value);
  }
  /** The optimizer's parameters, in its order (the indices of the state dict). */
  parameterNames(): string[] {
    return this.handle.parameterNames();
  }

  /**
   * torch.optim's state_dict: {state: {index: {...}}, param_groups: [{..., params: [0..n-1]}]}.
   * Like Model.stateDict(), the tensors share memory with the live state: save them before the
   * next step (the loop awaits its checkpoint writes) or clone them.
   */
  optimizerStateDict(): Map<string, PyValue> {
    const state = new Map<number, PyValue>();
    this.handle.optimizerState().forEach((entry, index) => {
      const s = new Map<string, PyValue>();
      // torch >= 1.12 keeps Adam's step as a float32 scalar tensor.
      if (entry.step !== undefined) s.set('step', tensor(new Float32Array([entry.step]), { shape: [] }));
      if (entry.expAvg) s.set('exp_avg', new Tensor(entry.expAvg));
      if (entry.expAvgSq) s.set('exp_avg_sq', new Tensor(entry.expAvgSq));
      if (entry.momentumBuffer) s.set('momentum_buffer', new Tensor(entry.momentumBuffer));
      if (s.size > 0) state.set(index, s);
    });
    const o = this.optimizerOptions;
    const group = new Map<string, PyValue>([['lr', this.lr]]);
    if (o.kind === 'adam') {
      group.set('betas', Object.freeze([...(o.betas ?? [0.9, 0.999])]));
      group.set('eps', o.eps ?? 1e-8);
      group.set('weight_decay', o.weightDecay ?? 0);
      group.set('amsgrad', false);
    } else {
      group.set('momentum', o.momentum ?? 0.9);
      group.set('dampening', o.dampening ?? 0);
      group.set('weight_decay', o.weightDecay ?? 0);
      group.set('nesterov', o.nesterov ?? false);
    }
    group.set('maximize', false);
    group.set('foreach', null);
    group.set('params', this.parameterNames().map((_, i) => i));
    return new Map<string, PyValue>([
      ['state', state],
      ['param_groups', [group]],
    ]);
  }

  /** Restores a state_dict written by optimizerStateDict() or by torch.optim (same optimizer kind). */
  loadOptimizerStateDict(dict: PyValue): void {
    const get = (value: PyValue, key: string): PyValue | undefined =>
      value instanceof Map ? (value.get(key) as PyValue | undefined) : undefined;
    const state = get(dict, 'state');
    const groups = get(dict, 'param_groups');
    if (!(state instanceof Map) || !Array.isArray(groups) || groups.length !== 1) {
      throw new Error('optimizer state: expected {state, param_groups} with one parameter group');
    }
    const params = get(groups[0] as PyValue, 'params');
    const count = this.parameterNames().length;
    if (!Array.isArray(params) || params.length !== count) {
      throw new Error(
        `optimizer state: the checkpoint's optimizer has ${Array.isArray(params) ? params.length : '?'} parameters, ` +
          `this trainer ${count}`,
      );
    }
    const entries: ParamStateHandle[] = [];
    for (let i = 0; i < count; i++) {
      const s = state.get(Number(params[i]));
      const entry: ParamStateHandle = {};
      if (s instanceof Map) {
        const step = s.get('step');
        if (step instanceof Tensor) entry.step = Number(step.item());
        else if (typeof step === 'number') entry.step = step;
        for (const [key, field] of [
          ['exp_avg', 'expAvg'],
          ['exp_avg_sq', 'expAvgSq'],
          ['momentum_buffer', 'momentumBuffer'],
        ] as const) {
          const t = s.get(key);
          if (t instanceof Tensor) entry[field] = t.handle;
        }
      }
      entries.push(entry);
    }
    this.handle.loadOptimizerState(entries);
  }
}
