#!/usr/bin/env node
// The `s2bnn` command. Every error is one clear line on stderr and a non-zero exit code.
import * as os from 'os';

import { benchModel, formatModelTable, ModelFigure } from './bench/model';
import { benchOps, findPythonWithTorch, formatTable, Figure } from './bench/ops';
import { benchStep, formatPhaseTable, formatStepTable, StepBenchRecipe, StepFigure } from './bench/step';
import { Checkpoint, CheckpointFormat, formatForPath } from './checkpoint';
import { NativeLoadError, native, readBuildInfo, opsLibraryPath } from './native';
import { PRECISIONS } from './train/trainer';
import { getNumThreads, setNumThreads } from './tensor';
import { BENCH_DATA_USAGE, benchDataCommand } from './cli/bench-data';
import { UsageError, choice, deviceFlag, parseFlags, positiveInteger } from './cli/flags';
import { DEPLOY_USAGE, exportCommand, inferCommand } from './cli/deploy';
import { BENCH_BCONV_USAGE, benchBconvCommand } from './cli/bench';
import { REPRODUCE_USAGE, TRAIN_USAGE, evalCommand, finetuneCommand, knnCommand, linclsCommand, pretrainCommand, reproduceCommand } from './cli/train';

const USAGE = `Usage: s2bnn <command> [options]

Commands:
${TRAIN_USAGE}
${REPRODUCE_USAGE}
${DEPLOY_USAGE}
  info [--json]                 the libtorch s2bnn was built against, threads, CUDA devices
  inspect CKPT [--json]         a checkpoint's format, top-level fields and tensors (zip, legacy
                                torch.save files and .safetensors)
  convert IN OUT [options]      rewrite a checkpoint, losslessly
      --format zip|legacy|safetensors   (default: from OUT's extension; .safetensors or zip)
      --select-prefix P         keep only keys under P, without it (module.encoder_q.: a teacher)
      --strip-prefix P          remove P from state-dict keys (e.g. module.)
      --encoder-q-only          keep the MoCo query encoder without its head, prefix dropped
      --add-prefix P            prepend P to state-dict keys (e.g. module.encoder_q.)
  bench-ops [options]           fused S2-BNN operators vs the reference formulation, forward +
                                backward on ReActNet-A shapes (time and peak memory)
      --quick                   small shapes, short timing (a smoke run)
      --threads N               libtorch threads (default: all cores or S2BNN_NUM_THREADS)
      --min-time MS             measured time per figure (default 1000, --quick 50)
      --no-python               skip the Python reference baseline (run when python3 has torch)
      --json                    one JSON line per figure instead of the table
  bench-model [options]         ReActNet-A training forward + backward vs the Python reference
                                model (batch 32 at 64 px and batch 8 at 224 px by default)
      --batch N --size N        one case instead of the defaults
      --threads N, --min-time MS, --no-python, --json   as for bench-ops
  bench-step [options]          a whole pre-training step (ReActNet-A student, Adam) with the native
                                Trainer vs the straightforward PyTorch step: images/s, peak memory
      --recipe distill|contrastive|contrastive+distill   (default distill)
      --batch-size N --size N   one case (default: 8 x 224 and 32 x 64)
      --teacher-arch resnet18|resnet34|resnet50          (default resnet50)
      --teacher-precision float32|bfloat16   the teacher's arithmetic, on both sides (default float32)
      --steps N                 timed steps after one warm-up (default 5)
      --phases                  also time each phase (student, keys, teacher, loss, backward,
                                optimizer) on both sides and print where the time goes
      --device cpu|cuda, --threads N, --no-python, --json
${BENCH_DATA_USAGE}
${BENCH_BCONV_USAGE}

Environment: S2BNN_NUM_THREADS (threads), LIBTORCH (libtorch folder for builds),
S2BNN_PYTHON (python3 with torch for baselines).`;

function info(args: string[]): void {
  const flags = parseFlags(args, { json: 'boolean' });
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
}

function benchOpsCommand(args: string[]): void {
  const flags = parseFlags(args, {
    quick: 'boolean',
    threads: 'number',
    'min-time': 'number',
    'no-python': 'boolean',
    json: 'boolean',
  });
  const threads = positiveInteger(flags, 'threads');
  if (threads !== undefined) setNumThreads(threads);
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
    minTimeMs: flags['min-time'] !== undefined ? Number(flags['min-time']) : undefined,
    python,
    onFigure: (figure: Figure) => {
      if (json) process.stdout.write(`${JSON.stringify(figure)}\n`);
      else process.stderr.write(`  ${figure.op} ${figure.shape} ${figure.impl}: ${figure.ms.toFixed(2)} ms\n`);
    },
  });
  if (!json) process.stdout.write(`${formatTable(figures)}\n`);
}

