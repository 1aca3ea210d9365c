// Crop-aware decoding (only the crop's rows and iMCU columns, DCT-reduced while each view's
// resize stays a downscale) against whole decodes, on photo-like JPEGs of every kind (baseline
// 4:2:0 and 4:4:4, progressive, grayscale, CMYK) and PNGs; PNG decoding against PIL; corrupt
// PNGs skipped or failing under strict. Files are written by scripts/bench/photos.py and PIL.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { DataLoader, ImageFolder, Transform } from '../lib';
import { pythonWith, repoRoot, runPython, tempDir } from './helpers';

const pil = pythonWith(['PIL', 'numpy'], "Debian's python3-pil");
const python = pil.python ?? '';
const hasPil = pil.python !== null;
// Skipped only outside CI (S2BNN_REQUIRE_PYTHON_TORCH=1 turns a missing PIL into a failure).
const describePil = hasPil ? describe : describe.skip;

const tmp = tempDir('decode');

// PNGs of every color type, with PIL's decode (or, for 16 bits, the high byte) as the reference.
const PNGS = String.raw`
import base64, io, json, os, struct, sys, zlib
import numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(1)
y, x = np.mgrid[0:23, 0:31]
rgb = np.clip(np.stack([x * 8, y * 11, (x + y) * 4 + 30], -1) + rng.normal(0, 20, (23, 31, 3)), 0, 255).astype(np.uint8)
os.makedirs(f'{root}/png/c', exist_ok=True)
out = {}
def keep(name, image, rgb_ref=None, l_ref=None):
    path = f'{root}/png/c/{name}.png'
    image.save(path)
    with Image.open(path) as im:
        rgb_ref = rgb_ref if rgb_ref is not None else np.asarray(im.convert('RGB'))
        l_ref = l_ref if l_ref is not None else (np.asarray(im.convert('L')) if im.mode in ('L', 'LA', '1') else None)
    out[path] = {'rgb': base64.b64encode(rgb_ref.tobytes()).decode(),
                 'l': None if l_ref is None else base64.b64encode(l_ref.tobytes()).decode()}
keep('rgb', Image.fromarray(rgb))
keep('rgba', Image.fromarray(np.concatenate([rgb, rng.integers(0, 256, (23, 31, 1), dtype=np.uint8)], -1), 'RGBA'))
keep('gray', Image.fromarray(rgb[..., 1]))
keep('gray_alpha', Image.fromarray(np.stack([rgb[..., 0], rgb[..., 2]], -1), 'LA'))
keep('bilevel', Image.fromarray(rgb[..., 0] > 128))
pal = Image.fromarray(rgb).quantize(37)
pal.info['transparency'] = 3
keep('palette', pal)
# 16-bit RGB, written by hand (PIL cannot): s2bnn, like PIL's RGB reader, keeps the high byte.
wide = (rgb.astype(np.uint16) * 257 + rng.integers(0, 256, rgb.shape)).astype('>u2')
raw = b''.join(b'\x00' + wide[r].tobytes() for r in range(23))
chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
png16 = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 31, 23, 16, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
open(f'{root}/png/c/rgb16.png', 'wb').write(png16)
out[f'{root}/png/c/rgb16.png'] = {'rgb': base64.b64encode((wide >> 8).astype(np.uint8).tobytes()).decode(), 'l': None}
# Corrupt: a flipped byte inside the image data (bad CRC), and a file cut inside IDAT.
good = open(f'{root}/png/c/rgb.png', 'rb').read()
os.makedirs(f'{root}/badpng/c', exist_ok=True)
flipped = bytearray(good); flipped[60] ^= 0xFF
open(f'{root}/badpng/c/crc.png', 'wb').write(bytes(flipped))
open(f'{root}/badpng/c/cut.png', 'wb').write(good[:len(good) * 2 // 3])
open(f'{root}/badpng/c/ok.png', 'wb').write(good)
json.dump(out, sys.stdout)
`;

let pngs: Record<string, { rgb: string; l: string | null }> = {};
beforeAll(() => {
  if (!hasPil) return;
  runPython(python, [path.join(repoRoot, 'scripts', 'bench', 'photos.py'), path.join(tmp, 'photos'), '--classes', '2',
    '--per-class', '9', '--width', '320', '--height', '240', '--mixed']);
  pngs = JSON.parse(runPython(python, ['-c', PNGS, tmp]));
});

const identity = { mean: [0, 0, 0], std: [1, 1, 1] };
const augment = (size: number): Transform => ({ kind: 'augment', options: { size, scale: [0.08, 1], hflip: 0.5, ...identity } });

async function views(ds: ImageFolder, transform: Transform, cropDecode: boolean, workers = 2): Promise<Float32Array[]> {
  const loader = new DataLoader(ds, { batchSize: 6, views: 2, transform, workers, seed: 7, cropDecode, strict: true });
  const out: Float32Array[] = [];
  for await (const batch of loader.epoch(1)) {
    for (const v of batch.views) out.push(Float32Array.from(v.toTypedArray() as Float32Array));
    batch.dispose();
  }
  loader.close();
  return out;
}

function compare(a: Float32Array[], b: Float32Array[]): { mean: number; max: number } {
  let sum = 0, n = 0, max = 0;
  a.forEach((x, k) => {
    expect(b[k].length).toBe(x.length);
    for (let i = 0; i < x.length; i++) {
      const d = Math.abs(x[i] - b[k][i]);
      sum += d;
      n++;
      max = Math.max(max, d);
    }
  });
  return { mean: (sum / n) * 255, max: max * 255 };
}

