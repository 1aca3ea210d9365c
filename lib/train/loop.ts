// The training loop: epochs, the per-epoch learning-rate schedule, callbacks, stop requests and
// checkpoints around the native step. It knows nothing about recipes: the Trainer does the step,
// the batch source (DataLoader) the data.
import { Tensor } from '../tensor';
import { Schedule, learningRate } from './schedule';
import { NonFiniteLossError, StepResult, Trainer } from './trainer';

/** What the loop needs of a batch (the DataLoader's Batch has this shape). */
export interface BatchLike {
  views: Tensor[];
  labels: Tensor;
  dispose(): void;
}

/** What the loop needs of a loader: a fixed number of batches per epoch, resumable mid-epoch. */
export interface BatchSource {
  readonly batchesPerEpoch: number;
  epoch(epoch: number, options?: { startBatch?: number }): AsyncIterableIterator<BatchLike>;
}

/** Where a run stands: the next batch to train is `batch` of `epoch` (both 0-based). */
export interface Position {
  epoch: number;
  batch: number;
}

export interface StepInfo {
  epoch: number;
  epochs: number;
  /** Index of this batch within its epoch. */
  batch: number;
  batchesPerEpoch: number;
  /** Global step count after this step. */
  step: number;
  lr: number;
  images: number;
  /** Wall time of the step, including waiting for the batch. */
  seconds: number;
  result: StepResult;
}

export interface EpochInfo {
  epoch: number;
  epochs: number;
  lr: number;
  steps: number;
  images: number;
  seconds: number;
  /** Means over the epoch's steps of every StepResult field (loss, contrastive, distill, acc1, acc5). */
  means: Record<string, number>;
}

/** Returning false from a callback stops training after the current step (a checkpoint is written). */
export type Callback<T> = (info: T) => void | boolean | Promise<void | boolean>;

export interface FitOptions {
  trainer: Trainer;
  data: BatchSource;
  epochs: number;
  schedule: Schedule;
  /** The schedule's base learning rate (default: the trainer's optimizer lr). */
  baseLr?: number;
  /** Resume here (default: the beginning). */
  start?: Position;
  onStepEnd?: Callback<StepInfo>;
  onEpochEnd?: Callback<EpochInfo>;
  /** Writes a checkpoint of the run at `position` (epoch ends and stops); awaited before going on. */
  checkpoint?: (position: Position) => Promise<void>;
  /** Aborting stops the run after the step in flight, with a checkpoint (SIGINT, SIGTERM). */
  signal?: AbortSignal;
}

export interface FitResult {
  /** Where training stopped: `{epoch: epochs, batch: 0}` when it ran to the end. */
  position: Position;
  completed: boolean;
  history: EpochInfo[];
}

export class TrainingError extends Error {
  constructor(message: string, readonly position: Position, override readonly cause?: Error) {
    super(message);
    this.name = 'TrainingError';
  }
}

const MEAN_FIELDS = ['loss', 'contrastive', 'distill', 'acc1', 'acc5'] as const;

export async function fit(options: FitOptions): Promise<FitResult> {
  const { trainer, data, epochs } = options;
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`epochs must be an integer >= 1, got ${epochs}`);
  if (data.batchesPerEpoch < 1) throw new Error('the dataset gives no full batch per epoch (fewer images than the batch size?)');
  const baseLr = options.baseLr ?? trainer.optimizerOptions.lr;
  const start = options.start ?? { epoch: 0, batch: 0 };
  const history: EpochInfo[] = [];
  let stop = false;

  for (let epoch = start.epoch; epoch < epochs; epoch++) {
    const lr = learningRate(options.schedule, baseLr, epoch, epochs);
    trainer.lr = lr;
    const first = epoch === start.epoch ? start.batch : 0;
    const sums: Record<string, number> = {};
    const counts: Record<string, number> = {};
    let images = 0;
    let steps = 0;
    const epochStarted = performance.now();
    let batch = first;
    let stepStarted = performance.now();
    for await (const item of data.epoch(epoch, { startBatch: first })) {
      let result: StepResult;
      try {
        result = await trainer.step(item.views, options.trainer.recipe === 'supervised' ? item.labels : undefined);
      } catch (err) {
        const e = err as Error;
        const where = `epoch ${epoch + 1}/${epochs}, batch ${batch + 1}/${data.batchesPerEpoch}`;
        const message =
          err instanceof NonFiniteLossError
            ? `training stopped at ${where}: ${e.message}. Checkpoints written so far are unchanged; lower the learning rate or check the data.`
            : `training failed at ${where}: ${e.message}`;
        throw new TrainingError(message, { epoch, batch }, e);
      } finally {
        item.dispose();
      }
      const now = performance.now();
      images += result.batch;
      steps += 1;
      for (const field of MEAN_FIELDS) {
        const value = result[field];
        if (value === undefined) continue;
        sums[field] = (sums[field] ?? 0) + value;
        counts[field] = (counts[field] ?? 0) + 1;
      }
      const info: StepInfo = {
        epoch,
        epochs,
        batch,
        batchesPerEpoch: data.batchesPerEpoch,
        step: trainer.steps,
        lr,
        images: result.batch,
        seconds: (now - stepStarted) / 1000,
        result,
      };
      batch += 1;
      if ((await options.onStepEnd?.(info)) === false || options.signal?.aborted) stop = true;
      if (stop && batch < data.batchesPerEpoch) {
        const position = { epoch, batch };
        await options.checkpoint?.(position);
        return { position, completed: false, history };
      }
      stepStarted = performance.now();
    }
    if (batch !== data.batchesPerEpoch) {
      throw new TrainingError(
        `the data source ended epoch ${epoch + 1} after ${batch} of ${data.batchesPerEpoch} batches`,
        { epoch, batch },
      );
    }
    const means: Record<string, number> = {};
    for (const field of Object.keys(sums)) means[field] = sums[field] / counts[field];
    const info: EpochInfo = {
      epoch,
      epochs,
      lr,
      steps,
      images,
      seconds: (performance.now() - epochStarted) / 1000,
      means,
    };
    history.push(info);
    const position = { epoch: epoch + 1, batch: 0 };
    await options.checkpoint?.(position);
    if ((await options.onEpochEnd?.(info)) === false || options.signal?.aborted || stop) {
      return { position, completed: epoch + 1 === epochs, history };
    }
  }
  return { position: { epoch: epochs, batch: 0 }, completed: true, history };
}
