// The packed (1-bit) ReActNet-A: export folds alpha and BatchNorm exactly, the packed network
// gives the float network's logits up to float rounding and the same top-1, files round-trip and
// bad files are refused with a message that names the problem; export and infer as a user runs them.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { Checkpoint, Model, PackedModel, Tensor, manualSeed, randn, rand, reactnetA, saveCheckpoint, tidy } from '../lib';
import { relativeError, repoRoot, tempDir } from './helpers';

const tmp = tempDir('deploy');

/**
 * A ReActNet-A with every parameter and running statistic drawn at random, like a trained one:
 * weights of both signs, BatchNorm statistics far from the identity, non-zero biases.
 */
function trainedLike(options: { width: number; classes: number; inChannels: number; binarize?: 'both' | 'activations' }): Model {
  manualSeed(7);
  const model = reactnetA({ width: options.width, numClasses: options.classes, inChannels: options.inChannels, stem: 'small', binarize: options.binarize ?? 'both' });
  const state = new Map<string, Tensor>();
  for (const [name, t] of model.stateDict()) {
    if (t.dtype !== 'float32') continue;
    const shape = t.shape;
    state.set(name, tidy(() => {
      if (name.endsWith('running_var')) return rand(shape).mul(1.5).add(0.5);
      if (/prelu\d\.weight$/.test(name)) return rand(shape).mul(0.5);
      if (/move\d\d\.bias$/.test(name) || name.endsWith('running_mean')) return randn(shape).mul(0.3);
      if (/bn\d(_\d)?\.weight$/.test(name)) return rand(shape).add(0.5);
      return randn(shape).mul(0.1);
    }));
  }
  model.loadStateDict(state, { strict: false });
  return model.eval();
}

const floats = (t: Tensor): number[] => Array.from(t.toTypedArray() as Float32Array);

function argmax(rows: number[], width: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows.length / width; r++) {
    let best = 0;
    for (let c = 1; c < width; c++) if (rows[r * width + c] > rows[r * width + best]) best = c;
    out.push(best);
  }
  return out;
}

