// Benchmark of the fused operators against the reference formulation, forward + backward, on
// ReActNet-A shapes. Baselines measured in the same run: the same formulas composed from libtorch
// ops (in this process), and the Python reference (scripts/python/s2bnn_reference.py) run by a
// python3 with torch on the same libtorch thread count. Memory comes from one counting allocator
// (native/ops/memory_stats.cpp) that both sides use.
import { spawnSync } from 'child_process';
import * as path from 'path';

import { measureMemory } from '../memory';
import { Operators, ops, reference } from '../ops';
import { Tensor, getNumThreads, manualSeed, rand, randn, tidy } from '../tensor';
import { opsLibraryPath } from '../native';
import { medianMs } from './timing';

export interface OpCase {
  op: string;
  /** Human-readable shape, e.g. "32x64x56x56". */
  shape: string;
  /** Inputs: [shape, requiresGrad, kind]. */
  inputs: { shape: number[]; grad: boolean; kind: 'randn' | 'weight' | 'unit-rows' | 'unit-cols' | 'slope' }[];
  /** Extra arguments for the Python side. */
  args?: Record<string, number | boolean>;
}

export interface Figure {
  op: string;
  shape: string;
  impl: 'fused' | 'reference' | 'python-reference';
  /** Median milliseconds of one forward + backward. */
  ms: number;
  /** Peak bytes allocated above the inputs during forward + backward. */
  peakBytes: number;
  /** Bytes held between forward and backward (saved tensors + output). */
  savedBytes: number;
  threads: number;
}

export interface BenchOptions {
  quick?: boolean;
  /** Minimum measured time per figure, in ms. */
  minTimeMs?: number;
  python?: string | null;
  onFigure?: (figure: Figure) => void;
}

export function opCases(quick: boolean): OpCase[] {
  const batch = quick ? 4 : 32;
  const activations = quick
    ? [[batch, 64, 28, 28], [batch, 256, 7, 7]]
    : [[batch, 64, 56, 56], [batch, 128, 28, 28], [batch, 256, 14, 14], [batch, 512, 7, 7]];
  const cases: OpCase[] = [];
  for (const shape of activations) {
    cases.push({ op: 'sign_ste', shape: shape.join('x'), inputs: [{ shape, grad: true, kind: 'randn' }] });
  }
  for (const shape of activations) {
    cases.push({
      op: 'sign_ste_biased',
      shape: shape.join('x'),
      inputs: [
        { shape, grad: true, kind: 'randn' },
        { shape: [1, shape[1], 1, 1], grad: true, kind: 'randn' },
      ],
    });
  }
  for (const shape of activations) {
    const c = shape[1];
    cases.push({
      op: 'rprelu',
      shape: shape.join('x'),
      inputs: [
        { shape, grad: true, kind: 'randn' },
        { shape: [1, c, 1, 1], grad: true, kind: 'randn' },
        { shape: [c], grad: true, kind: 'slope' },
        { shape: [1, c, 1, 1], grad: true, kind: 'randn' },
      ],
    });
  }
  for (const shape of quick ? [[128, 128, 3, 3]] : [[256, 256, 3, 3], [1024, 1024, 1, 1]]) {
    cases.push({ op: 'binarize_weight', shape: shape.join('x'), inputs: [{ shape, grad: true, kind: 'weight' }] });
  }
  const convBatch = quick ? 2 : 8;
  const convs: [number[], number[], number, number][] = quick
    ? [[[convBatch, 64, 14, 14], [64, 64, 3, 3], 1, 1]]
    : [
        [[convBatch, 128, 28, 28], [128, 128, 3, 3], 1, 1],
        [[convBatch, 256, 14, 14], [256, 256, 1, 1], 1, 0],
      ];
  for (const [x, w, stride, padding] of convs) {
    cases.push({
      op: 'binary_conv2d',
      shape: `${x.join('x')}*${w.join('x')}`,
      inputs: [
        { shape: x, grad: true, kind: 'randn' },
        { shape: w, grad: true, kind: 'weight' },
      ],
      args: { stride, padding },
    });
  }
  const rows = quick ? 64 : 256;
  cases.push({
    op: 'distribution_loss',
    shape: `${rows}x128`,
    inputs: [
      { shape: [rows, 128], grad: true, kind: 'unit-rows' },
      { shape: [rows, 128], grad: false, kind: 'unit-rows' },
    ],
    args: { temperature: 0.2 },
  });
  const queue = quick ? 4096 : 65536;
  cases.push({
    op: 'info_nce',
    shape: `${rows}x128,K=${queue}`,
    inputs: [
      { shape: [rows, 128], grad: true, kind: 'unit-rows' },
      { shape: [rows, 128], grad: false, kind: 'unit-rows' },
      { shape: [128, queue], grad: false, kind: 'unit-cols' },
    ],
    args: { temperature: 0.2 },
  });
  return cases;
}

function makeInput(spec: OpCase['inputs'][number]): Tensor {
  return tidy(() => {
    switch (spec.kind) {
      case 'weight':
        return rand(spec.shape).sub(0.5).mul(2.4);
      case 'slope':
        return rand(spec.shape).mul(0.5);
      case 'unit-rows': {
        const x = randn(spec.shape);
        return x.div(x.square().sum(1, true).sqrt());
      }
      case 'unit-cols': {
        const x = randn(spec.shape);
        return x.div(x.square().sum(0, true).sqrt());
      }
      default:
        return randn(spec.shape);
    }
  });
}

