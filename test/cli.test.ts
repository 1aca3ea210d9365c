// The `s2bnn` command as a user runs it (the compiled dist/cli.js; npm test compiles first).
import { spawnSync } from 'child_process';
import * as path from 'path';

import { readBuildInfo } from '../lib';
import { pythonWithTorch, repoRoot } from './helpers';

const cli = path.join(repoRoot, 'dist', 'cli.js');

function run(...args: string[]) {
  const res = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: repoRoot });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

test('info --json reports the build', () => {
  const { code, stdout } = run('info', '--json');
  expect(code).toBe(0);
  const info = JSON.parse(stdout);
  expect(info.libtorch).toMatch(/^\d+\.\d+/);
  expect(info.libtorchSource).toMatch(/^(system|LIBTORCH|python:.+)$/);
  expect(info).toMatchObject({ cudaBuild: expect.any(Boolean), cxx11Abi: expect.any(Boolean), imageCodecs: true });
  // A checkout builds from source (and says why not prebuilt); an install may take a prebuilt binary.
  const record = readBuildInfo()!;
  expect(info.binary).toBe(record.binary);
  if (info.binary === 'source') expect([info.prebuilt, typeof info.sourceReason]).toEqual([null, 'string']);
  else expect(info.prebuilt).toMatch(/^linux-x64-torch\d+\.\d+-(cpu|cu\d+)-(cxx11|precxx11)$/);
  expect(info.threads).toBeGreaterThanOrEqual(1);
  expect(info.opsLibrary).toMatch(/libs2bnn_ops\.so$/);
});

test('bench-ops --quick --json measures every op against both baselines', () => {
  const { python } = pythonWithTorch();
  const args = ['bench-ops', '--quick', '--json', '--min-time', '5', '--threads', '1'];
  const { code, stdout, stderr } = run(...(python ? args : [...args, '--no-python']));
  expect([code, stderr]).toEqual([0, '']);
  const figures = stdout.trim().split('\n').map((line) => JSON.parse(line));
  const ops = ['sign_ste', 'sign_ste_biased', 'rprelu', 'binarize_weight', 'binary_conv2d', 'distribution_loss', 'info_nce'];
  const impls = python ? ['fused', 'reference', 'python-reference'] : ['fused', 'reference'];
  for (const op of ops) {
    for (const impl of impls) {
      const figure = figures.find((f) => f.op === op && f.impl === impl);
      expect(figure).toBeDefined();
      expect(figure.ms).toBeGreaterThan(0);
      expect(figure.peakBytes).toBeGreaterThan(0);
      expect(figure.threads).toBe(1);
    }
  }
});

test('bench-model measures s2bnn and the Python reference model', () => {
  const { python } = pythonWithTorch();
  const args = ['bench-model', '--batch', '2', '--size', '32', '--min-time', '1', '--json', '--threads', '1'];
  const { code, stdout, stderr } = run(...(python ? args : [...args, '--no-python']));
  expect([code, stderr]).toEqual([0, '']);
  const figures = stdout.trim().split('\n').map((line) => JSON.parse(line));
  expect(figures.map((f) => f.impl)).toEqual(python ? ['s2bnn', 'python-reference'] : ['s2bnn']);
  for (const f of figures) {
    expect(f).toMatchObject({ arch: 'reactnet-a', batch: 2, size: 32, threads: 1 });
    expect(f.ms).toBeGreaterThan(0);
    expect(f.peakBytes).toBeGreaterThan(0);
  }
});

test.each([
  [['bench-model', '--batch', '2'], /--batch and --size go together/],
  [['frobnicate'], /unknown command 'frobnicate'/],
  [['bench-ops', '--threads', 'two'], /'--threads' must be a positive number, got 'two'/],
  [['bench-ops', '--threads', '1.5'], /'--threads' must be an integer/],
  [['bench-ops', '--fast'], /unknown option '--fast'/],
  [['bench-ops', '--min-time'], /'--min-time' needs a value/],
  [['info', 'extra'], /unexpected argument 'extra'/],
])('%p is one clear line and exit code 2', (args, message) => {
  const { code, stderr } = run(...(args as string[]));
  expect(code).toBe(2);
  expect(stderr.trim().split('\n')).toHaveLength(1);
  expect(stderr).toMatch(message);
});

