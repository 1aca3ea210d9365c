// The native Trainer: each recipe's step against the straightforward PyTorch implementation
// (scripts/python/s2bnn_train.py), the optimizer state in torch.optim's layout, non-finite losses,
// the loop's schedule, stop and resume, and the evaluation protocols.
import * as fs from 'fs';
import * as path from 'path';

import { Checkpoint, InMemoryDataset, Model, Tensor, manualSeed, moco, noGrad, randn, reactnetA, resnet, saveCheckpoint, setPackedTrainingForward, tensor, tidy } from '../lib';
import type { Dataset } from '../lib/data';
import { BatchLike, BatchSource, fit } from '../lib/train/loop';
import { NonFiniteLossError, OptimizerOptions, Recipe, Trainer } from '../lib/train/trainer';
import { PretrainConfig, defaultConfig, pretrain, validateConfig } from '../lib/train/pretrain';
import { evaluate, extractFeatures, knnAccuracy, linearEvaluation, loadBackbone } from '../lib/train/evaluate';
import { learningRate } from '../lib/train/schedule';
import { pythonWithTorch, runPython, tempDir, tensorError } from './helpers';

const maxAbs = (t: Tensor) => tidy(() => Number(t.to('float64').abs().max().item()));
const maxAbsDiff = (a: Tensor, b: Tensor) => tidy(() => Number(a.to('float64').sub(b.to('float64')).abs().max().item()));
/** Fraction of entries with |a - b| > atol + rtol * |b|. */
const mismatchFraction = (a: Tensor, b: Tensor, atol: number, rtol: number) =>
  tidy(() => Number(a.sub(b).abs().gt(b.abs().mul(rtol).add(atol)).to('float32').mean().item()));



const tmp = tempDir('train');
const { python, reason } = pythonWithTorch();

const studentSpec = { arch: 'reactnet-a', width: 0.25, inChannels: 1, stem: 'small' } as const;
const teacherSpec = { arch: 'resnet18', head: 'mlp', mlpDim: 32, inChannels: 1, stem: 'small' } as const;

/** Random batches, a pure function of (seed, epoch, batch), like the real loader's. */
class RandomBatches implements BatchSource {
  readonly batchesPerEpoch: number;
  constructor(
    private readonly options: { batches: number; batch: number; views: number; size: number; classes: number; seed?: number },
  ) {
    this.batchesPerEpoch = options.batches;
  }
  make(epoch: number, index: number): BatchLike {
    manualSeed((this.options.seed ?? 0) * 100_000 + epoch * 1000 + index);
    const { batch, size, views, classes } = this.options;
    const labels = new BigInt64Array(batch).map((_, i) => BigInt((i * 7 + index) % classes));
    const out = { views: Array.from({ length: views }, () => randn([batch, 1, size, size])), labels: tensor(labels) };
    return { ...out, dispose: () => [...out.views, out.labels].forEach((t) => t.dispose()) };
  }
  async *epoch(epoch: number, options: { startBatch?: number } = {}): AsyncIterableIterator<BatchLike> {
    for (let i = options.startBatch ?? 0; i < this.options.batches; i++) yield this.make(epoch, i);
  }
}