function forward(impl: Operators, c: OpCase, xs: Tensor[]): Tensor {
  switch (c.op) {
    case 'sign_ste':
      return impl.signSte(xs[0]);
    case 'sign_ste_biased':
      return impl.signSteBiased(xs[0], xs[1]);
    case 'rprelu':
      return impl.rprelu(xs[0], xs[1], xs[2], xs[3]);
    case 'binarize_weight':
      return impl.binarizeWeight(xs[0]);
    case 'binary_conv2d':
      return impl.binaryConv2d(xs[0], xs[1], { stride: Number(c.args!.stride), padding: Number(c.args!.padding) });
    case 'distribution_loss':
      return impl.distributionLoss(xs[0], xs[1], Number(c.args!.temperature));
    case 'info_nce':
      return impl.infoNce(xs[0], xs[1], xs[2], Number(c.args!.temperature)).loss;
    default:
      throw new Error(`unknown op ${c.op}`);
  }
}

function measure(impl: Operators, c: OpCase, inputs: Tensor[], gradOut: Tensor | null, minTimeMs: number) {
  // One forward + backward on fresh leaves; `forwardWith` wraps the forward (to measure it).
  const iteration = (forwardWith: (f: () => Tensor) => Tensor = (f) => f()) =>
    tidy(() => {
      const xs = inputs.map((x, i) => (c.inputs[i].grad ? x.detach().requiresGrad_() : x));
      const y = forwardWith(() => forward(impl, c, xs));
      if (gradOut) y.backward(gradOut);
      else y.backward();
    });
  for (let i = 0; i < 2; i++) iteration();
  const ms = medianMs(() => iteration(), minTimeMs, 5, 200);
  let savedBytes = 0;
  const { peakBytes } = measureMemory(() =>
    iteration((f) => {
      const forwardOnly = measureMemory(f);
      savedBytes = forwardOnly.retainedBytes;
      return forwardOnly.result;
    }),
  );
  return { ms, peakBytes, savedBytes };
}

function runPython(python: string, cases: OpCase[], minTimeMs: number, threads: number): Figure[] {
  const script = path.resolve(__dirname, '..', '..', 'scripts', 'bench', 'ops_reference.py');
  const res = spawnSync(python, [script, opsLibraryPath(), String(minTimeMs), String(threads)], {
    input: JSON.stringify(cases),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (res.status !== 0) throw new Error(`python reference benchmark failed:\n${res.stderr}`);
  return res.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => ({ ...JSON.parse(line), impl: 'python-reference' as const, threads }));
}

/** Finds a python3 that can import torch (Debian's python3-torch lives under /usr/bin/python3). */
export function findPythonWithTorch(): string | null {
  for (const python of [process.env.S2BNN_PYTHON, '/usr/bin/python3', 'python3']) {
    if (!python) continue;
    const res = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
    if (res.status === 0) return python;
  }
  return null;
}

export function benchOps(options: BenchOptions = {}): Figure[] {
  const quick = options.quick ?? false;
  const minTimeMs = options.minTimeMs ?? (quick ? 50 : 1000);
  const threads = getNumThreads();
  const cases = opCases(quick);
  const figures: Figure[] = [];
  const emit = (figure: Figure) => {
    figures.push(figure);
    options.onFigure?.(figure);
  };
  for (const c of cases) {
    manualSeed(0);
    const inputs = c.inputs.map(makeInput);
    const scalarLoss = c.op === 'distribution_loss' || c.op === 'info_nce';
    const gradOut = scalarLoss ? null : tidy(() => randn(forward(ops, c, inputs).shape));
    for (const [impl, name] of [[ops, 'fused'], [reference, 'reference']] as const) {
      emit({ op: c.op, shape: c.shape, impl: name, threads, ...measure(impl, c, inputs, gradOut, minTimeMs) });
    }
    inputs.forEach((t) => t.dispose());
    gradOut?.dispose();
  }
  if (options.python) {
    for (const figure of runPython(options.python, cases, minTimeMs, threads)) emit(figure);
  }
  return figures;
}

const MiB = 2 ** 20;

/** A markdown table: one row per case, fused figures and the ratios against each baseline. */
export function formatTable(figures: Figure[]): string {
  const keyOf = (f: Figure) => `${f.op} ${f.shape}`;
  const keys = [...new Set(figures.map(keyOf))];
  const hasPython = figures.some((f) => f.impl === 'python-reference');
  const header = [
    '| op | shape | fused ms | ref ms | speedup vs ref |' + (hasPython ? ' python ms | speedup vs python |' : '') +
      ' fused peak MiB | ref peak MiB | fused saved MiB | ref saved MiB |',
    '|---|---|---|---|---|' + (hasPython ? '---|---|' : '') + '---|---|---|---|',
  ];
  const rows = keys.map((key) => {
    const get = (impl: Figure['impl']) => figures.find((f) => keyOf(f) === key && f.impl === impl);
    const fused = get('fused')!;
    const ref = get('reference')!;
    const py = get('python-reference');
    const cells = [
      fused.op,
      fused.shape,
      fused.ms.toFixed(2),
      ref.ms.toFixed(2),
      `${(ref.ms / fused.ms).toFixed(2)}x`,
      ...(hasPython ? [py ? py.ms.toFixed(2) : '-', py ? `${(py.ms / fused.ms).toFixed(2)}x` : '-'] : []),
      (fused.peakBytes / MiB).toFixed(1),
      (ref.peakBytes / MiB).toFixed(1),
      (fused.savedBytes / MiB).toFixed(1),
      (ref.savedBytes / MiB).toFixed(1),
    ];
    return `| ${cells.join(' | ')} |`;
  });
  return [...header, ...rows].join('\n');
}
