// Peak CPU tensor memory, measured by the counting allocator in native/ops (off unless asked).
import { native } from './native';

export interface MemoryStats {
  /** Bytes of CPU tensor memory allocated through libtorch and not yet freed. */
  current: number;
  /** Highest `current` since counting started or the last reset. */
  peak: number;
  /** Number of allocations counted. */
  allocations: number;
}

/** Current counters; counting starts with the first measureMemory() or memoryStats(true). */
export function memoryStats(resetPeak = false): MemoryStats {
  const api = native();
  api.memoryStatsEnable(true);
  return api.memoryStats(resetPeak);
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
