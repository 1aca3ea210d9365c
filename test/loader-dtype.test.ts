// The loader's output dtype (float32, uint8 before normalization, float16) and pinned memory
// (auto: only with a CUDA device; never without one).
import { DataLoader, InMemoryDataset, cudaDeviceCount, tensor, transforms } from '../lib';

function dataset(): InMemoryDataset {
  const n = 12, h = 40, w = 36, c = 3;
  const pixels = new Uint8Array(n * h * w * c);
  let s = 12345;
  for (let i = 0; i < pixels.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const y = Math.floor(i / (w * c)) % h;
    pixels[i] = Math.max(0, Math.min(255, Math.round(128 + 90 * Math.sin(y / 4 + (i % 7)) + ((s >>> 16) % 40) - 20)));
  }
  const labels = tensor(new BigInt64Array(n).map((_, i) => BigInt(i % 3)), { shape: [n] });
  return new InMemoryDataset(tensor(pixels, { shape: [n, h, w, c] }), labels, ['a', 'b', 'c']);
}

async function firstView(dtype: 'float32' | 'uint8' | 'float16' | undefined, pinMemory?: boolean | 'auto') {
  const loader = new DataLoader(dataset(), { batchSize: 12, views: 2, transform: transforms.mocoV2(24), seed: 4, workers: 2, dtype, pinMemory });
  const batch = (await loader.epoch(0).next()).value;
  const out = { dtype: batch.views[1].dtype, shape: batch.views[1].shape, values: Array.from(batch.views[1].toTypedArray() as ArrayLike<number>), pinned: loader.pinned };
  batch.dispose();
  loader.close();
  return out;
}

describe('DataLoader dtype and pinned memory', () => {
  test('uint8 views are round(255 x) of the float pipeline before normalization; float16 is the float32 output rounded', async () => {
    const f32 = await firstView(undefined);
    const u8 = await firstView('uint8');
    const f16 = await firstView('float16');
    expect([f32.dtype, u8.dtype, f16.dtype]).toEqual(['float32', 'uint8', 'float16']);
    expect(u8.shape).toEqual(f32.shape);
    const mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
    const plane = 24 * 24;
    let off = 0, exact = 0;
    f32.values.forEach((v, i) => {
      const c = Math.floor(i / plane) % 3;
      const expected = Math.round(Math.min(1, Math.max(0, v * std[c] + mean[c])) * 255);
      const d = Math.abs(u8.values[i] - expected);
      if (d === 0) exact++;
      off = Math.max(off, d);
    });
    // Undoing the normalization in float64 can land on the other side of a .5.
    expect(off).toBeLessThanOrEqual(1);
    expect(exact / f32.values.length).toBeGreaterThan(0.99);
    let worst = 0;
    f32.values.forEach((v, i) => {
      worst = Math.max(worst, Math.abs(f16.values[i] - v) / Math.max(Math.abs(v), 2 ** -14));
    });
    expect(worst).toBeLessThanOrEqual(2 ** -11);
  });

  test('pinned memory only with a CUDA device; bad options are argument errors', async () => {
    const cuda = cudaDeviceCount() > 0;
    expect((await firstView(undefined)).pinned).toBe(cuda);
    expect((await firstView(undefined, true)).pinned).toBe(cuda);
    expect((await firstView(undefined, false)).pinned).toBe(false);
    const ds = dataset();
    const base = { batchSize: 4, transform: transforms.mocoV2(24) };
    expect(() => new DataLoader(ds, { ...base, dtype: 'int8' as 'uint8' })).toThrow(/dtype must be 'float32', 'uint8' or 'float16'/);
    expect(() => new DataLoader(ds, { ...base, pinMemory: 'yes' as 'auto' })).toThrow(/pinMemory must be true, false or 'auto'/);
  });
});
