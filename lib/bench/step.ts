// A whole pre-training step (student forward/backward, teacher forward, keys, Adam, queue) with
// s2bnn's native Trainer vs the straightforward PyTorch step (scripts/python/s2bnn_train.py, the
// way the reference code is written) on the same libtorch, in the same run, the two sides taking
// turns step by step: images/s and peak CPU tensor memory (the same counting allocator on both
// sides).
import { ChildProcessWithoutNullStreams, spawn } from 'child_process';
import * as path from 'path';
import * as readline from 'readline';

import { memoryStats } from '../memory';
import { Model, ResNetArch, moco, reactnetA, resnet } from '../models';
import { opsLibraryPath } from '../native';
import { getNumThreads, manualSeed, randn } from '../tensor';
import { RECIPES } from '../train/pretrain';
import { Precision, Trainer } from '../train/trainer';
import { median } from './timing';

export type StepBenchRecipe = 'distill' | 'contrastive' | 'contrastive+distill';

export interface StepBenchCase {
  recipe: StepBenchRecipe;
  batch: number;
  size: number;
  teacherArch: ResNetArch;
  /** MoCo queue size (default 65536, docs/method.md). */
  queueSize?: number;
  /** 'cpu' (default) or 'cuda'; peak memory is counted on CPU only. */
  device?: 'cpu' | 'cuda';
  /** Also time each phase of the step (on a GPU each phase then ends with a device sync). */
  phases?: boolean;
  /** The teacher's arithmetic on both sides (default float32). */
  teacherPrecision?: Precision;
}

export interface StepFigure extends StepBenchCase {
  impl: 's2bnn' | 'python-reference';
  /** Median milliseconds of one step. */
  ms: number;
  imagesPerSecond: number;
  /** Peak CPU tensor bytes above what was live before the step. */
  peakBytes: number;
  threads: number;
  /** With StepBenchCase.phases: median milliseconds per phase (student, keys, teacher, loss, backward, optimizer). */
  phaseMs?: Record<string, number>;
}

/** Per phase, the median over steps of its milliseconds. */
export function medianPhases(steps: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of Object.keys(steps[0] ?? {})) out[name] = median(steps.map((s) => s[name]));
  return out;
}

export const DEFAULT_STEP_CASES: StepBenchCase[] = [
  { recipe: 'distill', batch: 8, size: 224, teacherArch: 'resnet50' },
  { recipe: 'distill', batch: 32, size: 64, teacherArch: 'resnet50' },
];

const hasContrastive = (recipe: StepBenchRecipe) => RECIPES[recipe].contrastive;
const hasTeacher = (recipe: StepBenchRecipe) => RECIPES[recipe].teacher;

/** s2bnn's side of a case: the native Trainer with the same models, ready to step. */
async function prepareOurs(c: StepBenchCase) {
  manualSeed(0);
  const student: Model = hasContrastive(c.recipe)
    ? moco({ arch: 'reactnet-a' }, { queueSize: c.queueSize ?? 65536 })
    : reactnetA({ head: 'mlp' });
  const teacher = hasTeacher(c.recipe) ? resnet(c.teacherArch, { head: 'mlp' }) : undefined;
  if (c.device === 'cuda') {
    student.to('cuda');
    teacher?.to('cuda');
  }
  const trainer = new Trainer({
    model: student, teacher, recipe: RECIPES[c.recipe].loss, optimizer: { kind: RECIPES[c.recipe].optimizer, lr: RECIPES[c.recipe].lr }, timePhases: c.phases, teacherDtype: c.teacherPrecision,
  });
  const views = Array.from({ length: hasContrastive(c.recipe) ? 2 : 1 }, () => randn([c.batch, 3, c.size, c.size], { device: c.device }));
  const step = async (): Promise<TimedStep> => {
    const t0 = process.hrtime.bigint();
    const result = await trainer.step(views);
    return { ms: Number(process.hrtime.bigint() - t0) / 1e6, phaseMs: result.phases };
  };
  await step(); // optimizer state and allocator cache warm
  const peak = async () => {
    const before = memoryStats(true);
    await step();
    return memoryStats(false).peak - before.current;
  };
  return { step, peak, dispose: () => views.forEach((v) => v.dispose()) };
}

interface TimedStep {
  ms: number;
  phaseMs?: Record<string, number>;
}

/** The Python reference step in a child process that runs one step per request (step_reference.py). */
class PythonStep {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending: { resolve: (line: string) => void; reject: (e: Error) => void }[] = [];
  private stderr = '';
  private exited: Error | null = null;