describe('PackedModel', () => {
  // Width 0.375: 12 .. 384 channels, so most layers pack a partial last word.
  const model = trainedLike({ width: 0.375, classes: 10, inChannels: 1 });
  manualSeed(11);
  const x = randn([4, 1, 28, 28]);
  const expected = model.forward(x);

  test('logits equal the float network up to float rounding, top-1 identical', async () => {
    const { model: packed, binaryWeights, zeroWeights } = await PackedModel.fromModel(model, { stem: 'small' });
    expect(zeroWeights).toBe(0);
    expect(binaryWeights).toBeGreaterThan(1e5);
    expect(packed.config).toEqual({ arch: 'reactnet-a', inChannels: 1, stemStride: 1, head: 'linear', headDtype: 'float32', outputs: 10, blockStrides: [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1] });
    const logits = await packed.forward(x);
    expect(logits.shape).toEqual([4, 10]);
    const got = floats(logits);
    const want = floats(expected);
    expect(relativeError(got, want)).toBeLessThan(1e-5);
    expect(argmax(got, 10)).toEqual(argmax(want, 10));
    const features = await packed.features(x);
    expect(relativeError(floats(features), floats(model.features(x)))).toBeLessThan(1e-5);
  });

  test('a changed weight sign changes the packed output (the bits are really used)', async () => {
    const state = new Map(model.stateDict());
    const w = state.get('feature.5.binary_3x3.weight')!;
    state.set('feature.5.binary_3x3.weight', w.neg());
    const { model: flipped } = await PackedModel.fromState(state, { stem: 'small' });
    const { model: packed } = await PackedModel.fromModel(model, { stem: 'small' });
    const a = floats(await packed.forward(x));
    const b = floats(await flipped.forward(x));
    expect(relativeError(b, a)).toBeGreaterThan(1e-2);
  });

  test('save and load give the same network; the file is a safetensors with format metadata', async () => {
    const { model: packed } = await PackedModel.fromModel(model, { stem: 'small' });
    const file = path.join(tmp, 'model.safetensors');
    await packed.save(file);
    const loaded = await PackedModel.load(file);
    expect(loaded.config).toEqual(packed.config);
    expect(floats(await loaded.forward(x))).toEqual(floats(await packed.forward(x)));
    const header = JSON.parse(fs.readFileSync(file).subarray(8, 8 + Number(fs.readFileSync(file).readBigUInt64LE(0))).toString('utf8'));
    expect(header.__metadata__).toMatchObject({ format: 's2bnn-packed', version: '1' });
    expect(header['feature.1.binary_3x3.bits']).toMatchObject({ dtype: 'I64', shape: [12, 3, 3, 1] });
    expect(header['feature.13.binary_3x3.bits']).toMatchObject({ dtype: 'I64', shape: [384, 3, 3, 6] });
  });

  test('halfHead stores the head in float16: the file says so, the loaded model is the exported one', async () => {
    const { model: half } = await PackedModel.fromModel(model, { stem: 'small', halfHead: true });
    expect(half.config.headDtype).toBe('float16');
    const file = path.join(tmp, 'half.safetensors');
    await half.save(file);
    const buf = fs.readFileSync(file);
    const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8'));
    expect(header['fc.weight'].dtype).toBe('F16');
    expect(header['fc.bias'].dtype).toBe('F32');
    const logits = await half.forward(x);
    expect(floats(await (await PackedModel.load(file)).forward(x))).toEqual(floats(logits));
    const error = relativeError(floats(logits), floats(expected));
    expect(error).toBeGreaterThan(0);
    expect(error).toBeLessThan(1e-2);
  });

  test('an MLP head (pre-training checkpoint) packs to normalized embeddings', async () => {
    manualSeed(3);
    const mlp = reactnetA({ width: 0.25, head: 'mlp', mlpDim: 16, inChannels: 1, stem: 'small' }).eval();
    const { model: packed } = await PackedModel.fromModel(mlp, { stem: 'small' });
    expect(packed.config.head).toBe('mlp');
    const y = randn([2, 1, 28, 28]);
    const e = await packed.forward(y);
    expect(e.shape).toEqual([2, 16]);
    expect(relativeError(floats(e), floats(mlp.forward(y)))).toBeLessThan(1e-5);
  });

  describe('bad input', () => {
    let packed: PackedModel;
    let tensors: Map<string, Tensor>;
    let config: string;
    beforeAll(async () => {
      packed = (await PackedModel.fromModel(model, { stem: 'small' })).model;
      tensors = packed.tensors();
      const file = path.join(tmp, 'ok.safetensors');
      await packed.save(file);
      const buf = fs.readFileSync(file);
      config = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8')).__metadata__.config;
    });
    const write = async (name: string, root: Record<string, unknown>) => {
      const file = path.join(tmp, name);
      await saveCheckpoint(file, root as never);
      return file;
    };

    test.each([
      ['a missing file', async () => path.join(tmp, 'absent.safetensors'), /absent\.safetensors/],
      ['bytes that are no checkpoint', async () => { const f = path.join(tmp, 'junk.bin'); fs.writeFileSync(f, 'not a model at all'); return f; }, /not a PyTorch checkpoint/],
      ['a float checkpoint', async () => write('float.safetensors', { state_dict: new Map(model.stateDict()) }), /is not a packed s2bnn model/],
      ['a newer version', async () => write('v2.safetensors', { format: 's2bnn-packed', version: '2', config, state_dict: tensors }), /version '2'; this s2bnn reads version 1/],
      ['a broken config', async () => write('cfg.safetensors', { format: 's2bnn-packed', version: '1', config: '{"arch": ', state_dict: tensors }), /bad config metadata/],
      ['a missing tensor', async () => {
        const t = new Map(tensors);
        t.delete('feature.7.prelu2');
        return write('missing.safetensors', { format: 's2bnn-packed', version: '1', config, state_dict: t });
      }, /missing tensor 'feature\.7\.prelu2'/],
      ['a tensor of the wrong shape', async () => {
        const t = new Map(tensors);
        t.set('feature.3.binary_3x3.scale', randn([5]));
        return write('shape.safetensors', { format: 's2bnn-packed', version: '1', config, state_dict: t });
      }, /'feature\.3\.binary_3x3\.scale' is Float \[5\], expected Float \[48\]/],
      ['an extra tensor', async () => {
        const t = new Map(tensors);
        t.set('feature.99.extra', randn([2]));
        return write('extra.safetensors', { format: 's2bnn-packed', version: '1', config, state_dict: t });
      }, /'feature\.99\.extra' is not part of the network/],
      ['NaN parameters', async () => {
        const t = new Map(tensors);
        t.set('fc.bias', randn([10]).div(0).mul(0));
        return write('nan.safetensors', { format: 's2bnn-packed', version: '1', config, state_dict: t });
      }, /'fc\.bias' holds NaN or Inf/],
    ])('%s is refused', async (_name, make, message) => {
      const file = await make();
      await expect(PackedModel.load(file)).rejects.toThrow(message);
    });

    test('export refuses what has no packed form', async () => {
      const step1 = trainedLike({ width: 0.25, classes: 10, inChannels: 1, binarize: 'activations' });
      const file = path.join(tmp, 'step1.pth');
      await saveCheckpoint(file, { s2bnn: JSON.stringify({ config: { arch: 'reactnet-a', width: 0.25, inChannels: 1, stem: 'small', step: 1 } }), state_dict: new Map(step1.stateDict()) });
      await expect(PackedModel.fromCheckpoint(await Checkpoint.load(file))).rejects.toThrow(/step 1 of two-step training/);
      const state = new Map(model.stateDict());
      state.delete('feature.4.bn1.running_var');
      await expect(PackedModel.fromState(state)).rejects.toThrow(/no 'feature\.4\.bn1\.running_var'/);
    });

    test('a forward with the wrong input shape is a clear error', async () => {
      await expect(packed.forward(randn([1, 3, 28, 28]))).rejects.toThrow(/the input must be \[N, 1, H, W\]/);
    });
  });
});