describe('Trainer', () => {
  test('a supervised step lowers the loss on a fixed batch, and lr is settable', async () => {
    manualSeed(1);
    const model = reactnetA({ ...studentSpec, numClasses: 4 });
    // At lr 2e-3 this tiny binary network's loss jumps between 2 and 12 from step to step, so the
    // 16th step's loss depended on the last bit of every gradient; at 5e-4 it falls steadily.
    const trainer = new Trainer({ model, recipe: 'supervised', optimizer: { kind: 'adam', lr: 5e-4 } });
    const data = new RandomBatches({ batches: 1, batch: 16, views: 1, size: 16, classes: 4 }).make(0, 0);
    const first = await trainer.step(data.views, data.labels);
    let last = first;
    for (let i = 0; i < 15; i++) last = await trainer.step(data.views, data.labels);
    expect(last.loss).toBeLessThan(first.loss * 0.7);
    expect(last.acc1).toBeGreaterThanOrEqual(0);
    expect(trainer.steps).toBe(16);
    trainer.lr = 0.5;
    expect(trainer.lr).toBe(0.5);
  });

  test('contrastive steps update the key encoder by momentum and advance the queue', async () => {
    manualSeed(2);
    const model = moco(studentSpec, { dim: 32, queueSize: 64 });
    const trainer = new Trainer({ model, recipe: 'contrastive', optimizer: { kind: 'adam', lr: 1e-3 }, momentum: 0.9, keyGroups: 4 });
    const before = model.stateDict();
    const kBefore = before.get('encoder_k.feature.0.conv1.weight')!.clone();
    const qBefore = before.get('encoder_q.feature.0.conv1.weight')!.clone();
    const data = new RandomBatches({ batches: 1, batch: 16, views: 2, size: 16, classes: 4 }).make(0, 0);
    const r = await trainer.step(data.views);
    expect(r.contrastive).toBeCloseTo(r.loss, 6);
    expect(r.distill).toBeUndefined();
    expect(r.acc1).toBeGreaterThanOrEqual(0);
    expect(r.acc5).toBeGreaterThanOrEqual(r.acc1!);
    const after = model.stateDict();
    expect(Number(after.get('queue_ptr')!.item())).toBe(16);
    // m = 0.9 of the old key weights plus 0.1 of the query weights before the step (equal at start).
    expect(tensorError(after.get('encoder_k.feature.0.conv1.weight')!, kBefore.mul(0.9).add(qBefore.mul(0.1)))).toBeLessThan(1e-6);
    expect(tensorError(after.get('encoder_q.feature.0.conv1.weight')!, qBefore)).toBeGreaterThan(0);
  });


  test('contrastive+distill weighs its two losses as configured', async () => {
    manualSeed(3);
    const teacher = resnet('resnet18', teacherSpec).eval();
    teacher.freeze();
    const data = new RandomBatches({ batches: 1, batch: 16, views: 2, size: 16, classes: 4 }).make(0, 0);
    for (const [contrastiveWeight, distillWeight] of [[1, 1], [0.25, 2], [0, 1]]) {
      const model = moco(studentSpec, { dim: 32, queueSize: 64 });
      const trainer = new Trainer({
        model, teacher, recipe: 'contrastive+distill', optimizer: { kind: 'adam', lr: 1e-3 }, contrastiveWeight, distillWeight, keyGroups: 2,
      });
      const r = await trainer.step(data.views);
      expect(r.contrastive).toBeGreaterThan(0);
      expect(r.distill).toBeGreaterThan(0);
      expect(r.loss).toBeCloseTo(contrastiveWeight * r.contrastive! + distillWeight * r.distill!, 5);
    }
    const pretrainConfigCheck = (changes: Partial<PretrainConfig>) => validateConfig(defaultConfig('contrastive+distill', changes));
    expect(() => pretrainConfigCheck({ contrastiveWeight: -1 })).toThrow(/contrastiveWeight must be >= 0, got -1/);
    expect(() => pretrainConfigCheck({ contrastiveWeight: 0, distillWeight: 0 })).toThrow(/both 0: nothing to train/);
  });
  test('wrong inputs are clear errors', async () => {
    const model = moco(studentSpec, { dim: 32, queueSize: 64 });
    expect(() => new Trainer({ model, recipe: 'distill', optimizer: { kind: 'adam', lr: 1e-3 } })).toThrow(/needs a teacher/);
    expect(() => new Trainer({ model: reactnetA(studentSpec), recipe: 'contrastive', optimizer: { kind: 'adam', lr: 1 } })).toThrow(
      /needs a MoCo model/,
    );
    expect(() => new Trainer({ model, recipe: 'nope' as Recipe, optimizer: { kind: 'adam', lr: 1 } })).toThrow(/unknown recipe 'nope'/);
    expect(() => new Trainer({ model, recipe: 'contrastive', optimizer: { kind: 'rmsprop', lr: 1 } as unknown as OptimizerOptions })).toThrow(
      /optimizer.kind must be 'adam' or 'sgd'/,
    );
    const trainer = new Trainer({ model, recipe: 'contrastive', optimizer: { kind: 'adam', lr: 1e-3 } });
    await expect(trainer.step([randn([4, 1, 16, 16])])).rejects.toThrow(/two views/);
    await expect(trainer.step([randn([4, 1, 16, 16]), randn([4, 1, 8, 8])])).rejects.toThrow(/same shape/);
    const running = trainer.step([randn([4, 1, 16, 16]), randn([4, 1, 16, 16])]);
    await expect(trainer.step([randn([4, 1, 16, 16]), randn([4, 1, 16, 16])])).rejects.toThrow(/already running/);
    await running;
  });

  test('a non-finite loss stops the step before the update', async () => {
    const student = reactnetA({ ...studentSpec, head: 'mlp', mlpDim: 32 });
    const teacher = resnet('resnet18', teacherSpec);
    const trainer = new Trainer({ model: student, teacher, recipe: 'distill', optimizer: { kind: 'adam', lr: 1e-3 } });
    const weight = student.stateDict().get('feature.0.conv1.weight')!.clone();
    const bad = randn([4, 1, 16, 16]).mul(NaN);
    const error = await trainer.step([bad]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NonFiniteLossError);
    expect((error as Error).message).toMatch(/non-finite loss nan at step 1 \(distill; distill nan\); the trained weights are those of the step before/);
    expect(tensorError(student.stateDict().get('feature.0.conv1.weight')!, weight)).toBe(0);
    expect(trainer.steps).toBe(0);
  });

  test('a bfloat16 teacher: cast in place, its outputs and the distillation loss within bfloat16 rounding of float', async () => {
    manualSeed(5);
    const reference = resnet('resnet18', teacherSpec);
    const copyOf = (model: Model, make: () => Model) => {
      const copy = make();
      copy.loadStateDict(model.stateDict());
      return copy;
    };
    const student = reactnetA({ ...studentSpec, head: 'mlp', mlpDim: 32 });
    const images = randn([8, 1, 16, 16]);
    const loss: Record<string, number> = {};
    const teachers: Record<string, Model> = {};
    for (const teacherDtype of ['float32', 'bfloat16'] as const) {
      teachers[teacherDtype] = copyOf(reference, () => resnet('resnet18', teacherSpec));
      const trainer = new Trainer({
        model: copyOf(student, () => reactnetA({ ...studentSpec, head: 'mlp', mlpDim: 32 })), teacher: teachers[teacherDtype],
        recipe: 'distill', optimizer: { kind: 'adam', lr: 1e-3 }, teacherDtype,
      });
      loss[teacherDtype] = (await trainer.step([images])).loss;
    }
    expect(teachers.bfloat16.stateDict().get('layer1.0.conv1.weight')!.dtype).toBe('bfloat16');
    expect(teachers.float32.stateDict().get('layer1.0.conv1.weight')!.dtype).toBe('float32');
    // The cast teacher still takes float images in evaluation (the calibration plots use it).
    const batches: BatchSource = {
      batchesPerEpoch: 1,
      async *epoch() {
        yield { views: [images], labels: tensor(new BigInt64Array(8)), dispose: () => undefined };
      },
    };
    const outputs = await Promise.all(['float32', 'bfloat16'].map((d) => extractFeatures(teachers[d], batches, { head: true })));
    expect(outputs[1].features.dtype).toBe('float32');
    const difference = maxAbsDiff(outputs[0].features, outputs[1].features);
    expect(difference).toBeGreaterThan(0);
    expect(difference).toBeLessThan(2e-2);
    expect(Math.abs(loss.bfloat16 - loss.float32)).toBeLessThan(1e-3 * loss.float32);
    expect(() => new Trainer({ model: student, teacher: reference, recipe: 'distill', optimizer: { kind: 'adam', lr: 1e-3 }, teacherDtype: 'float16' as 'bfloat16' })).toThrow(
      /teacherDtype must be float32 or bfloat16, got 'float16'/,
    );
    expect(() => validateConfig(defaultConfig('distill', { teacherPrecision: 'half' as 'bfloat16' }))).toThrow(/teacherPrecision must be float32 or bfloat16, got 'half'/);
  });

  test('mixed precision: a ResNet step in bfloat16 autocast stays within its rounding of float32, with float32 weights, fresh weight casts every step and nothing left enabled', async () => {
    manualSeed(7);
    const spec = { arch: 'resnet18', inChannels: 1, stem: 'small', width: 0.25, numClasses: 4 } as const;
    const reference = resnet('resnet18', spec);
    const copy = () => {
      const model = resnet('resnet18', spec);
      model.loadStateDict(reference.stateDict());
      return model;
    };
    const data = new RandomBatches({ batches: 2, batch: 16, views: 1, size: 16, classes: 4 });
    const [first, second] = [data.make(0, 0), data.make(0, 1)];
    const supervised = (model: Model, computeDtype?: 'float32' | 'bfloat16') =>
      new Trainer({ model, recipe: 'supervised', optimizer: { kind: 'sgd', lr: 0.5, momentum: 0.9 }, computeDtype });

    const floatLoss = (await supervised(copy()).step(first.views, first.labels)).loss;
    const mixedModel = copy();
    const mixed = supervised(mixedModel, 'bfloat16');
    const mixedLoss = (await mixed.step(first.views, first.labels)).loss;
    // bfloat16 products (8 bits of mantissa) move the loss, but only by their rounding.
    expect(mixedLoss).not.toBe(floatLoss);
    expect(Math.abs(mixedLoss - floatLoss)).toBeLessThan(2e-2 * floatLoss);
    for (const [name, value] of mixedModel.stateDict()) {
      if (value.dtype !== 'int64') expect([name, value.dtype]).toEqual([name, 'float32']);
    }
    // Every step must see the weights the one before updated: autocast caches its bfloat16 casts
    // of the weights (per pool thread, and steps land on any of them) while a scope is open. Each
    // step's loss is that of a new model given the weights before it.
    for (let i = 0; i < 6; i++) {
      const current = copy();
      current.loadStateDict(mixedModel.stateDict());
      const loss = (await mixed.step(second.views, second.labels)).loss;
      expect([i, loss]).toEqual([i, (await supervised(current, 'bfloat16').step(second.views, second.labels)).loss]);
    }
    // Autocast is thread-local and the steps run on a pool thread: a float32 trainer after the
    // mixed ones computes in float32 again, to the bit.
    expect((await supervised(copy()).step(first.views, first.labels)).loss).toBe(floatLoss);

    const contrastive = new Trainer({ model: moco({ ...spec, numClasses: undefined }, { dim: 16, queueSize: 32 }), recipe: 'contrastive', optimizer: { kind: 'sgd', lr: 0.03 }, keyGroups: 4, computeDtype: 'bfloat16' });
    const views = [randn([16, 1, 16, 16]), randn([16, 1, 16, 16])];
    expect(Number.isFinite((await contrastive.step(views)).loss)).toBe(true);
    expect(() => new Trainer({ model: reactnetA({ ...studentSpec, numClasses: 4 }), recipe: 'supervised', optimizer: { kind: 'adam', lr: 1e-3 }, computeDtype: 'bfloat16' })).toThrow(
      /mixed precision trains real-valued ResNets; reactnet-a keeps its binary operators in float32/,
    );
    expect(() => validateConfig(defaultConfig('distill', { precision: 'bfloat16' }))).toThrow(/reactnet-a keeps its binary operators in float32/);
    expect(() => validateConfig(defaultConfig('moco-v2', { arch: 'resnet18', precision: 'half' as 'bfloat16' }))).toThrow(/precision must be float32 or bfloat16, got 'half'/);
    expect(() => validateConfig(defaultConfig('moco-v2', { arch: 'resnet18', precision: 'bfloat16' }))).not.toThrow();
  });

  test("the trainer's teacher targets (BatchNorm folded, oneDNN layout) match the teacher's own forward: ResNet-50, ImageNet stem", () => {
    manualSeed(6);
    const spec = { head: 'mlp', mlpDim: 32, inChannels: 3, stem: 'imagenet', width: 0.125 } as const;
    const reference = resnet('resnet50', spec);
    // BatchNorm with statistics of its own, so that a wrong fold shows.
    const state = new Map<string, Tensor>();
    for (const [key, value] of reference.stateDict()) {
      const n = value.shape[0];
      if (key.endsWith('running_mean') || /bn\d\.bias$|downsample\.1\.bias$/.test(key)) state.set(key, randn([n]).mul(0.2));
      else if (key.endsWith('running_var') || /bn\d\.weight$|downsample\.1\.weight$/.test(key)) state.set(key, randn([n]).abs().add(0.5));
    }
    reference.loadStateDict(state, { strict: false });
    const student = reactnetA({ width: 0.25, inChannels: 3, stem: 'imagenet', head: 'mlp', mlpDim: 32 });
    const images = randn([4, 3, 64, 64]);
    for (const [teacherDtype, tolerance] of [['float32', 1e-5], ['bfloat16', 3e-2]] as const) {
      const teacher = resnet('resnet50', spec);
      teacher.loadStateDict(reference.stateDict());
      const trainer = new Trainer({ model: student, teacher, recipe: 'distill', optimizer: { kind: 'sgd', lr: 0.1 }, teacherDtype });
      const targets = trainer.teacherTargets(images);
      expect(targets.dtype).toBe('float32');
      expect(targets.shape).toEqual([4, 32]);
      // The module's own forward (BatchNorm as a layer, the weights in the dtype the trainer cast them to).
      const expected = tidy(() => noGrad(() => teacher.forward(images.to(teacherDtype)).to('float32')));
      expect(tensorError(targets, expected)).toBeLessThan(tolerance);
    }
    const contrastive = new Trainer({ model: moco({ ...studentSpec, head: 'mlp', mlpDim: 32 }, { dim: 32, queueSize: 64 }), recipe: 'contrastive', optimizer: { kind: 'sgd', lr: 0.1 } });
    expect(() => contrastive.teacherTargets(images)).toThrow(/the contrastive recipe has no teacher/);
  });

  test('the optimizer state round-trips in torch.optim layout', async () => {
    manualSeed(3);
    const model = reactnetA({ ...studentSpec, numClasses: 4 });
    const trainer = new Trainer({ model, recipe: 'supervised', optimizer: { kind: 'adam', lr: 1e-3, weightDecay: 1e-4 } });
    const data = new RandomBatches({ batches: 1, batch: 8, views: 1, size: 16, classes: 4 }).make(0, 0);
    await trainer.step(data.views, data.labels);
    const file = path.join(tmp, 'optim.pth');
    await saveCheckpoint(file, { optimizer: trainer.optimizerStateDict() });
    const loaded = ((await Checkpoint.load(file)).toObject() as Map<string, unknown>).get('optimizer') as Map<string, unknown>;
    const state = loaded.get('state') as Map<number, Map<string, Tensor>>;
    // Every parameter has state except the unused modules', which never had a gradient.
    const unused = (name: string) => model.unusedModules.some((m) => name.startsWith(`${m}.`));
    const names = trainer.parameterNames();
    expect([...state.keys()]).toEqual(names.flatMap((name, i) => (unused(name) ? [] : [i])));
    expect(names.filter(unused)).toContain('feature.1.binary_pw.weight');
    expect(Number(state.get(0)!.get('step')!.item())).toBe(1);
    const other = new Trainer({ model, recipe: 'supervised', optimizer: { kind: 'adam', lr: 1e-3, weightDecay: 1e-4 } });
    other.loadOptimizerStateDict(loaded as never);
    const a = trainer.optimizerStateDict().get('state') as Map<number, Map<string, Tensor>>;
    const b = other.optimizerStateDict().get('state') as Map<number, Map<string, Tensor>>;
    expect(tensorError(b.get(3)!.get('exp_avg_sq')!, a.get(3)!.get('exp_avg_sq')!)).toBe(0);
    const headOnly = reactnetA({ ...studentSpec, numClasses: 4 });
    headOnly.freeze({ except: ['fc.'] });
    const linear = new Trainer({ model: headOnly, recipe: 'supervised', optimizer: { kind: 'adam', lr: 1e-3 } });
    expect(linear.parameterNames()).toEqual(['fc.weight', 'fc.bias']);
    expect(() => linear.loadOptimizerStateDict(loaded as never)).toThrow(/has \d+ parameters, this trainer 2/);
  });
});