test('--help lists the commands', () => {
  const { code, stdout } = run('--help');
  expect(code).toBe(0);
  expect(stdout).toMatch(/bench-ops/);
  expect(stdout).toMatch(/info/);
});

describe('every command, from its table', () => {
  // The compiled tables, as the CLI itself reads them.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { COMMANDS } = require(path.join(repoRoot, 'dist', 'cli', 'commands')) as typeof import('../lib/cli/commands');
  const names = COMMANDS.map((c) => c.name);
  const oneLine = (r: ReturnType<typeof run>) => ({ code: r.code, lines: r.stderr.trim().split('\n').length });

  test('the list is the CLI\'s: --help names every command', () => {
    const { stdout } = run('--help');
    for (const name of names) expect(stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
  });

  test.each(COMMANDS.map((c) => [c.name]))('%s: an unknown flag is one line naming it, exit 2', (name) => {
    const r = run(name, '--no-such-flag');
    expect(oneLine(r)).toEqual({ code: 2, lines: 1 });
    expect(r.stderr).toMatch(new RegExp(`^s2bnn ${name}: unknown option '--no-such-flag'`));
  });

  test.each(COMMANDS.map((c) => [c.name, c]))('%s: an ill-typed flag is one line naming it, exit 2', (name, c) => {
    const entry = Object.entries(c.flags).find(([, spec]) => spec.type !== 'boolean' && spec.type !== 'string');
    if (!entry) return; // only boolean and free-text flags (info, inspect)
    const [flag, spec] = entry;
    const r = run(name, ...c.args.map(() => 'unused'), `--${flag}`, 'not-a-value');
    expect(oneLine(r)).toEqual({ code: 2, lines: 1 });
    const expected = typeof spec.type !== 'string' ? `--${flag} must be` : spec.type.startsWith('file') ? `--${flag}: no such file` : `'--${flag}' must be`;
    expect(r.stderr).toContain(expected);
  });

  test.each(COMMANDS.map((c) => [c.name, c]))('%s --help lists every flag of its table', (name, c) => {
    const r = run(name, '--help');
    expect(r.code).toBe(0);
    for (const flag of Object.keys(c.flags)) expect(r.stdout).toMatch(new RegExp(`^      --${flag}( |$)`, 'm'));
  });

  test('the README command list and docs/cli.md are made from the tables', () => {
    const res = spawnSync(process.execPath, [path.join(repoRoot, 'scripts', 'cli-docs.js'), '--check'], { encoding: 'utf8' });
    expect([res.status, res.stderr]).toEqual([0, '']);
  });
});

test('bench-bconv --quick --json times packed vs float conv at 1 and 2 threads (a process each)', () => {
  const { code, stdout, stderr } = run('bench-bconv', '--quick', '--json', '--repeats', '1', '--threads', '2');
  expect([code, stderr]).toEqual([0, '']);
  const lines = stdout.trim().split('\n').map((line) => JSON.parse(line));
  const figures = lines.filter((f) => f.kind === undefined);
  expect(figures.map((f) => [f.kernel, f.threads])).toEqual([[3, 1], [1, 1], [3, 2], [1, 2]]);
  // Then the whole network, packed vs float32 at each thread count, and the file sizes.
  const network = lines.filter((f) => f.kind === 'network');
  expect(network.map((f) => [f.impl, f.threads])).toEqual([['float32', 1], ['packed', 1], ['float32', 2], ['packed', 2]]);
  for (const f of network) expect(f.ms).toBeGreaterThan(0);
  const size = lines.find((f) => f.kind === 'size');
  expect(size.floatBytes / size.packedBytes).toBeGreaterThan(10);
  expect(size.packedHalfHeadBytes).toBeLessThan(size.packedBytes);
  for (const f of figures) {
    for (const key of ['floatMs', 'packedMs', 'layerMs', 'speedup', 'layerSpeedup']) expect(f[key]).toBeGreaterThan(0);
    expect(f.shape).toMatch(/^256x\d+x\d+->256 k[13]s1$/);
  }
}, 60000);

test('bench-bconv rejects an unknown kernel', () => {
  const { code, stderr } = run('bench-bconv', '--kernel', 'neon');
  expect(code).toBe(2);
  expect(stderr).toMatch(/--kernel must be one of .*reference.* got 'neon'/);
});
