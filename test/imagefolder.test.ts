// ImageFolder trees decoded with libjpeg-turbo: labels by sorted class name, pixels against PIL's
// decode of the same files (RGB, grayscale and CMYK JPEGs), batches through the DataLoader, bad
// files skipped and reported (or failing under strict), clear errors for empty trees, and the
// CLI's train/val layout end to end. The JPEGs are written by PIL (Debian's python3-pil).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { DataLoader, ImageFolder, transforms } from '../lib';
import { pythonWith, repoRoot, runPython, tempDir } from './helpers';

const pil = pythonWith(['PIL'], "Debian's python3-pil");
const python = pil.python ?? '';
const hasPil = pil.python !== null;
// Skipped only outside CI (S2BNN_REQUIRE_PYTHON_TORCH=1 turns a missing PIL into a failure).
const describePil = hasPil ? describe : describe.skip;

const tmp = tempDir('imagefolder');
// The default index files (ImageFolderOptions.index) go with the trees, not into ~/.cache.
process.env.S2BNN_CACHE_DIR = path.join(tmp, 'index-cache');

// Writes the trees and prints, per good file, PIL's RGB and L decode (base64 of the raw bytes).
const GENERATE = String.raw`
import base64, io, json, os, sys
import numpy as np
from PIL import Image
tmp = sys.argv[1]
rng = np.random.default_rng(0)
def picture(h, w):
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w) + 60], -1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
def save(path, mode='RGB', h=40, w=48):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(picture(h, w))
    if mode != 'RGB': image = image.convert(mode)
    image.save(path, quality=90)
decoded = {}
ds = os.path.join(tmp, 'ds')
# Class names sort by code point, as Python's sorted(): 'Mango' < 'apple' < 'zebra'.
save(f'{ds}/zebra/z1.jpg'); save(f'{ds}/zebra/z0.JPEG', 'L'); save(f'{ds}/zebra/nested/z2.jpeg', h=31, w=17)
save(f'{ds}/apple/a0.jpg', 'CMYK'); save(f'{ds}/apple/a1.jpg')
save(f'{ds}/Mango/m0.jpg', 'L', h=20, w=24)
open(f'{ds}/apple/notes.txt', 'w').write('not an image')
os.makedirs(f'{ds}/.hidden', exist_ok=True)
for root, _, files in os.walk(ds):
    for f in files:
        p = os.path.join(root, f)
        if p.lower().endswith(('.jpg', '.jpeg')):
            with Image.open(p) as im:
                decoded[p] = {'mode': im.mode, 'rgb': base64.b64encode(im.convert('RGB').tobytes()).decode(),
                              'l': base64.b64encode(im.convert('L').tobytes()).decode()}
bad = os.path.join(tmp, 'bad')
save(f'{bad}/a/good.jpg'); save(f'{bad}/b/good.jpg')
open(f'{bad}/a/zero.jpg', 'wb').close()
whole = open(f'{bad}/a/good.jpg', 'rb').read()
open(f'{bad}/a/trunc.jpg', 'wb').write(whole[: len(whole) // 2])
open(f'{bad}/a/text.jpg', 'w').write('hello, not a jpeg')
buffer = io.BytesIO(); Image.fromarray(picture(8, 8)).save(buffer, 'PNG')
open(f'{bad}/a/fake.png', 'wb').write(buffer.getvalue()[:60])
for split, per in (('train', 16), ('val', 4)):
    for c in range(4):
        for i in range(per): save(f'{tmp}/cli/{split}/c{c}/{i}.jpg')
json.dump(decoded, sys.stdout)
`;

let decoded: Record<string, { mode: string; rgb: string; l: string }> = {};
beforeAll(() => {
  if (hasPil) decoded = JSON.parse(runPython(python, ['-c', GENERATE, tmp]));
});

function maxDifference(a: Uint8Array, b: Buffer): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