function formatValue(value: unknown): string {
  if (value instanceof Uint8Array) return `bytes(${value.length})`;
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

async function inspect(args: string[]): Promise<void> {
  const flags = parseFlags(args, { json: 'boolean' }, ['CKPT']);
  const checkpoint = await Checkpoint.load(flags._[0]);
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
}

async function convert(args: string[]): Promise<void> {
  const flags = parseFlags(
    args,
    { format: 'string', 'select-prefix': 'string', 'strip-prefix': 'string', 'add-prefix': 'string', 'encoder-q-only': 'boolean' },
    ['IN', 'OUT'],
  );
  const [input, output] = flags._;
  const format = (flags.format as string | undefined) ?? formatForPath(output);
  if (!['zip', 'legacy', 'safetensors'].includes(format)) {
    throw new UsageError(`--format must be zip, legacy or safetensors, got '${format}'`);
  }
  let checkpoint = await Checkpoint.load(input);
  if (flags['select-prefix'] || flags['strip-prefix'] || flags['add-prefix'] || flags['encoder-q-only']) {
    checkpoint = checkpoint.transform({
      selectPrefix: flags['select-prefix'] as string | undefined,
      stripPrefix: flags['strip-prefix'] as string | undefined,
      addPrefix: flags['add-prefix'] as string | undefined,
      encoderQOnly: flags['encoder-q-only'] === true,
    });
  }
  const { dropped } = await checkpoint.save(output, { format: format as CheckpointFormat });
  process.stderr.write(`s2bnn convert: ${input} (${checkpoint.format}) -> ${output} (${format})\n`);
  if (dropped.length) {
    process.stderr.write(`s2bnn convert: ${format} holds only the state dict and scalar fields; left out: ${dropped.join(', ')}\n`);
  }
}

function benchModelCommand(args: string[]): void {
  const flags = parseFlags(args, { batch: 'number', size: 'number', threads: 'number', 'min-time': 'number', 'no-python': 'boolean', json: 'boolean' });
  const threads = positiveInteger(flags, 'threads');
  if (threads !== undefined) setNumThreads(threads);
  const batch = positiveInteger(flags, 'batch');
  const size = positiveInteger(flags, 'size');
  if ((batch === undefined) !== (size === undefined)) throw new UsageError('--batch and --size go together');
  const python = flags['no-python'] ? null : findPythonWithTorch();
  const json = flags.json === true;
  const figures = benchModel({
    cases: batch !== undefined ? [{ spec: { arch: 'reactnet-a', binarize: 'both' }, batch, size: size! }] : undefined,
    minTimeMs: flags['min-time'] !== undefined ? Number(flags['min-time']) : undefined,
    python,
    onFigure: (f: ModelFigure) => {
      if (json) process.stdout.write(`${JSON.stringify(f)}\n`);
      else process.stderr.write(`  ${f.arch} ${f.batch}x${f.size} ${f.impl}: ${f.ms.toFixed(0)} ms\n`);
    },
  });
  if (!json) process.stdout.write(`${formatModelTable(figures)}\n`);
}

async function benchStepCommand(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    recipe: 'string', 'batch-size': 'number', size: 'number', 'teacher-arch': 'string', steps: 'number', device: 'string',
    threads: 'number', 'no-python': 'boolean', json: 'boolean', phases: 'boolean', 'teacher-precision': 'string',
  });
  const threads = positiveInteger(flags, 'threads');
  if (threads !== undefined) setNumThreads(threads);
  const recipe = (flags.recipe as string | undefined) ?? 'distill';
  if (!['distill', 'contrastive', 'contrastive+distill'].includes(recipe)) {
    throw new UsageError(`--recipe must be distill, contrastive or contrastive+distill, got '${recipe}'`);
  }
  const teacherArch = (flags['teacher-arch'] as string | undefined) ?? 'resnet50';
  if (!['resnet18', 'resnet34', 'resnet50'].includes(teacherArch)) throw new UsageError(`--teacher-arch must be resnet18, resnet34 or resnet50, got '${teacherArch}'`);
  const device = deviceFlag(flags);
  const batch = positiveInteger(flags, 'batch-size');
  const size = positiveInteger(flags, 'size');
  const shapes = batch !== undefined || size !== undefined ? [[batch ?? 8, size ?? 224]] : [[8, 224], [32, 64]];
  const python = flags['no-python'] ? null : findPythonWithTorch();
  const json = flags.json === true;
  const teacherPrecision = choice(flags, 'teacher-precision', PRECISIONS, 'float32');
  const figures = await benchStep({
    cases: shapes.map(([b, s]) => ({
      recipe: recipe as StepBenchRecipe, batch: b, size: s, teacherArch: teacherArch as 'resnet50', device, phases: flags.phases === true,
      teacherPrecision,
    })),
    steps: positiveInteger(flags, 'steps'),
    python,
    onFigure: (f: StepFigure) => {
      if (json) process.stdout.write(`${JSON.stringify(f)}\n`);
      else process.stderr.write(`  ${f.recipe} ${f.batch}x${f.size} ${f.impl}: ${f.imagesPerSecond.toFixed(1)} img/s\n`);
    },
  });
  if (!json) process.stdout.write(`${formatStepTable(figures)}\n${flags.phases ? `${formatPhaseTable(figures)}\n` : ''}`);
}


// A command returns its exit code when it is not 0 (a run stopped by a signal: 130 / 143).
const COMMANDS: Record<string, (args: string[]) => void | number | Promise<void | number>> = {
  pretrain: pretrainCommand,
  lincls: linclsCommand,
  finetune: finetuneCommand,
  knn: knnCommand,
  eval: evalCommand,
  reproduce: reproduceCommand,
  export: exportCommand,
  infer: inferCommand,
  'bench-step': benchStepCommand,
  'bench-model': benchModelCommand,
  info,
  inspect,
  convert,
  'bench-ops': benchOpsCommand,
  'bench-data': benchDataCommand,
  'bench-bconv': benchBconvCommand,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command ? 0 : 2;
  }
  const run = COMMANDS[command];
  try {
    if (!run) throw new UsageError(`unknown command '${command}' (run 's2bnn --help')`);
    return (await run(args)) ?? 0;
  } catch (err) {
    const message = err instanceof NativeLoadError ? err.message : (err as Error).message.split('\n')[0];
    process.stderr.write(`s2bnn ${command}: ${message}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
