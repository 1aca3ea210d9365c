// Datasets, augmentation transforms and the batching DataLoader over the native pipeline
// (native/data): batches are assembled on a native thread pool; JS only receives finished tensors.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import type { DatasetHandle, FolderHandle, LoaderHandle, NativeLoaderOptions, NativeTransform, RawBatch, SkippedSample } from './binding';
import { withDefaults } from './defaults';
import { TensorHandle, native } from './native';
import { Tensor } from './tensor';

/** RandomResizedCrop + the optional MoCo v2 / SimCLR style augmentations, torchvision semantics. */
export interface AugmentOptions {
  /** Output side S: every view is S x S. */
  size: number;
  /** RandomResizedCrop area fraction range (default [0.08, 1]). */
  scale?: [number, number];
  /** RandomResizedCrop aspect ratio range, sampled log-uniformly (default [3/4, 4/3]). */
  ratio?: [number, number];
  /** Horizontal flip probability (default 0). */
  hflip?: number;
  /** ColorJitter applied with probability p (RandomApply); factors sampled as torchvision does. */
  colorJitter?: { p: number; brightness: number; contrast: number; saturation: number; hue: number };
  /** RandomGrayscale probability (default 0; no-op on 1-channel images). */
  grayscale?: number;
  /** Gaussian blur with probability p, sigma uniform in `sigma`; kernelSize defaults to the odd size closest to 10 % of `size` (at least 3). */
  blur?: { p: number; sigma: [number, number]; kernelSize?: number };
  /** Normalize; defaults: Fashion-MNIST's (0.2860 / 0.3530) for 1 channel, ImageNet's for 3. */
  mean?: number[];
  std?: number[];
}

export type Transform =
  | { kind: 'augment'; options: AugmentOptions }
  | { kind: 'eval'; resize: number; crop: number; mean?: number[]; std?: number[] };

const FASHION_MNIST_NORMALIZATION = { mean: [0.286], std: [0.353] };
const IMAGENET_NORMALIZATION = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** The default Normalize parameters for a channel count (1: Fashion-MNIST's, 3: ImageNet's). */
export function defaultNormalization(channels: number): { mean: number[]; std: number[] } {
  if (channels === 1) return { mean: [...FASHION_MNIST_NORMALIZATION.mean], std: [...FASHION_MNIST_NORMALIZATION.std] };
  if (channels === 3) return { mean: [...IMAGENET_NORMALIZATION.mean], std: [...IMAGENET_NORMALIZATION.std] };
  throw argumentError(`no default mean/std for ${channels} channels; give mean and std`);
}

function argumentError(message: string): Error {
  return Object.assign(new Error(message), { code: 'S2BNN_ARGUMENT' });
}

function checkChannels(channels: number): void {
  if (channels !== 1 && channels !== 3) throw argumentError(`channels must be 1 or 3, got ${channels}`);
}

function mocoStyle(size: number, channels: number, jitterP: number, blurP: number): Transform {
  checkChannels(channels);
  return {
    kind: 'augment',
    options: {
      size,
      scale: [0.2, 1],
      ratio: [3 / 4, 4 / 3],
      colorJitter: { p: jitterP, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 },
      grayscale: 0.2,
      blur: { p: blurP, sigma: [0.1, 2.0] },
      hflip: 0.5,
      ...defaultNormalization(channels),
    },
  };
}

/** The recipes' transforms (docs/method.md). */
export const transforms = {
  /** Standard MoCo v2: crop scale 0.2..1, ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale 0.2, blur p 0.5, flip. */
  mocoV2: (size: number, channels = 3): Transform => mocoStyle(size, channels, 0.8, 0.5),
  /** S2-BNN's lighter augmentation: as MoCo v2 but ColorJitter p 0.6 and blur p 0.2. */
  s2bnnLite: (size: number, channels = 3): Transform => mocoStyle(size, channels, 0.6, 0.2),
  /** Linear evaluation training: RandomResizedCrop(size) (scale 0.08..1) + flip. */
  linearTrain: (size: number, channels = 3): Transform => {
    checkChannels(channels);
    return { kind: 'augment', options: { size, hflip: 0.5, ...defaultNormalization(channels) } };
  },
  /** Evaluation: resize the shorter side to `resize`, center crop `crop` (ImageNet: 256 / 224). */
  evaluation: (resize: number, crop: number, channels = 3): Transform => {
    checkChannels(channels);
    return { kind: 'eval', resize, crop, ...defaultNormalization(channels) };
  },
};

