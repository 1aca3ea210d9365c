// Flags several commands share, as table entries (lib/cli/command.ts), and the readers of the
// values that need more than their type (the device a build can use).
import { native } from '../native';
import { FlagSpec, UsageError } from './command';

export { defined } from '../defaults';

export { UsageError } from './command';

const flag = <S extends FlagSpec>(spec: S): S => spec;

export const DEVICE = flag({
  type: ['cpu', 'cuda'] as const,
  help: 'where the work runs (cuda: a GPU this build can use)',
  default: 'cpu',
});
export const THREADS = flag({ type: 'integer', help: 'libtorch threads', default: 'all cores or S2BNN_NUM_THREADS' });
export const JSON_SUMMARY = flag({ type: 'boolean', help: 'print the result as one JSON line' });

/** The flags of every command that reads a dataset. */
export const DATA_FLAGS = {
  data: flag({
    type: 'string',
    value: 'fashion-mnist|DIR',
    help: "the built-in dataset, or an ImageFolder tree: DIR/train and DIR/val (commands that only score need only DIR/val)",
    default: 'fashion-mnist',
  }),
  size: flag({ type: 'integer', help: 'image side', default: "the dataset's: 28 for fashion-mnist; a folder's images' side up to 64 px, else 224" }),
  stem: flag({
    type: ['imagenet', 'small'] as const,
    help: 'small keeps the resolution of 28-64 px images; imagenet downsamples 4x first',
    default: 'small up to 64 px, else imagenet',
  }),
  subset: flag({ type: 'integer', help: 'use N training images, evenly spaced over the split' }),
  'test-subset': flag({ type: 'integer', help: 'use N test images, evenly spaced over the split' }),
  workers: flag({ type: 'integer', help: "the data loader's native threads", default: 'all cores' }),
  threads: THREADS,
  seed: flag({ type: 'count', help: "seeds the weights a command initializes, the data order and every augmentation draw", default: 0 }),
  device: DEVICE,
  json: JSON_SUMMARY,
} as const;

/** The device a `--device` value names, once this build and machine can use it. */
export function checkDevice(value: 'cpu' | 'cuda' | undefined): 'cpu' | 'cuda' {
  if (value === 'cuda' && native().cudaDeviceCount() === 0) {
    throw new UsageError(
      native().build.cuda ? '--device cuda: no CUDA device is visible' : '--device cuda: this s2bnn build has no CUDA (built against a CPU libtorch)',
    );
  }
  return value ?? 'cpu';
}
