// The one place that loads the native addon, and the typed view of every binding. Loading
// explains each way it can fail (not built, libtorch gone or changed, missing shared library)
// with the command that fixes it, instead of a bare dlopen or symbol error.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

export type NativeTypedArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Uint16Array;

export type UnaryOpName =
  | 'neg' | 'abs' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'square' | 'reciprocal' | 'relu'
  | 'sigmoid' | 'tanh' | 'sign' | 'floor' | 'ceil' | 'round' | 'logicalNot' | 'isnan'
  | 'isfinite' | 'contiguous' | 'clone' | 'detach' | 't';

export type BinaryOpName =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum' | 'eq' | 'ne' | 'lt' | 'le'
  | 'gt' | 'ge' | 'logicalAnd' | 'logicalOr' | 'matmul';

export type ReduceOpName =
  | 'sum' | 'mean' | 'max' | 'min' | 'argmax' | 'argmin' | 'softmax' | 'logSoftmax';

export interface TensorHandle {
  readonly isDisposed: boolean;
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: string;
  readonly requiresGrad: boolean;
  dispose(): void;
  setRequiresGrad(flag: boolean): void;
  grad(): TensorHandle | null;
  backward(gradient?: TensorHandle): void;
  data(): NativeTypedArray;
  toTypedArray(): NativeTypedArray;
  item(): number | bigint | boolean;
  to(device: string | null, dtype: DType | null): TensorHandle;
  format(): string;
  unary(op: UnaryOpName): TensorHandle;
  binary(op: BinaryOpName, other: TensorHandle | number | boolean): TensorHandle;
  reduce(op: ReduceOpName, dims: number[] | null, keepdim: boolean): TensorHandle;
  shapeOp(op: 'reshape' | 'view' | 'expand' | 'permute', shape: number[]): TensorHandle;
  shapeOp(op: 'transpose', dim0: number, dim1: number): TensorHandle;
  shapeOp(op: 'slice', dim: number, start: number | null, end: number | null, step: number): TensorHandle;
  shapeOp(op: 'select', dim: number, index: number): TensorHandle;
  shapeOp(op: 'squeeze', dim?: number): TensorHandle;
  shapeOp(op: 'unsqueeze', dim: number): TensorHandle;
  shapeOp(op: 'flatten', startDim: number, endDim: number): TensorHandle;
}

type Pair = number | [number, number];

export interface NativeOps {
  signSte(x: TensorHandle): TensorHandle;
  signSteBiased(x: TensorHandle, bias: TensorHandle): TensorHandle;
  binarizeWeight(w: TensorHandle): TensorHandle;
  binaryConv2d(x: TensorHandle, w: TensorHandle, stride: Pair, padding: Pair,
    binarizeInput: boolean, binarizeWeight: boolean, inputBias: TensorHandle | null): TensorHandle;
  rprelu(x: TensorHandle, biasIn: TensorHandle, weight: TensorHandle, biasOut: TensorHandle): TensorHandle;
  distributionLoss(student: TensorHandle, teacher: TensorHandle, temperature: number): TensorHandle;
  infoNce(q: TensorHandle, k: TensorHandle, queue: TensorHandle, temperature: number): [TensorHandle, TensorHandle];
}

/** The packed (1-bit) inference ops; `kernel` names a CPU variant (null: the dispatched op). */
export interface NativePackedOps {
  packSigns(x: TensorHandle, bias: TensorHandle | null): TensorHandle;
  packWeights(w: TensorHandle): TensorHandle;
  bconv2dPacked(x: TensorHandle, w: TensorHandle, channels: number, stride: number, padding: number,
    scale: TensorHandle | null, shift: TensorHandle | null, kernel: string | null): TensorHandle;
  bconv2dPackedKernels(): string[];
}

export interface NativeAddon {
  build: { libtorchVersion: string; cuda: boolean; cudaVersion: string | null; nccl: string | null; imageCodecs: boolean; cxx11Abi: boolean };
  setNumThreads(threads: number): void;
  getNumThreads(): number;
  setPackedTrainingForward(on: boolean): boolean;
  manualSeed(seed: number): void;
  setGradEnabled(enabled: boolean): boolean;
  isGradEnabled(): boolean;
  memoryStats(resetPeak?: boolean): { current: number; peak: number; allocations: number; cached: number; cacheLimit: number };
  setCpuCacheLimit(bytes: number): void;
  emptyCache(): void;
  cudaDeviceCount(): number;
  cudaSynchronize(): void;
  parallelInfo(): string;
  TensorHandle: { prototype: TensorHandle };
  fromTypedArray(data: NativeTypedArray, shape: number[], dtype: DType, copy: boolean): TensorHandle;
  factory(kind: 'zeros' | 'ones' | 'empty' | 'rand' | 'randn', shape: number[], dtype: DType, device?: string): TensorHandle;
  factory(kind: 'full', shape: number[], dtype: DType, device: string | undefined, value: number): TensorHandle;
  arange(start: number, end: number, step: number, dtype: DType): TensorHandle;
  join(kind: 'cat' | 'stack', tensors: TensorHandle[], dim: number): TensorHandle;
  ops: NativeOps & NativePackedOps & { reference: NativeOps };
}

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
