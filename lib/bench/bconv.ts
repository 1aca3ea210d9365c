// Benchmark of the packed binary convolution (bconv2d_packed) on every distinct ReActNet-A binary
// conv shape at 224 px, batch 1, against libtorch's float32 convolution (oneDNN) of the same +-1
// data in the same run, at the given thread counts. Three timings per shape and thread count:
//   float   at::conv2d on +-1 float32 data (the faster of NCHW and channels_last input)
//   packed  bconv2d_packed on packed input and weights (the kernel only, int32 accumulators)
//   layer   pack_signs(x + bias) + bconv2d_packed with the fused scale/shift epilogue: what a
//           binary conv layer costs at inference
// Each: the median of `repeats` runs (and the minimum, for noisy shared machines). On a GPU
// (`device: 'cuda'`) the same three against cuDNN's float32 convolution, each run ended by a
// device sync.
import { ops, reference } from '../ops';
import { Tensor, cudaSynchronize, getNumThreads, manualSeed, noGrad, randn, setNumThreads } from '../tensor';
import { median } from './timing';

export interface BconvShape {
  /** Input channels (= output channels in ReActNet-A's binary convs). */
  channels: number;
  outChannels: number;
  /** Input height = width. */
  size: number;
  kernel: 1 | 3;
  stride: 1 | 2;
  /** How many layers of ReActNet-A have this shape. */
  count: number;
}

export interface BconvFigure {
  shape: string;
  kernel: number;
  stride: number;
  count: number;
  threads: number;
  device: 'cpu' | 'cuda';
  batch: number;
  /** The kernel bconv2d_packed ran ('cuda' on a GPU). */
  bconvKernel: string;
  floatMs: number;
  /** Which float layout was faster (the figure kept). */
  floatLayout: 'nchw' | 'channels_last';
  packedMs: number;
  layerMs: number;
  /** floatMs / packedMs and floatMs / layerMs. */
  speedup: number;
  layerSpeedup: number;
  /** The fastest run of each (a noisy shared machine stalls some runs; the minimum filters that). */
  floatMinMs: number;
  packedMinMs: number;
  layerMinMs: number;
}

const WIDTHS = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024];

/** The distinct binary conv shapes of ReActNet-A at `input` px (docs/method.md "ReActNet-A"). */
export function reactnetBconvShapes(input = 224): BconvShape[] {
  const shapes = new Map<string, BconvShape>();
  const add = (s: Omit<BconvShape, 'count'>, times: number) => {
    const key = `${s.channels}-${s.outChannels}-${s.size}-${s.kernel}-${s.stride}`;
    const seen = shapes.get(key);
    if (seen) seen.count += times;
    else shapes.set(key, { ...s, count: times });
  };
  let size = Math.floor((input + 2 - 3) / 2) + 1;  // the stem: 3x3, stride 2, padding 1
  for (let i = 1; i < WIDTHS.length; i++) {
    const cin = WIDTHS[i - 1], cout = WIDTHS[i];
    const stride = cin !== cout && cout !== 64 ? 2 : 1;
    add({ channels: cin, outChannels: cin, size, kernel: 3, stride }, 1);
    size = Math.floor((size + 2 - 3) / stride) + 1;
    // Same width: one 1x1 conv; doubling: two 1x1 convs C_in -> C_in.
    add({ channels: cin, outChannels: cin, size, kernel: 1, stride: 1 }, cout === cin ? 1 : 2);
  }
  const list = [...shapes.values()];
  return [...list.filter((s) => s.kernel === 3), ...list.filter((s) => s.kernel === 1)];
}

export interface BconvBenchOptions {
  /** Thread counts to measure (default: 1 and all). */
  threads?: number[];
  /** Timed runs per figure (median and minimum kept; default 20). */
  repeats?: number;
  /** Only these shapes (default: all of reactnetBconvShapes()). */
  shapes?: BconvShape[];
  /** A CPU kernel by name (default: the dispatched one; on CUDA always the CUDA kernel). */
  kernel?: string;
  /** Where to run (default 'cpu'). */
  device?: 'cpu' | 'cuda';
  /** Images per convolution (default 1, the deployment case). */
  batch?: number;
  onFigure?: (figure: BconvFigure) => void;
}

function shapeName(s: BconvShape): string {
  return `${s.channels}x${s.size}x${s.size}->${s.outChannels} k${s.kernel}s${s.stride}`;
}

// `repeats` timed runs after one warm-up (allocations, oneDNN primitive creation, cuDNN algorithm
// choice): median and min. `sync` waits for a GPU's queued work inside the timed region.
function time(run: () => void, repeats: number, sync: () => void): { median: number; min: number } {
  run();
  sync();
  const samples: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = process.hrtime.bigint();
    run();
    sync();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { median: median(samples), min: Math.min(...samples) };
}

