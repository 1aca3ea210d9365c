// Native memory: dispose() frees at once, forgotten tensors are freed by the garbage collector,
// and neither path grows the process.
import * as v8 from 'v8';
import * as vm from 'vm';

import { measureMemory, memoryStats, ops, randn, tensor, zeros } from '../lib';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function rssMiB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

// Node runs N-API finalizers (wrapped objects, external ArrayBuffers) from the event loop, so a
// collection only completes once the loop turns, as it does in any real program.
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('100,000 create/dispose cycles keep RSS flat', async () => {
  const cycle = (i: number) => {
    const data = new Float32Array(1024).fill(i);
    const a = tensor(data, { shape: [32, 32] }); // zero-copy in
    const b = a.mul(2); // native allocation
    const c = ops.signSte(b);
    c.data(); // external buffer out
    a.dispose();
    b.dispose();
    c.dispose();
  };
  const run = async (cycles: number) => {
    for (let i = 0; i < cycles; i++) {
      cycle(i);
      if (i % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
    }
    await collect();
  };
  await run(10_000);
  const before = rssMiB();
  await run(100_000);
  const growth = rssMiB() - before;
  expect(growth).toBeLessThan(16);
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
