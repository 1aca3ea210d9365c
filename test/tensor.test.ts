// The TypeScript Tensor: creation in every dtype, zero-copy in and out, the inspection ops a
// user needs for a custom loss, scopes, and autograd from TS.
import {
  Tensor, arange, cat, full, keep, manualSeed, noGrad, ones, rand, randn, stack, tensor, tidy, zeros,
  getNumThreads, setNumThreads,
} from '../lib';
import { values } from './helpers';

describe('creation', () => {
  test.each([
    ['float32', new Float32Array([1.5, -2])],
    ['float64', new Float64Array([1.5, -2])],
    ['int32', new Int32Array([3, -4])],
    ['int64', new BigInt64Array([3n, -4n])],
    ['int16', new Int16Array([3, -4])],
    ['int8', new Int8Array([3, -4])],
    ['uint8', new Uint8Array([3, 250])],
  ] as const)('%s from its TypedArray round-trips', (dtype, data) => {
    const t = tensor(data);
    expect(t.dtype).toBe(dtype);
    expect(t.shape).toEqual([2]);
    expect(Array.from(t.toTypedArray() as ArrayLike<unknown>)).toEqual(Array.from(data as ArrayLike<unknown>));
  });

  test('float16 and bfloat16 from numbers, raw bits out of data(), floats out of toTypedArray()', () => {
    const h = tensor([1.5, -2, 65504], { dtype: 'float16' });
    expect(h.dtype).toBe('float16');
    expect(values(h)).toEqual([1.5, -2, 65504]);
    expect(Array.from(h.data() as Uint16Array)).toEqual([0x3e00, 0xc000, 0x7bff]);
    const b = tensor([1.5, -2], { dtype: 'bfloat16' });
    expect(values(b)).toEqual([1.5, -2]);
    expect(Array.from(b.data() as Uint16Array)).toEqual([0x3fc0, 0xc000]);
    // Raw bits in: a Uint16Array is float16 by default, bfloat16 when asked.
    expect(values(tensor(new Uint16Array([0x3e00])))).toEqual([1.5]);
    expect(values(tensor(new Uint16Array([0x3fc0]), { dtype: 'bfloat16' }))).toEqual([1.5]);
  });

  test('bool from booleans and from bytes (normalized to 0/1)', () => {
    expect(tensor([true, false, true]).toArray()).toEqual([true, false, true]);
    const fromBytes = tensor(new Uint8Array([0, 7, 1]), { dtype: 'bool' });
    expect(fromBytes.dtype).toBe('bool');
    expect(fromBytes.toArray()).toEqual([false, true, true]);
  });

  test('nested arrays infer the shape; numbers default to float32', () => {
    const t = tensor([[1, 2, 3], [4, 5, 6]]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(t.toArray()).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(tensor(7).shape).toEqual([]);
    expect(tensor(7).item()).toBe(7);
    expect(tensor([[1n, 2n]]).dtype).toBe('int64');
    expect(tensor([]).shape).toEqual([0]);
  });

  test('a TypedArray of another kind is converted to the requested dtype', () => {
    const t = tensor(new Float64Array([1.25, 2.5]), { dtype: 'float32' });
    expect(t.dtype).toBe('float32');
    expect(values(t)).toEqual([1.25, 2.5]);
  });

  test('factories', () => {
    expect(values(zeros([2, 2]))).toEqual([0, 0, 0, 0]);
    expect(values(ones([3]))).toEqual([1, 1, 1]);
    expect(values(full([2], 3.5))).toEqual([3.5, 3.5]);
    expect(arange(4).toArray()).toEqual([0n, 1n, 2n, 3n]);
    expect(arange(0, 1, 0.25).toArray()).toEqual([0, 0.25, 0.5, 0.75]);
    expect(zeros([2], { dtype: 'float64' }).dtype).toBe('float64');
    manualSeed(1);
    const a = values(randn([5]));
    manualSeed(1);
    expect(values(randn([5]))).toEqual(a);
    const u = values(rand([1000]));
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
  });
});

describe('zero-copy', () => {
  test('a TypedArray is shared with the tensor unless copy is set', () => {
    const data = new Float32Array([1, 2, 3, 4]);
    const shared = tensor(data, { shape: [2, 2] });
    const copied = tensor(data, { shape: [2, 2], copy: true });
    data[0] = 42;
    expect(values(shared)[0]).toBe(42);
    expect(values(copied)[0]).toBe(1);
  });

  test('data() of a contiguous CPU tensor is a view; toTypedArray() is a copy', () => {
    const t = zeros([3]);
    const view = t.data() as Float32Array;
    const copy = t.toTypedArray() as Float32Array;
    view[1] = 5;
    copy[2] = 9;
    expect(values(t)).toEqual([0, 5, 0]);
  });

  test('a view stays valid after dispose() and after the tensor is gone', () => {
    const view = tidy(() => ones([4]).mul(3).data()) as Float32Array;
    expect(Array.from(view)).toEqual([3, 3, 3, 3]);
  });

  test('data() of a non-contiguous tensor is a copy in logical order', () => {
    const t = tensor([[1, 2], [3, 4]]).t();
    expect(Array.from(t.data() as Float32Array)).toEqual([1, 3, 2, 4]);
  });
});

describe('operations', () => {
  const a = () => tensor([[1, -2], [3, 4]]);

  test('elementwise with tensors and scalars', () => {
    expect(a().add(1).toArray()).toEqual([[2, -1], [4, 5]]);
    expect(a().sub(a()).toArray()).toEqual([[0, 0], [0, 0]]);
    expect(a().mul(2).toArray()).toEqual([[2, -4], [6, 8]]);
    expect(a().div(tensor([1, 2])).toArray()).toEqual([[1, -1], [3, 2]]);
    expect(a().pow(2).toArray()).toEqual([[1, 4], [9, 16]]);
    expect(a().abs().neg().toArray()).toEqual([[-1, -2], [-3, -4]]);
    expect(a().maximum(0).toArray()).toEqual([[1, 0], [3, 4]]);
    expect(a().minimum(tensor([0, 5])).toArray()).toEqual([[0, -2], [0, 4]]);
    expect(a().relu().toArray()).toEqual([[1, 0], [3, 4]]);
    expect(tensor([0]).exp().toArray()).toEqual([1]);
    expect(tensor([4]).sqrt().toArray()).toEqual([2]);
  });

  test('comparisons give bool tensors', () => {
    const c = a().gt(0);
    expect(c.dtype).toBe('bool');
    expect(c.toArray()).toEqual([[true, false], [true, true]]);
    expect(a().eq(tensor([1, 4])).toArray()).toEqual([[true, false], [false, true]]);
    expect(a().le(-2).logicalNot().toArray()).toEqual([[true, false], [true, true]]);
  });

  test('matmul, softmax, logSoftmax', () => {
    expect(a().matmul(tensor([[1], [1]])).toArray()).toEqual([[-1], [7]]);
    const s = values(tensor([[0, Math.log(3)]]).softmax(1));
    expect(s[0]).toBeCloseTo(0.25, 6);
    expect(s[1]).toBeCloseTo(0.75, 6);
    expect(values(tensor([[0, Math.log(3)]]).logSoftmax(1))[0]).toBeCloseTo(Math.log(0.25), 6);
  });

  test('reductions', () => {
    expect(a().sum().item()).toBe(6);
    expect(a().sum(0).toArray()).toEqual([4, 2]);
    expect(a().sum(1, true).shape).toEqual([2, 1]);
    expect(a().mean().item()).toBe(1.5);
    expect(a().max().item()).toBe(4);
    expect(a().max(1).toArray()).toEqual([1, 4]);
    expect(a().min(0).toArray()).toEqual([1, -2]);
    expect(a().argmax().item()).toBe(3n);
    expect(a().argmax(1).toArray()).toEqual([0n, 1n]);
    expect(a().argmin(0).toArray()).toEqual([0n, 0n]);
  });

  test('shape operations', () => {
    const t = arange(24, undefined, 1, { dtype: 'float32' }).reshape(2, 3, 4);
    expect(t.shape).toEqual([2, 3, 4]);
    expect(t.view([6, 4]).shape).toEqual([6, 4]);
    expect(t.permute(2, 0, 1).shape).toEqual([4, 2, 3]);
    expect(t.transpose(0, 2).shape).toEqual([4, 3, 2]);
    expect(t.slice(2, 1, 3).shape).toEqual([2, 3, 2]);
    expect(values(t.slice(2, 0, undefined, 2).select(0, 0).select(0, 0))).toEqual([0, 2]);
    expect(t.select(1, -1).shape).toEqual([2, 4]);
    expect(t.unsqueeze(0).shape).toEqual([1, 2, 3, 4]);
    expect(t.unsqueeze(0).squeeze(0).shape).toEqual([2, 3, 4]);
    expect(t.flatten(1).shape).toEqual([2, 12]);
    expect(tensor([1, 2]).unsqueeze(0).expand(3, 2).shape).toEqual([3, 2]);
    expect(cat([zeros([2, 3]), ones([1, 3])]).shape).toEqual([3, 3]);
    expect(stack([zeros([3]), ones([3])], 1).shape).toEqual([3, 2]);
  });

  test('dtype conversion and string form', () => {
    const t = tensor([1.7, -1.2]).to('int32');
    expect(t.dtype).toBe('int32');
    expect(t.toArray()).toEqual([1, -1]);
    expect(t.to({ dtype: 'float64', device: 'cpu' }).dtype).toBe('float64');
    expect(String(tensor([1, 2]))).toMatch(/Tensor\(shape=\[2\], dtype=float32, device=cpu\)/);
  });

  test('a custom loss written in TS trains through autograd', () => {
    manualSeed(2);
    const w = randn([3, 1]).requiresGrad_();
    const x = randn([16, 3]);
    const target = x.matmul(tensor([[1], [-2], [0.5]]));
    let last = Infinity;
    for (let step = 0; step < 50; step++) {
      tidy(() => {
        const loss = x.matmul(w).sub(target).square().mean();
        loss.backward();
        last = loss.item() as number;
      });
      noGrad(() => {
        const g = w.grad!;
        const updated = w.sub(g.mul(0.2));
        (w.data() as Float32Array).set(updated.toTypedArray() as Float32Array);
        (g.data() as Float32Array).fill(0);
      });
    }
    expect(last).toBeLessThan(1e-3);
  });
});

describe('scopes and disposal', () => {
  test('tidy disposes intermediates and keeps what it returns', () => {
    let inner: Tensor | undefined;
    const { kept, list } = tidy(() => {
      inner = ones([2]).mul(2);
      return { kept: inner.add(1), list: [zeros([1])] };
    });
    expect(inner!.isDisposed).toBe(true);
    expect(kept.isDisposed).toBe(false);
    expect(list[0].isDisposed).toBe(false);
  });

  test('nested tidy hands survivors to the outer scope', () => {
    let survivor: Tensor | undefined;
    tidy(() => {
      survivor = tidy(() => ones([2]));
      expect(survivor.isDisposed).toBe(false);
    });
    expect(survivor!.isDisposed).toBe(true);
  });

  test('keep() exempts a tensor; exceptions still clean up', () => {
    let kept: Tensor | undefined;
    let lost: Tensor | undefined;
    expect(() =>
      tidy(() => {
        kept = keep(ones([1]));
        lost = ones([1]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(kept!.isDisposed).toBe(false);
    expect(lost!.isDisposed).toBe(true);
  });

  test('tidy refuses async functions', () => {
    expect(() => tidy((async () => ones([1])) as unknown as () => Tensor)).toThrow(/synchronous/);
  });

  test('dispose is idempotent and every use after it is an error', () => {
    const t = ones([2]);
    t.dispose();
    t.dispose();
    expect(t.isDisposed).toBe(true);
    expect(() => t.shape).toThrow(/used after dispose/);
    expect(() => t.add(1)).toThrow(/used after dispose/);
    expect(() => ones([2]).add(t)).toThrow(/used after dispose/);
    expect(String(t)).toBe('Tensor(disposed)');
  });
});

describe('threads', () => {
  test('libtorch uses the machine by default and can be changed', () => {
    const initial = getNumThreads();
    expect(initial).toBe(Number(process.env.S2BNN_NUM_THREADS ?? require('os').availableParallelism()));
    setNumThreads(1);
    expect(getNumThreads()).toBe(1);
    setNumThreads(initial);
    expect(() => setNumThreads(0)).toThrow(/between 1 and 1024/);
  });
});
