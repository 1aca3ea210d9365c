// CPU tensor memory, counted by the s2bnn CPU allocator (native/ops/cpu_allocator.cpp), which
// also keeps freed blocks of 256 KiB and more for reuse (S2BNN_CPU_CACHE_MB, default a quarter
// of the machine's memory).
import { native } from './native';

export interface MemoryStats {
  /** Bytes of CPU tensor memory in use (by size class), allocated since s2bnn loaded. */
  current: number;
  /** Highest `current` since load or the last reset. */
  peak: number;
  /** Number of allocations counted. */
  allocations: number;
  /** Freed bytes kept for reuse. */
  cached: number;
  /** Most bytes the cache may keep. */
  cacheLimit: number;
}

export function memoryStats(resetPeak = false): MemoryStats {
  return native().memoryStats(resetPeak);
}

/**
 * Runs `fn` and reports the peak bytes it allocated above what was live when it started, and the
 * bytes still held when it returned (e.g. tensors saved for backward).
 */
export function measureMemory<T>(fn: () => T): { result: T; peakBytes: number; retainedBytes: number } {
  const before = memoryStats(true);
  const result = fn();
  const after = memoryStats(false);
  return { result, peakBytes: after.peak - before.current, retainedBytes: after.current - before.current };
}

/** Sets how many freed bytes the CPU allocator may keep for reuse (0 turns caching off). */
export function setCpuCacheLimit(bytes: number): void {
  native().setCpuCacheLimit(bytes);
}

/** Returns every cached CPU block to the system. */
export function emptyCache(): void {
  native().emptyCache();
}