/** A transform with mean/std filled in for `channels` (what the native loader receives). */
export function resolveTransform(transform: Transform, channels: number): NativeTransform {
  if (transform === null || typeof transform !== 'object') throw argumentError('transform must be an object');
  if (transform.kind === 'augment') {
    const options = transform.options ?? ({} as AugmentOptions);
    const defaults = options.mean === undefined || options.std === undefined ? defaultNormalization(channels) : null;
    return { kind: 'augment', options: { ...options, mean: options.mean ?? defaults!.mean, std: options.std ?? defaults!.std } };
  }
  if (transform.kind === 'eval') {
    const defaults = transform.mean === undefined || transform.std === undefined ? defaultNormalization(channels) : null;
    return { ...transform, mean: transform.mean ?? defaults!.mean, std: transform.std ?? defaults!.std };
  }
  throw argumentError(`transform.kind must be 'augment' or 'eval', got '${(transform as { kind: unknown }).kind}'`);
}

// ---- native handles ----------------------------------------------------------------------------

/** What ImageFolder.open() did with its index file (see ImageFolderOptions.index). */
export interface ImageFolderIndexInfo {
  /** The index file, or null when open() was given `index: false`. */
  path: string | null;
  /**
   * `loaded` (the listing came from the index), `created` (no index yet: scanned and written),
   * `rebuilt` (stale, corrupt or for another root: scanned and rewritten; `reason` says which),
   * `unwritten` (scanned; the index could not be written: `reason`), `off`.
   */
  status: 'loaded' | 'created' | 'rebuilt' | 'unwritten' | 'off';
  reason: string;
}

export interface ImageFolderOptions {
  /** 3 (default): RGB; 1: luma (by the transform). */
  channels?: 1 | 3;
  /**
   * The listing's cache file, or false for none. Default: a file per root (by its real path) in
   * `$S2BNN_CACHE_DIR`, else `$XDG_CACHE_HOME/s2bnn`, else `~/.cache/s2bnn`. A valid index
   * (every folder's modification time unchanged) replaces the scan; a stale or unreadable one
   * is rebuilt; index problems never fail open().
   */
  index?: string | false;
}

/** The default index file of an ImageFolder root (see ImageFolderOptions.index). */
export function defaultIndexPath(root: string): string {
  let real = path.resolve(root);
  try {
    real = fs.realpathSync(root);
  } catch {
    // a missing root fails in open() with its own message
  }
  const base =
    process.env.S2BNN_CACHE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 's2bnn');
  const key = crypto.createHash('sha256').update(real).digest('hex').slice(0, 16);
  return path.join(base, `imagefolder-${key}.idx`);
}



// ---- datasets ----------------------------------------------------------------------------------

/**
 * Images held in memory: a uint8 tensor [N, H, W, C] (C = 1 or 3) and int64 labels [N] in
 * [0, classes.length). The tensors' memory is shared, not copied; subsets share it too.
 */
export class InMemoryDataset {
  /** @internal */
  readonly handle: DatasetHandle;
  readonly classes: readonly string[];

  constructor(images: Tensor, labels: Tensor, classes: string[]) {
    if (!(images instanceof Tensor)) throw argumentError('images must be a Tensor (uint8 [N, H, W, C])');
    if (!(labels instanceof Tensor)) throw argumentError('labels must be a Tensor (int64 [N])');
    if (!Array.isArray(classes) || classes.length < 1 || classes.some((c) => typeof c !== 'string')) {
      throw argumentError('classes must be a non-empty array of class names');
    }
    this.handle = native().createInMemoryDataset(images.handle, labels.handle, classes.length);
    this.classes = Object.freeze([...classes]);
  }

