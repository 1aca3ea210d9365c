// `s2bnn bench-bconv`: the packed binary convolution against libtorch's float32 convolution on
// every ReActNet-A binary conv shape (224 px, batch 1), at 1 thread and at all threads.
import { BconvFigure, benchBconv, formatBconvTable, reactnetBconvShapes } from '../bench/bconv';
import { ops } from '../ops';
import { getNumThreads } from '../tensor';
import { UsageError, optionalString, parseFlags, positiveInteger } from './flags';

export const BENCH_BCONV_USAGE = `  bench-bconv [options]         packed (xnor-popcount) binary conv vs float32 conv (oneDNN) on
                                every ReActNet-A binary conv shape at 224 px, batch 1
      --threads N               the multi-threaded figure's threads (default: all); 1 is always run
      --repeats N               timed runs per figure (default 20): tables of medians and minimums
      --quick                   two shapes only (one 3x3, one 1x1): a smoke run
      --kernel NAME             a CPU kernel (avx512, avx2, scalar, reference; default: the fastest)
      --json                    one JSON line per figure instead of the table`;

export function benchBconvCommand(args: string[]): void {
  const flags = parseFlags(args, { threads: 'number', repeats: 'number', quick: 'boolean', kernel: 'string', json: 'boolean' });
  const threads = positiveInteger(flags, 'threads') ?? getNumThreads();
  const repeats = positiveInteger(flags, 'repeats');
  const kernel = optionalString(flags, 'kernel');
  const available = ops.bconv2dPackedKernels();
  if (kernel !== undefined && !available.includes(kernel)) {
    throw new UsageError(`--kernel must be one of ${available.join(', ')} on this CPU; got '${kernel}'`);
  }
  const all = reactnetBconvShapes();
  const shapes = flags.quick
    ? [all.find((s) => s.kernel === 3 && s.channels === 256)!, all.find((s) => s.kernel === 1 && s.channels === 256)!]
    : all;
  const json = flags.json === true;
  if (!json) {
    process.stderr.write(
      `bench-bconv: kernel ${kernel ?? available[0]}, threads 1${threads > 1 ? ` and ${threads}` : ''}; ` +
        'baseline: libtorch float32 conv2d of the same +-1 data (faster of NCHW / channels_last)\n',
    );
  }
  const figures = benchBconv({
    threads: [...new Set([1, threads])],
    repeats,
    shapes,
    kernel,
    onFigure: (f: BconvFigure) => {
      if (json) process.stdout.write(`${JSON.stringify(f)}\n`);
      else process.stderr.write(`  ${f.shape} x${f.threads}: float ${f.floatMs.toFixed(3)} ms, packed ${f.packedMs.toFixed(3)} ms\n`);
    },
  });
  if (!json) {
    process.stdout.write(`Medians of ${repeats ?? 20} runs:\n\n${formatBconvTable(figures)}\n\n`);
    process.stdout.write(`Fastest runs (what a quiet machine gives; stalls filtered):\n\n${formatBconvTable(figures, true)}\n`);
  }
}
