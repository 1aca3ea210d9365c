// The tensor slice of the addon (native/binding/tensor.cpp): one TensorHandle per at::Tensor,
// and the factories that make them.

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

export interface TensorBinding {
  /** The class of every handle: `instanceof` tells a handle from other values in a tree. */
  TensorHandle: abstract new () => TensorHandle;
  fromTypedArray(data: NativeTypedArray, shape: number[], dtype: DType, copy: boolean): TensorHandle;
  factory(kind: 'zeros' | 'ones' | 'empty' | 'rand' | 'randn', shape: number[], dtype: DType, device?: string): TensorHandle;
  factory(kind: 'full', shape: number[], dtype: DType, device: string | undefined, value: number): TensorHandle;
  arange(start: number, end: number, step: number, dtype: DType): TensorHandle;
  join(kind: 'cat' | 'stack', tensors: TensorHandle[], dim: number): TensorHandle;
}
