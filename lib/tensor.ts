// Tensor: a typed, disposable view of a libtorch tensor, plus the scope helper (tidy) that frees
// every tensor created inside it. Memory lives natively; dispose() frees it at once, garbage
// collection frees what is forgotten (native bytes are reported to V8).
import { inspect } from 'util';

import { BinaryOpName, DType, NativeTypedArray, ReduceOpName, TensorHandle, UnaryOpName, native } from './native';

export type { DType } from './native';
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export type Scalar = number | boolean;
export type NestedArray<T> = T | NestedArray<T>[];

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

export interface FromDataOptions extends TensorOptions {
  /** Shape for flat TypedArray data (defaults to [length]). */
  shape?: number[];
  /**
   * TypedArray data is shared with the tensor (zero-copy, like torch.from_numpy) unless `copy`
   * is set: writes on either side are visible to the other, and the array must not be
   * transferred to another thread while the tensor lives.
   */
  copy?: boolean;
}

const DTYPES: ReadonlySet<string> = new Set([
  'float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool',
]);

function checkDtype(dtype: string): DType {
  if (!DTYPES.has(dtype)) {
    throw new TypeError(`unknown dtype '${dtype}' (expected one of ${[...DTYPES].join(', ')})`);
  }
  return dtype as DType;
}

// ---- scopes ------------------------------------------------------------------------------------

class Scope {
  readonly tensors = new Set<Tensor>();
}

const scopes: Scope[] = [];

function track(tensor: Tensor): void {
  const scope = scopes[scopes.length - 1];
  if (scope) scope.tensors.add(tensor);
}

function collectTensors(value: unknown, into: Set<Tensor>, seen = new Set<unknown>()): void {
  if (value instanceof Tensor) {
    into.add(value);
    return;
  }
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    for (const item of value) collectTensors(item, into, seen);
  } else if (value instanceof Map) {
    for (const item of value.values()) collectTensors(item, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const item of Object.values(value)) collectTensors(item, into, seen);
  }
}

/**
 * Runs `fn` and disposes every tensor created inside it, except the tensors it returns (found in
 * returned arrays, Maps and plain objects) and those passed to keep(). Survivors belong to the
 * enclosing tidy, if any. `fn` must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Scope();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    scopes.pop();
    for (const tensor of scope.tensors) tensor.dispose();
    throw err;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const tensor of scope.tensors) tensor.dispose();
    throw new TypeError('tidy() takes a synchronous function; its tensors were disposed');
  }
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  const parent = scopes[scopes.length - 1];
  for (const tensor of scope.tensors) {
    if (survivors.has(tensor)) {
      if (parent) parent.tensors.add(tensor);
    } else {
      tensor.dispose();
    }
  }
  return result;
}

/** Exempts a tensor from disposal by the enclosing tidy() scopes. */
export function keep<T extends Tensor>(tensor: T): T {
  for (const scope of scopes) scope.tensors.delete(tensor);
  return tensor;
}

// ---- Tensor ------------------------------------------------------------------------------------

export class Tensor {
  /** @internal The native handle; use the methods instead. */
  readonly handle: TensorHandle;

  /** @internal Tensors are made by tensor(), zeros() etc. and by operations. */
  constructor(handle: TensorHandle) {
    this.handle = handle;
    track(this);
  }

  get shape(): number[] {
    return this.handle.shape;
  }
  get dtype(): DType {
    return this.handle.dtype;
  }
  get device(): string {
    return this.handle.device;
  }
  get ndim(): number {
    return this.handle.shape.length;
  }
  get numel(): number {
    return this.handle.shape.reduce((a, b) => a * b, 1);
  }
  get isDisposed(): boolean {
    return this.handle.isDisposed;
  }
  get requiresGrad(): boolean {
    return this.handle.requiresGrad;
  }

  /** Sets requires_grad in place and returns this tensor. */
  requiresGrad_(flag = true): this {
    this.handle.setRequiresGrad(flag);
    return this;
  }

