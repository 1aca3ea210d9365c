export {
  Tensor,
  tensor,
  zeros,
  ones,
  empty,
  full,
  rand,
  randn,
  arange,
  cat,
  stack,
  tidy,
  keep,
  noGrad,
  manualSeed,
  setNumThreads,
  getNumThreads,
  cudaDeviceCount,
} from './tensor';
export type { DType, Device, Scalar, NestedArray, TensorOptions, FromDataOptions } from './tensor';
export {
  ops,
  reference,
  signSte,
  signSteBiased,
  binarizeWeight,
  binaryConv2d,
  rprelu,
  distributionLoss,
  infoNce,
} from './ops';
export type { Operators, BinaryConv2dOptions, InfoNceResult } from './ops';
export { native, readBuildInfo, opsLibraryPath, NativeLoadError } from './native';
export type { BuildInfo } from './native';
export { memoryStats, measureMemory, setCpuCacheLimit, emptyCache } from './memory';
export type { MemoryStats } from './memory';
export { Checkpoint, OrderedDict, loadCheckpoint, saveCheckpoint, formatForPath } from './checkpoint';
export type { PyValue, PyKey, CheckpointFormat, CheckpointSummary, TensorInfo, KeyTransform, SaveResult } from './checkpoint';
export { Model, MoCoModel, reactnetA, resnet, moco } from './models';
export type { ReActNetOptions, ResNetOptions, HeadOptions, MoCoOptions, ResNetArch, Complexity, LoadResult, StateDictLike, Head, Stem } from './models';
export { InMemoryDataset, DataLoader, transforms, defaultNormalization, resolveTransform } from './data';
export type { AugmentOptions, Transform, LoaderOptions, Batch } from './data';
export { loadFashionMnist, fashionMnistCachePath, FASHION_MNIST_CLASSES } from './datasets/fashion-mnist';
export type { FashionMnist, FashionMnistOptions } from './datasets/fashion-mnist';
