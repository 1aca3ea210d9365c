import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Tensor, cudaDeviceCount, native, tensor, tidy } from '../lib';

export const repoRoot = path.resolve(__dirname, '..');

/**
 * A fresh folder under the OS temp dir, removed when the calling test file finishes (the model
 * suite alone writes 2.3 GB of checkpoints per run). Call it at a file's or describe's top level:
 * it registers an afterAll hook.
 */
export function tempDir(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `s2bnn-${name}-`));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * The Python with torch that parity tests use (Debian's /usr/bin/python3 with python3-torch),
 * or null with the reason. CI sets S2BNN_REQUIRE_PYTHON_TORCH=1, which turns "missing" into a
 * failure so parity can never be skipped silently there.
 */
export function pythonWithTorch(): { python: string | null; reason: string } {
  return pythonWith(['torch'], "Debian's python3-torch");
}

/**
 * The reference Python if it imports `modules` (PIL for the decoding and report suites), or null
 * with the reason; under S2BNN_REQUIRE_PYTHON_TORCH=1 a missing module is a failure, as for torch.
 */
export function pythonWith(modules: string[], install: string): { python: string | null; reason: string } {
  const python = process.env.S2BNN_PYTHON ?? '/usr/bin/python3';
  const res = spawnSync(python, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8' });
  if (res.status === 0) return { python, reason: '' };
  const reason = `${python} cannot import ${modules.join(' and ')} (install ${install})`;
  if (process.env.S2BNN_REQUIRE_PYTHON_TORCH === '1') {
    throw new Error(`S2BNN_REQUIRE_PYTHON_TORCH=1 but ${reason}`);
  }
  return { python: null, reason };
}

/**
 * What `ldd` says `file` loads: each library name with the real folder it resolves to, and the
 * names it cannot find.
 */
export function lddLibraries(file: string): { resolved: Map<string, string>; missing: string[] } {
  const res = spawnSync('ldd', [file], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`ldd ${file} failed:\n${res.stderr}`);
  const resolved = new Map([...res.stdout.matchAll(/^\s*(\S+\.so[\w.]*) => (\/\S+)/gm)]
    .map(([, name, where]): [string, string] => [name, path.dirname(fs.realpathSync(where))]));
  const missing = [...res.stdout.matchAll(/^\s*(\S+) => not found/gm)].map(([, name]) => name);
  return { resolved, missing };
}

/**
 * CUDA devices for the CUDA suites, or why they skip (no device, or a CPU-only build). With
 * S2BNN_REQUIRE_CUDA=1 (the GPU check sets it) a suite that would skip fails instead.
 */
export function cudaSuite(): { devices: number; reason: string } {
  const devices = cudaDeviceCount();
  const reason = native().build.cuda ? 'no CUDA device visible' : 'this build of s2bnn uses a CPU-only libtorch';
  if (devices === 0 && process.env.S2BNN_REQUIRE_CUDA === '1') throw new Error(`S2BNN_REQUIRE_CUDA=1 but ${reason}`);
  return { devices, reason };
}

export function runPython(python: string, args: string[], input?: string): string {
  const res = spawnSync(python, args, {
    encoding: 'utf8',
    input,
    cwd: repoRoot,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (res.status !== 0) throw new Error(`${python} ${args.join(' ')} failed:\n${res.stderr}`);
  return res.stdout;
}

export interface Dumped {
  shape: number[];
  values: number[];
}

export function fromDump(d: Dumped, dtype: 'float32' | 'float64' = 'float32'): Tensor {
  return tensor(dtype === 'float32' ? Float32Array.from(d.values) : Float64Array.from(d.values), {
    shape: d.shape,
  });
}

/** max |actual - expected| / max |expected| (normwise relative error). */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: ${actual.length} vs ${expected.length}`);
  }
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/** relativeError computed natively, for tensors too large to copy into JS arrays. */
export function tensorError(actual: Tensor, expected: Tensor): number {
  return tidy(() => {
    const e = expected.to('float64');
    const scale = e.abs().max().item() as number;
    return (actual.to('float64').sub(e).abs().max().item() as number) / Math.max(scale, 1e-30);
  });
}

export function values(t: Tensor): number[] {
  return Array.from(t.toTypedArray() as Float32Array);
}
