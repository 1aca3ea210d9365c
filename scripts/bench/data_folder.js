#!/usr/bin/env node
// ImageFolder pipeline throughput: s2bnn's loader vs torchvision.datasets.ImageFolder + PIL +
// torchvision transforms + torch.utils.data.DataLoader (data_folder_reference.py), with the same
// worker counts, on an ImageNet-like folder of photo-like JPEGs generated for the run
// (scripts/bench/photos.py: 500 x 375 +- 20 %, quality 90; deterministic; in a temp dir, removed
// afterwards unless --dir is given). Per worker count (1 and 2 by default):
//   pretrain  two s2bnnLite views of 224 px per image (s2bnn with and without crop-aware decode)
//   eval      resize 256 + center crop 224
//   decode    read + decode only (s2bnn: ImageFolder.read on a libuv pool of N threads; torchvision:
//             PIL open + convert('RGB'))
// Every s2bnn figure runs in a fresh `s2bnn bench-data` process, so its peak RSS is the loader's
// (plus Node's); torchvision's peak RSS is the main process plus N x the largest worker. Each case
// is timed for --seconds after its first batch, in wall-clock time and in CPU time (user + system of
// every thread and worker process: images per CPU-second is the per-core rate, the figure other
// load on a shared machine disturbs least); with --runs N the best and the median of N runs are
// reported. One JSON line per measurement, then a Markdown table.
//
//   node scripts/bench/data_folder.js [--images 2000] [--width 500 --height 375] [--workers 1,2]
//                                     [--seconds 8] [--runs 1] [--dir DIR] [--no-python]
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const python = process.env.S2BNN_PYTHON ?? '/usr/bin/python3';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const images = Number(option('images', '2000'));
const width = option('width', '500'), height = option('height', '375');
const workerCounts = option('workers', '1,2').split(',').map(Number);
const seconds = Number(option('seconds', '8'));
const runs = Number(option('runs', '1'));
const withPython = !process.argv.includes('--no-python');
const given = option('dir', null);

function run(command, args, options = {}) {
  const res = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 1 << 24, ...options });
  if (res.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${res.status}):\n${res.stderr}`);
  return res.stdout;
}

function ours(dir, workers, extra) {
  const out = run(process.execPath, [path.join(root, 'dist', 'cli.js'), 'bench-data', '--data', dir, '--workers', String(workers),
    '--seconds', String(seconds), '--json', ...extra], { env: { ...process.env, UV_THREADPOOL_SIZE: String(workers), S2BNN_CACHE_DIR: path.join(dir, '..', 'cache') } });
  const r = JSON.parse(out.trim().split('\n').pop());
  return { images: r.images, seconds: r.seconds, cpuSeconds: r.cpuSeconds, peakRssMiB: r.peakRssMiB };
}

function theirs(dir, workers, mode) {
  const input = JSON.stringify({ root: dir, mode, recipe: 's2bnnLite', size: 224, batch: 64, workers, seconds });
  return JSON.parse(run(python, [path.join(__dirname, 'data_folder_reference.py')], { input }).trim().split('\n').pop());
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function main() {
  const tmp = given ? null : fs.mkdtempSync(path.join(os.tmpdir(), 's2bnn-bench-folder-'));
  const dir = given ? path.resolve(given) : path.join(tmp, 'train');
  try {
    if (!fs.existsSync(dir)) {
      const perClass = Math.ceil(images / 20);
      process.stderr.write(`bench: writing ${perClass * 20} photo-like ${width} x ${height} JPEGs to ${dir}\n`);
      run(python, [path.join(__dirname, 'photos.py'), dir, '--classes', '20', '--per-class', String(perClass), '--width', width, '--height', height]);
    }
    const pythonOk = withPython && spawnSync(python, ['-c', 'import torch, torchvision, PIL'], { encoding: 'utf8' }).status === 0;
    if (withPython && !pythonOk) process.stderr.write(`bench: ${python} lacks torch/torchvision/PIL; baselines skipped\n`);
    const cases = [
      ['pretrain', 's2bnn', (w) => ours(dir, w, [])],
      ['pretrain', 's2bnn (whole decode)', (w) => ours(dir, w, ['--no-crop-decode'])],
      ['pretrain', 'torchvision', (w) => theirs(dir, w, 'pretrain'), true],
      ['eval', 's2bnn', (w) => ours(dir, w, ['--eval'])],
      ['eval', 's2bnn (whole decode)', (w) => ours(dir, w, ['--eval', '--no-crop-decode'])],
      ['eval', 'torchvision', (w) => theirs(dir, w, 'eval'), true],
      ['decode', 's2bnn', (w) => ours(dir, w, ['--decode-only'])],
      ['decode', 'torchvision', (w) => theirs(dir, w, 'decode'), true],
    ];
    const results = new Map();
    for (let r = 0; r < runs; r++) {
      for (const workers of workerCounts) {
        for (const [pipeline, impl, measure, needsPython] of cases) {
          if (needsPython && !pythonOk) continue;
          const m = measure(workers);
          const line = { pipeline, impl, workers, run: r, images: m.images, seconds: +m.seconds.toFixed(2),
            imagesPerSecond: +(m.images / m.seconds).toFixed(1),
            imagesPerCpuSecond: +(m.images / m.cpuSeconds).toFixed(1), peakRssMiB: Math.round(m.peakRssMiB), load: +os.loadavg()[0].toFixed(2) };
          process.stdout.write(`${JSON.stringify(line)}\n`);
          const key = `${pipeline}|${impl}|${workers}`;
          if (!results.has(key)) results.set(key, []);
          results.get(key).push(line);
        }
      }
    }
    // Markdown table: wall-clock images/s and images per CPU-second (the per-core rate, which
    // other load on the machine disturbs less), best (median) of the runs; ratios of the bests.
    const rows = ['| pipeline | impl | workers | images/s | views/s | images per CPU-s | vs torchvision (per CPU-s) | peak RSS MiB |',
      '|---|---|---|---|---|---|---|---|'];
    const best = (lines, field) => Math.max(...lines.map((l) => l[field]));
    for (const [key, lines] of results) {
      const [pipeline, impl, workers] = key.split('|');
      const rate = best(lines, 'imagesPerSecond'), perCpu = best(lines, 'imagesPerCpuSecond');
      const base = results.get(`${pipeline}|torchvision|${workers}`);
      const ratio = base && impl !== 'torchvision' ? `${(perCpu / best(base, 'imagesPerCpuSecond')).toFixed(1)}x` : '';
      const views = pipeline === 'pretrain' ? (2 * rate).toFixed(0) : pipeline === 'eval' ? rate.toFixed(0) : '';
      rows.push(`| ${pipeline} | ${impl} | ${workers} | ${rate.toFixed(0)} (${median(lines.map((l) => l.imagesPerSecond)).toFixed(0)}) | ${views} | ` +
        `${perCpu.toFixed(0)} (${median(lines.map((l) => l.imagesPerCpuSecond)).toFixed(0)}) | ${ratio} | ${Math.max(...lines.map((l) => l.peakRssMiB))} |`);
    }
    process.stdout.write(`\n${rows.join('\n')}\n`);
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