describePil('ImageFolder', () => {
  test('classes sort by name, files by path; labels follow; non-images and hidden folders are left out', async () => {
    const ds = await ImageFolder.open(path.join(tmp, 'ds'));
    expect(ds.classes).toEqual(['Mango', 'apple', 'zebra']);
    expect([ds.length, ds.numClasses, ds.channels]).toEqual([6, 3, 3]);
    const rel = Array.from({ length: ds.length }, (_, i) => path.relative(ds.root, ds.path(i)));
    expect(rel).toEqual(['Mango/m0.jpg', 'apple/a0.jpg', 'apple/a1.jpg', 'zebra/nested/z2.jpeg', 'zebra/z0.JPEG', 'zebra/z1.jpg']);
    const labels = ds.labels();
    expect(Array.from(labels.toTypedArray() as BigInt64Array, Number)).toEqual([0, 1, 1, 2, 2, 2]);
    labels.dispose();
    const sub = ds.subset([5, 0, 5]);
    expect([sub.length, sub.path(0), sub.path(1), sub.path(2)]).toEqual([3, ds.path(5), ds.path(0), ds.path(5)]);
  });

  test('decoded pixels match PIL within 2 for RGB, grayscale and CMYK JPEGs, 3 and 1 channels', async () => {
    const modes = new Set<string>();
    const tooFar: [string, number, number][] = [];
    for (const channels of [3, 1] as const) {
      const ds = await ImageFolder.open(path.join(tmp, 'ds'), { channels });
      for (let i = 0; i < ds.length; i++) {
        const reference = decoded[ds.path(i)];
        modes.add(reference.mode);
        const image = await ds.read(i);
        // Only grayscale JPEGs decode to 1 channel; the transforms take luma from RGB.
        const expected = image.shape[2] === 3 ? reference.rgb : reference.l;
        expect(image.shape[2]).toBe(channels === 1 && reference.mode === 'L' ? 1 : 3);
        const difference = maxDifference(image.toTypedArray() as Uint8Array, Buffer.from(expected, 'base64'));
        if (difference > 2) tooFar.push([ds.path(i), channels, difference]);
        image.dispose();
      }
    }
    expect(tooFar).toEqual([]);
    expect([...modes].sort()).toEqual(['CMYK', 'L', 'RGB']);
  });

  test('batches come out of the DataLoader with the right shapes and labels', async () => {
    const ds = await ImageFolder.open(path.join(tmp, 'ds'));
    const loader = new DataLoader(ds, { batchSize: 4, views: 2, transform: transforms.mocoV2(32), workers: 2, seed: 3 });
    const seen: number[] = [];
    for await (const batch of loader.epoch(0)) {
      expect(batch.views.map((v) => v.shape)).toEqual([[batch.labels.shape[0], 3, 32, 32], [batch.labels.shape[0], 3, 32, 32]]);
      const labels = Array.from(batch.labels.toTypedArray() as BigInt64Array, Number);
      const indices = Array.from(batch.indices.toTypedArray() as BigInt64Array, Number);
      indices.forEach((index, k) => expect(labels[k]).toBe([0, 1, 1, 2, 2, 2][index]));
      seen.push(...indices);
      batch.dispose();
    }
    expect(seen.sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(loader.skipped()).toEqual([]);
    loader.close();
  });

  test('corrupt, truncated, empty, non-image files and a truncated PNG are skipped and reported; strict fails naming the file', async () => {
    const ds = await ImageFolder.open(path.join(tmp, 'bad'));
    const names = Array.from({ length: ds.length }, (_, i) => path.relative(ds.root, ds.path(i)));
    expect(names).toEqual(['a/fake.png', 'a/good.jpg', 'a/text.jpg', 'a/trunc.jpg', 'a/zero.jpg', 'b/good.jpg']);
    const options = { batchSize: 6, transform: transforms.evaluation(16, 16), shuffle: false, workers: 2 };
    const loader = new DataLoader(ds, options);
    for (let epoch = 0; epoch < 2; epoch++) {
      for await (const batch of loader.epoch(epoch)) {
        expect(batch.views[0].shape).toEqual([6, 3, 16, 16]);
        // Each bad position holds the next good sample of the order: good.jpg (1) or b/good.jpg (5).
        expect(Array.from(batch.indices.toTypedArray() as BigInt64Array, Number)).toEqual([1, 1, 5, 5, 5, 5]);
        expect(Array.from(batch.labels.toTypedArray() as BigInt64Array, Number)).toEqual([0, 0, 1, 1, 1, 1]);
        batch.dispose();
      }
    }
    const skipped = loader.skipped().sort((a, b) => a.path.localeCompare(b.path));
    expect(skipped.map((s) => path.relative(ds.root, s.path))).toEqual(['a/fake.png', 'a/text.jpg', 'a/trunc.jpg', 'a/zero.jpg']);
    expect(skipped[0].reason).toMatch(/corrupt PNG: truncated/);
    expect(skipped[1].reason).toMatch(/not a JPEG/);
    expect(skipped[2].reason).toMatch(/truncated/);
    expect(skipped[3].reason).toMatch(/empty/);
    loader.close();

    const strict = new DataLoader(ds, { ...options, strict: true });
    await expect(strict.epoch(0).next()).rejects.toMatchObject({ code: 'S2BNN_BAD_IMAGE', message: expect.stringContaining('fake.png') });
    strict.close();
    await expect(ds.read(4)).rejects.toMatchObject({ code: 'S2BNN_BAD_IMAGE', message: expect.stringContaining('zero.jpg: empty file') });
  });

  test('a missing root, a root without class folders and an empty class folder are clear errors', async () => {
    await expect(ImageFolder.open(path.join(tmp, 'nowhere'))).rejects.toMatchObject({ code: 'S2BNN_DATASET', message: expect.stringMatching(/nowhere' is not a folder/) });
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    await expect(ImageFolder.open(empty)).rejects.toThrow(/'.*empty' has no class folders/);
    fs.mkdirSync(path.join(empty, 'cats'));
    fs.writeFileSync(path.join(empty, 'cats', 'readme.txt'), 'x');
    await expect(ImageFolder.open(empty)).rejects.toThrow(/class folder '.*empty\/cats' holds no .jpg/);
    await expect(ImageFolder.open(empty, { channels: 2 as 3 })).rejects.toThrow(/channels must be 1 or 3/);
  });
});

describePil('CLI with an ImageFolder tree', () => {
  const cli = path.join(repoRoot, 'dist', 'cli.js');
  const run = (...args: string[]) => {
    const res = spawnSync(process.execPath, [cli, ...args], {
      encoding: 'utf8', cwd: repoRoot, env: { ...process.env, S2BNN_NUM_THREADS: '2' }, timeout: 120_000, killSignal: 'SIGKILL',
    });
    return { code: res.status, stdout: res.stdout, stderr: res.stderr };
  };

  test('pretrain on train/ at --size 32, then knn on train/ and val/', () => {
    const out = path.join(tmp, 'run');
    const data = path.join(tmp, 'cli');
    let r = run('pretrain', '--recipe', 'moco-v2', '--arch', 'resnet18', '--width', '0.125', '--data', data, '--size', '32',
      '--epochs', '1', '--batch-size', '8', '--queue-size', '64', '--workers', '2', '--out', out, '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toMatchObject({ completed: true, position: { epoch: 1, batch: 0 } });
    r = run('knn', '--pretrained', path.join(out, 'checkpoint.pth'), '--data', data, '--size', '32', '--k', '5', '--workers', '2', '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout).top1).toBeGreaterThanOrEqual(0);
  }, 120_000);

  test('a tree without val/ or with different classes in val/ is a one-line usage error', () => {
    const broken = path.join(tmp, 'broken');
    fs.cpSync(path.join(tmp, 'cli', 'train'), path.join(broken, 'train'), { recursive: true });
    let r = run('knn', '--pretrained', path.join(tmp, 'run', 'checkpoint.pth'), '--data', broken);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no 'val' folder/);
    fs.cpSync(path.join(tmp, 'cli', 'val'), path.join(broken, 'val'), { recursive: true });
    fs.renameSync(path.join(broken, 'val', 'c3'), path.join(broken, 'val', 'c9'));
    r = run('knn', '--pretrained', path.join(tmp, 'run', 'checkpoint.pth'), '--data', broken);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/same class folders.*only in train: \[c3\], only in val: \[c9\]/);
  });
});
