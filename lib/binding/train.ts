// The training slice (native/binding/train.cpp): a TrainerHandle runs whole steps off the JS
// thread, and the evaluation passes (accuracy, features, kNN) run there too. lib/train resolves
// every option before it reaches this contract.
import type { ModelHandle } from './models';
import type { TensorHandle } from './tensor';

export type NativeRecipe = 'supervised' | 'contrastive' | 'contrastive+distill' | 'distill';
export type NativePrecision = 'float32' | 'bfloat16';

export type NativeOptimizerOptions =
  | { kind: 'adam'; lr: number; weightDecay: number; betas: [number, number]; eps: number }
  | { kind: 'sgd'; lr: number; weightDecay: number; momentum: number; dampening: number; nesterov: boolean };

/** Every trainer option, resolved. */
export interface NativeTrainerSpec {
  model: ModelHandle;
  teacher: ModelHandle | null;
  recipe: NativeRecipe;
  optimizer: NativeOptimizerOptions;
  temperature: number;
  distillTemperature: number;
  momentum: number;
  contrastiveWeight: number;
  distillWeight: number;
  keyGroups: number;
  seed: number;
  featureMean: TensorHandle | null;
  featureStd: TensorHandle | null;
  timePhases: boolean;
  teacherDtype: NativePrecision;
  computeDtype: NativePrecision;
}

export interface StepResult {
  loss: number;
  batch: number;
  /** InfoNCE part (contrastive recipes). */
  contrastive?: number;
  /** Distribution-loss part (distillation recipes). */
  distill?: number;
  /** Top-1 / top-5 accuracy of the InfoNCE positive or of the label, in [0, 1]. */
  acc1?: number;
  acc5?: number;
  /**
   * With TrainerOptions.timePhases: milliseconds per phase in step order: student (forward),
   * keys, teacher, loss, backward, optimizer (the phases the recipe has; supervised: forward).
   */
  phases?: Record<string, number>;
}

/** One parameter's optimizer state, in torch.optim's names. */
export interface ParamStateHandle {
  step?: number;
  expAvg?: TensorHandle;
  expAvgSq?: TensorHandle;
  momentumBuffer?: TensorHandle;
}

export interface TrainerHandle {
  step(views: TensorHandle[], labels: TensorHandle | null): Promise<StepResult>;
  readonly lr: number;
  setLr(lr: number): void;
  readonly steps: number;
  setSteps(steps: number): void;
  parameterNames(): string[];
  optimizerState(): ParamStateHandle[];
  loadOptimizerState(state: ParamStateHandle[]): void;
  fold(): void;
  teacherTargets(images: TensorHandle): TensorHandle;
}

export interface BatchEvaluation {
  lossSum: number;
  correct1: number;
  correct5: number;
  count: number;
  logits?: TensorHandle;
}

export interface TrainBinding {
  createTrainer(spec: NativeTrainerSpec): TrainerHandle;
  evaluateBatch(model: ModelHandle, images: TensorHandle, labels: TensorHandle, keepLogits: boolean): Promise<BatchEvaluation>;
  extractFeatures(model: ModelHandle, images: TensorHandle, normalize: boolean, head: boolean): Promise<TensorHandle>;
  knnScores(trainFeatures: TensorHandle, trainLabels: TensorHandle, testFeatures: TensorHandle,
    options: { k: number; temperature: number; classes: number; leaveOneOut: boolean }): Promise<TensorHandle>;
  topkCorrect(scores: TensorHandle, target: TensorHandle): { correct1: number; correct5: number };
}
