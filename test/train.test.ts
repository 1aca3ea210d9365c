// The native Trainer: each recipe's step against the straightforward PyTorch implementation
// (scripts/python/s2bnn_train.py), the optimizer state in torch.optim's layout, non-finite losses,
// the loop's schedule, stop and resume, and the evaluation protocols.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Checkpoint, Model, Tensor, manualSeed, moco, randn, reactnetA, resnet, saveCheckpoint, tensor, tidy } from '../lib';
import { BatchLike, BatchSource, fit } from '../lib/train/loop';
import { NonFiniteLossError, OptimizerOptions, Recipe, Trainer } from '../lib/train/trainer';
import { defaultConfig, pretrain } from '../lib/train/pretrain';
import { evaluate, knnAccuracy, linearEvaluation, loadBackbone } from '../lib/train/evaluate';
import { learningRate } from '../lib/train/schedule';
import { pythonWithTorch, runPython, tensorError } from './helpers';

const maxAbs = (t: Tensor) => tidy(() => Number(t.to('float64').abs().max().item()));
const maxAbsDiff = (a: Tensor, b: Tensor) => tidy(() => Number(a.to('float64').sub(b.to('float64')).abs().max().item()));
/** Fraction of entries with |a - b| > atol + rtol * |b|. */
const mismatchFraction = (a: Tensor, b: Tensor, atol: number, rtol: number) =>
  tidy(() => Number(a.sub(b).abs().gt(b.abs().mul(rtol).add(atol)).to('float32').mean().item()));



const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 's2bnn-train-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
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
    const trainer = new Trainer({ model, recipe: 'supervised', optimizer: { kind: 'adam', lr: 2e-3 } });
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
    expect(state.size).toBe(trainer.parameterNames().length);
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
  ['contrastive, shuffled key groups', { recipe: 'contrastive', optimizer: sgd, moco: true, teacher: false, keyGroups: 4 }],
  ['contrastive, Adam (ResNet-18)', {
    recipe: 'contrastive', optimizer: { kind: 'adam', lr: 1e-3, weightDecay: 1e-4 }, moco: true, teacher: false, keyGroups: 2, realValued: true }],
  ['contrastive+distill', { recipe: 'contrastive+distill', optimizer: sgd, moco: true, teacher: true, keyGroups: 2 }],
  ['distill', { recipe: 'distill', optimizer: sgd, moco: false, teacher: true }],
];

(python ? describe : describe.skip)(`step parity with PyTorch${python ? '' : ` (skipped: ${reason})`}`, () => {
  test.each(parityCases)('%s', async (label, c) => {
    manualSeed(11);
    // Adam's first update is lr * g / (|g| + eps): entries whose gradient is float noise get
    // +-lr in either implementation, and later steps amplify that. One step pins its math exactly.
    const steps = c.optimizer.kind === 'adam' ? 1 : 3;
    const batch = 8;
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
