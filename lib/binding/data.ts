// The data slice (native/binding/datasets.cpp, loader.cpp): in-memory datasets, ImageFolder trees
// and the batching loader. lib/data.ts validates and resolves every option (defaults included)
// before it reaches this contract; the native side checks its invariants again.
import type { AugmentOptions } from '../data';
import type { TensorHandle } from './tensor';

/** AugmentOptions with its normalization resolved. */
export type NativeAugmentOptions = Omit<AugmentOptions, 'mean' | 'std'> & { mean: number[]; std: number[] };

export type NativeTransform =
  | { kind: 'augment'; options: NativeAugmentOptions }
  | { kind: 'eval'; resize: number; crop: number; mean: number[]; std: number[] };

/** Every loader option, resolved. */
export interface NativeLoaderOptions {
  batchSize: number;
  views: number;
  transform: NativeTransform;
  shuffle: boolean;
  seed: number;
  dropLast: boolean;
  /** 0: the hardware threads. */
  workers: number;
  prefetch: number;
  rank: number;
  worldSize: number;
  strict: boolean;
  cropDecode: boolean;
  dtype: 'float32' | 'uint8' | 'float16';
  pinMemory: boolean | 'auto';
}

export interface SkippedSample {
  path: string;
  reason: string;
}

export interface DatasetHandle {
  readonly length: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly numClasses: number;
  subset(indices: number[] | Int32Array): DatasetHandle;
  images(): TensorHandle;
  labels(): TensorHandle;
}

export interface FolderHandle {
  readonly length: number;
  readonly channels: number;
  readonly root: string;
  classes(): string[];
  path(index: number): string;
  subset(indices: number[] | Int32Array): FolderHandle;
  labels(): TensorHandle;
  read(index: number): Promise<TensorHandle>;
  index(): { path: string; status: string; reason: string };
}

export interface RawBatch {
  views: TensorHandle[];
  labels: TensorHandle;
  indices: TensorHandle;
  epoch: number;
  index: number;
}

export interface LoaderHandle {
  readonly batchesPerEpoch: number;
  readonly samplesPerRank: number;
  readonly workers: number;
  readonly pinned: boolean;
  readonly closed: boolean;
  startEpoch(epoch: number, startBatch: number): void;
  next(): Promise<RawBatch | null>;
  epochOrder(epoch: number): TensorHandle;
  skipped(): SkippedSample[];
  close(): void;
}

export interface DataBinding {
  createInMemoryDataset(images: TensorHandle, labels: TensorHandle, numClasses: number): DatasetHandle;
  /** index '' means no index file. */
  openImageFolder(root: string, channels: number, index: string): Promise<FolderHandle>;
  createLoader(dataset: DatasetHandle | FolderHandle, options: NativeLoaderOptions): LoaderHandle;
}