  private static fromHandle(handle: DatasetHandle, classes: readonly string[]): InMemoryDataset {
    const dataset = Object.create(InMemoryDataset.prototype) as { handle: DatasetHandle; classes: readonly string[] };
    dataset.handle = handle;
    dataset.classes = classes;
    return dataset as unknown as InMemoryDataset;
  }

  get length(): number {
    return this.handle.length;
  }
  get numClasses(): number {
    return this.classes.length;
  }
  get channels(): number {
    return this.handle.channels;
  }
  get height(): number {
    return this.handle.height;
  }
  get width(): number {
    return this.handle.width;
  }

  /** The samples at `indices` (positions in this dataset; repeats allowed), sharing memory. */
  subset(indices: number[] | Int32Array): InMemoryDataset {
    return InMemoryDataset.fromHandle(this.handle.subset(indices), this.classes);
  }

  /** The images, uint8 [length, H, W, C] (a copy for subsets). */
  images(): Tensor {
    return new Tensor(this.handle.images());
  }

  /** The labels, int64 [length]. */
  labels(): Tensor {
    return new Tensor(this.handle.labels());
  }
}

/**
 * A torchvision-style ImageFolder tree, `root/<class>/<image>.jpg` (images may sit in subfolders), JPEGs decoded with
 * libjpeg-turbo and PNGs with libpng on the DataLoader's threads. Labels follow the sorted class folder names; images
 * are sorted by path within a class. Files that do not decode are skipped by the DataLoader and reported in
 * `loader.skipped()`. The listing is cached in an index file (ImageFolderOptions.index).
 */
export class ImageFolder {
  /** @internal */
  readonly handle: FolderHandle;
  readonly classes: readonly string[];

  private constructor(handle: FolderHandle, classes: readonly string[]) {
    this.handle = handle;
    this.classes = classes;
  }

  /**
   * Scans `root`, or reads its valid index (off the JS thread). `channels` 3 (default) decodes to RGB, grayscale and CMYK
   * JPEGs and every PNG included; 1 gives luma (by the transform). Rejects with code S2BNN_DATASET naming the folder when
   * root is missing, has no class folders, or a class folder has no image.
   */
  static async open(root: string, options: ImageFolderOptions = {}): Promise<ImageFolder> {
    if (typeof root !== 'string' || root.length === 0) throw argumentError('root must be a folder path');
    const channels = options.channels ?? 3;
    checkChannels(channels);
    const index = options.index;
    if (index !== undefined && index !== false && (typeof index !== 'string' || index.length === 0)) {
      throw argumentError('index must be a file path or false');
    }
    const indexPath = index === false ? '' : index ?? defaultIndexPath(root);
    const handle = await native().openImageFolder(root, channels, indexPath);
    return new ImageFolder(handle, Object.freeze(handle.classes()));
  }

  /** What open() did with the index file. */
  get index(): ImageFolderIndexInfo {
    const info = this.handle.index();
    return { path: info.path === '' ? null : info.path, status: info.status as ImageFolderIndexInfo['status'], reason: info.reason };
  }

  get root(): string {
    return this.handle.root;
  }
  get length(): number {
    return this.handle.length;
  }
  get numClasses(): number {
    return this.classes.length;
  }
  get channels(): number {
    return this.handle.channels;
  }

  /** The file of sample `index`. */
  path(index: number): string {
    return this.handle.path(index);
  }

  /** The samples at `indices` (positions in this dataset; repeats allowed); the listing is shared. */
  subset(indices: number[] | Int32Array): ImageFolder {
    return new ImageFolder(this.handle.subset(indices), this.classes);
  }

  /** The labels, int64 [length]. */
  labels(): Tensor {
    return new Tensor(this.handle.labels());
  }

  /**
   * Sample `index` decoded, uint8 [H, W, C] before any transform (C = channels; CMYK JPEGs give
   * RGB, which the transforms convert). Rejects with code S2BNN_BAD_IMAGE for an undecodable file.
   */
  async read(index: number): Promise<Tensor> {
    return new Tensor(await this.handle.read(index));
  }
}

/** What a DataLoader reads: images in memory or an ImageFolder tree. */
export type Dataset = InMemoryDataset | ImageFolder;