  /** The accumulated gradient (a new Tensor sharing its memory), or null. */
  get grad(): Tensor | null {
    const g = this.handle.grad();
    return g === null ? null : new Tensor(g);
  }

  backward(gradient?: Tensor): void {
    this.handle.backward(gradient?.handle);
  }

  dispose(): void {
    this.handle.dispose();
  }

  /**
   * The tensor's memory as a TypedArray: zero-copy for contiguous CPU tensors (writes go to the
   * tensor), a copy otherwise. float16/bfloat16 come back as raw Uint16Array bits, bool as Uint8Array.
   */
  data(): NativeTypedArray {
    return this.handle.data();
  }

  /** A copy of the values; float16/bfloat16 are converted to Float32Array. */
  toTypedArray(): NativeTypedArray {
    return this.handle.toTypedArray();
  }

  /** The values as nested JS arrays (numbers; bigint for int64; booleans for bool). */
  toArray(): NestedArray<number | bigint | boolean> {
    const flat = this.toTypedArray();
    const values: (number | bigint | boolean)[] =
      this.dtype === 'bool' ? Array.from(flat as Uint8Array, (v) => v !== 0) : Array.from(flat as ArrayLike<number | bigint>);
    const shape = this.shape;
    if (shape.length === 0) return values[0];
    const build = (dim: number, offset: number): NestedArray<number | bigint | boolean> => {
      const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      const out: NestedArray<number | bigint | boolean>[] = [];
      for (let i = 0; i < shape[dim]; i++) {
        out.push(dim === shape.length - 1 ? values[offset + i] : build(dim + 1, offset + i * stride));
      }
      return out;
    };
    return build(0, 0);
  }

  /** The single value of a one-element tensor (bigint for int64). */
  item(): number | bigint | boolean {
    return this.handle.item();
  }

  /** Moves to a device ('cpu', 'cuda', 'cuda:1') and/or converts to a dtype. */
  to(target: Device | DType | { device?: Device; dtype?: DType }): Tensor {
    if (typeof target === 'string') {
      return DTYPES.has(target)
        ? new Tensor(this.handle.to(null, target as DType))
        : new Tensor(this.handle.to(target, null));
    }
    return new Tensor(this.handle.to(target.device ?? null, target.dtype ? checkDtype(target.dtype) : null));
  }
  cpu(): Tensor {
    return this.to('cpu');
  }
  cuda(index = 0): Tensor {
    return this.to(`cuda:${index}`);
  }
  float(): Tensor {
    return this.to('float32');
  }

  private unary(op: UnaryOpName): Tensor {
    return new Tensor(this.handle.unary(op));
  }
  private binary(op: BinaryOpName, other: Tensor | Scalar): Tensor {
    return new Tensor(this.handle.binary(op, other instanceof Tensor ? other.handle : other));
  }
  private reduce(op: ReduceOpName, dims: number | number[] | undefined, keepdim: boolean): Tensor {
    const list = dims === undefined ? null : Array.isArray(dims) ? dims : [dims];
    return new Tensor(this.handle.reduce(op, list, keepdim));
  }

  neg(): Tensor { return this.unary('neg'); }
  abs(): Tensor { return this.unary('abs'); }
  exp(): Tensor { return this.unary('exp'); }
  log(): Tensor { return this.unary('log'); }
  sqrt(): Tensor { return this.unary('sqrt'); }
  rsqrt(): Tensor { return this.unary('rsqrt'); }
  square(): Tensor { return this.unary('square'); }
  reciprocal(): Tensor { return this.unary('reciprocal'); }
  relu(): Tensor { return this.unary('relu'); }
  sigmoid(): Tensor { return this.unary('sigmoid'); }
  tanh(): Tensor { return this.unary('tanh'); }
  sign(): Tensor { return this.unary('sign'); }
  floor(): Tensor { return this.unary('floor'); }
  ceil(): Tensor { return this.unary('ceil'); }
  round(): Tensor { return this.unary('round'); }
  logicalNot(): Tensor { return this.unary('logicalNot'); }
  isnan(): Tensor { return this.unary('isnan'); }
  isfinite(): Tensor { return this.unary('isfinite'); }
  contiguous(): Tensor { return this.unary('contiguous'); }
  clone(): Tensor { return this.unary('clone'); }
  detach(): Tensor { return this.unary('detach'); }
  /** Transpose of a 2-D tensor. */
  t(): Tensor { return this.unary('t'); }

