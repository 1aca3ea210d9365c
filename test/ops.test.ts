// The fused operators: exact gradient tables at the STE boundaries, finite-difference checks of
// the losses, fused vs reference formulation, and argument errors.
import { Tensor, cudaDeviceCount, noGrad, ops, randn, reference, setPackedTrainingForward, tensor, tidy, zeros, manualSeed, rand } from '../lib';
import { relativeError, values } from './helpers';

function gradOf(x: Tensor, f: (x: Tensor) => Tensor): number[] {
  const leaf = x.detach().requiresGrad_();
  f(leaf).sum().backward();
  return values(leaf.grad!);
}

describe('sign_ste', () => {
  // x, sign(x), ApproxSign'(x): 2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 elsewhere.
  const table: [number, number, number][] = [
    [-2, -1, 0],
    [-1.0000001, -1, 0],
    [-1, -1, 0],
    [-0.75, -1, 0.5],
    [-0.5, -1, 1],
    [-0.25, -1, 1.5],
    [-0, 0, 2],
    [0, 0, 2],
    [0.25, 1, 1.5],
    [0.5, 1, 1],
    [0.75, 1, 0.5],
    [1, 1, 0],
    [1.5, 1, 0],
  ];

  test.each(table)('x = %p: forward %p, gradient %p', (x, forward, grad) => {
    const input = tensor([x], { dtype: 'float64' });
    expect(values(ops.signSte(input))[0]).toBe(forward);
    expect(gradOf(input, (t) => ops.signSte(t))[0]).toBe(grad);
    expect(gradOf(input, (t) => reference.signSte(t))[0]).toBe(grad);
  });

  test('float32, float16 and bfloat16 agree with float64 on the table', () => {
    const xs = table.map(([x]) => x);
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      const x = tensor(xs, { dtype });
      expect(values(ops.signSte(x))).toEqual(table.map(([, f]) => f));
      const leaf = x.detach().requiresGrad_();
      ops.signSte(leaf).sum().backward();
      const g = values(leaf.grad!);
      table.forEach(([xv, , grad], i) => {
        // half precision rounds x itself; compare against the derivative at the rounded x.
        const rounded = values(tensor([xv], { dtype }))[0];
        const expected = Math.abs(rounded) < 1 ? 2 - 2 * Math.abs(rounded) : 0;
        expect(g[i]).toBeCloseTo(expected, 2);
        if (dtype === 'float32') expect(g[i]).toBeCloseTo(grad, 6);
      });
    }
  });

  test('NaN maps to 0 forward (torch.sign) and gradient 0', () => {
    const x = tensor([NaN, 0.5]);
    expect(values(ops.signSte(x))).toEqual([0, 1]);
    expect(gradOf(x, (t) => ops.signSte(t))).toEqual([0, 1]);
  });

  test('fused equals the reference on a large random tensor (values and gradients)', () => {
    manualSeed(7);
    const x = randn([4, 16, 33, 17]).mul(1.5);
    expect(values(ops.signSte(x))).toEqual(values(reference.signSte(x)));
    expect(relativeError(gradOf(x, (t) => ops.signSte(t)), gradOf(x, (t) => reference.signSte(t)))).toBeLessThan(1e-6);
  });

  test('non-contiguous input', () => {
    const x = randn([8, 6]).t();
    expect(values(ops.signSte(x))).toEqual(values(x.sign()));
  });
});

