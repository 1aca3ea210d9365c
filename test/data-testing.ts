// The test addon's entry points (native/testing, build/<config>/s2bnn_testing.node): single
// augmentation ops with given parameters, for parity with torchvision, and the parameters the
// loader draws for given samples. Not part of the package: the production addon has none of this.
import * as fs from 'fs';
import * as path from 'path';

import { AugmentOptions, Transform, resolveTransform } from '../lib/data';
import { Tensor, tensor } from '../lib/tensor';

/** Drawn augmentation parameters of one view (test entry point). */
export interface AugmentParams {
  /** [top, left, height, width] of the crop in the source image. */
  crop: [number, number, number, number];
  jitter: boolean;
  /** Jitter op order: 0 brightness, 1 contrast, 2 saturation, 3 hue. */
  order: [number, number, number, number];
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  grayscale: boolean;
  blur: boolean;
  sigma: number;
  flip: boolean;
}

/** Parameters of one deterministic op for dataTesting.applyTransform. */
export type TransformOp =
  | { op: 'toFloat' }
  | { op: 'resample'; size: [number, number]; box?: [number, number, number, number]; window?: [number, number, number, number]; flip?: boolean }
  | { op: 'brightness' | 'contrast' | 'saturation' | 'hue'; factor: number }
  | { op: 'grayscale' }
  | { op: 'blur'; kernelSize: number; sigma: number }
  | { op: 'normalize'; mean: number[]; std: number[] }
  | { op: 'augment'; options: AugmentOptions; params: Partial<AugmentParams> }
  | { op: 'eval'; transform: Transform };

interface TestingAddon {
  applyTransform(
    image: { pixels: Uint8Array; shape: number[] },
    spec: TransformOp & { channels?: number },
  ): { data: Float32Array; shape: number[] };
  sampleAugment(options: AugmentOptions, where: Record<string, number>): {
    crop: Int32Array; order: Int32Array; flags: Uint8Array; factors: Float64Array;
  };
  defaultBlurKernelSize(size: number): number;
}

let addon: TestingAddon | undefined;

function testingAddon(): TestingAddon {
  if (addon) return addon;
  const config = process.env.S2BNN_DEBUG_BUILD === '1' ? 'Debug' : 'Release';
  const file = path.join(__dirname, '..', 'build', config, 's2bnn_testing.node');
  if (!fs.existsSync(file)) throw new Error(`the test addon is not built (no ${file}); run \`npm run build\``);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  addon = require(file) as TestingAddon;
  return addon;
}

export const dataTesting = {
  applyTransform(image: Tensor, spec: TransformOp & { channels?: number }): Tensor {
    const channels = spec.channels ?? (image.shape[2] === 1 ? 1 : 3);
    let resolved = spec;
    if (spec.op === 'augment') {
      const t = resolveTransform({ kind: 'augment', options: spec.options }, channels) as { options: AugmentOptions };
      resolved = { ...spec, options: t.options };
    } else if (spec.op === 'eval') {
      resolved = { ...spec, transform: resolveTransform(spec.transform, channels) };
    }
    if (image.dtype !== 'uint8' || image.shape.length !== 3) throw new Error('image must be a uint8 tensor [H, W, C]');
    const pixels = image.contiguous().data() as Uint8Array;
    const out = testingAddon().applyTransform({ pixels, shape: image.shape }, resolved);
    // A copy made in this realm: jest's Float32Array is not the addon's.
    return tensor(new Float32Array(out.data), { shape: out.shape });
  },
  sampleAugment(
    options: AugmentOptions,
    where: { seed?: number; epoch?: number; view?: number; height: number; width: number; first?: number; count?: number },
  ): AugmentParams[] {
    // The draws do not depend on normalization; any valid mean/std will do.
    const withNorm = { mean: [0], std: [1], ...options };
    const { crop, order, flags, factors } = testingAddon().sampleAugment(withNorm, where as Record<string, number>);
    return Array.from({ length: flags.length / 4 }, (_, i) => ({
      crop: Array.from(crop.subarray(4 * i, 4 * i + 4)) as AugmentParams['crop'],
      jitter: flags[4 * i] === 1,
      order: Array.from(order.subarray(4 * i, 4 * i + 4)) as AugmentParams['order'],
      brightness: factors[5 * i],
      contrast: factors[5 * i + 1],
      saturation: factors[5 * i + 2],
      hue: factors[5 * i + 3],
      grayscale: flags[4 * i + 1] === 1,
      blur: flags[4 * i + 2] === 1,
      sigma: factors[5 * i + 4],
      flip: flags[4 * i + 3] === 1,
    }));
  },
  defaultBlurKernelSize(size: number): number {
    return testingAddon().defaultBlurKernelSize(size);
  },
};
