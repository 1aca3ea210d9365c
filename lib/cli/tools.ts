// The inspection and benchmark commands: info, inspect, convert, bench-ops, bench-model,
// bench-step, as tables (lib/cli/command.ts).
import * as os from 'os';

import { benchModel, formatModelTable, ModelFigure } from '../bench/model';
import { benchOps, findPythonWithTorch, formatTable, Figure } from '../bench/ops';
import { benchStep, formatPhaseTable, formatStepTable, StepBenchRecipe, StepFigure } from '../bench/step';
import { Checkpoint, CheckpointFormat, formatForPath } from '../checkpoint';
import { native, readBuildInfo, opsLibraryPath } from '../native';
import { PRECISIONS } from '../train/trainer';
import { getNumThreads, setNumThreads } from '../tensor';
import { UsageError, command } from './command';
import { DEVICE, JSON_SUMMARY, THREADS, checkDevice } from './flags';

export const infoCommand = command({
  name: 'info',
  summary: 'the libtorch s2bnn was built against, threads, CUDA devices',
  flags: { json: JSON_SUMMARY },
  run(flags) {
    const api = native();
    const build = readBuildInfo();
    const facts = {
      libtorch: build?.libtorchVersion,
      libtorchSource: build?.libtorchSource,
      libtorchLibDir: build?.libtorchLibDir,
      cudaBuild: api.build.cuda,
      cudaVersion: api.build.cudaVersion,
      nccl: api.build.nccl,
      imageCodecs: api.build.imageCodecs,
      cxx11Abi: api.build.cxx11Abi,
      binary: build?.binary ?? 'source',
      prebuilt: build?.prebuilt ?? null,
      sourceReason: build?.sourceReason ?? null,
      cudaDevices: api.cudaDeviceCount(),
      threads: getNumThreads(),
      cores: os.availableParallelism?.() ?? os.cpus().length,
      opsLibrary: opsLibraryPath(),
    };
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(facts)}\n`);
      return;
    }
    for (const [key, value] of Object.entries(facts)) process.stdout.write(`${key.padEnd(15)} ${value}\n`);
  },
});

function formatValue(value: unknown): string {
  if (value instanceof Uint8Array) return `bytes(${value.length})`;
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

export const inspectCommand = command({
  name: 'inspect',
  args: ['CKPT'],
  summary: "a checkpoint's format, top-level fields and tensors (zip, legacy torch.save files and .safetensors)",
  flags: { json: JSON_SUMMARY },
  async run(flags, [file]) {
    const checkpoint = await Checkpoint.load(file);
    const summary = checkpoint.summary();
    if (flags.json) {
      const fields = Object.fromEntries(
        Object.entries(summary.fields).map(([k, v]) => [k, typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v]),
      );
      process.stdout.write(`${JSON.stringify({ ...summary, fields })}\n`);
      return;
    }
    process.stdout.write(`format  ${summary.format}\n`);
    for (const [k, v] of Object.entries(summary.fields)) process.stdout.write(`${k.padEnd(8)}${formatValue(v)}\n`);
    const elements = summary.tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
    process.stdout.write(`tensors ${summary.tensors.length} (${elements} elements)\n`);
    const width = Math.max(...summary.tensors.map((t) => t.name.length), 4);
    for (const t of summary.tensors) process.stdout.write(`  ${t.name.padEnd(width)}  ${t.dtype.padEnd(8)}  [${t.shape.join(', ')}]\n`);
  },
});

const isCheckpointFormat = (format: string): format is CheckpointFormat => ['zip', 'legacy', 'safetensors'].includes(format);

export const convertCommand = command({
  name: 'convert',
  args: ['IN', 'OUT'],
  summary: 'rewrite a checkpoint, losslessly',
  flags: {
    format: { type: 'string', value: 'zip|legacy|safetensors', help: 'the output format', default: "OUT's extension: .safetensors, else zip" },
    'select-prefix': { type: 'string', value: 'P', help: 'keep only keys under P, without it (module.encoder_q.: a teacher)' },
    'strip-prefix': { type: 'string', value: 'P', help: 'remove P from state-dict keys (e.g. module.)' },
    'encoder-q-only': { type: 'boolean', help: 'keep the MoCo query encoder without its head, prefix dropped' },
    'add-prefix': { type: 'string', value: 'P', help: 'prepend P to state-dict keys (e.g. module.encoder_q.)' },
  },
  async run(flags, [input, output]) {
    const format = flags.format ?? formatForPath(output);
    if (!isCheckpointFormat(format)) throw new UsageError(`--format must be zip, legacy or safetensors, got '${format}'`);
    let checkpoint = await Checkpoint.load(input);
    if (flags['select-prefix'] || flags['strip-prefix'] || flags['add-prefix'] || flags['encoder-q-only']) {
      checkpoint = checkpoint.transform({
        selectPrefix: flags['select-prefix'],
        stripPrefix: flags['strip-prefix'],
        addPrefix: flags['add-prefix'],
        encoderQOnly: flags['encoder-q-only'] === true,
      });
    }
    const { dropped } = await checkpoint.save(output, { format });
    process.stderr.write(`s2bnn convert: ${input} (${checkpoint.format}) -> ${output} (${format})\n`);
    if (dropped.length) {
      process.stderr.write(`s2bnn convert: ${format} holds only the state dict and scalar fields; left out: ${dropped.join(', ')}\n`);
    }
  },
});

const BENCH_FLAGS = {
  threads: THREADS,
  'min-time': { type: 'number', value: 'MS', help: 'measured time per figure', default: '1000, --quick 50' },
  'no-python': { type: 'boolean', help: 'skip the Python reference baseline (run when python3 has torch)' },
  json: { type: 'boolean', help: 'one JSON line per figure instead of the table' },
} as const;

export const benchOpsCommand = command({
  name: 'bench-ops',
  summary: 'fused S2-BNN operators vs the reference formulation, forward + backward on ReActNet-A shapes (time and peak memory)',
  flags: { quick: { type: 'boolean', help: 'small shapes, short timing (a smoke run)' }, ...BENCH_FLAGS },
  run(flags) {
    if (flags.threads !== undefined) setNumThreads(flags.threads);
    const python = flags['no-python'] ? null : findPythonWithTorch();
    const json = flags.json === true;
    if (!json) {
      process.stderr.write(
        `bench-ops: ${getNumThreads()} thread(s); baselines: reference composition (same process)` +
          `${python ? `, Python reference (${python})` : ' (no python3 with torch: Python baseline skipped)'}\n`,
      );
    }
    const figures = benchOps({
      quick: flags.quick === true,
      minTimeMs: flags['min-time'],
      python,
      onFigure: (figure: Figure) => {
        if (json) process.stdout.write(`${JSON.stringify(figure)}\n`);
        else process.stderr.write(`  ${figure.op} ${figure.shape} ${figure.impl}: ${figure.ms.toFixed(2)} ms\n`);
      },
    });
    if (!json) process.stdout.write(`${formatTable(figures)}\n`);
  },
});

export const benchModelCommand = command({
  name: 'bench-model',
  summary: 'ReActNet-A training forward + backward vs the Python reference model (batch 32 at 64 px and batch 8 at 224 px by default)',
  flags: {
    batch: { type: 'integer', help: 'one case instead of the defaults (with --size)' },
    size: { type: 'integer', help: "that case's image side (with --batch)" },
    ...BENCH_FLAGS,
  },
  run(flags) {
    if (flags.threads !== undefined) setNumThreads(flags.threads);
    const { batch, size } = flags;
    if ((batch === undefined) !== (size === undefined)) throw new UsageError('--batch and --size go together');
    const python = flags['no-python'] ? null : findPythonWithTorch();
    const json = flags.json === true;
    const figures = benchModel({
      cases: batch !== undefined ? [{ spec: { arch: 'reactnet-a', binarize: 'both' }, batch, size: size! }] : undefined,
      minTimeMs: flags['min-time'],
      python,
      onFigure: (f: ModelFigure) => {
        if (json) process.stdout.write(`${JSON.stringify(f)}\n`);
        else process.stderr.write(`  ${f.arch} ${f.batch}x${f.size} ${f.impl}: ${f.ms.toFixed(0)} ms\n`);
      },
    });
    if (!json) process.stdout.write(`${formatModelTable(figures)}\n`);
  },
});

export const benchStepCommand = command({
  name: 'bench-step',
  summary: 'a whole pre-training step (ReActNet-A student, Adam) with the native Trainer vs the straightforward PyTorch step: images/s, peak memory',
  flags: {
    recipe: { type: ['distill', 'contrastive', 'contrastive+distill'] as const, help: 'the step to time', default: 'distill' },
    'batch-size': { type: 'integer', help: 'one case (with or without --size)', default: '8 x 224 and 32 x 64' },
    size: { type: 'integer', help: "that case's image side" },
    'teacher-arch': { type: ['resnet18', 'resnet34', 'resnet50'] as const, help: "the teacher's network", default: 'resnet50' },
    'teacher-precision': { type: PRECISIONS, help: "the teacher's arithmetic, on both sides", default: 'float32' },
    steps: { type: 'integer', help: 'timed steps after one warm-up', default: 5 },
    phases: {
      type: 'boolean',
      help: 'also time each phase (student, keys, teacher, loss, backward, optimizer) on both sides and print where the time goes',
    },
    device: DEVICE,
    threads: THREADS,
    'no-python': BENCH_FLAGS['no-python'],
    json: BENCH_FLAGS.json,
  },
  async run(flags) {
    if (flags.threads !== undefined) setNumThreads(flags.threads);
    const recipe: StepBenchRecipe = flags.recipe ?? 'distill';
    const teacherArch = flags['teacher-arch'] ?? 'resnet50';
    const device = checkDevice(flags.device);
    const batch = flags['batch-size'];
    const size = flags.size;
    const shapes = batch !== undefined || size !== undefined ? [[batch ?? 8, size ?? 224]] : [[8, 224], [32, 64]];
    const python = flags['no-python'] ? null : findPythonWithTorch();
    const json = flags.json === true;
    const teacherPrecision = flags['teacher-precision'] ?? 'float32';
    const figures = await benchStep({
      cases: shapes.map(([b, s]) => ({ recipe, batch: b, size: s, teacherArch, device, phases: flags.phases === true, teacherPrecision })),
      steps: flags.steps,
      python,
      onFigure: (f: StepFigure) => {
        if (json) process.stdout.write(`${JSON.stringify(f)}\n`);
        else process.stderr.write(`  ${f.recipe} ${f.batch}x${f.size} ${f.impl}: ${f.imagesPerSecond.toFixed(1)} img/s\n`);
      },
    });
    if (!json) process.stdout.write(`${formatStepTable(figures)}\n${flags.phases ? `${formatPhaseTable(figures)}\n` : ''}`);
  },
});
