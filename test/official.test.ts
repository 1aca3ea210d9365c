// Checkpoints from and for the official S2-BNN code (docs/checkpoints.md). test/python/official.py
// builds the official module layout (its key lists and parameter order are compared here with
// s2bnn's), writes files as main_moco.py and main_lincls.py write them, and runs those scripts'
// load paths on the files s2bnn writes. Networks are the official ones: ReActNet-A at width 1,
// three channels, the ImageNet stem, dim 128, K 65536.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import {
  BatchSource, Checkpoint, Model, OrderedDict, PackedModel, PyValue, Tensor, Trainer, classifierFor, defaultConfig, encoderSpec,
  headClasses, isLeanLayout, knnAccuracy, leanParameterNames, loadBackbone, manualSeed, moco, pretrain, randn, reactnetA,
  saveEvaluationCheckpoint, setPackedTrainingForward, tensor, zeros,
} from '../lib';
import { writePng } from '../lib/report/png';
import { pythonWithTorch, repoRoot, runPython, tempDir, tensorError } from './helpers';

const tmp = tempDir('official');
const cli = path.join(repoRoot, 'dist', 'cli.js');
const { python, reason } = pythonWithTorch();

function run(...args: string[]) {
  const res = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8', cwd: repoRoot, env: { ...process.env, S2BNN_NUM_THREADS: '2' }, timeout: 240_000, killSignal: 'SIGKILL',
  });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

// The block's modules in the order the official ReActNet.py registers them, used or not.
const OFFICIAL_BLOCK = [
  'move11', 'binary_3x3', 'bn1', 'move12', 'prelu1', 'move13', 'move21', 'binary_pw', 'bn2', 'move22', 'prelu2', 'move23',
  'binary_pw_down1', 'binary_pw_down2', 'bn2_1', 'bn2_2',
];

const blockModules = (keys: string[], block: number) => [
  ...new Set(keys.filter((k) => k.startsWith(`feature.${block}.`)).map((k) => k.split('.')[2])),
];

/** One fixed batch per epoch: the loop then steps exactly on the images given. */
function fixedBatches(images: Tensor): BatchSource {
  return {
    batchesPerEpoch: 1,
    epoch: async function* () {
      yield { views: [images], labels: zeros([images.shape[0]], { dtype: 'int64' }), dispose: () => undefined };
    },
  };
}

/** The official distillation run's configuration, as s2bnn's config. */
const officialConfig = (teacher: string, overrides: Parameters<typeof defaultConfig>[1] = {}) =>
  defaultConfig('distill', {
    arch: 'reactnet-a', width: 1, stem: 'imagenet', inChannels: 3, teacher, teacherArch: 'resnet18', epochs: 3, batchSize: 4,
    lr: 3e-4, weightDecay: 0, ...overrides,
  });