  add(other: Tensor | Scalar): Tensor { return this.binary('add', other); }
  sub(other: Tensor | Scalar): Tensor { return this.binary('sub', other); }
  mul(other: Tensor | Scalar): Tensor { return this.binary('mul', other); }
  div(other: Tensor | Scalar): Tensor { return this.binary('div', other); }
  pow(other: Tensor | Scalar): Tensor { return this.binary('pow', other); }
  maximum(other: Tensor | Scalar): Tensor { return this.binary('maximum', other); }
  minimum(other: Tensor | Scalar): Tensor { return this.binary('minimum', other); }
  eq(other: Tensor | Scalar): Tensor { return this.binary('eq', other); }
  ne(other: Tensor | Scalar): Tensor { return this.binary('ne', other); }
  lt(other: Tensor | Scalar): Tensor { return this.binary('lt', other); }
  le(other: Tensor | Scalar): Tensor { return this.binary('le', other); }
  gt(other: Tensor | Scalar): Tensor { return this.binary('gt', other); }
  ge(other: Tensor | Scalar): Tensor { return this.binary('ge', other); }
  logicalAnd(other: Tensor): Tensor { return this.binary('logicalAnd', other); }
  logicalOr(other: Tensor): Tensor { return this.binary('logicalOr', other); }
  matmul(other: Tensor): Tensor { return this.binary('matmul', other); }

  /** Sum over all elements, or over `dims`. */
  sum(dims?: number | number[], keepdim = false): Tensor { return this.reduce('sum', dims, keepdim); }
  mean(dims?: number | number[], keepdim = false): Tensor { return this.reduce('mean', dims, keepdim); }
  /** Maximum over all elements, or the values over `dims` (amax). */
  max(dims?: number | number[], keepdim = false): Tensor { return this.reduce('max', dims, keepdim); }
  min(dims?: number | number[], keepdim = false): Tensor { return this.reduce('min', dims, keepdim); }
  /** Index of the maximum (flat when `dim` is omitted), as int64. */
  argmax(dim?: number, keepdim = false): Tensor { return this.reduce('argmax', dim, keepdim); }
  argmin(dim?: number, keepdim = false): Tensor { return this.reduce('argmin', dim, keepdim); }
  softmax(dim: number): Tensor { return this.reduce('softmax', dim, false); }
  logSoftmax(dim: number): Tensor { return this.reduce('logSoftmax', dim, false); }