export function benchBconv(options: BconvBenchOptions = {}): BconvFigure[] {
  const original = getNumThreads();
  const device = options.device ?? 'cpu';
  const batch = options.batch ?? 1;
  const onGpu = device === 'cuda';
  // A GPU's figures do not depend on the host's threads: one count.
  const threadCounts = onGpu ? [original] : options.threads ?? [...new Set([1, original])];
  const repeats = options.repeats ?? 20;
  const shapes = options.shapes ?? reactnetBconvShapes();
  const kernelName = onGpu ? 'cuda' : options.kernel ?? ops.bconv2dPackedKernels()[0];
  const sync = onGpu ? cudaSynchronize : () => undefined;
  const onDevice = (t: Tensor) => {
    if (!onGpu) return t;
    const moved = t.to({ device: 'cuda' });
    t.dispose();
    return moved;
  };
  const figures: BconvFigure[] = [];
  manualSeed(0);
  try {
    noGrad(() => {
      for (const s of shapes) {
        const x = onDevice(randn([batch, s.channels, s.size, s.size]));
        const w = onDevice(randn([s.outChannels, s.channels, s.kernel, s.kernel]));
        const bias = onDevice(randn([s.channels]));
        const scale = onDevice(randn([s.outChannels]));
        const shift = onDevice(randn([s.outChannels]));
        const xs = x.sign();
        const ws = w.sign();
        // channels_last view of the same data: NHWC memory, logical NCHW.
        const xsLast = xs.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        const xLast = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        const px = ops.packSigns(xs);
        const pw = ops.packWeights(w);
        const padding = s.kernel === 3 ? 1 : 0;
        const conv = { binarizeInput: false, binarizeWeight: false, stride: s.stride, padding };
        const packedArgs = { channels: s.channels, stride: s.stride, padding, kernel: onGpu ? undefined : kernelName };
        for (const threads of threadCounts) {
          setNumThreads(threads);
          const floatNchw = time(() => reference.binaryConv2d(xs, ws, conv).dispose(), repeats, sync);
          const floatLast = time(() => reference.binaryConv2d(xsLast, ws, conv).dispose(), repeats, sync);
          const packed = time(() => ops.bconv2dPacked(px, pw, packedArgs).dispose(), repeats, sync);
          const layer = time(() => {
            const p = ops.packSigns(xLast, bias);
            ops.bconv2dPacked(p, pw, { ...packedArgs, scale, shift }).dispose();
            p.dispose();
          }, repeats, sync);
          const floatMs = Math.min(floatNchw.median, floatLast.median);
          const figure: BconvFigure = {
            shape: shapeName(s),
            kernel: s.kernel,
            stride: s.stride,
            count: s.count,
            threads,
            device,
            batch,
            bconvKernel: kernelName,
            floatMs,
            floatLayout: floatNchw.median <= floatLast.median ? 'nchw' : 'channels_last',
            packedMs: packed.median,
            layerMs: layer.median,
            speedup: floatMs / packed.median,
            layerSpeedup: floatMs / layer.median,
            floatMinMs: Math.min(floatNchw.min, floatLast.min),
            packedMinMs: packed.min,
            layerMinMs: layer.min,
          };
          figures.push(figure);
          options.onFigure?.(figure);
        }
        for (const t of [x, w, bias, scale, shift, xs, ws, xsLast, xLast, px, pw] as Tensor[]) t.dispose();
      }
    });
  } finally {
    setNumThreads(original);
  }
  return figures;
}

/**
 * A Markdown table: per shape and thread count, ms and ratios; then whole-network sums. `min`:
 * the fastest runs instead of the medians.
 */
export function formatBconvTable(input: BconvFigure[], min = false): string {
  const figures = min
    ? input.map((f) => ({
        ...f, floatMs: f.floatMinMs, packedMs: f.packedMinMs, layerMs: f.layerMinMs,
        speedup: f.floatMinMs / f.packedMinMs, layerSpeedup: f.floatMinMs / f.layerMinMs,
      }))
    : input;
  const lines = [
    '| shape (C x H x W -> O, kernel, stride) | layers | threads | float32 conv ms | packed bconv ms | pack + bconv ms | speedup (bconv) | speedup (pack + bconv) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const f of figures) {
    lines.push(
      `| ${f.shape} | ${f.count} | ${f.threads} | ${f.floatMs.toFixed(3)} | ${f.packedMs.toFixed(3)} | ` +
        `${f.layerMs.toFixed(3)} | ${f.speedup.toFixed(1)}x | ${f.layerSpeedup.toFixed(1)}x |`,
    );
  }
  const threads = [...new Set(figures.map((f) => f.threads))];
  for (const t of threads) {
    for (const k of [3, 1]) {
      const sel = figures.filter((f) => f.threads === t && f.kernel === k);
      if (sel.length === 0) continue;
      const sum = (pick: (f: BconvFigure) => number) => sel.reduce((a, f) => a + f.count * pick(f), 0);
      const fl = sum((f) => f.floatMs), pk = sum((f) => f.packedMs), ly = sum((f) => f.layerMs);
      lines.push(
        `| sum of the ${k}x${k} rows above, x layer count | ${sel.reduce((a, f) => a + f.count, 0)} | ${t} | ` +
          `${fl.toFixed(3)} | ${pk.toFixed(3)} | ${ly.toFixed(3)} | ${(fl / pk).toFixed(1)}x | ${(fl / ly).toFixed(1)}x |`,
      );
    }
  }
  return lines.join('\n');
}