describe('the official module layout', () => {
  test('every block registers all sixteen modules in the official order, and runs only its own', () => {
    const keys = [...reactnetA().stateDict().keys()];
    expect(blockModules(keys, 1)).toEqual(OFFICIAL_BLOCK); // 32 -> 64: doubles
    expect(blockModules(keys, 3)).toEqual(OFFICIAL_BLOCK); // 128 -> 128: keeps
    const model = reactnetA();
    expect(model.unusedModules.slice(0, 4)).toEqual(['feature.1.binary_pw', 'feature.1.bn2', 'feature.2.binary_pw', 'feature.2.bn2']);
    expect(model.unusedModules).toContain('feature.3.binary_pw_down1');
    // complexity() counts what runs: the paper's network; the state dict carries 5.6 M more.
    let all = 0;
    for (const p of model.parameters()) all += p.shape.reduce((a, b) => a * b, 1);
    expect(all).toBe(34944232);
    expect(model.complexity(224).parameters).toBe(29343592);
  });

  (python ? test : test.skip)(`keys, shapes and parameter order are the official code's${python ? '' : ` (skipped: ${reason})`}`, () => {
    const official = JSON.parse(runPython(python!, ['test/python/official.py', 'layout']));
    const describe = (m: Model) => ({
      state: [...m.stateDict()].map(([k, v]) => [k, v.shape]),
      parameters: [...m.namedParameters().keys()],
    });
    expect(describe(reactnetA())).toEqual(official.reactnet);
    const student = moco({ arch: 'reactnet-a' }, { dim: 128, queueSize: 256 });
    expect(describe(student)).toEqual(official.moco);
    // main_moco.py's Adam(model.parameters()): the optimizer's indices are these parameters.
    const trainer = new Trainer({ model: student, recipe: 'contrastive', optimizer: { kind: 'adam', lr: 3e-4 } });
    expect(trainer.parameterNames()).toEqual(official.moco.parameters);
  });

  test('unused modules: the reference init, no gradient, no optimizer state, no effect', async () => {
    manualSeed(4);
    const spec = { arch: 'reactnet-a', width: 0.25, inChannels: 1, stem: 'small', head: 'mlp', mlpDim: 16 } as const;
    const student = moco(spec, { dim: 16, queueSize: 32 });
    const params = student.namedParameters();
    const unused = (name: string) => student.unusedModules.some((m) => name.startsWith(`${m}.`));
    const pw = params.get('encoder_q.feature.1.binary_pw.weight')!; // a doubling block's
    const w = Array.from(pw.toTypedArray() as Float32Array);
    expect(Math.min(...w)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...w)).toBeLessThan(0.001); // HardBinaryConv: uniform [0, 0.001)
    const gamma = Array.from(params.get('encoder_q.feature.3.bn2_1.weight')!.toTypedArray() as Float32Array); // a same-width block's
    expect(gamma.length).toBe(32);
    expect(gamma.every((v) => v === 1)).toBe(true);
    // Garbage in the unused modules changes nothing the network computes.
    const x = randn([4, 1, 16, 16]);
    const before = student.eval().forward(x);
    for (const [name, p] of params) if (name.startsWith('encoder_q.') && unused(name) && p.ndim === 4) (p.data() as Float32Array).fill(Number.NaN);
    expect(tensorError(student.forward(x), before)).toBe(0);
    const trainer = new Trainer({ model: student.train(), recipe: 'contrastive', optimizer: { kind: 'adam', lr: 1e-3 }, keyGroups: 2 });
    await trainer.step([randn([8, 1, 16, 16]), randn([8, 1, 16, 16])]);
    const withGrad = [...params].filter(([, p]) => p.grad).map(([k]) => k);
    expect(withGrad.length).toBeGreaterThan(0);
    expect(withGrad.filter(unused)).toEqual([]);
    const state = trainer.optimizerStateDict().get('state') as Map<number, unknown>;
    const names = trainer.parameterNames();
    expect([...state.keys()].map((i) => names[i])).toEqual(withGrad);
    // The momentum update skips them: the key encoder's copies did not take the query's NaN.
    expect((params.get('encoder_k.feature.1.binary_pw.weight')!.toTypedArray() as Float32Array).every(Number.isFinite)).toBe(true);
  });
});

// The official files (test/python/official.py) and a folder of ten classes with only val/.
const official = path.join(tmp, 'official');
const valOnly = path.join(tmp, 'val-only');
const input = path.join(tmp, 'input.pth');
let packedForward = true;
beforeAll(async () => {
  packedForward = setPackedTrainingForward(false); // the reference's float convolutions (test/models.test.ts)
  if (!python) return;
  fs.mkdirSync(official);
  const pretrainConfig = { seed: 1, step: 2, queueSize: 65536, lr: 3e-4, weightDecay: 0, size: 32, batch: 4, epochs: 3, temperature: 0.2 };
  runPython(python, ['test/python/official.py', 'pretrain', official, JSON.stringify(pretrainConfig)]);
  runPython(python, ['test/python/official.py', 'lincls', official, JSON.stringify({ seed: 2, classes: 10, batch: 4, size: 64 })]);
  for (let c = 0; c < 10; c++) {
    const folder = path.join(valOnly, 'val', `class${c}`);
    fs.mkdirSync(folder, { recursive: true });
    for (let i = 0; i < 2; i++) {
      const pixels = Uint8Array.from({ length: 64 * 64 * 3 }, (_, j) => (j * (c + 3) + i * 51 + ((j * j) % 97)) & 255);
      writePng(path.join(folder, `${i}.png`), { width: 64, height: 64, channels: 3, data: pixels });
    }
  }
  manualSeed(8);
  await Checkpoint.fromObject(randn([2, 3, 64, 64]) as never).save(input);
});
afterAll(() => setPackedTrainingForward(packedForward));