/** A sample the DataLoader could not decode and replaced (see LoaderOptions.strict). */
export type { SkippedSample } from './binding';

// ---- the loader --------------------------------------------------------------------------------

export interface LoaderOptions {
  batchSize: number;
  /** Independently augmented views per image (default 1). */
  views?: 1 | 2;
  transform: Transform;
  /** Shuffle each epoch with a (seed, epoch)-seeded permutation (default true). */
  shuffle?: boolean;
  /** Seeds the shuffle and every augmentation draw (default 0). */
  seed?: number;
  /**
   * Drop the last incomplete batch, and with worldSize > 1 cut the sample list to a multiple of
   * worldSize; without it the list is padded by repeating its head (default false).
   */
  dropLast?: boolean;
  /** Native worker threads (default: the hardware threads). */
  workers?: number;
  /** Batches assembled ahead of the consumer (default 2). */
  prefetch?: number;
  /** This process's shard (default 0 of 1). */
  rank?: number;
  worldSize?: number;
  /**
   * A sample that cannot be decoded fails its batch with code S2BNN_BAD_IMAGE (true), or is
   * replaced by the next decodable sample of the epoch order and listed in skipped() (false,
   * the default), so batch shapes stay constant.
   */
  strict?: boolean;
  /**
   * Crop-aware decoding of ImageFolder JPEGs (default true): only the region the transforms read
   * is decoded, at 1/2, 1/4 or 1/8 scale (libjpeg's DCT-domain reduction) while every view's
   * resize stays a downscale. The transform parameters are the same either way; pixels differ
   * slightly (docs/data.md). false decodes every image whole, at full scale.
   */
  cropDecode?: boolean;
  /**
   * The views' element type (default 'float32', normalized). 'uint8': the pixels before
   * normalization, round(255 x) (normalize on the GPU: a quarter of the bytes to copy);
   * 'float16': normalized, half precision.
   */
  dtype?: 'float32' | 'uint8' | 'float16';
  /**
   * Batch buffers in page-locked (pinned) memory for asynchronous host-to-GPU copies (default
   * 'auto': when libtorch sees a CUDA device). Without a CUDA device nothing is pinned, whatever
   * is asked; `loader.pinned` says what was decided.
   */
  pinMemory?: boolean | 'auto';
}

export interface Batch {
  /** `views` tensors [B, C, S, S] of LoaderOptions.dtype (float32 by default). */
  views: Tensor[];
  /** int64 [B]. */
  labels: Tensor;
  /** int64 [B]: the samples' positions in the dataset. */
  indices: Tensor;
  epoch: number;
  /** The batch's position within the epoch. */
  index: number;
  dispose(): void;
}

function makeBatch(raw: RawBatch): Batch {
  const views = raw.views.map((h) => new Tensor(h));
  const labels = new Tensor(raw.labels);
  const indices = new Tensor(raw.indices);
  return {
    views,
    labels,
    indices,
    epoch: raw.epoch,
    index: raw.index,
    dispose() {
      for (const v of views) v.dispose();
      labels.dispose();
      indices.dispose();
    },
  };
}

function closedError(): Error {
  return Object.assign(new Error('the DataLoader was closed while a batch was pending'), { code: 'S2BNN_DISPOSED' });
}

function supersededError(epoch: number): Error {
  return Object.assign(new Error(`this iterator of epoch ${epoch} was superseded by a later epoch() call`), {
    code: 'S2BNN_DISPOSED',
  });
}

// LoaderOptions' defaults, in one place; the native loader receives every field resolved and
// checks the values' types and ranges itself.
const LOADER_DEFAULTS: Omit<NativeLoaderOptions, 'batchSize' | 'transform'> = {
  views: 1,
  shuffle: true,
  seed: 0,
  dropLast: false,
  workers: 0, // the hardware threads
  prefetch: 2,
  rank: 0,
  worldSize: 1,
  strict: false,
  cropDecode: true,
  dtype: 'float32',
  pinMemory: 'auto',
};

