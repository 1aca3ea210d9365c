// Evaluation protocols: accuracy of a classifier, feature extraction, weighted kNN, and the
// paper's linear evaluation (docs/method.md): a frozen backbone in eval mode under a new Linear.
import { Checkpoint, PyValue, encoderState, saveCheckpoint } from '../checkpoint';
import { Model } from '../models';
import { TensorHandle, native } from '../native';
import { Tensor, cat, keep, randn, tensor, tidy, zeros } from '../tensor';
import { BatchLike, BatchSource, Callback, EpochInfo, FitResult, StepInfo, fit } from './loop';
import { Schedule } from './schedule';
import type { EncoderSpec } from './specs';
import { Trainer } from './trainer';


export interface Accuracy {
  /** Percent. */
  top1: number;
  /** Percent. */
  top5: number;
  count: number;
}

export interface EvaluationResult extends Accuracy {
  /** Mean cross-entropy. */
  loss: number;
  /** [N, classes] in the data source's order, when asked for. */
  logits?: Tensor;
  labels?: Tensor;
}

/** What one batch adds to a scoring pass. */
export interface BatchScore {
  correct1: number;
  correct5: number;
  count: number;
  /** Summed loss over the batch, where the scorer has one. */
  lossSum?: number;
  /** The batch's logits on the CPU (only when the pass keeps them). */
  logits?: Tensor;
}

/**
 * One pass over `data` (its epoch 0): sums each batch's scores and, with `keepLogits`, gathers
 * logits and labels in the source's order. `who` names the caller in the empty-source error.
 */
export async function scorePass(
  data: BatchSource,
  who: string,
  keepLogits: boolean,
  scoreBatch: (batch: BatchLike) => Promise<BatchScore>,
): Promise<Accuracy & { lossSum: number; logits?: Tensor; labels?: Tensor }> {
  let lossSum = 0;
  let correct1 = 0;
  let correct5 = 0;
  let count = 0;
  const logits: Tensor[] = [];
  const labels: Tensor[] = [];
  for await (const batch of data.epoch(0)) {
    try {
      const score = await scoreBatch(batch);
      lossSum += score.lossSum ?? 0;
      correct1 += score.correct1;
      correct5 += score.correct5;
      count += score.count;
      if (score.logits) {
        logits.push(score.logits);
        labels.push(batch.labels.clone());
      }
    } finally {
      batch.dispose();
    }
  }
  if (count === 0) throw new Error(`${who}: the data source gave no images`);
  const result: Accuracy & { lossSum: number; logits?: Tensor; labels?: Tensor } = {
    top1: (100 * correct1) / count, top5: (100 * correct5) / count, count, lossSum,
  };
  if (keepLogits) {
    result.logits = cat(logits);
    result.labels = cat(labels);
    for (const t of [...logits, ...labels]) t.dispose();
  }
  return result;
}

/**
 * Top-1/top-5 of a model with a linear head over one pass of `data` (its epoch 0; give it an
 * unshuffled loader for dataset order). The model is put in eval mode and left there.
 */
export async function evaluate(model: Model, data: BatchSource, options: { keepLogits?: boolean } = {}): Promise<EvaluationResult> {
  model.eval();
  const keepLogits = options.keepLogits ?? false;
  const { lossSum, ...scores } = await scorePass(data, 'evaluate', keepLogits, async (batch) => {
    const r = await native().evaluateBatch(model.nativeHandle, batch.views[0].handle, batch.labels.handle, keepLogits);
    return { ...r, logits: r.logits ? new Tensor(r.logits) : undefined };
  });
  return { ...scores, loss: lossSum / scores.count };
}

/**
 * Pooled backbone features [N, D] (L2-normalized unless told) and labels [N], in the source's
 * order; with `head`, the network's outputs instead (embeddings of an MLP head).
 */
