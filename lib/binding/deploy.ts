// The deployment slice (native/binding/deploy.cpp): a packed ReActNet-A whose binary
// convolutions run on sign bits.
import type { TensorHandle } from './tensor';

export interface PackedModelHandle {
  readonly config: string;
  readonly featureDim: number;
  readonly device: string;
  forward(x: TensorHandle): Promise<TensorHandle>;
  features(x: TensorHandle): Promise<TensorHandle>;
  save(path: string): Promise<void>;
  tensors(): [string, TensorHandle][];
  to(device: string): void;
}

export interface DeployBinding {
  packReActNet(state: [string, TensorHandle][], stem: 'imagenet' | 'small', halfHead: boolean): Promise<{
    model: PackedModelHandle;
    binaryWeights: number;
    zeroWeights: number;
  }>;
  loadPackedModel(path: string): Promise<PackedModelHandle>;
}
