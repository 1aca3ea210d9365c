// Native memory: dispose() frees at once, forgotten tensors are freed by the garbage collector,
// and neither path grows the process.
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as v8 from 'v8';
import * as vm from 'vm';

import { emptyCache, measureMemory, memoryStats, ops, randn, setCpuCacheLimit, tensor, zeros } from '../lib';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

// Node runs N-API finalizers (wrapped objects, external ArrayBuffers) from the event loop, so a
// collection only completes once the loop turns, as it does in any real program.
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function rssGrowthMiB(workload: string, warmup: number, count: number, yieldEvery: number): number {
  const args = [workload, warmup, count, yieldEvery].map(String);
  const res = spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, 'rss-child.js'), ...args], {
    encoding: 'utf8',
  });
  if (res.status !== 0) throw new Error(`rss-child ${workload} failed:\n${res.stderr}`);
  return JSON.parse(res.stdout).growthMiB;
}

test('100,000 create/dispose cycles keep RSS flat (with a backward pass in each)', () => {
  expect(rssGrowthMiB('cycles', 10_000, 100_000, 1000)).toBeLessThan(16);
});

test('a tight training-like loop of mid-sized tensors keeps RSS flat', () => {
  // Left to malloc, 128 KiB blocks freed between long-lived small objects fragmented the heap:
  // RSS grew by ~200 KiB per step (700 MiB over 3,000 steps) in a loop that never yields.
  expect(rssGrowthMiB('training', 500, 3000, 0)).toBeLessThan(32);
});

test('tensors forgotten in a loop that never yields are freed', () => {
  // 200,000 x 16 KiB = 3.1 GiB if nothing were freed before the loop yields (Node runs finalizers
  // from the event loop); the registry releases the tensors of collected handles as it goes.
  expect(rssGrowthMiB('forgotten', 20_000, 200_000, 0)).toBeLessThan(1024);
});

test('forgotten tensors are freed by the garbage collector', async () => {
  const before = memoryStats(true).current;
  for (let i = 0; i < 200; i++) zeros([256, 1024]); // 1 MiB each, never disposed
  await collect();
  // Without the finalizers all 200 MiB would still be held.
  expect(memoryStats().current - before).toBeLessThan(8 * 2 ** 20);
});

test('native bytes are reported to V8, so allocation pressure alone triggers collection', async () => {
  const before = memoryStats(true).current;
  // 4 GiB in total, never disposed, without calling gc(): only V8's own heuristics can free it.
  for (let i = 0; i < 4096; i++) {
    zeros([256, 1024]);
    if (i % 64 === 63) await new Promise((resolve) => setImmediate(resolve));
  }
  expect(memoryStats().current - before).toBeLessThan(1024 * 2 ** 20);
});

describe('the CPU block cache', () => {
  afterEach(() => setCpuCacheLimit(defaultLimit));
  const defaultLimit = memoryStats().cacheLimit;

  test('a freed block is reused for the next tensor of its size class', () => {
    zeros([1000, 1000]).dispose();
    const before = memoryStats();
    const second = zeros([999, 1001]); // 4 bytes smaller: the same size class
    const after = memoryStats();
    // The bytes now in use came out of the cache, not from malloc.
    expect(after.current - before.current).toBeGreaterThanOrEqual(999 * 1001 * 4);
    expect(before.cached - after.cached).toBe(after.current - before.current);
    second.dispose();
  });

  test('the cache never holds more than its limit, and emptyCache() frees it', () => {
    setCpuCacheLimit(8 * 2 ** 20);
    for (let i = 1; i <= 20; i++) zeros([i * 65536]).dispose(); // 20 sizes, 256 KiB .. 5 MiB
    expect(memoryStats().cached).toBeLessThanOrEqual(8 * 2 ** 20);
    expect(memoryStats().cached).toBeGreaterThan(0);
    emptyCache();
    expect(memoryStats().cached).toBe(0);
    setCpuCacheLimit(0);
    zeros([65536]).dispose();
    expect(memoryStats().cached).toBe(0);
  });
});

test('dispose frees native memory immediately', () => {
  const { retainedBytes } = measureMemory(() => {
    const t = randn([1024, 1024]);
    t.dispose();
  });
  expect(retainedBytes).toBe(0);
});

test('the fused sign_ste saves nothing but its input for backward', () => {
  const x = randn([8, 64, 32, 32]).requiresGrad_();
  const bytes = 8 * 64 * 32 * 32 * 4;
  const fused = measureMemory(() => ops.signSte(x));
  // Retained after forward: the output only (the input already existed).
  expect(fused.retainedBytes).toBe(bytes);
  fused.result.dispose();
});