export async function extractFeatures(
  model: Model,
  data: BatchSource,
  options: { normalize?: boolean; head?: boolean; maxImages?: number } = {},
): Promise<{ features: Tensor; labels: Tensor }> {
  model.eval();
  const features: Tensor[] = [];
  const labels: Tensor[] = [];
  let images = 0;
  for await (const batch of data.epoch(0)) {
    try {
      features.push(
        new Tensor(await native().extractFeatures(model.nativeHandle, batch.views[0].handle, options.normalize ?? true, options.head ?? false)),
      );
      labels.push(batch.labels.clone());
      images += batch.labels.shape[0];
    } finally {
      batch.dispose();
    }
    if (options.maxImages !== undefined && images >= options.maxImages) break;
  }
  if (features.length === 0) throw new Error('extractFeatures: the data source gave no images');
  const out = { features: cat(features), labels: cat(labels) };
  for (const t of [...features, ...labels]) t.dispose();
  return out;
}

export interface KnnOptions {
  /** Neighbours (default 200). */
  k?: number;
  /** Vote weight exp(similarity / T) (default 0.07). */
  temperature?: number;
  classes: number;
  /** The test features are the bank itself: each sample is classified by the others. */
  leaveOneOut?: boolean;
}

/** Weighted kNN accuracy of test features against a labelled feature bank (both L2-normalized). */
export async function knnAccuracy(
  bank: { features: Tensor; labels: Tensor },
  test: { features: Tensor; labels: Tensor },
  options: KnnOptions,
): Promise<Accuracy> {
  const scores = new Tensor(
    await native().knnScores(bank.features.handle, bank.labels.handle, test.features.handle, {
      k: options.k ?? KNN_DEFAULTS.k,
      temperature: options.temperature ?? KNN_DEFAULTS.temperature,
      classes: options.classes,
      leaveOneOut: options.leaveOneOut ?? false,
    }),
  );
  try {
    const { correct1, correct5 } = native().topkCorrect(scores.handle, test.labels.handle);
    const count = test.labels.shape[0];
    return { top1: (100 * correct1) / count, top5: (100 * correct5) / count, count };
  } finally {
    scores.dispose();
  }
}

/** kNN evaluation of a backbone: features of `train` as the bank, accuracy on `test`. */
export async function knnEvaluate(model: Model, train: BatchSource, test: BatchSource, options: KnnOptions): Promise<Accuracy> {
  const bank = await extractFeatures(model, train);
  const queries = await extractFeatures(model, test);
  try {
    return await knnAccuracy(bank, queries, options);
  } finally {
    for (const t of [bank.features, bank.labels, queries.features, queries.labels]) t.dispose();
  }
}

/**
 * Loads a pre-trained backbone into `classifier` (a model with a fresh linear head `fc`): every
 * backbone weight must be found; the head is initialized as the protocol says (normal std 0.01,
 * bias 0). Returns the keys it ignored.
 */
export function loadBackbone(classifier: Model, checkpoint: Checkpoint): string[] {
  const entries = new Map([...encoderState(checkpoint)].filter(([k]) => !k.startsWith('fc.')));
  const result = classifier.loadStateDict(entries, { strict: false });
  const missing = result.missing.filter((k) => !k.startsWith('fc.'));
  if (missing.length > 0) {
    throw new Error(
      `the checkpoint lacks ${missing.length} backbone weights of ${classifier.arch} (first: ${missing.slice(0, 3).join(', ')}); ` +
        'is it a checkpoint of this architecture and width?',
    );
  }
  const fc = classifier.namedParameters();
  const weight = fc.get('fc.weight');
  const bias = fc.get('fc.bias');
  if (!weight || !bias) throw new Error(`${classifier.arch} has no linear head 'fc'`);
  const init = randn(weight.shape).mul(0.01);
  const zero = zeros(bias.shape);
  classifier.loadStateDict(new Map([['fc.weight', init], ['fc.bias', zero]]), { strict: false });
  init.dispose();
  zero.dispose();
  return result.unexpected;
}

