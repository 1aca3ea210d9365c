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
  setPackedTrainingForward,
  getNumThreads,
  cudaDeviceCount,
  cudaSynchronize,
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
  packSigns,
  packWeights,
  bconv2dPacked,
} from './ops';
export type { Operators, BinaryConv2dOptions, InfoNceResult, PackedOperators, Bconv2dPackedOptions } from './ops';
export { native, readBuildInfo, opsLibraryPath, NativeLoadError } from './native';
export type { BuildInfo } from './native';
export { memoryStats, measureMemory, setCpuCacheLimit, emptyCache } from './memory';
export type { MemoryStats } from './memory';
export { Checkpoint, OrderedDict, loadCheckpoint, saveCheckpoint, formatForPath, encoderState } from './checkpoint';
export type { PyValue, PyKey, CheckpointFormat, CheckpointSummary, TensorInfo, KeyTransform, SaveResult } from './checkpoint';
export { Model, MoCoModel, reactnetA, resnet, moco } from './models';
export type { ReActNetOptions, ResNetOptions, HeadOptions, MoCoOptions, ResNetArch, Complexity, LoadResult, StateDictLike, Head, Stem } from './models';
export { InMemoryDataset, ImageFolder, DataLoader, transforms, defaultNormalization, resolveTransform, defaultIndexPath } from './data';
export type { AugmentOptions, Transform, LoaderOptions, Batch, Dataset, SkippedSample, ImageFolderOptions, ImageFolderIndexInfo } from './data';
export { loadFashionMnist, fashionMnistCachePath, FASHION_MNIST_CLASSES } from './datasets/fashion-mnist';
export type { FashionMnist, FashionMnistOptions } from './datasets/fashion-mnist';
export { Trainer, NonFiniteLossError, RECIPES, PRECISIONS } from './train/trainer';
export type { Recipe, TrainerOptions, StepResult, OptimizerOptions, AdamOptions, SgdOptions, Precision } from './train/trainer';
export { fit, TrainingError } from './train/loop';
export type { BatchSource, BatchLike, Position, StepInfo, EpochInfo, FitOptions, FitResult, Callback } from './train/loop';
export { learningRate, parseSchedule, SCHEDULES } from './train/schedule';
export type { Schedule, ScheduleName } from './train/schedule';
export { pretrain, defaultConfig, recipeDefaults, buildStudent, loadTeacher, PRETRAIN_RECIPES } from './train/pretrain';
export type { PretrainConfig, PretrainRecipe, PretrainOptions, PretrainResult, Arch } from './train/pretrain';
export {
  evaluate, extractFeatures, knnAccuracy, knnEvaluate, linearEvaluation, loadBackbone, featureStatistics, fineTune, labelFraction,
  saveEvaluationCheckpoint,
} from './train/evaluate';
export type { Accuracy, EvaluationResult, KnnOptions, LinearEvalOptions, LinearEvalResult, FineTuneOptions } from './train/evaluate';
export { encoderSpec, classifierFor, headClasses, isLeanLayout, leanParameterNames, leanLayoutNotice } from './train/specs';
export type { EncoderSpec } from './train/specs';
export { reproduce, PRESETS, PAPER_TOP1, formatReproduceTable } from './train/reproduce';
export type { ReproducePreset, ReproduceResult, ReproduceRow, StudentChanges, TeacherChanges } from './train/reproduce';
export { RunReporter } from './train/report';
export { predictionStats, writeCalibrationPlots } from './train/calibration';
export * as report from './report';
export { PackedModel, exportPacked, inferPacked } from './deploy';
export type { PackedModelConfig, PackOptions, PackResult, ExportResult, InferenceResult } from './deploy';