describe('sign_ste_biased', () => {
  test('equals sign_ste(x + bias) in values and in the gradients of x and bias', () => {
    manualSeed(8);
    const x = randn([3, 6, 9, 7]).mul(1.2);
    const bias = randn([1, 6, 1, 1]).mul(0.4);
    const run = (f: (x: Tensor, b: Tensor) => Tensor) => {
      const xl = x.detach().requiresGrad_();
      const bl = bias.detach().requiresGrad_();
      const y = f(xl, bl);
      y.mul(randn(y.shape)).sum().backward();
      return [values(y), values(xl.grad!), values(bl.grad!)];
    };
    manualSeed(9);
    const fused = run((a, b) => ops.signSteBiased(a, b));
    manualSeed(9);
    const ref = run((a, b) => reference.signSteBiased(a, b));
    expect(fused[0]).toEqual(ref[0]);
    expect(relativeError(fused[1], ref[1])).toBeLessThan(1e-6);
    expect(relativeError(fused[2], ref[2])).toBeLessThan(1e-5);
  });

  test('the bias shifts the STE band: gradient at x where x + b sits on the table', () => {
    const x = tensor([[-1.5], [0.25]], { dtype: 'float64' }).reshape(1, 2, 1); // channels 0 and 1
    const bias = tensor([0.5, -0.25], { dtype: 'float64' });
    const xl = x.detach().requiresGrad_();
    ops.signSteBiased(xl, bias).sum().backward();
    // x + b = -1.0 (gradient 0) and 0.0 (gradient 2)
    expect(values(xl.grad!)).toEqual([0, 2]);
  });

  test('a bias with the wrong channel count is a clear error', () => {
    expect(() => ops.signSteBiased(randn([2, 3, 4]), zeros([4]))).toThrow(/sign_ste_biased: bias must hold one value per channel \(3/);
  });
});

describe('binarize_weight', () => {
  test('forward is mean|w| per output channel times sign(w)', () => {
    const w = tensor([[[[-1.5, -1, -0.5, 0]]], [[[0.5, 1, 1.5, 2]]]], { dtype: 'float64' });
    const out = values(ops.binarizeWeight(w));
    const a0 = (1.5 + 1 + 0.5 + 0) / 4;
    const a1 = (0.5 + 1 + 1.5 + 2) / 4;
    expect(out).toEqual([-a0, -a0, -a0, 0, a1, a1, a1, a1]);
  });

  // The clipped STE passes the gradient on the closed band [-1, 1] only; alpha gets none.
  test.each([
    [-1.5, 0], [-1.0000001, 0], [-1, 1], [-0.5, 1], [0, 1], [0.5, 1], [1, 1], [1.0000001, 0], [3, 0],
  ])('w = %p: gradient %p', (w, grad) => {
    const input = tensor([[w, 0.25]], { dtype: 'float64' });
    expect(gradOf(input, (t) => ops.binarizeWeight(t))[0]).toBe(grad);
    expect(gradOf(input, (t) => reference.binarizeWeight(t))[0]).toBe(grad);
  });

  test('fused equals the reference (values and gradients)', () => {
    manualSeed(3);
    const w = rand([64, 32, 3, 3]).sub(0.5).mul(2.5);
    expect(relativeError(values(ops.binarizeWeight(w)), values(reference.binarizeWeight(w)))).toBeLessThan(1e-6);
    expect(gradOf(w, (t) => ops.binarizeWeight(t))).toEqual(gradOf(w, (t) => reference.binarizeWeight(t)));
  });
});

describe('binary_conv2d', () => {
  test.each([
    [1, 1, 3, true, true],
    [2, 1, 3, true, true],
    [1, 0, 1, true, false],
    [2, 0, 1, false, true],
    [1, 1, 3, false, false],
  ])('stride %p padding %p kernel %p binarizeInput %p binarizeWeight %p matches the reference', (stride, padding, k, bi, bw) => {
    manualSeed(11);
    const x = randn([2, 8, 9, 9]);
    const w = rand([8, 8, k, k]).sub(0.5).mul(2.4);
    const run = (op: typeof ops) => {
      const xl = x.detach().requiresGrad_();
      const wl = w.detach().requiresGrad_();
      const y = op.binaryConv2d(xl, wl, { stride, padding, binarizeInput: bi, binarizeWeight: bw });
      y.mul(y).sum().backward();
      return { y: values(y), gx: values(xl.grad!), gw: values(wl.grad!) };
    };
    const fused = run(ops);
    const ref = run(reference);
    expect(relativeError(fused.y, ref.y)).toBeLessThan(1e-5);
    expect(relativeError(fused.gx, ref.gx)).toBeLessThan(1e-5);
    expect(relativeError(fused.gw, ref.gw)).toBeLessThan(1e-5);
  });

  test('zero padding contributes 0, not -1: border outputs of an all-negative input', () => {
    const x = tensor(new Float32Array(9).fill(-3), { shape: [1, 1, 3, 3] });
    const w = tensor(new Float32Array(9).fill(0.5), { shape: [1, 1, 3, 3] });
    const y = values(ops.binaryConv2d(x, w, { padding: 1 }));
    // alpha = 0.5, sign(x) = -1: corners see 4 inputs, edges 6, the centre 9.
    expect(y).toEqual([-2, -3, -2, -3, -4.5, -3, -2, -3, -2]);
  });

  test('inputBias: sign(x + b) inside the conv, with the gradient of b', () => {
    manualSeed(12);
    const x = randn([2, 4, 8, 8]);
    const w = rand([6, 4, 3, 3]).sub(0.5);
    const b = randn([1, 4, 1, 1]).mul(0.3);
    const run = (op: typeof ops) => {
      const [xl, wl, bl] = [x, w, b].map((t) => t.detach().requiresGrad_());
      const y = op.binaryConv2d(xl, wl, { stride: 2, padding: 1, inputBias: bl });
      y.square().sum().backward();
      return [values(y), values(xl.grad!), values(wl.grad!), values(bl.grad!)];
    };
    const fused = run(ops);
    const ref = run(reference);
    fused.forEach((v, i) => expect(relativeError(v, ref[i])).toBeLessThan(1e-5));
    expect(() => ops.binaryConv2d(x, w, { inputBias: b, binarizeInput: false })).toThrow(/input_bias is added before binarizing the input, so it needs binarize_input/);
  });

  describe('packed training forward (3x3, from 64 channels, float32 CPU)', () => {
    afterEach(() => setPackedTrainingForward(true));
    const run = (packed: boolean, x: Tensor, w: Tensor, b: Tensor, stride: number) => {
      setPackedTrainingForward(packed);
      const [xl, wl, bl] = [x, w, b].map((t) => t.detach().requiresGrad_());
      const y = ops.binaryConv2d(xl, wl, { stride, padding: 1, inputBias: bl });
      y.square().sum().backward();
      return [values(y), values(xl.grad!), values(wl.grad!), values(bl.grad!)];
    };

    test.each([[1, 7, 130], [2, 9, 130], [1, 1, 130], [2, 9, 64]])('stride %p, %p px, %p channels: values and gradients equal the float convolution up to rounding', (stride, size, channels) => {
      manualSeed(21);
      const x = randn([2, channels, size, size]);
      const w = rand([channels, channels, 3, 3]).sub(0.5);
      const b = randn([1, channels, 1, 1]).mul(0.3);
      const packed = run(true, x, w, b, stride);
      const float = run(false, x, w, b, stride);
      packed.forEach((v, i) => expect(relativeError(v, float[i])).toBeLessThan(1e-5));
      // On bits the sum is exact: every output is float32(alpha_o * integer), which the float
      // convolution's rounded sums are not (so this also shows which path ran).
      const alpha = values(w.abs().mean([1, 2, 3]));
      const plane = size === 1 || stride === 1 ? size * size : Math.ceil(size / 2) ** 2;
      const exact = (out: number[]) => out.filter((v, i) => {
        const a = alpha[Math.floor(i / plane) % channels];
        return v === Math.fround(Math.round(v / a) * a);
      }).length;
      expect(exact(packed[0])).toBe(packed[0].length);
      if (size > 1) expect(exact(float[0])).toBeLessThan(float[0].length);
    });

    test('below 64 input channels the float path runs (packing costs more than it saves there)', () => {
      manualSeed(23);
      const x = randn([2, 63, 9, 9]);
      const w = rand([63, 63, 3, 3]).sub(0.5);
      const b = randn([1, 63, 1, 1]).mul(0.3);
      expect(run(true, x, w, b, 1)[0]).toEqual(run(false, x, w, b, 1)[0]);
    });

    test('an exact zero of x + b or of w takes the float path: training binarizes it to 0', () => {
      manualSeed(22);
      const x = randn([1, 128, 5, 5]);
      const b = zeros([1, 128, 1, 1]);
      const w = rand([128, 128, 3, 3]).sub(0.5);
      const xz = tidy(() => x.mul(tensor(new Float32Array(128 * 25).map((_, i) => (i === 60 ? 0 : 1)), { shape: [1, 128, 5, 5] })));
      const wz = tidy(() => w.mul(tensor(new Float32Array(128 * 128 * 9).map((_, i) => (i === 5 ? 0 : 1)), { shape: [128, 128, 3, 3] })));
      for (const [xi, wi] of [[xz, w], [x, wz]]) {
        const packed = run(true, xi, wi, b, 1)[0];
        const float = run(false, xi, wi, b, 1)[0];
        expect(packed).toEqual(float);
      }
    });
  });

  test('only binarize_input=false & weight=false is a plain convolution', () => {
    const x = randn([1, 2, 4, 4]);
    const w = randn([3, 2, 3, 3]);
    const plain = ops.binaryConv2d(x, w, { padding: 1, binarizeInput: false, binarizeWeight: false });
    expect(relativeError(values(plain), values(reference.binaryConv2d(x, w, { padding: 1, binarizeInput: false, binarizeWeight: false })))).toBeLessThan(1e-6);
  });
});

describe('rprelu', () => {
  test('matches prelu(x + b1, a) + b2 in values and all four gradients', () => {
    manualSeed(5);
    const x = randn([3, 6, 5, 7]);
    const params = [randn([1, 6, 1, 1]).mul(0.3), rand([6]).mul(0.5), randn([1, 6, 1, 1]).mul(0.3)];
    const run = (op: typeof ops) => {
      const leaves = [x, ...params].map((t) => t.detach().requiresGrad_());
      const y = op.rprelu(leaves[0], leaves[1], leaves[2], leaves[3]);
      y.mul(y).sum().backward();
      return [values(y), ...leaves.map((l) => values(l.grad!))];
    };
    const fused = run(ops);
    const ref = run(reference);
    fused.forEach((v, i) => expect(relativeError(v, ref[i])).toBeLessThan(1e-5));
  });

  test('gradients keep the parameter shapes', () => {
    const x = randn([2, 3, 4]);
    const b1 = zeros([1, 3, 1]).requiresGrad_();
    const a = zeros([3]).add(0.25).detach().requiresGrad_();
    const b2 = zeros([3]).requiresGrad_();
    ops.rprelu(x, b1, a, b2).sum().backward();
    expect(b1.grad!.shape).toEqual([1, 3, 1]);
    expect(a.grad!.shape).toEqual([3]);
    expect(b2.grad!.shape).toEqual([3]);
    expect(values(b2.grad!)).toEqual([8, 8, 8]);
  });
});

// Central differences in float64.
function numericGradient(f: (x: Float64Array) => number, x: Float64Array, eps = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + eps;
    const up = f(x);
    x[i] = keep - eps;
    const down = f(x);
    x[i] = keep;
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

describe('distribution_loss', () => {
  test('finite differences (float64)', () => {
    manualSeed(21);
    const s = Float64Array.from(values(randn([4, 10], { dtype: 'float64' })));
    const t = randn([4, 10], { dtype: 'float64' });
    const loss = (data: Float64Array) =>
      tidy(() => ops.distributionLoss(tensor(data, { shape: [4, 10], copy: true }), t, 0.5).item() as number);
    const numeric = numericGradient(loss, s);
    const leaf = tensor(s, { shape: [4, 10], copy: true }).requiresGrad_();
    ops.distributionLoss(leaf, t, 0.5).backward();
    expect(relativeError(values(leaf.grad!), numeric)).toBeLessThan(1e-6);
  });

  test('the teacher gets no gradient even when it requires one', () => {
    const s = randn([3, 8]).requiresGrad_();
    const t = randn([3, 8]).requiresGrad_();
    ops.distributionLoss(s, t, 0.2).backward();
    expect(t.grad).toBeNull();
    expect(s.grad).not.toBeNull();
  });

  test('stable for large logits where a naive exp overflows', () => {
    const s = tensor([[1000, -1000, 500]]);
    const t = tensor([[900, 0, -900]]);
    const fused = ops.distributionLoss(s, t, 0.2).item() as number;
    const ref = reference.distributionLoss(s, t, 0.2).item() as number;
    expect(Number.isFinite(fused)).toBe(true);
    expect(fused).toBeCloseTo(ref, 2);
  });

  test('a NaN in the student makes the loss NaN (so training can stop)', () => {
    const s = tensor([[0.1, NaN, 0.3], [0.1, 0.2, 0.3]]);
    expect(ops.distributionLoss(s, zeros([2, 3]), 0.2).item()).toBeNaN();
  });

  test('fused equals the reference at the paper scale (256 x 128, T = 0.2)', () => {
    manualSeed(9);
    const s = randn([256, 128]);
    const t = randn([256, 128]);
    const l2 = (x: Tensor) => x.div(x.square().sum(1, true).sqrt());
    const sn = l2(s);
    const tn = l2(t);
    const a = ops.distributionLoss(sn, tn, 0.2).item() as number;
    const b = reference.distributionLoss(sn, tn, 0.2).item() as number;
    expect(Math.abs(a - b) / b).toBeLessThan(1e-5);
    const ga = gradOf(sn, (x) => ops.distributionLoss(x, tn, 0.2));
    const gb = gradOf(sn, (x) => reference.distributionLoss(x, tn, 0.2));
    expect(relativeError(ga, gb)).toBeLessThan(1e-5);
  });
});

describe('info_nce', () => {
  test('finite differences for q, k and the queue (float64)', () => {
    manualSeed(4);
    const shapes = { q: [3, 5], k: [3, 5], queue: [5, 7] };
    const base = {
      q: Float64Array.from(values(randn(shapes.q, { dtype: 'float64' }))),
      k: Float64Array.from(values(randn(shapes.k, { dtype: 'float64' }))),
      queue: Float64Array.from(values(randn(shapes.queue, { dtype: 'float64' }))),
    };
    const loss = () =>
      tidy(() => {
        const [q, k, queue] = (['q', 'k', 'queue'] as const).map((n) => tensor(base[n], { shape: shapes[n], copy: true }));
        return ops.infoNce(q, k, queue, 0.3).loss.item() as number;
      });
    const leaves = (['q', 'k', 'queue'] as const).map((n) => tensor(base[n], { shape: shapes[n], copy: true }).requiresGrad_());
    ops.infoNce(leaves[0], leaves[1], leaves[2], 0.3).loss.backward();
    (['q', 'k', 'queue'] as const).forEach((n, i) => {
      const numeric = numericGradient(() => loss(), base[n]);
      expect(relativeError(values(leaves[i].grad!), numeric)).toBeLessThan(1e-6);
    });
  });

  test('logits carry no gradient and equal the reference logits', () => {
    const q = randn([4, 8]);
    const k = randn([4, 8]);
    const queue = randn([8, 16]);
    const fused = ops.infoNce(q.requiresGrad_(), k, queue, 0.2);
    const ref = reference.infoNce(q, k, queue, 0.2);
    expect(fused.logits.requiresGrad).toBe(false);
    expect(fused.logits.shape).toEqual([4, 17]);
    expect(relativeError(values(fused.logits), values(ref.logits))).toBeLessThan(1e-6);
    expect(Math.abs((fused.loss.item() as number) - (ref.loss.item() as number))).toBeLessThan(1e-5);
  });
});

// Moving to CUDA fails with the reason only where there is no device (a CPU build, or a CUDA build
// on a machine without a GPU); with one, the move is the CUDA suites' business.
(cudaDeviceCount() === 0 ? test : test.skip)('a CUDA tensor without a CUDA device is a JS Error naming why', () => {
  expect(() => randn([2]).to('cuda')).toThrow(/no CUDA/);
});

describe('bad input is a JS Error naming the problem', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['integer input', () => ops.signSte(tensor([1, 2], { dtype: 'int32' })), /sign_ste: x must be a floating-point tensor/],
    ['conv input of rank 3', () => ops.binaryConv2d(randn([2, 3, 4]), randn([4, 3, 3, 3])), /binary_conv2d: x must be 4-D/],
    ['conv channel mismatch', () => ops.binaryConv2d(randn([1, 3, 4, 4]), randn([4, 2, 3, 3])), /w expects 2 input channels but x has 3/],
    ['bad stride', () => ops.binaryConv2d(randn([1, 3, 4, 4]), randn([4, 3, 3, 3]), { stride: 0 }), /stride must be two positive integers/],
    ['loss shape mismatch', () => ops.distributionLoss(randn([2, 3]), randn([3, 2])), /teacher must have the shape of student \[2, 3\], got \[3, 2\]/],
    ['loss rank', () => ops.distributionLoss(randn([6]), randn([6])), /student must be 2-D/],
    ['temperature', () => ops.distributionLoss(randn([2, 3]), randn([2, 3]), 0), /temperature must be a finite number > 0/],
    ['queue shape', () => ops.infoNce(randn([2, 4]), randn([2, 4]), randn([5, 9])), /queue must be \[dim, K\] with dim = 4/],
    ['rprelu params', () => ops.rprelu(randn([2, 3, 4]), zeros([4]), zeros([3]), zeros([3])), /bias_in must hold one value per channel \(3/],
    ['dtype mix', () => ops.distributionLoss(randn([2, 3]), randn([2, 3], { dtype: 'float64' })), /teacher has dtype Double but student has dtype Float/],
    ['unknown device', () => randn([2]).to('tpu' as 'cuda'), /device must be 'cpu' or 'cuda/],
    ['ragged nested array', () => tensor([[1, 2], [3]]), /ragged/],
    ['shape/data mismatch', () => tensor(new Float32Array(5), { shape: [2, 3] }), /shape \[2, 3\] holds 6 elements but the data has 5/],
    ['backward of a non-scalar', () => randn([3]).requiresGrad_().mul(2).backward(), /needs a scalar tensor/],
    ['unknown dtype', () => zeros([2], { dtype: 'float8' as 'float32' }), /unknown dtype 'float8'/],
  ];

  test.each(cases)('%s', (_name, fn, message) => {
    expect(fn).toThrow(message);
  });

  test('errors carry a code', () => {
    try {
      ops.signSte(tensor([1], { dtype: 'int64' }));
      throw new Error('no error');
    } catch (err) {
      expect((err as { code?: string }).code).toBe('S2BNN_TORCH');
    }
    const t = randn([2]);
    t.dispose();
    try {
      ops.signSte(t);
      throw new Error('no error');
    } catch (err) {
      expect((err as Error).message).toMatch(/used after dispose/);
      expect((err as { code?: string }).code).toBe('S2BNN_DISPOSED');
    }
  });

  test('noGrad() turns gradient recording off for the fused ops', () => {
    const x = randn([2]).requiresGrad_();
    noGrad(() => expect(ops.signSte(x).requiresGrad).toBe(false));
    expect(ops.signSte(x).requiresGrad).toBe(true);
  });
});
