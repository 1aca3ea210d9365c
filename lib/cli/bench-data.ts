// `s2bnn bench-data`: throughput of the data pipeline on an ImageFolder tree (decode + the
// pre-training views, or the evaluation transforms), images/s and views/s in steady state.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { DataLoader, ImageFolder, Transform, transforms } from '../data';
import { augmentationTransform } from '../train/pretrain';
import { UsageError, command } from './command';

export interface DataBenchResult {
  root: string;
  images: number;
  workers: number;
  views: number;
  size: number;
  transform: string;
  cropDecode: boolean;
  seconds: number;
  /** CPU time (user + system, all threads) while timed. */
  cpuSeconds: number;
  imagesPerSecond: number;
  /** Images per CPU-second: the per-core rate, robust to other load on the machine. */
  imagesPerCpuSecond: number;
  viewsPerSecond: number;
  imagesPerSecondPerWorker: number;
  firstBatchMs: number;
  peakRssMiB: number;
  skipped: number;
}

export interface DataBenchOptions {
  workers?: number;
  views?: 1 | 2;
  size?: number;
  recipe?: 's2bnn-lite' | 'moco-v2';
  eval?: boolean;
  batchSize?: number;
  seconds?: number;
  cropDecode?: boolean;
  /** Only ImageFolder.read() (whole decodes), `workers` reads in flight. */
  decodeOnly?: boolean;
}

function cpuSince(from: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1e6;
}

