// The CUDA kernels against the CPU kernels (which the other suites tie to the Python reference).
// Runs only where a CUDA build of s2bnn sees a device; elsewhere the suite is skipped with the
// reason. On a lent GPU: `bash .gpu/run.sh 'npm run build && npx jest test/cuda'`.
import { Tensor, manualSeed, ops, rand, randn } from '../../lib';
import { cudaSuite, relativeError, values } from '../helpers';

const { devices, reason } = cudaSuite();

type Run = (device: 'cpu' | 'cuda', dtype: 'float32' | 'float16' | 'bfloat16') => Tensor[];

function leaves(inputs: Tensor[], device: 'cpu' | 'cuda', dtype: string): Tensor[] {
  return inputs.map((t) => t.to({ device, dtype: dtype as 'float32' }).detach().requiresGrad_());
}

// Output and every input gradient of sum(output * output) (sum(output) for scalar losses).
function outputsAndGrads(inputs: Tensor[], fn: (xs: Tensor[]) => Tensor, device: 'cpu' | 'cuda', dtype: string): Tensor[] {
  const xs = leaves(inputs, device, dtype);
  const y = fn(xs);
  (y.ndim === 0 ? y : y.mul(y).sum()).backward();
  return [y, ...xs.map((x) => x.grad!)].map((t) => t.to({ device: 'cpu', dtype: 'float32' }));
}

function compare(name: string, inputs: () => Tensor[], fn: (xs: Tensor[]) => Tensor, tolerance: Record<string, number>) {
  test.each(Object.entries(tolerance))(`${name} %s`, (dtype, tol) => {
    manualSeed(17);
    const data = inputs();
    const cpu = outputsAndGrads(data, fn, 'cpu', 'float32');
    const gpu = outputsAndGrads(data, fn, 'cuda', dtype);
    cpu.forEach((expected, i) => expect(relativeError(values(gpu[i]), values(expected))).toBeLessThanOrEqual(tol));
  });
}

(devices > 0 ? describe : describe.skip)(`CUDA kernels${devices > 0 ? '' : ` (skipped: ${reason})`}`, () => {
  const lowPrecision = { float32: 1e-5, float16: 2e-2, bfloat16: 5e-2 };
  compare('sign_ste', () => [randn([8, 64, 28, 28]).mul(1.5)], ([x]) => ops.signSte(x), lowPrecision);
  compare('sign_ste_biased', () => [randn([8, 64, 28, 28]), randn([1, 64, 1, 1])], ([x, b]) => ops.signSteBiased(x, b), lowPrecision);
  compare('binary_conv2d with inputBias', () => [randn([4, 32, 14, 14]), rand([32, 32, 3, 3]).sub(0.5), randn([32]).mul(0.2)],
    ([x, w, b]) => ops.binaryConv2d(x, w, { padding: 1, inputBias: b }), { float32: 1e-4 });
  compare('binarize_weight', () => [rand([128, 64, 3, 3]).sub(0.5).mul(2.5)], ([w]) => ops.binarizeWeight(w), lowPrecision);
  compare('binary_conv2d', () => [randn([4, 32, 14, 14]), rand([32, 32, 3, 3]).sub(0.5)],
    ([x, w]) => ops.binaryConv2d(x, w, { stride: 2, padding: 1 }), { float32: 1e-4 });
  compare('rprelu', () => [randn([8, 32, 14, 14]), randn([1, 32, 1, 1]), rand([32]), randn([1, 32, 1, 1])],
    ([x, b1, a, b2]) => ops.rprelu(x, b1, a, b2), { float32: 1e-5, float16: 2e-2 });
  compare('distribution_loss', () => [randn([256, 128]), randn([256, 128])],
    ([s, t]) => ops.distributionLoss(s, t, 0.2), { float32: 1e-5 });
  compare('info_nce', () => [randn([64, 128]), randn([64, 128]), randn([128, 4096])],
    ([q, k, queue]) => ops.infoNce(q, k, queue, 0.2).loss, { float32: 1e-4 });

  test('a CUDA tensor and a CPU tensor in one op is a clear error', () => {
    expect(() => ops.distributionLoss(randn([2, 3]).cuda(), randn([2, 3]), 0.2)).toThrow(/teacher is on cpu but student is on cuda/);
  });
});
