// The packed (xnor-popcount) binary convolution: pack_signs / pack_weights semantics (sign(0) and
// NaN pack as +1, bits beyond C are 0), and every CPU kernel's integer accumulators equal to the
// float convolution of the same +-1 data, exactly, over a grid of shapes; the fused scale/shift
// epilogue; argument errors; threads.
import { Tensor, getNumThreads, opsLibraryPath, ops, randn, reference, setNumThreads, tensor, tidy } from '../lib';
import { pythonWithTorch, runPython } from './helpers';

const kernels = ops.bconv2dPackedKernels();

// A small deterministic generator (tests must not depend on libtorch's RNG stream).
function rng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

// Values with exact zeros among them (they pack as +1), and the +-1 tensor they stand for.
function signedData(shape: number[], seed: number): { raw: Tensor; pm: Tensor } {
  const next = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const raw = new Float32Array(n);
  const pm = new Float32Array(n);
  const choices = [-1.5, -0.25, 0, 0.5, 2];
  for (let i = 0; i < n; i++) {
    raw[i] = choices[Math.floor(next() * choices.length)];
    pm[i] = raw[i] < 0 ? -1 : 1;
  }
  return { raw: tensor(raw, { shape }), pm: tensor(pm, { shape }) };
}

function floatConv(x: Tensor, w: Tensor, stride: number, padding: number): Tensor {
  return reference.binaryConv2d(x, w, { stride, padding, binarizeInput: false, binarizeWeight: false });
}

function channelsLast(x: Tensor): Tensor {
  return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
}

function mismatches(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let bad = 0;
  for (let i = 0; i < actual.length; i++) if (actual[i] !== expected[i]) bad++;
  return bad;
}

test('this CPU offers the reference kernel and reports the default first', () => {
  expect(kernels).toContain('reference');
  expect(kernels).toContain('scalar');
  expect(new Set(kernels).size).toBe(kernels.length);
});

describe('pack_signs', () => {
  test('bit c%64 of word c/64 is 1 iff x < 0: 0, -0 and NaN pack as +1, bits beyond C are 0', () => {
    tidy(() => {
      const C = 70;
      const values = new Float32Array(C).fill(1);
      values[0] = 0;
      values[1] = -0;
      values[2] = NaN;
      values[3] = -1e-30;
      values[4] = 1e-30;
      values[5] = -Infinity;
      values[63] = -2;
      values[64] = -3;
      values[69] = -1;
      const x = tensor(values, { shape: [1, C, 1, 1] });
      const packed = ops.packSigns(x);
      expect(packed.shape).toEqual([1, 1, 1, 2]);
      expect(packed.dtype).toBe('int64');
      const words = packed.toTypedArray() as BigInt64Array;
      expect(BigInt.asUintN(64, words[0])).toBe((1n << 3n) | (1n << 5n) | (1n << 63n));
      expect(BigInt.asUintN(64, words[1])).toBe(1n | (1n << 5n));

      const allNegative = ops.packSigns(tensor(new Float32Array(C).fill(-1), { shape: [1, C, 1, 1] }));
      const full = allNegative.toTypedArray() as BigInt64Array;
      expect(BigInt.asUintN(64, full[0])).toBe((1n << 64n) - 1n);
      expect(BigInt.asUintN(64, full[1])).toBe((1n << 6n) - 1n);  // channels 64..69 only
    });
  });

  test('layout [N, H, W, words]: every pixel packs its own channels', () => {
    tidy(() => {
      const { raw } = signedData([2, 3, 4, 5], 11);
      const packed = ops.packSigns(raw).toTypedArray() as BigInt64Array;
      const x = raw.toTypedArray() as Float32Array;
      for (let n = 0; n < 2; n++)
        for (let h = 0; h < 4; h++)
          for (let w = 0; w < 5; w++) {
            let expected = 0n;
            for (let c = 0; c < 3; c++) if (x[((n * 3 + c) * 4 + h) * 5 + w] < 0) expected |= 1n << BigInt(c);
            expect(packed[(n * 4 + h) * 5 + w]).toBe(expected);
          }
    });
  });

  test('bias is added first, in any shape with C values; channels_last and contiguous agree', () => {
    tidy(() => {
      const C = 100;
      const x = randn([2, C, 5, 3]);
      const bias = randn([C]);
      const expected = ops.packSigns(x.add(bias.reshape([1, C, 1, 1]))).toTypedArray();
      for (const b of [bias, bias.reshape([1, C, 1, 1])]) {
        expect(ops.packSigns(x, b).toTypedArray()).toEqual(expected);
        expect(ops.packSigns(channelsLast(x), b).toTypedArray()).toEqual(expected);
      }
      // x + bias == 0 exactly packs as +1.
      const exact = ops.packSigns(tensor(new Float32Array([0.5, -0.5]), { shape: [1, 2, 1, 1] }),
        tensor(new Float32Array([-0.5, 0.5]))).toTypedArray() as BigInt64Array;
      expect(exact[0]).toBe(0n);
    });
  });

  test('float64 input packs like float32', () => {
    tidy(() => {
      const x = randn([1, 65, 3, 3]);
      expect(ops.packSigns(x.to('float64')).toTypedArray()).toEqual(ops.packSigns(x).toTypedArray());
    });
  });
});