  constructor(python: string, c: StepBenchCase, threads: number) {
    const script = path.resolve(__dirname, '..', '..', 'scripts', 'bench', 'step_reference.py');
    this.child = spawn(python, [script, opsLibraryPath(), '0', String(threads)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (chunk) => (this.stderr += chunk));
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => this.pending.shift()?.resolve(line));
    this.child.on('close', (code) => {
      this.exited = new Error(`python reference benchmark failed (exit ${code}):\n${this.stderr}`);
      for (const waiter of this.pending.splice(0)) waiter.reject(this.exited);
    });
    this.child.stdin.on('error', () => undefined); // a dead child is reported by 'close'
    this.child.stdin.write(`${JSON.stringify(c)}\n`);
  }

  /** The next answer line, parsed (after `command`, if given). */
  async request<T>(command?: string): Promise<T> {
    if (this.exited) throw this.exited;
    const line = new Promise<string>((resolve, reject) => this.pending.push({ resolve, reject }));
    if (command) this.child.stdin.write(`${command}\n`);
    return JSON.parse(await line) as T;
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const closed = new Promise((resolve) => this.child.once('close', resolve));
    this.child.stdin.end();
    await closed;
  }
}

export async function benchStep(
  options: { cases?: StepBenchCase[]; steps?: number; python?: string | null; onFigure?: (f: StepFigure) => void } = {},
): Promise<StepFigure[]> {
  const cases = options.cases ?? DEFAULT_STEP_CASES;
  const steps = options.steps ?? 5;
  const threads = getNumThreads();
  const figures: StepFigure[] = [];
  const emit = (f: StepFigure) => {
    figures.push(f);
    options.onFigure?.(f);
  };
  const figure = (c: StepBenchCase, impl: StepFigure['impl'], timed: TimedStep[], peakBytes: number): StepFigure => {
    const ms = median(timed.map((t) => t.ms));
    const phaseMs = c.phases ? medianPhases(timed.map((t) => t.phaseMs ?? {})) : undefined;
    return { ...c, impl, ms, imagesPerSecond: (1000 * c.batch) / ms, peakBytes, threads, phaseMs };
  };
  for (const c of cases) {
    const ours = await prepareOurs(c);
    const python = options.python ? new PythonStep(options.python, c, threads) : null;
    try {
      await python?.request(); // ready: models built, warm-up step done
      // One step each in turn: a slow spell of the machine then slows both sides alike.
      const timed: { ours: TimedStep[]; python: TimedStep[] } = { ours: [], python: [] };
      for (let i = 0; i < steps; i++) {
        timed.ours.push(await ours.step());
        if (python) timed.python.push(await python.request<TimedStep>('step'));
      }
      emit(figure(c, 's2bnn', timed.ours, await ours.peak()));
      if (python) emit(figure(c, 'python-reference', timed.python, (await python.request<{ peakBytes: number }>('peak')).peakBytes));
    } finally {
      ours.dispose();
      await python?.close();
    }
  }
  return figures;
}

export function formatStepTable(figures: StepFigure[]): string {
  const MiB = 2 ** 20;
  const rows = [
    '| recipe | teacher | batch x size | s2bnn img/s | python img/s | speedup | s2bnn peak MiB | python peak MiB | memory ratio |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const ours of figures.filter((f) => f.impl === 's2bnn')) {
    const py = figures.find(
      (f) => f.impl === 'python-reference' && f.recipe === ours.recipe && f.batch === ours.batch && f.size === ours.size,
    );
    rows.push(
      `| ${ours.recipe} | ${hasTeacher(ours.recipe) ? ours.teacherArch : '-'} | ${ours.batch} x ${ours.size} | ${ours.imagesPerSecond.toFixed(1)} | ` +
        `${py ? py.imagesPerSecond.toFixed(1) : '-'} | ${py ? `${(py.ms / ours.ms).toFixed(2)}x` : '-'} | ${(ours.peakBytes / MiB).toFixed(0)} | ` +
        `${py ? (py.peakBytes / MiB).toFixed(0) : '-'} | ${py ? (ours.peakBytes / py.peakBytes).toFixed(2) : '-'} |`,
    );
  }
  return rows.join('\n');
}

/** Where each side's step time goes: one row per phase, s2bnn vs python (figures with phaseMs). */
export function formatPhaseTable(figures: StepFigure[]): string {
  const rows: string[] = [];
  for (const ours of figures.filter((f) => f.impl === 's2bnn' && f.phaseMs)) {
    const py = figures.find(
      (f) => f.impl === 'python-reference' && f.recipe === ours.recipe && f.batch === ours.batch && f.size === ours.size && f.phaseMs,
    );
    rows.push('', `${ours.recipe}, ${ours.batch} x ${ours.size}: median ms per phase`, '| phase | s2bnn | python | ratio |', '|---|---|---|---|');
    for (const [phase, ms] of Object.entries(ours.phaseMs!)) {
      const theirs = py?.phaseMs?.[phase];
      rows.push(`| ${phase} | ${ms.toFixed(1)} | ${theirs !== undefined ? theirs.toFixed(1) : '-'} | ${theirs !== undefined ? `${(theirs / ms).toFixed(2)}x` : '-'} |`);
    }
  }
  return rows.join('\n');
}