describe('CLI export and infer', () => {
  const cli = path.join(repoRoot, 'dist', 'cli.js');
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: repoRoot, env: { ...process.env, S2BNN_NUM_THREADS: '2' }, timeout: 120_000, killSignal: 'SIGKILL' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  test('export a classifier checkpoint, then infer gives eval\'s top-1 on Fashion-MNIST', async () => {
    const classifier = trainedLike({ width: 0.25, classes: 10, inChannels: 1 });
    const ckpt = path.join(tmp, 'classifier.pth');
    await saveCheckpoint(ckpt, { epoch: 1, arch: 'reactnet-a', state_dict: new Map(classifier.stateDict()) });
    const out = path.join(tmp, 'classifier.s2bnn.safetensors');
    let r = run('export', ckpt, '--out', out, '--stem', 'small', '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ out, zeroWeights: 0, config: { head: 'linear', outputs: 10, stemStride: 1 } });
    expect(summary.checkpointBytes / summary.packedBytes).toBeGreaterThan(5);

    r = run('infer', out, '--data', 'fashion-mnist', '--test-subset', '200', '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    const packed = JSON.parse(r.stdout);
    expect(packed.count).toBe(200);
    expect(packed.imagesPerSecond).toBeGreaterThan(0);
    r = run('eval', '--checkpoint', ckpt, '--data', 'fashion-mnist', '--test-subset', '200', '--json');
    expect(r.code).toBe(0);
    const float = JSON.parse(r.stdout);
    expect(packed.top1).toBeCloseTo(float.top1, 6);
    expect(packed.top5).toBeCloseTo(float.top5, 6);
  });

  test('errors are one line', () => {
    let r = run('export', path.join(tmp, 'nope.pth'), '--out', path.join(tmp, 'x'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^s2bnn export: no such file .*nope\.pth'\n$/);
    r = run('export', path.join(tmp, 'classifier.pth'));
    expect(r.stderr).toMatch(/export needs --out MODEL/);
    r = run('infer', path.join(tmp, 'classifier.pth'), '--data', 'fashion-mnist');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/is not a packed s2bnn model/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