describe('pack_weights', () => {
  test('[O, kh, kw, words], bit set iff w < 0, padding bits 0', () => {
    tidy(() => {
      const { raw } = signedData([3, 70, 3, 3], 5);
      const packed = ops.packWeights(raw);
      expect(packed.shape).toEqual([3, 3, 3, 2]);
      const words = packed.toTypedArray() as BigInt64Array;
      const w = raw.toTypedArray() as Float32Array;
      for (let o = 0; o < 3; o++)
        for (let ky = 0; ky < 3; ky++)
          for (let kx = 0; kx < 3; kx++)
            for (let word = 0; word < 2; word++) {
              let expected = 0n;
              for (let j = 0; j < 64 && word * 64 + j < 70; j++) {
                const c = word * 64 + j;
                if (w[((o * 70 + c) * 3 + ky) * 3 + kx] < 0) expected |= 1n << BigInt(j);
              }
              expect(BigInt.asUintN(64, words[((o * 3 + ky) * 3 + kx) * 2 + word])).toBe(expected);
            }
    });
  });
});

describe('bconv2d_packed equals the float convolution of the +-1 data, exactly', () => {
  const channels = [1, 3, 32, 63, 64, 65, 100, 128, 200];
  const outs = [1, 16, 19, 33];
  const cases: [number, number, number, number, number][] = [];
  for (const k of [1, 3])
    for (const stride of [1, 2])
      for (const padding of [0, 1])
        for (const batch of [1, 3])
          for (const c of channels) cases.push([c, k, stride, padding, batch]);

  test.each(cases)('C=%p k=%p stride=%p padding=%p N=%p, every kernel', (C, k, stride, padding, N) => {
    tidy(() => {
      const O = outs[(C + k + stride) % outs.length];
      const H = 7, W = 5;
      const x = signedData([N, C, H, W], C * 131 + k * 7 + stride * 3 + padding + N);
      const w = signedData([O, C, k, k], C * 17 + k);
      const expected = floatConv(x.pm, w.pm, stride, padding);
      const px = ops.packSigns(x.raw);
      const pw = ops.packWeights(w.raw);
      const want = expected.toTypedArray() as Float32Array;
      const Ho = Math.floor((H + 2 * padding - k) / stride) + 1;
      const Wo = Math.floor((W + 2 * padding - k) / stride) + 1;
      for (const kernel of [undefined, ...kernels]) {
        const out = ops.bconv2dPacked(px, pw, { channels: C, stride, padding, kernel });
        expect(out.dtype).toBe('int32');
        expect(out.shape).toEqual([N, O, Ho, Wo]);
        expect([kernel ?? 'default', mismatches(out.toTypedArray() as Int32Array, want)]).toEqual([kernel ?? 'default', 0]);
      }
    });
  });

  test('a ReActNet-sized layer (C=256, 14x14, 3x3, padding 1, stride 1 and 2)', () => {
    tidy(() => {
      const x = signedData([2, 256, 14, 14], 1);
      const w = signedData([64, 256, 3, 3], 2);
      const px = ops.packSigns(channelsLast(x.raw));
      const pw = ops.packWeights(w.raw);
      for (const stride of [1, 2]) {
        const want = floatConv(x.pm, w.pm, stride, 1).toTypedArray() as Float32Array;
        for (const kernel of kernels) {
          const out = ops.bconv2dPacked(px, pw, { channels: 256, stride, padding: 1, kernel });
          expect([kernel, stride, mismatches(out.toTypedArray() as Int32Array, want)]).toEqual([kernel, stride, 0]);
        }
      }
    });
  });

  test('larger kernels and padding (5x5, padding 2) work too', () => {
    tidy(() => {
      const x = signedData([1, 40, 6, 7], 3);
      const w = signedData([5, 40, 5, 5], 4);
      const want = floatConv(x.pm, w.pm, 1, 2).toTypedArray() as Float32Array;
      for (const kernel of kernels) {
        const out = ops.bconv2dPacked(ops.packSigns(x.raw), ops.packWeights(w.raw), { channels: 40, padding: 2, kernel });
        expect([kernel, mismatches(out.toTypedArray() as Int32Array, want)]).toEqual([kernel, 0]);
      }
    });
  });
});

