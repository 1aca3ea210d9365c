// Parity with the Python reference (scripts/python/s2bnn_reference.py, docs/method.md's formulas in
// plain PyTorch) run by Debian's python3-torch: values and gradients, rel err <= 1e-5.
import { Tensor, ops } from '../lib';
import { Dumped, fromDump, pythonWithTorch, relativeError, runPython, values } from './helpers';

interface Case {
  name: string;
  inputs: Record<string, Dumped>;
  gradOut: Dumped;
  output: Dumped;
  logits?: Dumped;
  grads: Record<string, Dumped>;
  stride?: number;
  padding?: number;
  binarizeInput?: boolean;
  binarizeWeight?: boolean;
  temperature?: number;
}

const { python, reason } = pythonWithTorch();
const cases: Case[] = python ? JSON.parse(runPython(python, ['test/python/fixtures.py'])).cases : [];

// Fixture names are the operator plus a variant suffix.
const kindOf = (c: Case): string => c.name.replace(/_(k\d.*|2d|normalized|large|biased)$/, '');

function run(c: Case, inputs: Record<string, Tensor>): { output: Tensor; logits?: Tensor } {
  switch (kindOf(c)) {
    case 'sign_ste':
      return { output: c.name.endsWith('biased') ? ops.signSteBiased(inputs.x, inputs.b) : ops.signSte(inputs.x) };
    case 'binarize_weight':
      return { output: ops.binarizeWeight(inputs.w) };
    case 'binary_conv2d':
      return {
        output: ops.binaryConv2d(inputs.x, inputs.w, {
          stride: c.stride,
          padding: c.padding,
          binarizeInput: c.binarizeInput,
          binarizeWeight: c.binarizeWeight,
          inputBias: inputs.b,
        }),
      };
    case 'rprelu':
      return { output: ops.rprelu(inputs.x, inputs.b1, inputs.a, inputs.b2) };
    case 'distribution_loss':
      return { output: ops.distributionLoss(inputs.s, inputs.t, c.temperature) };
    case 'info_nce': {
      const { loss, logits } = ops.infoNce(inputs.q, inputs.k, inputs.queue, c.temperature);
      return { output: loss, logits };
    }
    default:
      throw new Error(`no binding for fixture ${c.name}`);
  }
}

(python ? describe : describe.skip)(`parity with the Python reference${python ? '' : ` (skipped: ${reason})`}`, () => {
  test('fixtures cover every operator', () => {
    const kinds = new Set(cases.map(kindOf));
    expect([...kinds].sort()).toEqual(
      ['binarize_weight', 'binary_conv2d', 'distribution_loss', 'info_nce', 'rprelu', 'sign_ste'].sort(),
    );
  });

  test.each(cases.map((c) => [c.name, c] as const))('%s: values and gradients', (_name, c) => {
    const inputs: Record<string, Tensor> = {};
    for (const [key, dump] of Object.entries(c.inputs)) {
      inputs[key] = fromDump(dump).requiresGrad_(key in c.grads);
    }
    const { output, logits } = run(c, inputs);
    expect(output.shape).toEqual(c.output.shape);
    expect(relativeError(values(output), c.output.values)).toBeLessThanOrEqual(1e-5);
    if (c.logits) expect(relativeError(values(logits!), c.logits.values)).toBeLessThanOrEqual(1e-5);
    output.mul(fromDump(c.gradOut)).sum().backward();
    for (const [key, expected] of Object.entries(c.grads)) {
      const grad = inputs[key].grad;
      expect(grad).not.toBeNull();
      expect(grad!.shape).toEqual(expected.shape);
      expect(relativeError(values(grad!), expected.values)).toBeLessThanOrEqual(1e-5);
    }
  });
});
