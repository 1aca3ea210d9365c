// The operator slice (native/binding/ops.cpp): the S2-BNN operators with their gradients, the
// packed 1-bit inference ops, and `reference`, the same operators written with plain ATen calls.
import type { TensorHandle } from './tensor';

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

export interface OpsBinding {
  ops: NativeOps & NativePackedOps & { reference: NativeOps };
}