describePil('crop-aware decoding', () => {
  test('without a reduction (crops below 2x the output) it equals the whole decode exactly', async () => {
    const ds = await ImageFolder.open(path.join(tmp, 'photos'), { index: false });
    expect(ds.length).toBe(18);
    // 160 px views of <= 288 x 384 images: partial decodes (rows skipped, iMCU columns cropped)
    // at full scale.
    const full = await views(ds, augment(160), false);
    const crop = await views(ds, augment(160), true);
    expect(compare(full, crop)).toEqual({ mean: 0, max: 0 });
    // Eval's center window, decoded without its margins (a shorter side < 400 is not reduced).
    const evaluation: Transform = { kind: 'eval', resize: 200, crop: 150, ...identity };
    expect(compare(await views(ds, evaluation, false), await views(ds, evaluation, true))).toEqual({ mean: 0, max: 0 });
  });

  test('reduced decodes stay within a fraction of a level on average (augment and eval)', async () => {
    const ds = await ImageFolder.open(path.join(tmp, 'photos'), { index: false });
    const cases: [string, Transform][] = [
      ['augment 32', augment(32)],
      ['eval 36 -> 32', { kind: 'eval', resize: 36, crop: 32, ...identity }],
    ];
    for (const [name, transform] of cases) {
      const { mean, max } = compare(await views(ds, transform, false), await views(ds, transform, true));
      // Nonzero: the reduced path ran; small: a DCT-domain 1/2..1/8 before an antialiased
      // downscale of at least 1x removes what the resize would have filtered out anyway.
      expect([name, mean > 0.01, mean < 1.0, max < 40]).toEqual([name, true, true, true]);
    }
  });

  test('the views are the same for any worker count', async () => {
    const ds = await ImageFolder.open(path.join(tmp, 'photos'), { index: false });
    expect(compare(await views(ds, augment(48), true, 1), await views(ds, augment(48), true, 3))).toEqual({ mean: 0, max: 0 });
  });
});

describePil('crop-aware decoding and damaged files', () => {
  test('a truncated JPEG is bad whatever the crop; trailing bytes after EOI are fine', async () => {
    const source = await ImageFolder.open(path.join(tmp, 'photos'), { index: false });
    const good = fs.readFileSync(source.path(0));
    expect(good.subarray(good.length - 2).equals(Buffer.from([0xff, 0xd9]))).toBe(true);
    const dir = path.join(tmp, 'damaged', 'c');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'a-cut.jpg'), good.subarray(0, Math.floor(good.length * 0.7)));
    fs.writeFileSync(path.join(dir, 'b-trailer.jpg'), Buffer.concat([good, Buffer.alloc(100, 0x55)]));
    fs.writeFileSync(path.join(dir, 'c-big-trailer.jpg'), Buffer.concat([good, Buffer.alloc(10000, 0x55)]));
    const ds = await ImageFolder.open(path.join(tmp, 'damaged'), { index: false });
    // Small crops (most end above the cut): only the file's missing end can tell.
    const transform: Transform = { kind: 'augment', options: { size: 16, scale: [0.02, 0.05], ...identity } };
    for (let seed = 0; seed < 8; seed++) {
      const loader = new DataLoader(ds, { batchSize: 3, views: 2, transform, workers: 1, seed, shuffle: false });
      for await (const batch of loader.epoch(0)) {
        expect(Array.from(batch.indices.toTypedArray() as BigInt64Array, Number)).toEqual([1, 1, 2]);
        batch.dispose();
      }
      const skipped = loader.skipped();
      loader.close();
      expect(skipped.map((s) => [path.basename(s.path), s.reason.split(':')[0]])).toEqual([['a-cut.jpg', 'truncated JPEG']]);
    }
  });
});

describePil('PNG', () => {
  test('every color type decodes as PIL does (16-bit: the high byte), 3 and 1 channels', async () => {
    for (const channels of [3, 1] as const) {
      const ds = await ImageFolder.open(path.join(tmp, 'png'), { channels, index: false });
      expect(ds.length).toBe(7);
      for (let i = 0; i < ds.length; i++) {
        const reference = pngs[ds.path(i)];
        const image = await ds.read(i);
        const gray = channels === 1 && reference.l !== null;
        expect([ds.path(i), image.shape]).toEqual([ds.path(i), [23, 31, gray ? 1 : 3]]);
        const expected = Buffer.from(gray ? (reference.l as string) : reference.rgb, 'base64');
        expect([ds.path(i), Buffer.from(image.toTypedArray() as Uint8Array).equals(expected)]).toEqual([ds.path(i), true]);
        image.dispose();
      }
    }
  });

  test('corrupt and truncated PNGs are skipped and reported, or fail under strict', async () => {
    const ds = await ImageFolder.open(path.join(tmp, 'badpng'), { index: false });
    const options = { batchSize: 3, transform: { kind: 'eval', resize: 16, crop: 16 } as Transform, shuffle: false, workers: 1 };
    const loader = new DataLoader(ds, options);
    for await (const batch of loader.epoch(0)) {
      expect(Array.from(batch.indices.toTypedArray() as BigInt64Array, Number)).toEqual([2, 2, 2]);
      batch.dispose();
    }
    const skipped = loader.skipped().sort((a, b) => a.path.localeCompare(b.path));
    loader.close();
    expect(skipped.map((s) => path.basename(s.path))).toEqual(['crc.png', 'cut.png']);
    expect(skipped[0].reason).toMatch(/^corrupt PNG: (IDAT|.*CRC)/);
    expect(skipped[1].reason).toMatch(/^corrupt PNG: truncated/);
    await expect(ds.read(1)).rejects.toMatchObject({ code: 'S2BNN_BAD_IMAGE', message: expect.stringContaining('cut.png: corrupt PNG') });
  });
});