function resolveLoaderOptions(options: LoaderOptions, channels: number): NativeLoaderOptions {
  if (options.batchSize === undefined) throw argumentError('batchSize is required');
  if (options.transform === undefined) throw argumentError('transform is required');
  if (typeof options.workers === 'number' && options.workers < 1) throw argumentError('workers must be between 1 and 1024');
  return { ...withDefaults(LOADER_DEFAULTS, options), batchSize: options.batchSize, transform: resolveTransform(options.transform, channels) };
}

/**
 * Batches of a dataset, assembled natively: each epoch's order is a (seed, epoch)-seeded shuffle,
 * sharded by rank; every augmentation draw depends only on (seed, epoch, sample, view), so the
 * batches are identical for any worker count.
 */
export class DataLoader {
  readonly dataset: Dataset;
  private readonly handle: LoaderHandle;
  private generation = 0;

  constructor(dataset: Dataset, options: LoaderOptions) {
    if (!(dataset instanceof InMemoryDataset) && !(dataset instanceof ImageFolder)) {
      throw argumentError('dataset must be an InMemoryDataset or an ImageFolder');
    }
    if (options === null || typeof options !== 'object') throw argumentError('options must be an object');
    this.dataset = dataset;
    this.handle = native().createLoader(dataset.handle, resolveLoaderOptions(options, dataset.channels));
  }

  get batchesPerEpoch(): number {
    return this.handle.batchesPerEpoch;
  }
  /** Samples this rank sees per epoch (padded or cut to a multiple of worldSize). */
  get samplesPerRank(): number {
    return this.handle.samplesPerRank;
  }
  get workers(): number {
    return this.handle.workers;
  }
  /** Whether batches are allocated in pinned memory (LoaderOptions.pinMemory). */
  get pinned(): boolean {
    return this.handle.pinned;
  }
  get closed(): boolean {
    return this.handle.closed;
  }

  /** This rank's sample order for an epoch (dataset positions, batch after batch). */
  epochOrder(epoch: number): number[] {
    const t = new Tensor(this.handle.epochOrder(epoch));
    try {
      return Array.from(t.toTypedArray() as BigInt64Array, Number);
    } finally {
      t.dispose();
    }
  }

  /**
   * Iterates one epoch from `startBatch` (default 0): batch b of epoch e is the same whether the
   * run started at 0 or resumed at b. Calling epoch() starts prefetching at once and ends any
   * earlier epoch's iteration (its pending and later next() calls fail with S2BNN_DISPOSED).
   */
  epoch(epoch: number, options: { startBatch?: number } = {}): AsyncIterableIterator<Batch> {
    this.handle.startEpoch(epoch, options.startBatch ?? 0);
    const generation = ++this.generation;
    let done = false;
    const iterator: AsyncIterableIterator<Batch> = {
      next: async (): Promise<IteratorResult<Batch>> => {
        if (done) return { done: true, value: undefined };
        if (generation !== this.generation) {
          done = true;
          throw supersededError(epoch);
        }
        let raw: RawBatch | null;
        try {
          raw = await this.handle.next();
        } catch (err) {
          // Superseded or closed: this iteration is over. Other errors (a sample that failed to
          // load) end only the batch that hit them.
          if (generation !== this.generation || (err as { code?: string }).code === 'S2BNN_DISPOSED') done = true;
          throw err;
        }
        // A batch that was already on its way when a later epoch() or close() came is dropped
        // too: a superseded or closed iterator never yields.
        if (generation !== this.generation || this.handle.closed) {
          done = true;
          if (raw !== null) makeBatch(raw).dispose();
          throw generation !== this.generation ? supersededError(epoch) : closedError();
        }
        if (raw === null) {
          done = true;
          return { done: true, value: undefined };
        }
        return { done: false, value: makeBatch(raw) };
      },
      return: async (): Promise<IteratorResult<Batch>> => {
        done = true;
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Samples skipped so far because they could not be decoded, each file once, in the order met. */
  skipped(): SkippedSample[] {
    return this.handle.skipped();
  }

  /** Stops the workers; pending next() calls reject with S2BNN_DISPOSED. Idempotent. */
  close(): void {
    this.handle.close();
  }
}