describe('scale / shift epilogue', () => {
  test.each([[true], [false]])('float32 acc * scale + shift (shift given: %p), every kernel', (withShift) => {
    tidy(() => {
      const C = 65, O = 37;
      const x = signedData([2, C, 6, 5], 9);
      const w = signedData([O, C, 3, 3], 10);
      const scale = randn([O]);
      const shift = randn([O]);
      const px = ops.packSigns(x.raw), pw = ops.packWeights(w.raw);
      const acc = ops.bconv2dPacked(px, pw, { channels: C, stride: 1, padding: 1 }).toTypedArray() as Int32Array;
      const sc = scale.toTypedArray() as Float32Array, sh = shift.toTypedArray() as Float32Array;
      const plane = 6 * 5;
      for (const kernel of kernels) {
        const out = ops.bconv2dPacked(px, pw, {
          channels: C, stride: 1, padding: 1, scale, shift: withShift ? shift : undefined, kernel,
        });
        expect(out.dtype).toBe('float32');
        const got = out.toTypedArray() as Float32Array;
        for (let i = 0; i < got.length; i++) {
          const o = Math.floor(i / plane) % O;
          const want = acc[i] * sc[o] + (withShift ? sh[o] : 0);
          expect(Math.abs(got[i] - want)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want)));
        }
      }
    });
  });
});

describe('threads', () => {
  test('multi-threaded results equal single-threaded ones', () => {
    const original = getNumThreads();
    try {
      tidy(() => {
        const x = signedData([2, 128, 16, 15], 21);
        const w = signedData([48, 128, 3, 3], 22);
        const px = ops.packSigns(x.raw), pw = ops.packWeights(w.raw);
        const runAll = () => kernels.map((kernel) => [
          ops.packSigns(x.raw).toTypedArray(),
          ops.bconv2dPacked(px, pw, { channels: 128, stride: 1, padding: 1, kernel }).toTypedArray(),
          ops.bconv2dPacked(px, pw, { channels: 128, stride: 2, padding: 1, kernel }).toTypedArray(),
        ]);
        setNumThreads(1);
        const single = runAll();
        setNumThreads(Math.max(2, original));
        expect(runAll()).toEqual(single);
      });
    } finally {
      setNumThreads(original);
    }
  });
});

describe('autograd', () => {
  test('inputs that require grad are accepted; outputs carry no gradient', () => {
    tidy(() => {
      const x = randn([1, 8, 4, 4]).requiresGrad_();
      const w = randn([4, 8, 3, 3]).requiresGrad_();
      const scale = randn([4]).requiresGrad_();
      const px = ops.packSigns(x, randn([8]).requiresGrad_());
      const pw = ops.packWeights(w);
      expect(px.requiresGrad).toBe(false);
      const out = ops.bconv2dPacked(px, pw, { channels: 8, padding: 1, scale, shift: scale });
      expect(out.requiresGrad).toBe(false);
    });
  });
});

