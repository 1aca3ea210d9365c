// PNG files from raw 8-bit RGB or RGBA pixels, with nothing but node's zlib: enough for the
// training charts (lib/report/plot.ts) without an image dependency.
import * as fs from 'fs';
import * as zlib from 'zlib';

/** Raw pixels, row-major from the top-left, `channels` bytes per pixel. */
export interface RasterImage {
  width: number;
  height: number;
  /** 3 = RGB8, 4 = RGBA8. */
  channels: 3 | 4;
  data: Uint8Array;
}

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

const CRC32_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC-32 (ISO-HDLC, the one PNG, zip and gzip use). Pass the previous result as `crc` to continue
 * over several buffers.
 */
export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC32_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

function chunk(type: string, body: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, 'latin1');
  out.set(body, 8);
  // The CRC covers the type and the body, not the length.
  out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)), 8 + body.length);
  return out;
}

function checkImage(image: RasterImage): void {
  const { width, height, channels, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > 0x7fffffff || height > 0x7fffffff) {
    throw new RangeError(`PNG size must be positive integers, got ${width}x${height}`);
  }
  if (channels !== 3 && channels !== 4) throw new RangeError(`PNG channels must be 3 (RGB) or 4 (RGBA), got ${channels}`);
  if (data.length !== width * height * channels) {
    throw new RangeError(`${width}x${height}x${channels} pixels need ${width * height * channels} bytes, got ${data.length}`);
  }
}

/** Encodes 8-bit RGB or RGBA pixels as a PNG file's bytes. */
export function encodePng(image: RasterImage, options: { level?: number } = {}): Buffer {
  checkImage(image);
  const { width, height, channels, data } = image;
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = channels === 4 ? 6 : 2; // colour type: truecolour with alpha / truecolour
  // compression 0 (deflate), filter method 0, interlace 0: all left at zero.

  // Filter type 0 on every row: charts are mostly flat colour, which deflate handles well unfiltered.
  const stride = width * channels;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const compressed = zlib.deflateSync(raw, { level: options.level ?? 6 });

  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', compressed), chunk('IEND', new Uint8Array(0))]);
}

/** Writes `image` to `path` as a PNG (replacing the file through a temporary, so readers never see half of it). */
export function writePng(path: string, image: RasterImage, options: { level?: number } = {}): void {
  writeFileAtomic(path, encodePng(image, options));
}

function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, path);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
