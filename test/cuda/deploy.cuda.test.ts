// The packed ReActNet-A on a GPU against the same packed model on the CPU (which test/deploy.test.ts
// ties to the float network). Runs only where a CUDA build of s2bnn sees a device.
import { PackedModel, Tensor, manualSeed, randn, reactnetA, tidy } from '../../lib';
import { cudaSuite, relativeError, values } from '../helpers';

const { devices, reason } = cudaSuite();

(devices > 0 ? describe : describe.skip)(`packed ReActNet-A on CUDA${devices > 0 ? '' : ` (skipped: ${reason})`}`, () => {
  test.each([
    ['small stem, 28 px, width 0.375', { width: 0.375, stem: 'small' as const, inChannels: 1 }, [3, 1, 28, 28]],
    ['ImageNet stem, 224 px, width 1', { width: 1, stem: 'imagenet' as const, inChannels: 3 }, [2, 3, 224, 224]],
  ])('%s: logits equal the CPU packed model', async (_name, options, shape) => {
    manualSeed(5);
    const model = reactnetA({ ...options, numClasses: 100, binarize: 'both' }).eval();
    const state = new Map<string, Tensor>();
    for (const [name, t] of model.stateDict()) {
      if (t.dtype === 'float32') state.set(name, tidy(() => (name.endsWith('running_var') ? t.abs().add(0.5) : randn(t.shape).mul(0.1))));
    }
    const { model: cpu } = await PackedModel.fromState(state, { stem: options.stem });
    const { model: gpu } = await PackedModel.fromState(state, { stem: options.stem });
    gpu.to('cuda');
    expect(gpu.device).toBe('cuda:0');
    const x = randn(shape as number[]);
    const expected = await cpu.forward(x);
    const got = await gpu.forward(x.to('cuda'));
    expect(relativeError(values(got.cpu()), values(expected))).toBeLessThan(1e-5);
  });
});
