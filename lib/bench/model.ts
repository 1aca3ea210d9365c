// Forward + backward of a whole model, s2bnn vs the Python reference model
// (scripts/python/s2bnn_models.py, PyTorch) on the same libtorch, in the same run: median step
// time and peak CPU tensor memory (one counting allocator on both sides).
import { spawnSync } from 'child_process';
import * as path from 'path';

import { measureMemory } from '../memory';
import { Model } from '../models';
import { opsLibraryPath } from '../native';
import { getNumThreads, manualSeed, randn, tidy } from '../tensor';
import { medianMs } from './timing';

export interface ModelBenchCase {
  spec: Record<string, unknown> & { arch: string };
  batch: number;
  size: number;
}

export interface ModelFigure {
  arch: string;
  batch: number;
  size: number;
  impl: 's2bnn' | 'python-reference';
  /** Median milliseconds of one training forward + backward. */
  ms: number;
  /** Peak CPU tensor bytes above the inputs during forward + backward. */
  peakBytes: number;
  threads: number;
}

export const DEFAULT_MODEL_CASES: ModelBenchCase[] = [
  { spec: { arch: 'reactnet-a', binarize: 'both' }, batch: 32, size: 64 },
  { spec: { arch: 'reactnet-a', binarize: 'both' }, batch: 8, size: 224 },
];

function measureOurs(c: ModelBenchCase, minTimeMs: number, threads: number): ModelFigure {
  manualSeed(0);
  const model = Model.fromSpec(c.spec).train();
  const x = randn([c.batch, Number(c.spec.inChannels ?? 3), c.size, c.size]);
  const gradOut = tidy(() => randn(model.forward(x).shape));
  const step = () =>
    tidy(() => {
      model.forward(x).backward(gradOut);
      model.zeroGrad();
    });
  step();
  const ms = medianMs(step, minTimeMs, 3, 50);
  const { peakBytes } = measureMemory(step);
  return { arch: c.spec.arch, batch: c.batch, size: c.size, impl: 's2bnn', ms, peakBytes, threads };
}

export function benchModel(options: { cases?: ModelBenchCase[]; minTimeMs?: number; python?: string | null; onFigure?: (f: ModelFigure) => void } = {}): ModelFigure[] {
  const cases = options.cases ?? DEFAULT_MODEL_CASES;
  const minTimeMs = options.minTimeMs ?? 3000;
  const threads = getNumThreads();
  const figures: ModelFigure[] = [];
  const emit = (f: ModelFigure) => {
    figures.push(f);
    options.onFigure?.(f);
  };
  for (const c of cases) {
    emit(measureOurs(c, minTimeMs, threads));
    if (options.python) {
      const script = path.resolve(__dirname, '..', '..', 'scripts', 'bench', 'model_reference.py');
      const res = spawnSync(options.python, [script, opsLibraryPath(), String(minTimeMs), String(threads)], {
        input: JSON.stringify(c),
        encoding: 'utf8',
      });
      if (res.status !== 0) throw new Error(`python reference benchmark failed:\n${res.stderr}`);
      emit({ ...JSON.parse(res.stdout), arch: c.spec.arch, batch: c.batch, size: c.size, impl: 'python-reference', threads });
    }
  }
  return figures;
}

export function formatModelTable(figures: ModelFigure[]): string {
  const MiB = 2 ** 20;
  const rows = ['| model | batch x size | s2bnn ms | python ms | speedup | s2bnn peak MiB | python peak MiB | memory ratio |', '|---|---|---|---|---|---|---|---|'];
  for (const ours of figures.filter((f) => f.impl === 's2bnn')) {
    const py = figures.find((f) => f.impl === 'python-reference' && f.arch === ours.arch && f.batch === ours.batch && f.size === ours.size);
    rows.push(
      `| ${ours.arch} | ${ours.batch} x ${ours.size} | ${ours.ms.toFixed(0)} | ${py ? py.ms.toFixed(0) : '-'} | ${py ? `${(py.ms / ours.ms).toFixed(2)}x` : '-'} | ${(ours.peakBytes / MiB).toFixed(0)} | ${py ? (py.peakBytes / MiB).toFixed(0) : '-'} | ${py ? (ours.peakBytes / py.peakBytes).toFixed(2) : '-'} |`,
    );
  }
  return rows.join('\n');
}
