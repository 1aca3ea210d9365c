// The model slice (native/binding/model.cpp): a ModelHandle owns one native network; tensors it
// hands out share memory with it.
import type { TensorHandle } from './tensor';

/** What the native builder reads, every field resolved by lib/models.ts. */
export type NativeModelSpec =
  | ({ arch: 'reactnet-a'; binarize: 'activations' | 'both'; width: number } & NativeHead)
  | ({ arch: 'resnet18' | 'resnet34' | 'resnet50'; width: number } & NativeHead)
  | { arch: 'moco'; encoder: NativeModelSpec; dim: number; queueSize: number };

export interface NativeHead {
  head: 'linear' | 'mlp';
  numClasses: number;
  mlpDim: number;
  inChannels: number;
  stem: 'imagenet' | 'small';
}

export interface Complexity {
  /** Multiply-accumulates of real-valued convolutions and linear layers. */
  flops: number;
  /** Multiply-accumulates of convolutions with binary weights and activations. */
  binaryOps: number;
  /** binaryOps / 64 + flops, as the ReActNet and S2-BNN papers count OPs. */
  ops: number;
  parameters: number;
}

export interface LoadResult {
  missing: string[];
  unexpected: string[];
}

export interface ModelHandle {
  readonly arch: string;
  readonly training: boolean;
  readonly featureDim: number;
  forward(x: TensorHandle): TensorHandle;
  features(x: TensorHandle): TensorHandle;
  train(mode: boolean): void;
  namedParameters(): [string, TensorHandle][];
  namedBuffers(): [string, TensorHandle][];
  stateDict(): [string, TensorHandle][];
  loadStateDict(entries: [string, TensorHandle][], strict: boolean): LoadResult;
  to(device: string): void;
  freeze(trainablePrefixes: string[]): number;
  zeroGrad(): void;
  complexity(height: number, width: number): Complexity;
  momentumUpdate(momentum: number): void;
  enqueue(keys: TensorHandle): void;
  unusedModules(): string[];
}

export interface ModelBinding {
  createModel(spec: NativeModelSpec): ModelHandle;
}