interface ParityCase {
  recipe: Recipe;
  optimizer: OptimizerOptions;
  moco: boolean;
  teacher: boolean;
  keyGroups?: number;
  /** Default 8. */
  batch?: number;
  eval?: boolean;
  /**
   * A real-valued student. In binary networks a few activations within float noise of zero take
   * either sign, which moves a few deep gradients by ~1e-3 (relative): visible in Adam's moments,
   * hidden by SGD's lr-scaled update. The binary recipes are compared with SGD.
   */
  realValued?: boolean;
}

const sgd: OptimizerOptions = { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };
const parityCases: [string, ParityCase][] = [
  ['supervised, Adam with L2 weight decay (ResNet-18)', {
    recipe: 'supervised', optimizer: { kind: 'adam', lr: 1e-3, weightDecay: 1e-2 }, moco: false, teacher: false, realValued: true }],
  ['supervised, SGD momentum (linear evaluation: eval mode, head only)', {
    recipe: 'supervised', optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 1e-3 }, moco: false, teacher: false, eval: true }],
  // 4 groups of 2 run as ghost batches (one encoder pass); 16 keys in 3 groups (6, 5, 5) one
  // sub-batch after another.
  ['contrastive, shuffled key groups', { recipe: 'contrastive', optimizer: sgd, moco: true, teacher: false, keyGroups: 4 }],
  ['contrastive, key groups of unequal size', { recipe: 'contrastive', optimizer: sgd, moco: true, teacher: false, keyGroups: 3, batch: 16 }],
  ['contrastive, Adam (ResNet-18)', {
    recipe: 'contrastive', optimizer: { kind: 'adam', lr: 1e-3, weightDecay: 1e-4 }, moco: true, teacher: false, keyGroups: 2, realValued: true }],
  ['contrastive+distill', { recipe: 'contrastive+distill', optimizer: sgd, moco: true, teacher: true, keyGroups: 2 }],
  ['distill', { recipe: 'distill', optimizer: sgd, moco: false, teacher: true }],
];

