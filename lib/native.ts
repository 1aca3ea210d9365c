// The one place that loads the native addon (its contract: lib/binding). Loading
// explains each way it can fail (not built, libtorch gone or changed, missing shared library)
// with the command that fixes it, instead of a bare dlopen or symbol error.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import type { NativeAddon } from './binding';

export type {
  BinaryOpName,
  BuildFacts,
  DType,
  NativeAddon,
  NativeOps,
  NativePackedOps,
  NativeTypedArray,
  ReduceOpName,
  TensorHandle,
  UnaryOpName,
} from './binding';

/** What `npm run build` recorded about the libtorch the addon was compiled against. */
export interface BuildInfo {
  libtorchVersion: string;
  libtorchSource: string;
  libtorchRoot: string;
  libtorchLibDir: string;
  libtorchIncludeDir: string;
  cuda: boolean;
  node: string;
  /** 'source': built on this machine; 'prebuilt': shipped in the package. Absent in older records. */
  binary?: 'source' | 'prebuilt';
  /** A prebuilt binary's key (platform, torch major.minor, CUDA major, C++ ABI). */
  prebuilt?: string;
  /** The exact libtorch a prebuilt binary was compiled against (same major.minor as libtorchVersion). */
  builtAgainst?: string;
  /** Why a source build was not a prebuilt binary (npm 7+ hides the install's own output). */
  sourceReason?: string;
  builtAt: string;
}

export class NativeLoadError extends Error {
  readonly code = 'S2BNN_LOAD';
  constructor(message: string) {
    super(message);
    this.name = 'NativeLoadError';
  }
}

const packageRoot = path.resolve(__dirname, '..');
const buildDir = path.join(packageRoot, 'build', process.env.S2BNN_DEBUG_BUILD === '1' ? 'Debug' : 'Release');
const REBUILD = 'rebuild it with `npm rebuild s2bnn` (or `npm run build` in a checkout of s2bnn)';

interface LibtorchResolver {
  readVersionHeader(includeDirs: string[]): string | null;
  describeFolder(root: string, source: string): { version: string } | null;
  HOW_TO_PROVIDE: string;
}

// eslint-disable-next-line @typescript-eslint/no-var-requires
const resolver: LibtorchResolver = require(path.join(packageRoot, 'scripts', 'libtorch.js'));

export function readBuildInfo(): BuildInfo | null {
  const file = path.join(buildDir, 's2bnn-build.json');
  if (!fs.existsSync(file)) return null;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as BuildInfo;
}

/** @internal The libtorch the addon was built against must still be the one it will load. */
export function checkLibtorch(info: BuildInfo): void {
  const installed = resolver.readVersionHeader([info.libtorchIncludeDir]);
  if (installed === null) {
    throw new NativeLoadError(
      `s2bnn was built against libtorch ${info.libtorchVersion} from ${info.libtorchRoot} (${info.libtorchSource}), ` +
        `which is no longer there. Provide it again or ${REBUILD}.\n${resolver.HOW_TO_PROVIDE}`,
    );
  }
  if (installed !== info.libtorchVersion) {
    throw new NativeLoadError(
      `s2bnn was built against libtorch ${info.libtorchVersion}, but ${info.libtorchRoot} now holds libtorch ` +
        `${installed}; loading would fail with missing symbols. ${REBUILD[0].toUpperCase()}${REBUILD.slice(1)}.`,
    );
  }
  const requested = process.env.LIBTORCH;
  if (requested && path.resolve(requested) !== path.resolve(info.libtorchRoot)) {
    const other = resolver.describeFolder(path.resolve(requested), 'LIBTORCH');
    if (other && other.version !== info.libtorchVersion) {
      throw new NativeLoadError(
        `LIBTORCH=${requested} is libtorch ${other.version}, but s2bnn was built against ${info.libtorchVersion} ` +
          `from ${info.libtorchRoot}. Unset LIBTORCH or ${REBUILD}.`,
      );
    }
  }
}

function explainLoadFailure(err: Error, info: BuildInfo): NativeLoadError {
  const message = err.message ?? String(err);
  const missing = /(lib[\w.+-]+\.so[\w.]*): cannot open shared object file/.exec(message);
  if (missing) {
    return new NativeLoadError(
      `s2bnn's addon needs ${missing[1]}, which the dynamic linker cannot find. It was built against libtorch ` +
        `${info.libtorchVersion} in ${info.libtorchLibDir}. Restore that libtorch or ${REBUILD}.\n(${message})`,
    );
  }
  if (/undefined symbol/.test(message)) {
    return new NativeLoadError(
      `s2bnn's addon does not match the libtorch it loaded (built against ${info.libtorchVersion} in ` +
        `${info.libtorchLibDir}); ${REBUILD}.\n(${message})`,
    );
  }
  return new NativeLoadError(`s2bnn's native addon failed to load: ${message}`);
}

function integerFromEnv(name: string, minimum: number): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < minimum) {
    throw new NativeLoadError(`${name} must be an integer >= ${minimum}, got '${text}'`);
  }
  return n;
}

function defaultThreads(): number {
  return (
    integerFromEnv('S2BNN_NUM_THREADS', 1) ??
    (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length)
  );
}

// Freed CPU blocks kept for reuse: at most a quarter of the machine's memory unless told.
function defaultCpuCacheBytes(): number {
  const mib = integerFromEnv('S2BNN_CPU_CACHE_MB', 0);
  return mib !== undefined ? mib * 2 ** 20 : Math.floor(os.totalmem() / 4);
}

let addon: NativeAddon | undefined;

/** The native addon, loaded and configured on first use. */
export function native(): NativeAddon {
  if (addon) return addon;
  const file = path.join(buildDir, 's2bnn.node');
  const info = readBuildInfo();
  if (!fs.existsSync(file) || info === null) {
    throw new NativeLoadError(`s2bnn's native addon is not built (no ${file}); ${REBUILD}.`);
  }
  checkLibtorch(info);
  let loaded: NativeAddon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    loaded = require(file) as NativeAddon;
  } catch (err) {
    throw explainLoadFailure(err as Error, info);
  }
  const compiledAgainst = info.builtAgainst ?? info.libtorchVersion;
  if (loaded.build.libtorchVersion !== compiledAgainst) {
    throw new NativeLoadError(
      `s2bnn's addon reports libtorch ${loaded.build.libtorchVersion} but its build record says ` +
        `${compiledAgainst}; ${REBUILD}.`,
    );
  }
  // libtorch defaults to one intra-op thread on some systems; use the machine unless told.
  loaded.setNumThreads(defaultThreads());
  loaded.setCpuCacheLimit(defaultCpuCacheBytes());
  addon = loaded;
  return addon;
}

/** Path of the operator library, for `torch.ops.load_library(path)` in Python. */
export function opsLibraryPath(): string {
  return path.join(buildDir, 'libs2bnn_ops.so');
}
