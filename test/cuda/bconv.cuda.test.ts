// The packed binary convolution on CUDA (popc and b1 tensor-core "mma" kernels) against the CPU
// reference kernel, which test/bconv.test.ts ties to the float convolution exactly. Runs only
// where a CUDA build of s2bnn sees a device; elsewhere the suite is skipped with the reason.
// On a lent GPU: `npm run build && npx jest test/cuda/bconv.cuda.test.ts`.
import { Tensor, ops, randn, tidy } from '../../lib';
import { cudaSuite } from '../helpers';

const { devices, reason } = cudaSuite();

function same(a: Tensor, b: Tensor): boolean {
  const x = a.toTypedArray(), y = b.toTypedArray();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

(devices > 0 ? describe : describe.skip)(`packed bconv on CUDA${devices > 0 ? '' : ` (skipped: ${reason})`}`, () => {
  test('pack_signs and pack_weights match the CPU bit for bit', () => {
    tidy(() => {
      for (const C of [1, 63, 64, 65, 200]) {
        const x = randn([2, C, 5, 7]).round();  // exact zeros among them (they pack as +1)
        const bias = randn([C]);
        expect(same(ops.packSigns(x.cuda(), bias.cuda()).cpu(), ops.packSigns(x, bias))).toBe(true);
        const w = randn([9, C, 3, 3]);
        expect(same(ops.packWeights(w.cuda()).cpu(), ops.packWeights(w))).toBe(true);
      }
    });
  });

  const cases: [number, number, number, number, number][] = [];
  for (const C of [1, 32, 65, 200, 256])
    for (const k of [1, 3])
      for (const stride of [1, 2])
        for (const padding of [0, 1]) cases.push([C, k, stride, padding, C === 256 ? 2 : 3]);

  test.each(cases)('C=%p k=%p stride=%p padding=%p N=%p: popc and mma equal the CPU reference', (C, k, stride, padding, N) => {
    tidy(() => {
      const O = [1, 8, 19, 64][(C + k) % 4];
      const px = ops.packSigns(randn([N, C, 9, 7]));
      const pw = ops.packWeights(randn([O, C, k, k]));
      const scale = randn([O]), shift = randn([O]);
      const want = ops.bconv2dPacked(px, pw, { channels: C, stride, padding, kernel: 'reference' });
      const wantAffine = ops.bconv2dPacked(px, pw, { channels: C, stride, padding, scale, shift, kernel: 'reference' });
      for (const kernel of [undefined, 'popc', 'mma']) {
        const got = ops.bconv2dPacked(px.cuda(), pw.cuda(), { channels: C, stride, padding, kernel });
        expect(got.device).toMatch(/^cuda/);
        expect([kernel, same(got.cpu(), want)]).toEqual([kernel, true]);
        const affine = ops.bconv2dPacked(px.cuda(), pw.cuda(), {
          channels: C, stride, padding, scale: scale.cuda(), shift: shift.cuda(), kernel,
        }).cpu();
        const a = affine.toTypedArray() as Float32Array, b = wantAffine.toTypedArray() as Float32Array;
        a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b[i]))));
      }
    });
  });

  test('mixed devices are a clear error', () => {
    const px = ops.packSigns(randn([1, 3, 4, 4]));
    const pw = ops.packWeights(randn([2, 3, 3, 3]).cuda());
    expect(() => ops.bconv2dPacked(px, pw, { channels: 3 })).toThrow(/w is on cuda:0 but x is on cpu/);
  });
});