/** The evaluation protocols' defaults (docs/method.md), which the CLI shows and never restates. */
export const EVALUATION_BATCH_SIZE = 256;
export const LINEAR_EVAL_DEFAULTS = { epochs: 100, lr: 0.1, momentum: 0.9 } as const;
export const FINETUNE_DEFAULTS = { epochs: 30, lr: 0.01, labelFraction: 0.1 } as const;
export const KNN_DEFAULTS = { k: 200, temperature: 0.07 } as const;

export interface LinearEvalOptions {
  /** A classifier whose backbone holds the pre-trained weights (see loadBackbone). */
  model: Model;
  train: BatchSource;
  test: BatchSource;
  /** Default 100. */
  epochs?: number;
  /** Default 0.1 (SGD, momentum 0.9, no weight decay, batch 256). */
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  /** Default: x0.1 at 60% and 80% of the epochs. */
  schedule?: Schedule;
  onEpochEnd?: Callback<EpochInfo>;
  onStepEnd?: Callback<StepInfo>;
  /** Evaluate on `test` after every this many epochs (default: only at the end). */
  evalEvery?: number;
  onEvaluation?: (epoch: number, result: Accuracy) => void;
  /** Aborting stops training after the step in flight; the result then has `fit.completed` false. */
  signal?: AbortSignal;
  /**
   * Train the Linear on standardized features (per-feature mean and std over one pass of
   * `train`), then fold the standardization into it: the same classifier family, but SGD at lr
   * 0.1 converges whatever the feature scale (a BNN's pooled features can have norms of 50+,
   * where the unstandardized protocol diverges). Default true; false is docs/method.md's literal recipe.
   */
  standardize?: boolean;
}

/** Per-feature mean and standard deviation of a backbone's pooled features over one pass of `data`. */
export async function featureStatistics(model: Model, data: BatchSource): Promise<{ mean: Tensor; std: Tensor }> {
  const { features, labels } = await extractFeatures(model, data, { normalize: false });
  labels.dispose();
  try {
    return tidy(() => {
      const mean = features.mean(0);
      const std = features.sub(mean).square().mean(0).sqrt();
      return { mean: keep(mean), std: keep(std) };
    });
  } finally {
    features.dispose();
  }
}

export interface LinearEvalResult extends Accuracy {
  fit: FitResult;
  /**
   * The optimizer's state_dict (torch.optim's SGD layout, over the trained parameters), for the
   * checkpoint. After a standardized probe its state is empty: the probe's momentum belongs to
   * the standardized features, not to the folded Linear.
   */
  optimizer: Map<string, PyValue>;
}

/** docs/method.md's linear evaluation: frozen backbone in eval mode, SGD on a new Linear. */
export async function linearEvaluation(options: LinearEvalOptions): Promise<LinearEvalResult> {
  const { model } = options;
  const epochs = options.epochs ?? LINEAR_EVAL_DEFAULTS.epochs;
  const standardize = options.standardize ?? true;
  model.freeze({ except: ['fc.'] });
  model.eval();
  const statistics = standardize ? await featureStatistics(model, options.train) : undefined;
  const trainer = new Trainer({
    model,
    recipe: 'supervised',
    optimizer: { kind: 'sgd', lr: options.lr ?? LINEAR_EVAL_DEFAULTS.lr, momentum: options.momentum ?? LINEAR_EVAL_DEFAULTS.momentum, weightDecay: options.weightDecay ?? 0 },
    featureMean: statistics?.mean,
    featureStd: statistics?.std,
  });
  const sync = () => {
    if (standardize) trainer.fold();
  };
  const schedule = options.schedule ?? { kind: 'step', milestones: [Math.round(epochs * 0.6), Math.round(epochs * 0.8)] };
  const result = await fit({
    trainer,
    data: options.train,
    epochs,
    schedule,
    signal: options.signal,
    onStepEnd: options.onStepEnd,
    onEpochEnd: async (info) => {
      model.eval();
      if (options.evalEvery && (info.epoch + 1) % options.evalEvery === 0 && info.epoch + 1 < epochs) {
        sync();
        options.onEvaluation?.(info.epoch, await evaluate(model, options.test));
      }
      return options.onEpochEnd?.(info);
    },
  });
  sync();
  statistics?.mean.dispose();
  statistics?.std.dispose();
  const optimizer = trainer.optimizerStateDict();
  if (standardize) optimizer.set('state', new Map());
  const accuracy = await evaluate(model, options.test);
  return { top1: accuracy.top1, top5: accuracy.top5, count: accuracy.count, fit: result, optimizer };
}