describe('argument errors name the argument', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['pack_signs int x', () => ops.packSigns(tensor(new Int32Array([1, 2, 3, 4]), { shape: [1, 1, 2, 2] })), /pack_signs: x must be a floating-point tensor/],
    ['pack_signs 3-D x', () => ops.packSigns(randn([2, 3, 4])), /pack_signs: x must be 4-D \[N, C, H, W\]/],
    ['pack_signs bias size', () => ops.packSigns(randn([1, 3, 2, 2]), randn([4])), /pack_signs: bias must hold one value per channel \(3/],
    ['pack_weights 2-D', () => ops.packWeights(randn([3, 4])), /pack_weights: w must be 4-D/],
    ['bconv float x', () => ops.bconv2dPacked(randn([1, 2, 2, 1]), ops.packWeights(randn([1, 3, 1, 1])), { channels: 3 }), /bconv2d_packed: x must be int64 packed signs/],
    ['bconv unpacked w', () => ops.bconv2dPacked(ops.packSigns(randn([1, 3, 2, 2])), randn([1, 3, 1, 1]), { channels: 3 }), /bconv2d_packed: w must be int64 packed weights/],
    ['bconv words mismatch', () => ops.bconv2dPacked(ops.packSigns(randn([1, 70, 2, 2])), ops.packWeights(randn([1, 3, 1, 1])), { channels: 70 }), /w has 1 words per tap but x has 2/],
    ['bconv channels too many', () => ops.bconv2dPacked(ops.packSigns(randn([1, 3, 2, 2])), ops.packWeights(randn([1, 3, 1, 1])), { channels: 65 }), /channels must be in \(0, 64\]/],
    ['bconv channels too few', () => ops.bconv2dPacked(ops.packSigns(randn([1, 70, 2, 2])), ops.packWeights(randn([1, 70, 1, 1])), { channels: 64 }), /channels must be in \(64, 128\]/],
    ['bconv stride 0', () => ops.bconv2dPacked(ops.packSigns(randn([1, 3, 2, 2])), ops.packWeights(randn([1, 3, 1, 1])), { channels: 3, stride: 0 }), /stride must be a positive integer/],
    ['bconv padding -1', () => ops.bconv2dPacked(ops.packSigns(randn([1, 3, 2, 2])), ops.packWeights(randn([1, 3, 1, 1])), { channels: 3, padding: -1 }), /padding must be a non-negative integer/],
    ['bconv non-square', () => ops.bconv2dPacked(ops.packSigns(randn([1, 3, 4, 4])), ops.packWeights(randn([1, 3, 1, 3])), { channels: 3 }), /w must have a square kernel/],
    ['bconv too small input', () => ops.bconv2dPacked(ops.packSigns(randn([1, 3, 2, 2])), ops.packWeights(randn([1, 3, 3, 3])), { channels: 3 }), /smaller than the 3x3 kernel/],
    ['bconv scale size', () => ops.bconv2dPacked(ops.packSigns(randn([1, 3, 2, 2])), ops.packWeights(randn([2, 3, 1, 1])), { channels: 3, scale: randn([3]) }), /scale must hold one value per output channel \(2\)/],
    ['bconv scale dtype', () => ops.bconv2dPacked(ops.packSigns(randn([1, 3, 2, 2])), ops.packWeights(randn([2, 3, 1, 1])), { channels: 3, scale: randn([2]).to('float64') }), /scale must be float32/],
    ['bconv shift without scale', () => ops.bconv2dPacked(ops.packSigns(randn([1, 3, 2, 2])), ops.packWeights(randn([2, 3, 1, 1])), { channels: 3, shift: randn([2]) }), /shift needs scale/],
    ['bconv unknown kernel', () => ops.bconv2dPacked(ops.packSigns(randn([1, 3, 2, 2])), ops.packWeights(randn([2, 3, 1, 1])), { channels: 3, kernel: 'neon' }), /unknown kernel 'neon'/],
  ];
  test.each(cases)('%s', (_name, fn, message) => {
    tidy(() => expect(fn).toThrow(message));
  });
});

const { python, reason } = pythonWithTorch();
(python ? describe : describe.skip)(`torch.ops.s2bnn packed ops in PyTorch${python ? '' : ` (skipped: ${reason})`}`, () => {
  test('equal torch conv2d of the +-1 data, int32 channels_last output, fused epilogue, no grad', () => {
    const out = JSON.parse(runPython(python!, ['test/python/packed_ops.py', opsLibraryPath()]));
    expect(out).toEqual({ cases: 48, mismatches: 0, requires_grad_ok: true });
  });
});