async function benchDecode(dataset: ImageFolder, concurrency: number, seconds: number): Promise<DataBenchResult> {
  const start = process.hrtime.bigint();
  let measuredFrom = 0n;
  let firstBatchMs = 0;
  let images = 0, next = 0;
  let cpuFrom = process.cpuUsage();
  const elapsed = () => Number(process.hrtime.bigint() - measuredFrom) / 1e9;
  const reader = async () => {
    for (;;) {
      if (measuredFrom !== 0n && elapsed() >= seconds) return;
      const image = await dataset.read(next++ % dataset.length);
      image.dispose();
      if (measuredFrom === 0n) {
        measuredFrom = process.hrtime.bigint();
        cpuFrom = process.cpuUsage();
        firstBatchMs = Number(measuredFrom - start) / 1e6;
      } else {
        images++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, reader));
  const time = elapsed();
  const cpu = cpuSince(cpuFrom);
  return {
    root: dataset.root, images, workers: concurrency, views: 0, size: 0, transform: 'decode only', cropDecode: false,
    seconds: time, cpuSeconds: cpu, imagesPerSecond: images / time, imagesPerCpuSecond: images / cpu, viewsPerSecond: 0, imagesPerSecondPerWorker: images / time / concurrency,
    firstBatchMs, peakRssMiB: process.resourceUsage().maxRSS / 1024, skipped: 0,
  };
}

/** Runs the loader over `dataset` for about `seconds` after its first batch (epochs repeat). */
export async function benchData(dataset: ImageFolder, options: DataBenchOptions = {}): Promise<DataBenchResult> {
  if (options.decodeOnly) {
    return benchDecode(dataset, options.workers ?? os.availableParallelism?.() ?? os.cpus().length, options.seconds ?? 10);
  }
  const size = options.size ?? 224;
  const evaluation = options.eval === true;
  const views = evaluation ? 1 : (options.views ?? 2);
  const recipe = options.recipe ?? 's2bnn-lite';
  const transform: Transform = evaluation
    ? transforms.evaluation(Math.round((size * 8) / 7), size)
    : augmentationTransform(recipe, size);
  const batchSize = Math.min(options.batchSize ?? 64, dataset.length);
  const seconds = options.seconds ?? 10;
  const cropDecode = options.cropDecode ?? true;
  const loader = new DataLoader(dataset, { batchSize, views, transform, workers: options.workers, dropLast: true, cropDecode });
  const start = process.hrtime.bigint();
  let measuredFrom = 0n;
  let firstBatchMs = 0;
  let images = 0;
  let cpuFrom = process.cpuUsage();
  const elapsed = () => Number(process.hrtime.bigint() - measuredFrom) / 1e9;
  try {
    for (let epoch = 0; ; epoch++) {
      let done = false;
      for await (const batch of loader.epoch(epoch)) {
        const b = batch.labels.shape[0];
        batch.dispose();
        if (measuredFrom === 0n) {
          measuredFrom = process.hrtime.bigint();
          cpuFrom = process.cpuUsage();
          firstBatchMs = Number(measuredFrom - start) / 1e6;
          continue;
        }
        images += b;
        if (elapsed() >= seconds) {
          done = true;
          break;
        }
      }
      if (done) break;
    }
  } finally {
    loader.close();
  }
  const time = elapsed();
  const cpu = cpuSince(cpuFrom);
  return {
    root: dataset.root,
    images,
    workers: loader.workers,
    views,
    size,
    transform: evaluation ? `eval ${Math.round((size * 8) / 7)} -> ${size}` : recipe,
    cropDecode,
    seconds: time,
    cpuSeconds: cpu,
    imagesPerSecond: images / time,
    imagesPerCpuSecond: images / cpu,
    viewsPerSecond: (images * views) / time,
    imagesPerSecondPerWorker: images / time / loader.workers,
    firstBatchMs,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    skipped: loader.skipped().length,
  };
}

export const benchDataCommand = command({
  name: 'bench-data',
  summary: "the data pipeline's throughput on an ImageFolder tree (DIR/train when it exists, else DIR): decode + views, images/s and views/s",
  flags: {
    data: { type: 'string', value: 'DIR', help: 'the ImageFolder tree (required)' },
    workers: { type: 'integer', help: 'loader threads', default: 'the hardware threads' },
    views: { type: 'integer', help: 'views per image, 1 or 2', default: '2; 1 with --eval' },
    size: { type: 'integer', help: 'view size', default: 224 },
    recipe: { type: 'string', value: 's2bnn-lite|moco-v2', help: 'the augmentation', default: 's2bnn-lite' },
    eval: { type: 'boolean', help: 'the evaluation transforms instead: resize N*8/7, center crop N' },
    'batch-size': { type: 'integer', help: 'images per batch', default: 64 },
    seconds: { type: 'number', value: 'S', help: 'measured time after the first batch', default: 10 },
    'no-crop-decode': { type: 'boolean', help: 'decode every image whole (LoaderOptions.cropDecode false)' },
    'decode-only': {
      type: 'boolean',
      help: "only read + decode (ImageFolder.read, N reads in flight on libuv's pool: set UV_THREADPOOL_SIZE=N too), whole images",
    },
    json: { type: 'boolean', help: 'one JSON line' },
  },
  async run(flags) {
    const data = flags.data;
    if (!data) throw new UsageError('--data DIR is required (an ImageFolder tree, or a folder with train/)');
    const train = path.join(data, 'train');
    const root = fs.existsSync(train) && fs.statSync(train).isDirectory() ? train : data;
    const views = flags.views;
    if (views !== undefined && views !== 1 && views !== 2) throw new UsageError(`--views must be 1 or 2, got ${views}`);
    if (views === 2 && flags.eval) throw new UsageError('--eval makes one view per image: drop --views 2');
    const recipe = flags.recipe ?? 's2bnn-lite';
    if (recipe !== 's2bnn-lite' && recipe !== 'moco-v2') throw new UsageError(`--recipe must be s2bnn-lite or moco-v2, got '${recipe}'`);
    const dataset = await ImageFolder.open(root);
    const result = await benchData(dataset, {
      workers: flags.workers,
      views: views as 1 | 2 | undefined,
      size: flags.size,
      recipe,
      eval: flags.eval === true,
      batchSize: flags['batch-size'],
      seconds: flags.seconds,
      cropDecode: flags['no-crop-decode'] !== true,
      decodeOnly: flags['decode-only'] === true,
    });
    if (result.images === 0) throw new Error(`no batch finished within the measured time: raise --seconds`);
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    if (result.transform === 'decode only') {
      process.stdout.write(
        `data        ${result.root} (${dataset.length} images)\nread+decode ${result.imagesPerSecond.toFixed(1)} images/s ` +
          `(${result.workers} in flight), ` +
          `${result.imagesPerCpuSecond.toFixed(1)} per CPU-second\npeak RSS    ${result.peakRssMiB.toFixed(0)} MiB\n`,
      );
      return;
    }
    const lines = [
      `data        ${result.root} (${dataset.length} images, ${dataset.numClasses} classes)`,
      `pipeline    ${result.transform}, ${result.views} view(s) of ${result.size} px, crop-aware decode ${result.cropDecode ? 'on' : 'off'}`,
      `workers     ${result.workers}`,
      `images/s    ${result.imagesPerSecond.toFixed(1)} (${result.imagesPerSecondPerWorker.toFixed(1)} per worker)`,
      `views/s     ${result.viewsPerSecond.toFixed(1)}`,
      `per core    ${result.imagesPerCpuSecond.toFixed(1)} images per CPU-second (${result.cpuSeconds.toFixed(2)} s of CPU)`,
      `measured    ${result.images} images in ${result.seconds.toFixed(2)} s after a first batch at ${result.firstBatchMs.toFixed(0)} ms`,
      `peak RSS    ${result.peakRssMiB.toFixed(0)} MiB`,
    ];
    if (result.skipped > 0) lines.push(`skipped     ${result.skipped} file(s) that did not decode`);
    process.stdout.write(`${lines.join('\n')}\n`);
  },
});