  reshape(...shape: number[] | [number[]]): Tensor {
    return new Tensor(this.handle.shapeOp('reshape', flattenArgs(shape)));
  }
  view(...shape: number[] | [number[]]): Tensor {
    return new Tensor(this.handle.shapeOp('view', flattenArgs(shape)));
  }
  expand(...shape: number[] | [number[]]): Tensor {
    return new Tensor(this.handle.shapeOp('expand', flattenArgs(shape)));
  }
  permute(...dims: number[] | [number[]]): Tensor {
    return new Tensor(this.handle.shapeOp('permute', flattenArgs(dims)));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(this.handle.shapeOp('transpose', dim0, dim1));
  }
  /** Elements start..end (exclusive, negatives count from the end) with `step` along `dim`. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return new Tensor(this.handle.shapeOp('slice', dim, start ?? null, end ?? null, step));
  }
  select(dim: number, index: number): Tensor {
    return new Tensor(this.handle.shapeOp('select', dim, index));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(dim === undefined ? this.handle.shapeOp('squeeze') : this.handle.shapeOp('squeeze', dim));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(this.handle.shapeOp('unsqueeze', dim));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return new Tensor(this.handle.shapeOp('flatten', startDim, endDim));
  }

  toString(): string {
    if (this.isDisposed) return 'Tensor(disposed)';
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})\n${this.handle.format()}`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

function flattenArgs(args: number[] | [number[]]): number[] {
  return args.length === 1 && Array.isArray(args[0]) ? (args[0] as number[]) : (args as number[]);
}

// ---- creation ----------------------------------------------------------------------------------

function finish(handle: TensorHandle, options: TensorOptions): Tensor {
  let out = handle;
  if (options.device && options.device !== 'cpu') {
    const moved = out.to(options.device, null);
    out.dispose();
    out = moved;
  }
  if (options.requiresGrad) out.setRequiresGrad(true);
  return new Tensor(out);
}

function naturalDtype(data: NativeTypedArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) return 'uint8';
  // Uint16Array holds raw float16 bits unless told otherwise (dtype: 'bfloat16').
  return 'float16';
}

function isTypedArray(value: unknown): value is NativeTypedArray {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

function inferShape(data: unknown, where = 'data'): number[] {
  if (!Array.isArray(data)) return [];
  if (data.length === 0) return [0];
  const inner = inferShape(data[0], `${where}[0]`);
  for (let i = 1; i < data.length; i++) {
    const other = inferShape(data[i], `${where}[${i}]`);
    if (other.length !== inner.length || other.some((d, k) => d !== inner[k])) {
      throw new TypeError(
        `${where} is ragged: ${where}[0] has shape [${inner.join(', ')}] but ${where}[${i}] has shape [${other.join(', ')}]`,
      );
    }
  }
  return [data.length, ...inner];
}

function flatValues(data: NestedArray<number | boolean | bigint>, out: (number | boolean | bigint)[]): void {
  if (Array.isArray(data)) {
    for (const item of data) flatValues(item, out);
  } else {
    out.push(data);
  }
}

function typedArrayFor(dtype: DType, values: (number | boolean | bigint)[]): NativeTypedArray {
  const numbers = () => values.map((v) => {
    if (typeof v === 'bigint') return Number(v);
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (typeof v !== 'number') throw new TypeError(`tensor data must hold numbers, booleans or bigints, got ${typeof v}`);
    return v;
  });
  switch (dtype) {
    case 'float64': return Float64Array.from(numbers());
    case 'int64': return BigInt64Array.from(values.map((v) => (typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v))))));
    case 'int32': return Int32Array.from(numbers());
    case 'int16': return Int16Array.from(numbers());
    case 'int8': return Int8Array.from(numbers());
    case 'uint8':
    case 'bool': return Uint8Array.from(numbers());
    default: return Float32Array.from(numbers());
  }
}

/**
 * Creates a tensor from a number, nested arrays (numbers, booleans or bigints) or a TypedArray.
 * Nested arrays default to float32 (bool for booleans, int64 for bigints); TypedArrays keep
 * their element type and are shared zero-copy unless `copy` is set or the dtype differs.
 */
export function tensor(data: NestedArray<number | boolean | bigint> | NativeTypedArray, options: FromDataOptions = {}): Tensor {
  const api = native();
  if (isTypedArray(data)) {
    const shape = options.shape ?? [data.length];
    const requested = options.dtype ? checkDtype(options.dtype) : naturalDtype(data);
    const storageFits =
      requested === naturalDtype(data) ||
      (requested === 'bool' && data instanceof Uint8Array) ||
      (requested === 'bfloat16' && data instanceof Uint16Array);
    if (storageFits) return finish(api.fromTypedArray(data, shape, requested, options.copy === true), options);
    const natural = api.fromTypedArray(data, shape, naturalDtype(data), false);
    const converted = natural.to(null, requested);
    natural.dispose();
    return finish(converted, options);
  }
  const shape = inferShape(data);
  if (options.shape && options.shape.join() !== shape.join()) {
    throw new TypeError(`options.shape [${options.shape.join(', ')}] does not match the data's shape [${shape.join(', ')}]`);
  }
  const values: (number | boolean | bigint)[] = [];
  flatValues(data, values);
  const dtype = options.dtype
    ? checkDtype(options.dtype)
    : typeof values[0] === 'boolean' ? 'bool' : typeof values[0] === 'bigint' ? 'int64' : 'float32';
  if (dtype === 'float16' || dtype === 'bfloat16') {
    const staged = api.fromTypedArray(Float32Array.from(values.map(Number)), shape, 'float32', true);
    const converted = staged.to(null, dtype);
    staged.dispose();
    return finish(converted, options);
  }
  return finish(api.fromTypedArray(typedArrayFor(dtype, values), shape, dtype, false), options);
}

type Factory = 'zeros' | 'ones' | 'empty' | 'rand' | 'randn';

function make(kind: Factory, shape: number[], options: TensorOptions): Tensor {
  const handle = native().factory(kind, shape, checkDtype(options.dtype ?? 'float32'), options.device);
  if (options.requiresGrad) handle.setRequiresGrad(true);
  return new Tensor(handle);
}

export const zeros = (shape: number[], options: TensorOptions = {}): Tensor => make('zeros', shape, options);
export const ones = (shape: number[], options: TensorOptions = {}): Tensor => make('ones', shape, options);
export const empty = (shape: number[], options: TensorOptions = {}): Tensor => make('empty', shape, options);
/** Uniform on [0, 1). Seed with manualSeed(). */
export const rand = (shape: number[], options: TensorOptions = {}): Tensor => make('rand', shape, options);
/** Standard normal. Seed with manualSeed(). */
export const randn = (shape: number[], options: TensorOptions = {}): Tensor => make('randn', shape, options);

export function full(shape: number[], value: number, options: TensorOptions = {}): Tensor {
  const handle = native().factory('full', shape, checkDtype(options.dtype ?? 'float32'), options.device, value);
  if (options.requiresGrad) handle.setRequiresGrad(true);
  return new Tensor(handle);
}

/** Values start, start + step, ... below end (int64 by default, like torch.arange with integers). */
export function arange(start: number, end?: number, step = 1, options: TensorOptions = {}): Tensor {
  const [from, to] = end === undefined ? [0, start] : [start, end];
  const integral = [from, to, step].every(Number.isInteger);
  const dtype = checkDtype(options.dtype ?? (integral ? 'int64' : 'float32'));
  return finish(native().arange(from, to, step, dtype), options);
}

export function cat(tensors: Tensor[], dim = 0): Tensor {
  return new Tensor(native().join('cat', tensors.map((t) => t.handle), dim));
}

export function stack(tensors: Tensor[], dim = 0): Tensor {
  return new Tensor(native().join('stack', tensors.map((t) => t.handle), dim));
}

// ---- runtime -----------------------------------------------------------------------------------

/** Runs `fn` with gradient recording off (like torch.no_grad); `fn` must be synchronous. */
export function noGrad<T>(fn: () => T): T {
  const api = native();
  const previous = api.setGradEnabled(false);
  try {
    return fn();
  } finally {
    api.setGradEnabled(previous);
  }
}

export function manualSeed(seed: number): void {
  native().manualSeed(seed);
}

/** libtorch's intra-op threads (defaults to os.availableParallelism() or S2BNN_NUM_THREADS). */
export function setNumThreads(threads: number): void {
  native().setNumThreads(threads);
}

/**
 * Whether step-2 binary convolutions (binarized input and weights, float32, CPU) run their
 * training forward on bits (xnor-popcount, exact integer accumulators times alpha) instead of a
 * float convolution of the +-1 operands: the same values up to float rounding, faster. Inputs or
 * weights with an exact zero (binarized to 0 in training) always take the float path. On by
 * default; S2BNN_PACKED_FORWARD=0 turns it off at start-up. Returns the previous setting.
 */
export function setPackedTrainingForward(on: boolean): boolean {
  return native().setPackedTrainingForward(on);
}

export function getNumThreads(): number {
  return native().getNumThreads();
}

export function cudaDeviceCount(): number {
  return native().cudaDeviceCount();
}

/** Waits until the GPU has run everything queued (nothing to do without a CUDA device). */
export function cudaSynchronize(): void {
  native().cudaSynchronize();
}
