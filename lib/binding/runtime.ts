// The runtime slice (native/binding/addon.cpp): what the addon was built with, and the process-wide
// controls of libtorch (threads, seeds, grad mode, allocator, CUDA).

export interface BuildFacts {
  libtorchVersion: string;
  cuda: boolean;
  cudaVersion: string | null;
  nccl: string | null;
  imageCodecs: boolean;
  cxx11Abi: boolean;
}

export interface NativeMemoryStats {
  current: number;
  peak: number;
  allocations: number;
  cached: number;
  cacheLimit: number;
}

export interface RuntimeBinding {
  build: BuildFacts;
  setNumThreads(threads: number): void;
  getNumThreads(): number;
  /** Returns the previous setting. */
  setPackedTrainingForward(on: boolean): boolean;
  manualSeed(seed: number): void;
  /** Returns the previous setting. */
  setGradEnabled(enabled: boolean): boolean;
  isGradEnabled(): boolean;
  memoryStats(resetPeak?: boolean): NativeMemoryStats;
  setCpuCacheLimit(bytes: number): void;
  emptyCache(): void;
  cudaDeviceCount(): number;
  cudaSynchronize(): void;
  parallelInfo(): string;
}
