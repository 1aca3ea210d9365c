// `s2bnn bench-bconv`: the packed binary convolution against libtorch's float32 convolution on
// every ReActNet-A binary conv shape (224 px, batch 1), at 1 thread and at all threads.
//
// Each thread count runs in its own child process started with OMP_NUM_THREADS (and the BLAS
// thread variables) set to it: in one process, at::set_num_threads(1) does not hold libtorch's
// 1x1 float convolution to one thread (it ran on two), which would flatter the baseline.
import { spawnSync } from 'child_process';

import { BconvFigure, benchBconv, formatBconvTable, reactnetBconvShapes } from '../bench/bconv';
import { PackedModelBench, PackedModelFigure, benchPackedModel, formatPackedModelTable } from '../bench/deploy';
import { ops } from '../ops';
import { getNumThreads } from '../tensor';
import { UsageError, command } from './command';
import { DEVICE, checkDevice } from './flags';

function childLines<T>(threads: number, args: string[]): T[] {
  const env = {
    ...process.env,
    OMP_NUM_THREADS: String(threads),
    S2BNN_NUM_THREADS: String(threads),
    OPENBLAS_NUM_THREADS: String(threads),
    MKL_NUM_THREADS: String(threads),
  };
  const res = spawnSync(process.execPath, [process.argv[1], 'bench-bconv', ...args, '--in-process', '--json', '--threads', String(threads)], {
    env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (res.status !== 0) throw new Error(`bench-bconv (${threads} thread(s)) failed: ${(res.stderr || '').trim()}`);
  return res.stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as T);
}

// Every ReActNet-A binary conv shape, or (--quick) one 3x3 and one 1x1 at 256 channels.
function benchShapes(quick: boolean) {
  const all = reactnetBconvShapes();
  return quick ? [all.find((s) => s.kernel === 3 && s.channels === 256)!, all.find((s) => s.kernel === 1 && s.channels === 256)!] : all;
}

export const benchBconvCommand = command({
  name: 'bench-bconv',
  summary: 'packed (xnor-popcount) binary conv vs float32 conv (oneDNN) on every ReActNet-A binary conv shape at 224 px, batch 1',
  flags: {
    threads: { type: 'integer', help: "the multi-threaded figure's threads; 1 is always run", default: 'all cores' },
    repeats: { type: 'integer', help: 'timed runs per figure: tables of medians and minimums', default: 20 },
    quick: { type: 'boolean', help: 'two shapes only (one 3x3, one 1x1): a smoke run' },
    kernel: { type: 'string', value: 'NAME', help: 'a CPU kernel (avx512, avx2, scalar, reference)', default: 'the fastest' },
    'in-process': { type: 'boolean', help: 'measure only at --threads, in this process (no child per count)' },
    'no-model': { type: 'boolean', help: 'skip the whole-network figure (packed ReActNet-A vs float32, file sizes)' },
    'model-only': { type: 'boolean', help: 'only the whole-network figure' },
    device: { ...DEVICE, help: "cuda: the CUDA kernels against cuDNN's float32 conv on the same GPU (the layers only, in this process)" },
    batch: { type: 'integer', help: 'images per convolution', default: 1 },
    json: { type: 'boolean', help: 'one JSON line per figure instead of the table' },
  },
  async run(flags) {
    const threads = flags.threads ?? getNumThreads();
    const repeats = flags.repeats;
    const batch = flags.batch;
    if (checkDevice(flags.device) === 'cuda') {
      const shapes = benchShapes(flags.quick === true);
      const figures = benchBconv({ device: 'cuda', batch, repeats, shapes, onFigure: (f) => flags.json && process.stdout.write(`${JSON.stringify(f)}\n`) });
      if (!flags.json) process.stdout.write(`CUDA, batch ${batch ?? 1}, medians of ${repeats ?? 20} runs (baseline: cuDNN float32 conv of the same +-1 data):\n\n${formatBconvTable(figures)}\n`);
      return;
    }
    const kernel = flags.kernel;
    const available = ops.bconv2dPackedKernels();
    if (kernel !== undefined && !available.includes(kernel)) {
      throw new UsageError(`--kernel must be one of ${available.join(', ')} on this CPU; got '${kernel}'`);
    }
    const json = flags.json === true;
    if (flags['model-only'] && flags['in-process']) {
      const model = await benchPackedModel({ threads: [threads], samples: flags.quick ? 3 : 10 });
      for (const f of model.figures) process.stdout.write(`${JSON.stringify(f)}\n`);
      process.stdout.write(`${JSON.stringify({ floatBytes: model.floatBytes, packedBytes: model.packedBytes, packedHalfHeadBytes: model.packedHalfHeadBytes })}\n`);
      return;
    }
    const print = (f: BconvFigure) => {
      if (json) process.stdout.write(`${JSON.stringify(f)}\n`);
      else process.stderr.write(`  ${f.shape} x${f.threads}: float ${f.floatMs.toFixed(3)} ms, packed ${f.packedMs.toFixed(3)} ms\n`);
    };
    let figures: BconvFigure[] = [];
    if (flags['model-only']) {
      // the whole-network figure only (below)
    } else if (flags['in-process']) {
      const shapes = benchShapes(flags.quick === true);
      figures = benchBconv({ threads: [threads], repeats, shapes, kernel, batch, onFigure: print });
    } else {
      if (!json) {
        process.stderr.write(
          `bench-bconv: kernel ${kernel ?? available[0]}, threads 1${threads > 1 ? ` and ${threads}` : ''} (one process each); ` +
            'baseline: libtorch float32 conv2d of the same +-1 data (faster of NCHW / channels_last)\n',
        );
      }
      const passOn = [
        ...(flags.quick ? ['--quick'] : []),
        ...(repeats !== undefined ? ['--repeats', String(repeats)] : []),
        ...(kernel !== undefined ? ['--kernel', kernel] : []),
        ...(batch !== undefined ? ['--batch', String(batch)] : []),
      ];
      figures = [];
      for (const t of [...new Set([1, threads])]) {
        for (const f of childLines<BconvFigure>(t, passOn)) {
          print(f);
          figures.push(f);
        }
      }
    }
    if (!json && figures.length > 0) {
      process.stdout.write(`Medians of ${repeats ?? 20} runs:\n\n${formatBconvTable(figures)}\n\n`);
      process.stdout.write(`Fastest runs (what a quiet machine gives; stalls filtered):\n\n${formatBconvTable(figures, true)}\n`);
    }
    if (flags['no-model'] || flags['in-process']) return;
    // The whole network: what the per-layer speedups come to end to end, and the file sizes; a
    // process per thread count, like the layers.
    const model: PackedModelBench = { figures: [], floatBytes: 0, packedBytes: 0, packedHalfHeadBytes: 0 };
    for (const t of [...new Set([1, threads])]) {
      for (const line of childLines<PackedModelFigure & PackedModelBench>(t, ['--model-only', ...(flags.quick ? ['--quick'] : [])])) {
        if (line.impl) model.figures.push(line);
        else Object.assign(model, { floatBytes: line.floatBytes, packedBytes: line.packedBytes, packedHalfHeadBytes: line.packedHalfHeadBytes });
      }
    }
    if (json) {
      for (const f of model.figures) process.stdout.write(`${JSON.stringify({ kind: 'network', ...f })}\n`);
      process.stdout.write(`${JSON.stringify({ kind: 'size', floatBytes: model.floatBytes, packedBytes: model.packedBytes, packedHalfHeadBytes: model.packedHalfHeadBytes })}\n`);
    } else {
      process.stdout.write(`\nWhole ReActNet-A, 224 px, batch 1 (median of ${flags.quick ? 3 : 10}):\n\n${formatPackedModelTable(model)}\n`);
    }
  },
});