(python ? describe : describe.skip)(`step parity with PyTorch${python ? '' : ` (skipped: ${reason})`}`, () => {
  // Same arithmetic as the reference step: float convolutions (see test/models.test.ts).
  let packed = true;
  beforeAll(() => { packed = setPackedTrainingForward(false); });
  afterAll(() => { setPackedTrainingForward(packed); });
  test.each(parityCases)('%s', async (label, c) => {
    // A draw whose binary activations have no near-tie that the two implementations' last bits
    // resolve differently (seed 11 has one since the models take the official layout: its
    // contrastive cases then differ by 1e-4..1e-3). Which seeds have one depends on the host's
    // kernels too: 12 and 13 passed on earlier hosts but, with pip's torch 2.13 on an AMD EPYC
    // whose CPU NNPACK does not know, differ by 2e-3 (the previous build alike); 14 passes on both.
    manualSeed(14);
    // Adam's first update is lr * g / (|g| + eps): entries whose gradient is float noise get
    // +-lr in either implementation, and later steps amplify that. One step pins its math exactly.
    const steps = c.optimizer.kind === 'adam' ? 1 : 3;
    const batch = c.batch ?? 8;
    const views = c.recipe === 'contrastive' || c.recipe === 'contrastive+distill' ? 2 : 1;
    const head = c.recipe === 'supervised' ? { head: 'linear' as const, numClasses: 5 } : { head: 'mlp' as const, mlpDim: 32 };
    const spec = c.realValued ? { ...teacherSpec, ...head } : { ...studentSpec, ...head };
    const encoder = (): Model => (c.realValued ? resnet('resnet18', spec as typeof teacherSpec) : reactnetA(spec));
    const model: Model = c.moco ? moco(spec as never, { dim: 32, queueSize: 32 }) : encoder();
    if (c.eval) {
      model.freeze({ except: ['fc.'] });
      model.eval();
    }
    const teacher = c.teacher ? resnet('resnet18', teacherSpec) : undefined;
    const data = new RandomBatches({ batches: steps, batch, views, size: 16, classes: 5, seed: 4 });
    const input: Record<string, unknown> = {
      config: JSON.stringify({ recipe: c.recipe, spec, moco: c.moco, dim: 32, queueSize: 32, teacherSpec, optimizer: c.optimizer,
        keyGroups: c.keyGroups ?? 8, seed: 9, steps, views, eval: c.eval ?? false }),
      student: model.stateDict(),
    };
    if (teacher) input.teacher = teacher.stateDict();
    const batches = Array.from({ length: steps }, (_, i) => data.make(0, i));
    batches.forEach((b, i) => {
      b.views.forEach((v, j) => (input[`step${i}.view${j}`] = v));
      if (c.recipe === 'supervised') input[`step${i}.labels`] = b.labels;
    });
    const inFile = path.join(tmp, `${label.replace(/\W+/g, '_')}.in.pth`);
    const outFile = inFile.replace('.in.', '.out.');
    await saveCheckpoint(inFile, input as never);

    const trainer = new Trainer({ model, teacher, recipe: c.recipe, optimizer: c.optimizer, keyGroups: c.keyGroups, seed: 9 });
    const ours = [];
    for (const b of batches) ours.push(await trainer.step(b.views, c.recipe === 'supervised' ? b.labels : undefined));
    runPython(python!, ['test/python/train_parity.py', inFile, outFile]);
    const out = (await Checkpoint.load(outFile)).toObject() as Map<string, unknown>;
    const theirs = JSON.parse(out.get('losses') as string) as Record<string, number>[];
    for (let i = 0; i < steps; i++) {
      for (const part of ['loss', 'contrastive', 'distill'] as const) {
        if (theirs[i][part] === undefined) continue;
        expect(Math.abs(ours[i][part]! - theirs[i][part]) / Math.abs(theirs[i][part])).toBeLessThan(1e-4);
      }
    }
    const expected = out.get('state_dict') as Map<string, Tensor>;
    const actual = model.stateDict();
    const failures: string[] = [];
    for (const [key, e] of expected) {
      const a = actual.get(key)!;
      if (c.optimizer.kind === 'adam') {
        const fraction = mismatchFraction(a, e, 1e-6, 1e-5);
        if (!(fraction < 0.01)) failures.push(`${key}: ${(100 * fraction).toFixed(2)}% of entries differ`);
      } else {
        // Scaled by at least 0.01: the key encoder's biases are EMAs that stay close to zero.
        const err = maxAbsDiff(a, e) / Math.max(maxAbs(e), 0.01);
        if (!(err < 1e-4)) failures.push(`${key}: ${err.toExponential(2)}`);
      }
    }
    if (c.optimizer.kind === 'adam') {
      const theirState = (out.get('optimizer') as Map<string, unknown>).get('state') as Map<number, Map<string, Tensor>>;
      const ourState = trainer.optimizerStateDict().get('state') as Map<number, Map<string, Tensor>>;
      expect(ourState.size).toBe(theirState.size);
      for (const [index, entry] of theirState) {
        for (const key of ['exp_avg', 'exp_avg_sq']) {
          const err = tensorError(ourState.get(index)!.get(key)!, entry.get(key)!);
          if (!(err < 1e-4)) failures.push(`state ${index} (${trainer.parameterNames()[index]}) ${key}: ${err.toExponential(2)}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });
});

test('slim ResNet teachers scale every stage width and keep torchvision names', () => {
  const slim = resnet('resnet18', { width: 0.25, inChannels: 1, stem: 'small' });
  const full = resnet('resnet18', { inChannels: 1, stem: 'small' });
  const state = slim.stateDict();
  expect(state.get('conv1.weight')!.shape).toEqual([16, 1, 3, 3]);
  expect(state.get('layer4.1.conv2.weight')!.shape).toEqual([128, 128, 3, 3]);
  expect([...state.keys()]).toEqual([...full.stateDict().keys()]);
  expect(slim.featureDim).toBe(128);
  expect(slim.complexity(28).flops).toBeLessThan(full.complexity(28).flops / 10);
  expect(() => resnet('resnet18', { width: 0 })).toThrow(/width must be in \(0, 16\]/);
});

describe('training loop', () => {
  test('schedules follow docs/method.md', () => {
    expect(learningRate({ kind: 'linear' }, 3e-4, 0, 200)).toBeCloseTo(3e-4);
    expect(learningRate({ kind: 'linear' }, 3e-4, 100, 200)).toBeCloseTo(1.5e-4);
    expect(learningRate({ kind: 'cosine' }, 0.03, 100, 200)).toBeCloseTo(0.015);
    expect(learningRate({ kind: 'step', milestones: [60, 80] }, 0.1, 59, 100)).toBeCloseTo(0.1);
    expect(learningRate({ kind: 'step', milestones: [60, 80] }, 0.1, 60, 100)).toBeCloseTo(0.01);
    expect(learningRate({ kind: 'step', milestones: [60, 80] }, 0.1, 85, 100)).toBeCloseTo(0.001);
  });

  const config = () =>
    defaultConfig('contrastive+distill', {
      arch: 'reactnet-a', width: 0.25, stem: 'small', inChannels: 1, dim: 32, queueSize: 64, batchSize: 8, epochs: 2,
      teacherArch: 'resnet18', keyGroups: 2, seed: 3,
    });

  async function teacherFile(): Promise<string> {
    const file = path.join(tmp, 'teacher.pth');
    if (!fs.existsSync(file)) {
      manualSeed(21);
      const teacher = moco({ arch: 'resnet18', inChannels: 1, stem: 'small' }, { dim: 32, queueSize: 64 });
      // The reference's multi-GPU layout, as the public teacher is saved.
      await Checkpoint.fromObject({ epoch: 800, state_dict: teacher.stateDict() }).transform({ addPrefix: 'module.' }).save(file);
    }
    return file;
  }

  async function run(out: string, options: { resume?: boolean; stopAfter?: { epoch: number; batch: number } } = {}) {
    const losses: number[] = [];
    const controller = new AbortController();
    const data = new RandomBatches({ batches: 3, batch: 8, views: 2, size: 16, classes: 4, seed: 5 });
    const teacher = await teacherFile();
    manualSeed(99);
    const result = await pretrain({
      config: { ...config(), teacher },
      data,
      out,
      resume: options.resume,
      signal: controller.signal,
      onStepEnd: (info) => {
        losses.push(info.result.loss);
        if (options.stopAfter && info.epoch === options.stopAfter.epoch && info.batch === options.stopAfter.batch) controller.abort();
      },
    });
    return { losses, result };
  }

  test('a run stopped mid-epoch or between epochs resumes on the same trajectory', async () => {
    const straight = await run(path.join(tmp, 'straight'));
    expect(straight.losses).toHaveLength(6);
    expect(straight.result.fit.completed).toBe(true);

    for (const stopAfter of [{ epoch: 0, batch: 1 }, { epoch: 0, batch: 2 }]) {
      const out = path.join(tmp, `stopped-${stopAfter.batch}`);
      const first = await run(out, { stopAfter });
      expect(first.result.fit.completed).toBe(false);
      const resumed = await run(out, { resume: true });
      expect(resumed.result.start).toEqual(stopAfter.batch === 2 ? { epoch: 1, batch: 0 } : { epoch: 0, batch: 2 });
      expect([...first.losses, ...resumed.losses]).toEqual(straight.losses);
    }
    const saved = (await Checkpoint.load(path.join(tmp, 'straight', 'checkpoint.pth'))).toObject() as Map<string, unknown>;
    expect(saved.get('epoch')).toBe(2);
    expect(saved.get('arch')).toBe('reactnet-a');
    expect([...(saved.get('state_dict') as Map<string, Tensor>).keys()]).toContain('module.encoder_q.fc.2.weight');
  });

  test('resume refuses a checkpoint of another configuration, and a missing one', async () => {
    const out = path.join(tmp, 'straight');
    await expect(
      pretrain({ config: { ...config(), teacher: await teacherFile(), width: 0.5 }, data: new RandomBatches({ batches: 1, batch: 8, views: 2, size: 16, classes: 4 }), out, resume: true }),
    ).rejects.toThrow(/written with width = 0.25, this run has 0.5/);
    await expect(
      pretrain({ config: { ...config(), teacher: await teacherFile() }, data: new RandomBatches({ batches: 1, batch: 8, views: 2, size: 16, classes: 4 }), out: path.join(tmp, 'none'), resume: true }),
    ).rejects.toThrow(/no checkpoint at/);
  });

  test('a NaN loss names the epoch and batch and leaves the last checkpoint', async () => {
    const student = reactnetA({ ...studentSpec, head: 'mlp', mlpDim: 32 });
    const teacher = resnet('resnet18', teacherSpec);
    const trainer = new Trainer({ model: student, teacher, recipe: 'distill', optimizer: { kind: 'adam', lr: 1e-3 } });
    const good = new RandomBatches({ batches: 2, batch: 4, views: 1, size: 16, classes: 4 });
    const poisoned: BatchSource = {
      batchesPerEpoch: 2,
      async *epoch(epoch) {
        yield good.make(epoch, 0);
        const b = good.make(epoch, 1);
        yield { ...b, views: [b.views[0].mul(NaN)] };
      },
    };
    const saved: number[] = [];
    await expect(
      fit({ trainer, data: poisoned, epochs: 2, schedule: { kind: 'constant' }, checkpoint: async (p) => void saved.push(p.epoch) }),
    ).rejects.toThrow(/training stopped at epoch 1\/2, batch 2\/2: non-finite loss nan at step 2/);
    expect(saved).toEqual([]);
  });

  test('linear evaluation trains only the head of a frozen backbone in eval mode; kNN and evaluate agree on an easy problem', async () => {
    manualSeed(8);
    // Two classes that differ in mean brightness: any backbone separates them.
    const make = (count: number, seed: number): BatchSource => ({
      batchesPerEpoch: 1,
      async *epoch() {
        manualSeed(seed);
        const labels = new BigInt64Array(count).map((_, i) => BigInt(i % 2));
        const shift = tensor(Float32Array.from(labels, (l) => (l ? 2 : -2)), { shape: [count, 1, 1, 1] });
        const views = [randn([count, 1, 16, 16]).mul(0.5).add(shift)];
        yield { views, labels: tensor(labels), dispose: () => views[0].dispose() };
      },
    });
    const pretrained = moco(studentSpec, { dim: 32, queueSize: 64 });
    const file = path.join(tmp, 'pretrained.pth');
    await saveCheckpoint(file, { epoch: 1, state_dict: pretrained.stateDict() });
    const classifier = reactnetA({ ...studentSpec, numClasses: 2 });
    loadBackbone(classifier, await Checkpoint.load(file));
    const backboneBefore = classifier.stateDict().get('feature.3.bn1.running_mean')!.clone();
    const weightBefore = classifier.stateDict().get('feature.3.binary_3x3.weight')!.clone();
    const result = await linearEvaluation({ model: classifier, train: make(32, 1), test: make(32, 2), epochs: 30, lr: 0.1 });
    expect(result.top1).toBeGreaterThanOrEqual(90);
    expect(result.top5).toBe(100);
    expect(tensorError(classifier.stateDict().get('feature.3.bn1.running_mean')!, backboneBefore)).toBe(0);
    expect(tensorError(classifier.stateDict().get('feature.3.binary_3x3.weight')!, weightBefore)).toBe(0);
    // An abort (SIGINT / SIGTERM in the CLI) stops the linear training after the step in flight.
    const stop = new AbortController();
    const stopped = await linearEvaluation({
      model: reactnetA({ ...studentSpec, numClasses: 2 }), train: make(32, 1), test: make(32, 2), epochs: 30, signal: stop.signal,
      onStepEnd: () => stop.abort(),
    });
    expect([stopped.fit.completed, stopped.fit.history.length]).toEqual([false, 1]);
    const again = await evaluate(classifier, make(32, 2), { keepLogits: true });
    expect(again.top1).toBeCloseTo(result.top1);
    expect(again.logits!.shape).toEqual([32, 2]);

    const bank = { features: tensor(new Float32Array([1, 0, 0, 1, 0.8, 0.6]), { shape: [3, 2] }), labels: tensor(new BigInt64Array([0n, 1n, 1n])) };
    const queries = { features: tensor(new Float32Array([0.9, 0.1, 0, 1]), { shape: [2, 2] }), labels: tensor(new BigInt64Array([0n, 1n])) };
    expect(await knnAccuracy(bank, queries, { k: 1, classes: 2 })).toEqual({ top1: 100, top5: 100, count: 2 });
    // k = 3: the query [0.9, 0.1] is nearer two class-1 samples in sum at a high temperature.
    expect((await knnAccuracy(bank, queries, { k: 3, classes: 2, temperature: 100 })).top1).toBe(50);
    await expect(knnAccuracy(bank, queries, { k: 0, classes: 2 })).rejects.toThrow(/k must be >= 1/);
  });
});

describe('the reproduction\'s held-out validation images', () => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { splitTraining } = require('../lib/train/reproduce') as typeof import('../lib/train/reproduce');
  // 1,000 2x2 images whose first two pixels spell their index, labels index mod 10.
  const pixels = new Uint8Array(1000 * 4);
  for (let i = 0; i < 1000; i++) [pixels[4 * i], pixels[4 * i + 1]] = [i & 255, i >> 8];
  const labels = tensor(BigInt64Array.from({ length: 1000 }, (_, i) => BigInt(i % 10)));
  const dataset = new InMemoryDataset(tensor(pixels, { shape: [1000, 2, 2, 1], dtype: 'uint8' }), labels, Array.from({ length: 10 }, String));
  const ids = (d: Dataset) => {
    const p = (d as InMemoryDataset).images().data() as Uint8Array;
    return Array.from({ length: d.length }, (_, i) => p[4 * i] + 256 * p[4 * i + 1]);
  };
  const perClass = (d: Dataset) => {
    const out = new Map<number, number>();
    for (const id of ids(d)) out.set(id % 10, (out.get(id % 10) ?? 0) + 1);
    return [...out.values()];
  };

  test('taken from the images the run leaves unused: the run trains on the same images as without them', () => {
    const plain = splitTraining(dataset, 200, undefined);
    const held = splitTraining(dataset, 200, 300);
    expect(ids(held.train)).toEqual(ids(plain.train));
    const validation = ids(held.validation!);
    expect(validation).toHaveLength(300);
    expect(validation.filter((id) => ids(held.train).includes(id))).toEqual([]);
    expect(perClass(held.validation!)).toEqual(Array(10).fill(30));
  });

  test('carved out of the training images when the run uses them all, disjoint from them', () => {
    const held = splitTraining(dataset, undefined, 100);
    const train = ids(held.train);
    const validation = ids(held.validation!);
    expect([train.length, validation.length]).toEqual([900, 100]);
    expect(new Set([...train, ...validation]).size).toBe(1000);
    expect(perClass(held.validation!)).toEqual(Array(10).fill(10));
  });
});