/** The first `fraction` of each class's samples (at least one each): the 1 % / 10 % label splits. */
export function labelFraction(labels: ArrayLike<number | bigint>, fraction: number): Int32Array {
  if (!(fraction > 0 && fraction <= 1)) throw new Error(`the label fraction must be in (0, 1], got ${fraction}`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const c = Number(labels[i]);
    if (!byClass.has(c)) byClass.set(c, []);
    byClass.get(c)!.push(i);
  }
  const picked: number[] = [];
  for (const indices of byClass.values()) picked.push(...indices.slice(0, Math.max(1, Math.round(indices.length * fraction))));
  return Int32Array.from(picked.sort((a, b) => a - b));
}

export interface FineTuneOptions {
  /** A classifier whose backbone holds the pre-trained weights (see loadBackbone). */
  model: Model;
  /** The labelled subset, with the training augmentation. */
  train: BatchSource;
  test: BatchSource;
  /** Default 30. */
  epochs?: number;
  /** SGD, momentum 0.9, cosine schedule; default lr 0.01, no weight decay. */
  lr?: number;
  weightDecay?: number;
  onStepEnd?: Callback<StepInfo>;
  onEpochEnd?: Callback<EpochInfo>;
}

/**
 * Semi-supervised fine-tuning: the whole network trains (BatchNorm in training mode) on a labelled
 * fraction of the data, then top-1/top-5 on `test`.
 */
export async function fineTune(options: FineTuneOptions): Promise<LinearEvalResult> {
  const { model } = options;
  model.freeze({ except: [''] }); // every name has the empty prefix: nothing stays frozen
  model.train();
  const trainer = new Trainer({
    model,
    recipe: 'supervised',
    optimizer: { kind: 'sgd', lr: options.lr ?? FINETUNE_DEFAULTS.lr, momentum: 0.9, weightDecay: options.weightDecay ?? 0 },
  });
  const result = await fit({
    trainer,
    data: options.train,
    epochs: options.epochs ?? FINETUNE_DEFAULTS.epochs,
    schedule: { kind: 'cosine' },
    onStepEnd: options.onStepEnd,
    onEpochEnd: async (info) => {
      model.train();
      return options.onEpochEnd?.(info);
    },
  });
  const accuracy = await evaluate(model, options.test);
  return { top1: accuracy.top1, top5: accuracy.top5, count: accuracy.count, fit: result, optimizer: trainer.optimizerStateDict() };
}

/**
 * Writes a linear-evaluation or fine-tuning result as main_lincls.py writes its checkpoints (the
 * classifier through DistributedDataParallel's `module.`, best_acc1 a tensor, the SGD state), so
 * that the official script's --resume and evaluation read it; the `s2bnn` entry names the encoder
 * for s2bnn's readers (eval, export).
 */
export async function saveEvaluationCheckpoint(file: string, model: Model, spec: EncoderSpec, epochs: number, result: LinearEvalResult): Promise<void> {
  await saveCheckpoint(file, {
    epoch: epochs,
    arch: spec.arch,
    state_dict: model.stateDict({ prefix: 'module.' }),
    best_acc1: tensor(new Float32Array([result.top1]), { shape: [] }),
    optimizer: result.optimizer,
    s2bnn: JSON.stringify({ encoder: spec, top5: result.top5 }),
  } as unknown as PyValue);
}