(python ? describe : describe.skip)(`files of the official code in s2bnn${python ? '' : ` (skipped: ${reason})`}`, () => {
  test("--resume from main_moco.py's checkpoint gives its next update (within 1e-5)", async () => {
    const next = (await Checkpoint.load(path.join(official, 'next.pth'))).toObject() as Map<string, unknown>;
    const notices: string[] = [];
    const losses: number[] = [];
    const result = await pretrain({
      config: officialConfig(path.join(official, 'teacher.pth.tar')),
      data: fixedBatches(next.get('images') as Tensor),
      out: path.join(tmp, 'resumed'),
      resume: path.join(official, 'checkpoint.pth.tar'),
      onNotice: (m) => notices.push(m),
      onStepEnd: (info) => { losses.push(info.result.loss); },
    });
    expect(result.start).toEqual({ epoch: 2, batch: 0 }); // main_moco.py saved the end of its epoch 2
    expect(notices).toEqual([]);
    expect(losses).toHaveLength(1);
    expect(Math.abs(losses[0] - (next.get('loss') as number)) / (next.get('loss') as number)).toBeLessThan(1e-5);
    const ours = (await Checkpoint.load(result.checkpoint)).stateDict();
    const theirs = next.get('state_dict') as Map<string, Tensor>;
    expect([...ours.keys()]).toEqual([...theirs.keys()]);
    let worst = 0;
    for (const [key, expected] of theirs) {
      if (expected.dtype === 'float32') worst = Math.max(worst, ours.get(key)!.sub(expected).abs().max().item() as number);
    }
    expect(worst).toBeLessThan(1e-5);
  });

  test('its pre-trained student: --init, the lincls/knn/finetune backbone, export with the MLP head', async () => {
    const checkpoint = await Checkpoint.load(path.join(official, 'checkpoint.pth.tar'));
    expect(isLeanLayout(checkpoint)).toBe(false);
    expect(encoderSpec(checkpoint)).toEqual({ arch: 'reactnet-a', width: 1, inChannels: 3, stem: 'imagenet', step: 2 });
    // pretrain --init: the whole MoCo model, key encoder and queue included.
    const student = moco({ arch: 'reactnet-a' });
    expect(student.loadStateDict(checkpoint)).toEqual({ missing: [], unexpected: [] });
    expect(tensorError(student.stateDict().get('queue')!, checkpoint.stateDict().get('module.queue')!)).toBe(0);
    // lincls, knn and finetune: encoder_q's backbone under a new Linear.
    const classifier = classifierFor(encoderSpec(checkpoint), 10);
    expect(loadBackbone(classifier, checkpoint)).toEqual([]);
    const x = randn([2, 3, 64, 64]);
    expect(tensorError(classifier.eval().features(x), student.eval().features(x))).toBe(0);
    // export: encoder_q packed, with its MLP head.
    const { model } = await PackedModel.fromCheckpoint(checkpoint);
    expect(model.config).toMatchObject({ head: 'mlp', outputs: 128, stemStride: 2 });
    expect(tensorError(await model.forward(x), student.forward(x))).toBeLessThan(1e-4);
  });

  test("main_lincls.py's classifier: logits within 1e-4; eval, export, infer and knn on a folder with only val/", async () => {
    const file = path.join(official, 'lincls.pth.tar');
    const checkpoint = await Checkpoint.load(file);
    expect(checkpoint.format).toBe('legacy');
    const model = classifierFor(encoderSpec(checkpoint), headClasses(checkpoint));
    expect(model.loadStateDict(checkpoint)).toEqual({ missing: [], unexpected: [] });
    const expected = (await Checkpoint.load(path.join(official, 'lincls-logits.pth'))).toObject() as Map<string, Tensor>;
    expect(tensorError(model.eval().forward(expected.get('input')!), expected.get('logits')!)).toBeLessThan(1e-4);

    let r = run('eval', '--checkpoint', file, '--data', valOnly, '--size', '64', '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout).count).toBe(20);
    const packed = path.join(tmp, 'official-lincls.packed');
    r = run('export', file, '--out', packed, '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toMatchObject({ leanLayout: false, config: { head: 'linear', outputs: 10, stemStride: 2 } });
    r = run('infer', packed, '--data', valOnly, '--size', '64', '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout).count).toBe(20);
    r = run('knn', '--pretrained', path.join(official, 'checkpoint.pth.tar'), '--data', valOnly, '--size', '64', '--k', '3', '--json');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^s2bnn knn: note: .* has no train\/ folder: leave-one-out kNN over val\/.*\n$/);
    expect(JSON.parse(r.stdout)).toMatchObject({ count: 20, k: 3, bank: 'val (leave-one-out)' });
  });
});

(python ? describe : describe.skip)(`files of s2bnn in the official code, and s2bnn's earlier lean files${python ? '' : ` (skipped: ${reason})`}`, () => {
  const ours = path.join(tmp, 'ours');
  const step1 = path.join(ours, 'step1', 'checkpoint.pth');
  const step2 = path.join(ours, 'step2', 'checkpoint.pth');
  const lincls = path.join(ours, 'lincls.pth');
  const teacher = () => path.join(official, 'teacher.pth.tar');
  let classifier: Model;

  beforeAll(async () => {
    manualSeed(5);
    await pretrain({ config: officialConfig(teacher(), { step: 1, epochs: 1 }), data: fixedBatches(randn([4, 3, 32, 32])), out: path.dirname(step1) });
    await pretrain({ config: officialConfig(teacher(), { epochs: 2, init: step1 }), data: fixedBatches(randn([4, 3, 32, 32])), out: path.dirname(step2) });
    // A linear evaluation as `s2bnn lincls` writes it: a probe step, then saveEvaluationCheckpoint.
    const pretrained = await Checkpoint.load(step2);
    const spec = encoderSpec(pretrained);
    classifier = classifierFor(spec, 10);
    loadBackbone(classifier, pretrained);
    classifier.freeze({ except: ['fc.'] });
    const probe = new Trainer({ model: classifier.eval(), recipe: 'supervised', optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9 } });
    await probe.step([randn([4, 3, 64, 64])], tensor([0, 1, 2, 3], { dtype: 'int64' }));
    const fit = { position: { epoch: 1, batch: 0 }, completed: true, history: [] };
    await saveEvaluationCheckpoint(lincls, classifier, spec, 1, { top1: 12.5, top5: 50, count: 4, fit, optimizer: probe.optimizerStateDict() });
  });

  test('our step 1 starts the official step 2, our student passes main_lincls.py, our lincls loads into its classifier', async () => {
    const outputs = path.join(ours, 'outputs.pth');
    const checks = { step1, pretrained: step2, lincls, input, classes: 10 };
    const results = JSON.parse(runPython(python!, ['test/python/official.py', 'check', JSON.stringify(checks), outputs]));
    // Adam state for the parameters that had gradients: encoder_q's, not its unused modules'.
    const student = moco({ arch: 'reactnet-a' });
    const names = [...student.namedParameters().keys()];
    const trained = names.filter((k) => k.startsWith('encoder_q.') && !student.unusedModules.some((m) => k.startsWith(`${m}.`)));
    expect(results.step1).toEqual({ parameters: names.length, states: trained.length });
    expect(results.pretrained).toEqual({ missing: ['fc.bias', 'fc.weight'], unexpected: [] });
    expect(results.lincls).toEqual({ epoch: 1, best_acc1: 12.5, states: 2 });
    const theirs = (await Checkpoint.load(outputs)).toObject() as Map<string, Tensor>;
    const x = (await Checkpoint.load(input)).toObject() as unknown as Tensor;
    // The official step 2 built from our step 1 computes what ours built from it does.
    student.loadStateDict(await Checkpoint.load(step1));
    expect(tensorError(student.eval().forward(x), theirs.get('step2')!)).toBeLessThan(1e-4);
    expect(tensorError(classifier.eval().forward(x), theirs.get('lincls')!)).toBeLessThan(1e-4);
  });

  test('lean files (s2bnn before the official layout) resume on the same trajectory and load with a one-line note', async () => {
    // The lean layout's parameter order: a doubling block registered its 1x1 stage before move22.
    const names = new Trainer({ model: moco({ arch: 'reactnet-a' }), recipe: 'contrastive', optimizer: { kind: 'adam', lr: 1e-3 } }).parameterNames();
    const lean = leanParameterNames(names, moco({ arch: 'reactnet-a' }).unusedModules);
    const block = (n: number) => lean.filter((k) => k.startsWith(`encoder_q.feature.${n}.`)).map((k) => k.split('.').slice(3).join('.'));
    expect(block(1)).toEqual([
      'move11.bias', 'binary_3x3.weight', 'bn1.weight', 'bn1.bias', 'move12.bias', 'prelu1.weight', 'move13.bias', 'move21.bias',
      'binary_pw_down1.weight', 'binary_pw_down2.weight', 'bn2_1.weight', 'bn2_1.bias', 'bn2_2.weight', 'bn2_2.bias',
      'move22.bias', 'prelu2.weight', 'move23.bias',
    ]);
    expect(block(3)).toEqual([
      'move11.bias', 'binary_3x3.weight', 'bn1.weight', 'bn1.bias', 'move12.bias', 'prelu1.weight', 'move13.bias', 'move21.bias',
      'binary_pw.weight', 'bn2.weight', 'bn2.bias', 'move22.bias', 'prelu2.weight', 'move23.bias',
    ]);
    // Our step-2 run checkpoint as s2bnn wrote distillation runs before: the student's encoder
    // under encoder_q (no module., no key encoder or queue, no unused modules), the optimizer
    // indexing the lean order.
    const full = (await Checkpoint.load(step2)).toObject() as Map<string, PyValue>;
    const unused = moco({ arch: 'reactnet-a' }).unusedModules;
    const leanState = new OrderedDict<string, Tensor>();
    for (const [key, value] of full.get('state_dict') as Map<string, Tensor>) {
      const name = key.slice('module.'.length);
      if (name.startsWith('encoder_q.') && !unused.some((m) => name.startsWith(`${m}.`))) leanState.set(name, value);
    }
    const optimizer = full.get('optimizer') as Map<string, PyValue>;
    const state = optimizer.get('state') as Map<number, PyValue>;
    const leanOptimizerState = new Map<number, PyValue>();
    lean.forEach((name, i) => {
      const entry = state.get(names.indexOf(name));
      if (entry !== undefined) leanOptimizerState.set(i, entry);
    });
    const group = new Map((optimizer.get('param_groups') as Map<string, PyValue>[])[0]);
    group.set('params', lean.map((_, i) => i));
    const leanFile = path.join(ours, 'lean.pth');
    await Checkpoint.fromObject(new Map<string, PyValue>([
      ['epoch', full.get('epoch')!], ['arch', full.get('arch')!], ['state_dict', leanState],
      ['optimizer', new Map<string, PyValue>([['state', leanOptimizerState], ['param_groups', [group]]])], ['s2bnn', full.get('s2bnn')!],
    ])).save(leanFile);
    expect(isLeanLayout(await Checkpoint.load(leanFile))).toBe(true);

    const next = randn([4, 3, 32, 32]);
    const resume = async (file: string, out: string) => {
      const notices: string[] = [];
      const losses: number[] = [];
      const result = await pretrain({
        config: officialConfig(teacher(), { epochs: 3, init: step1 }), data: fixedBatches(next), out, resume: file,
        onNotice: (m) => notices.push(m), onStepEnd: (info) => { losses.push(info.result.loss); },
      });
      const weights = (await Checkpoint.load(result.checkpoint)).stateDict();
      return { notices, losses, weights };
    };
    const fromFull = await resume(step2, path.join(ours, 'from-full'));
    const fromLean = await resume(leanFile, path.join(ours, 'from-lean'));
    expect(fromFull.notices).toEqual([]);
    expect(fromLean.notices).toEqual([expect.stringContaining("lean.pth is in s2bnn's earlier lean layout")]);
    expect(fromLean.losses).toEqual(fromFull.losses);
    for (const [key, value] of fromFull.weights) {
      if (key.startsWith('module.encoder_q.') && !unused.some((m) => key.startsWith(`module.${m}.`))) {
        expect([key, tensorError(fromLean.weights.get(key)!, value)]).toEqual([key, 0]);
      }
    }

    // A lean linear evaluation: eval reads it and says so in one line.
    const leanLincls = path.join(ours, 'lean-lincls.pth');
    const linclsState = (await Checkpoint.load(lincls)).transform({ stripPrefix: 'module.' });
    const kept = new OrderedDict([...linclsState.stateDict()].filter(([k]) => !classifier.unusedModules.some((m) => k.startsWith(`${m}.`))));
    const root = linclsState.toObject() as Map<string, PyValue>;
    root.set('state_dict', kept);
    await Checkpoint.fromObject(root).save(leanLincls);
    const r = run('eval', '--checkpoint', leanLincls, '--data', valOnly, '--size', '64', '--json');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^s2bnn eval: note: .*lean-lincls\.pth is in s2bnn's earlier lean layout.*\n$/);
    expect(JSON.parse(r.stdout).count).toBe(20);
  });
});

test('knn leave-one-out: a sample is never its own neighbour', async () => {
  // Two clusters; the last sample is of class 1 but sits in cluster 0.
  const features = tensor([[1, 0], [0.99, 0.14], [0.98, 0.2], [0, 1], [0.14, 0.99], [0.995, 0.1]]);
  const labels = tensor([0, 0, 0, 1, 1, 1], { dtype: 'int64' });
  const bank = { features, labels };
  expect((await knnAccuracy(bank, bank, { k: 1, classes: 2 })).top1).toBe(100);
  // k = 1 without itself: the outlier takes cluster 0's label, and the two cluster-0 points
  // nearest it take its label.
  expect((await knnAccuracy(bank, bank, { k: 1, classes: 2, leaveOneOut: true })).top1).toBe(50);
  await expect(knnAccuracy(bank, { features: features.slice(0, 0, 3), labels: labels.slice(0, 0, 3) }, { k: 1, classes: 2, leaveOneOut: true }))
    .rejects.toThrow(/leave-one-out needs the bank as the test features/);
});
