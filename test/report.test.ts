// Reporting (lib/report): the progress line, JSONL metrics, TensorBoard event files and PNG charts.
// Every file format is read back by a decoder written here from the format's definition, not by
// the code under test, and the PNGs also by PIL when Debian's Python has it.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';

import {
  MetricsWriter,
  ProgressReporter,
  ProgressStream,
  TensorBoardWriter,
  crc32,
  crc32c,
  encodePng,
  formatDuration,
  formatValue,
  histogramChart,
  lineChart,
  parseMetrics,
  readMetrics,
  writeHistogramChart,
  writeLineChart,
  writePng,
} from '../lib/report';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 's2bnn-report-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// Not test/helpers.ts: that pulls in the whole native-backed library, which reporting does not
// need. The same rule as there: under S2BNN_REQUIRE_PYTHON_TORCH=1 (CI) a missing PIL fails.
function pythonWithPil(): string | null {
  const python = process.env.S2BNN_PYTHON ?? '/usr/bin/python3';
  if (spawnSync(python, ['-c', 'import PIL'], { encoding: 'utf8' }).status === 0) return python;
  if (process.env.S2BNN_REQUIRE_PYTHON_TORCH === '1') {
    throw new Error(`S2BNN_REQUIRE_PYTHON_TORCH=1 but ${python} cannot import PIL (install Debian's python3-pil)`);
  }
  return null;
}
const python = pythonWithPil();

function fakeClock(startMs = 0) {
  let t = startMs;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function captureStream(tty: boolean): ProgressStream & { text: () => string } {
  const chunks: string[] = [];
  return { isTTY: tty, columns: 200, write: (s: string) => chunks.push(s), text: () => chunks.join('') };
}

describe('progress', () => {
  test('on a TTY: one line redrawn in place with bar, img/s, fields and ETAs', () => {
    const clock = fakeClock();
    const stream = captureStream(true);
    const p = new ProgressReporter({ epochs: 200, stepsPerEpoch: 469, imagesPerStep: 256, stream, now: clock.now });
    p.startEpoch(3);
    for (let i = 0; i < 120; i++) {
      clock.advance(500);
      p.step({ loss: 6.1234, lr: 0.0003 });
    }
    // 256 images / 0.5 s; 349 steps left * 0.5 s; plus 197 epochs of 469 steps.
    expect(p.line()).toBe('epoch 3/200 [##........] 120/469  512 img/s  loss 6.123  lr 3.00e-4  eta 2m55s  run eta 12h53m');
    const text = stream.text();
    expect(text.startsWith('\r')).toBe(true);
    expect(text).not.toContain('\n');
    expect(text.endsWith(`\r${p.line()}\x1b[K`)).toBe(true);
    expect(text.split('\r').length - 1).toBe(120);

    p.log('checkpoint saved');
    expect(stream.text().endsWith(`\r\x1b[Kcheckpoint saved\n\r${p.line()}\x1b[K`)).toBe(true);

    for (let i = 120; i < 469; i++) {
      clock.advance(500);
      p.step({ loss: 6 });
    }
    p.endEpoch({ loss: 5.9 });
    expect(stream.text().endsWith('\repoch 3/200 [##########] 469/469  512 img/s  loss 5.9  took 3m55s  run eta 12h50m\x1b[K\n')).toBe(true);
  });

  test('redraws at most every redrawEverySeconds, but always the last step', () => {
    const clock = fakeClock();
    const stream = captureStream(true);
    const p = new ProgressReporter({ epochs: 1, stepsPerEpoch: 95, stream, now: clock.now });
    p.startEpoch(1);
    for (let i = 0; i < 95; i++) {
      clock.advance(10);
      p.step();
    }
    // The first step, then every 100 ms (10 steps), then the 95th.
    expect(stream.text().split('\r').length - 1).toBe(11);
    expect(stream.text()).toMatch(/95\/95 {2}eta 0s\x1b\[K$/);
  });

  test('without a TTY: a log line at most every logEverySeconds and one at epoch end', () => {
    const clock = fakeClock();
    const stream = captureStream(false);
    const p = new ProgressReporter({ epochs: 2, stepsPerEpoch: 100, imagesPerStep: 32, stream, now: clock.now, logEverySeconds: 30 });
    p.startEpoch(1);
    for (let i = 0; i < 100; i++) {
      clock.advance(1000);
      p.step({ loss: 1.5 });
    }
    p.endEpoch();
    const lines = stream.text().split('\n');
    expect(lines.pop()).toBe('');
    expect(stream.text()).not.toContain('\r');
    expect(lines).toEqual([
      'epoch 1/2 step 30/100 (30%)  32 img/s  loss 1.5  eta 1m10s  run eta 2m50s',
      'epoch 1/2 step 60/100 (60%)  32 img/s  loss 1.5  eta 40s  run eta 2m20s',
      'epoch 1/2 step 90/100 (90%)  32 img/s  loss 1.5  eta 10s  run eta 1m50s',
      'epoch 1/2 done 100/100  32 img/s  loss 1.5  took 1m40s  run eta 1m40s',
    ]);
  });

  test('the run ETA counts what happens between epochs once a whole epoch was seen', () => {
    const clock = fakeClock();
    const stream = captureStream(false);
    const p = new ProgressReporter({ epochs: 10, stepsPerEpoch: 10, stream, now: clock.now, logEverySeconds: 1e9 });
    p.startEpoch(1);
    for (let i = 0; i < 10; i++) {
      clock.advance(1000);
      p.step();
    }
    p.endEpoch();
    clock.advance(20_000); // evaluation and checkpoint
    p.startEpoch(2);
    clock.advance(1000);
    p.step();
    // 9 steps of this epoch, then 8 epochs of 30 s each.
    expect(p.line()).toBe('epoch 2/10 step 1/10 (10%)  eta 9s  run eta 4m09s');
  });

  test('odd values print as they are and nothing throws', () => {
    const stream = {
      isTTY: true,
      write: () => {
        throw new Error('EPIPE');
      },
    };
    const p = new ProgressReporter({ epochs: NaN, stepsPerEpoch: 0, imagesPerStep: Infinity, stream, now: () => NaN, barWidth: -3 });
    expect(() => {
      p.step({ loss: NaN });
      p.startEpoch(1, { startStep: -1 });
      p.step({ loss: NaN, grad: Infinity, low: -Infinity, note: 'a\nb' }, { steps: 0 });
      p.log('hello');
      p.endEpoch();
      p.close();
    }).not.toThrow();
    expect(p.line()).toContain('loss NaN  grad Infinity  low -Infinity  note a b');
    expect(p.line()).toContain('epoch 1/?');
  });

  test('number and duration formats', () => {
    expect([6.1234, 0.5, 3, -2, 0, 0.0003, 1234567.5, 123456, 12.3456, NaN, -Infinity].map(formatValue)).toEqual([
      '6.123', '0.5', '3', '-2', '0', '3.00e-4', '1.23e+6', '123456', '12.35', 'NaN', '-Infinity',
    ]);
    expect([0, 45, 133, 3599.4, 6 * 3600 + 125, 3 * 86400 + 4 * 3600, NaN, -1, Infinity].map(formatDuration)).toEqual([
      '0s', '45s', '2m13s', '59m59s', '6h02m', '3d04h', '?', '?', '?',
    ]);
  });
});

describe('metrics (JSONL)', () => {
  test('one object per line, fixed keys first, on disk as soon as write returns', () => {
    const file = path.join(tmp, 'metrics.jsonl');
    const clock = fakeClock(1_700_000_000_000);
    const m = MetricsWriter.open(file, { now: clock.now });
    m.step(1, 10, { loss: 6.5, lr: 0.3 });
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines).toEqual(['{"kind":"step","epoch":1,"step":10,"time":1700000000,"loss":6.5,"lr":0.3}', '']);
    clock.advance(1500);
    m.epoch(1, { loss: NaN, best: Infinity, seen: 2n ** 70n, tag: 'NaN?' });
    m.write('eval', { epoch: 1, top1: 0.61, perClass: [0.5, -Infinity], time: 42 });
    m.close();
    expect(readMetrics(file)).toEqual([
      { kind: 'step', epoch: 1, step: 10, time: 1_700_000_000, loss: 6.5, lr: 0.3 },
      { kind: 'epoch', epoch: 1, time: 1_700_000_001.5, loss: NaN, best: Infinity, seen: '1180591620717411303424', tag: 'NaN?' },
      { kind: 'eval', epoch: 1, time: 42, top1: 0.61, perClass: [0.5, -Infinity] },
    ]);
    expect(readMetrics(file, { kind: 'eval' })).toHaveLength(1);
    // Plain JSON for other tools: non-finite numbers are strings.
    expect(fs.readFileSync(file, 'utf8').split('\n')[1]).toContain('"loss":"NaN","best":"Infinity"');
    expect(() => m.write('step')).toThrow(/closed/);
  });

  test('a torn last line is skipped; other bad lines are errors with their line number', () => {
    const good = '{"kind":"step","step":1,"time":1}\n{"kind":"step","step":2,"time":2}\n';
    expect(parseMetrics(`${good}{"kind":"step","st`)).toEqual({ records: expect.any(Array), tornTail: true });
    expect(parseMetrics(`${good}{"kind":"step","st`).records.map((r) => r.step)).toEqual([1, 2]);
    // A whole record missing only its newline is kept.
    expect(parseMetrics(`${good}{"kind":"step","step":3,"time":3}`).records.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(() => parseMetrics(`${good}{"kind":\n${good}`, 'm.jsonl')).toThrow(/^m\.jsonl:3: not a JSON object/);
    expect(() => parseMetrics('[1,2]\n')).toThrow(/:1:/);
  });

  test('append continues after a crash: the torn line goes, new records follow', () => {
    const file = path.join(tmp, 'resume.jsonl');
    const m = MetricsWriter.open(file, { now: () => 0 });
    for (let e = 1; e <= 3; e++) m.epoch(e, { loss: 10 - e });
    m.close();
    fs.appendFileSync(file, '{"kind":"step","epoch":4,"lo');

    const resumed = MetricsWriter.open(file, { append: true, now: () => 0 });
    resumed.epoch(4, { loss: 6 });
    resumed.close();
    expect(readMetrics(file).map((r) => r.epoch)).toEqual([1, 2, 3, 4]);
    expect(parseMetrics(fs.readFileSync(file, 'utf8')).tornTail).toBe(false);

    // Resuming from the epoch-2 checkpoint: epochs 3 and 4 will be trained again.
    const again = MetricsWriter.open(file, { append: true, keep: (r) => (r.epoch ?? 0) <= 2, now: () => 0 });
    again.epoch(3, { loss: 5 });
    again.close();
    expect(readMetrics(file).map((r) => [r.epoch, r.loss])).toEqual([[1, 9], [2, 8], [3, 5]]);

    MetricsWriter.open(file, { now: () => 0 }).close();
    expect(fs.readFileSync(file, 'utf8')).toBe('');
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

// ---- TensorBoard: an independent reader (bitwise CRC32C, generic protobuf wire decoding) ----

function crc32cBitwise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function unmaskedOk(bytes: Uint8Array, masked: number): boolean {
  const crc = crc32cBitwise(bytes);
  const expected = ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) % 2 ** 32;
  return expected === masked;
}

function readTfRecords(file: string): Buffer[] {
  const buf = fs.readFileSync(file);
  const records: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    const length = Number(buf.readBigUInt64LE(at));
    expect(unmaskedOk(buf.subarray(at, at + 8), buf.readUInt32LE(at + 8))).toBe(true);
    const data = buf.subarray(at + 12, at + 12 + length);
    expect(unmaskedOk(data, buf.readUInt32LE(at + 12 + length))).toBe(true);
    records.push(data);
    at += 16 + length;
  }
  expect(at).toBe(buf.length);
  return records;
}

type Field = bigint | Buffer;
/** Field number -> raw values in order: varints as bigint, everything else as its bytes. */
function decodeProto(buf: Buffer): Map<number, Field[]> {
  const fields = new Map<number, Field[]>();
  let at = 0;
  const varint = () => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const b = buf[at++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (at < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    let value: Field;
    switch (key & 7) {
      case 0:
        value = varint();
        break;
      case 1:
        value = buf.subarray(at, (at += 8));
        break;
      case 2: {
        const n = Number(varint());
        value = buf.subarray(at, (at += n));
        break;
      }
      case 5:
        value = buf.subarray(at, (at += 4));
        break;
      default:
        throw new Error(`wire type ${key & 7}`);
    }
    fields.set(field, [...(fields.get(field) ?? []), value]);
  }
  expect(at).toBe(buf.length);
  return fields;
}

const one = (m: Map<number, Field[]>, field: number) => {
  expect(m.get(field)).toHaveLength(1);
  return m.get(field)![0];
};
const asDouble = (f: Field) => (f as Buffer).readDoubleLE(0);
const asFloat = (f: Field) => (f as Buffer).readFloatLE(0);
const asString = (f: Field) => (f as Buffer).toString('utf8');
const asDoubles = (f: Field) => Array.from({ length: (f as Buffer).length / 8 }, (_, i) => (f as Buffer).readDoubleLE(8 * i));

describe('TensorBoard event files', () => {
  test('CRC32C matches the standard check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    const data = Buffer.from('The quick brown fox jumps over the lazy dog');
    expect(crc32c(data.subarray(10), crc32c(data.subarray(0, 10)))).toBe(crc32c(data));
    expect(crc32c(data)).toBe(crc32cBitwise(data));
  });

  test('scalars and histograms read back through TFRecord framing and the Event protobuf', () => {
    const dir = path.join(tmp, 'tb');
    const clock = fakeClock(1_700_000_000_250);
    const w = new TensorBoardWriter(dir, { now: clock.now, hostname: 'testhost' });
    expect(path.basename(w.path)).toBe('events.out.tfevents.1700000000.testhost');
    clock.advance(1000);
    w.addScalar('loss/train', 6.25, 10);
    w.addScalars({ lr: 0.1, 'loss/train': NaN }, 2n ** 40n);
    w.addScalar('odd', -1.5, -3);
    const values = [0.5, 1, 1, 2, 3.5, NaN, Infinity, 4];
    expect(w.addHistogram('weights/conv1', values, 11, { bins: 4 })).toBe(true);
    expect(w.addHistogram('weights/empty', [NaN], 12)).toBe(false);
    expect(() => w.addScalar('x', 1, 1.5)).toThrow(RangeError);
    w.close();
    expect(() => w.addScalar('x', 1, 1)).toThrow(/closed/);

    const events = readTfRecords(w.path).map(decodeProto);
    expect(events).toHaveLength(5);
    expect(asDouble(one(events[0], 1))).toBe(1_700_000_000.25);
    expect(one(events[0], 2)).toBe(0n);
    expect(asString(one(events[0], 3))).toBe('brain.Event:2');

    const summaryValues = (e: Map<number, Field[]>) => (decodeProto(one(e, 5) as Buffer).get(1) ?? []).map((v) => decodeProto(v as Buffer));
    expect(asDouble(one(events[1], 1))).toBe(1_700_000_001.25);
    expect(one(events[1], 2)).toBe(10n);
    const [loss] = summaryValues(events[1]);
    expect(asString(one(loss, 1))).toBe('loss/train');
    expect(asFloat(one(loss, 2))).toBe(6.25);

    expect(one(events[2], 2)).toBe(2n ** 40n);
    const pair = summaryValues(events[2]);
    expect(pair.map((v) => asString(one(v, 1)))).toEqual(['lr', 'loss/train']);
    expect(asFloat(one(pair[0], 2))).toBe(Math.fround(0.1));
    expect(asFloat(one(pair[1], 2))).toBeNaN();
    // int64 -3 on the wire: ten-byte two's complement.
    expect(BigInt.asIntN(64, one(events[3], 2) as bigint)).toBe(-3n);

    expect(one(events[4], 2)).toBe(11n);
    const [histValue] = summaryValues(events[4]);
    expect(asString(one(histValue, 1))).toBe('weights/conv1');
    const histo = decodeProto(one(histValue, 5) as Buffer);
    const finite = values.filter(Number.isFinite);
    expect([1, 2, 3, 4, 5].map((f) => asDouble(one(histo, f)))).toEqual([
      0.5,
      4,
      finite.length,
      finite.reduce((a, b) => a + b),
      finite.reduce((a, b) => a + b * b, 0),
    ]);
    // Bins of width 0.875 from 0.5: [0.5, 1.375) [1.375, 2.25) [2.25, 3.125) [3.125, 4].
    expect(asDoubles(one(histo, 6))).toEqual([1.375, 2.25, 3.125, 4]);
    expect(asDoubles(one(histo, 7))).toEqual([3, 1, 0, 2]);
  });

  test('events are buffered until flush; writers in one second get their own files', () => {
    const dir = path.join(tmp, 'tb-flush');
    const w1 = new TensorBoardWriter(dir, { now: () => 5_000, hostname: 'h', flushSeconds: 60 });
    const w2 = new TensorBoardWriter(dir, { now: () => 5_000, hostname: 'h', filenameSuffix: '.student' });
    const w3 = new TensorBoardWriter(dir, { now: () => 5_000, hostname: 'h' });
    expect([w1, w2, w3].map((w) => path.basename(w.path))).toEqual([
      'events.out.tfevents.5.h',
      'events.out.tfevents.5.h.student',
      'events.out.tfevents.5.h.1',
    ]);
    w1.addScalar('a', 1, 1);
    expect(readTfRecords(w1.path)).toHaveLength(1);
    w1.flush();
    expect(readTfRecords(w1.path)).toHaveLength(2);
    for (const w of [w1, w2, w3]) w.close();
  });
});

// ---- PNG: an independent decoder (bitwise CRC-32, all five row filters) ----

function crc32Bitwise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

interface Decoded {
  width: number;
  height: number;
  channels: number;
  pixels: Buffer;
  chunkTypes: string[];
}

function decodePng(png: Buffer): Decoded {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const chunkTypes: string[] = [];
  const idat: Buffer[] = [];
  let header: Buffer | undefined;
  let at = 8;
  while (at < png.length) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const body = png.subarray(at + 8, at + 8 + length);
    expect(png.readUInt32BE(at + 8 + length)).toBe(crc32Bitwise(png.subarray(at + 4, at + 8 + length)));
    chunkTypes.push(type);
    if (type === 'IHDR') header = body;
    if (type === 'IDAT') idat.push(body);
    at += 12 + length;
  }
  expect(at).toBe(png.length);
  expect(chunkTypes[0]).toBe('IHDR');
  expect(chunkTypes[chunkTypes.length - 1]).toBe('IEND');
  const width = header!.readUInt32BE(0);
  const height = header!.readUInt32BE(4);
  expect(header![8]).toBe(8);
  const channels = { 2: 3, 6: 4 }[header![9]]!;
  expect([header![10], header![11], header![12]]).toEqual([0, 0, 0]);
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  expect(raw.length).toBe((stride + 1) * height);
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    if (filter === 0) {
      raw.copy(pixels, y * stride, y * (stride + 1) + 1, (y + 1) * (stride + 1));
      continue;
    }
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i];
      const a = i >= channels ? pixels[y * stride + i - channels] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + i] : 0;
      const c = i >= channels && y > 0 ? pixels[(y - 1) * stride + i - channels] : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const predictor = [0, a, b, (a + b) >> 1, paeth][filter];
      pixels[y * stride + i] = (x + predictor) & 0xff;
    }
  }
  return { width, height, channels, pixels, chunkTypes };
}

const rgbAt = (d: Decoded, x: number, y: number) => [...d.pixels.subarray((y * d.width + x) * d.channels, (y * d.width + x) * d.channels + 3)];

describe('PNG', () => {
  test('CRC-32 matches the standard check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    const data = Buffer.from('IEND');
    expect(crc32(data)).toBe(crc32Bitwise(data));
  });

  test('RGB and RGBA pixels decode to what was encoded', () => {
    for (const channels of [3, 4] as const) {
      const width = 7;
      const height = 5;
      const data = Uint8Array.from({ length: width * height * channels }, (_, i) => (i * 37 + channels) & 0xff);
      const decoded = decodePng(encodePng({ width, height, channels, data }));
      expect(decoded).toMatchObject({ width, height, channels, chunkTypes: ['IHDR', 'IDAT', 'IEND'] });
      expect([...decoded.pixels]).toEqual([...data]);
    }
    expect(() => encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(11) })).toThrow(RangeError);
    expect(() => encodePng({ width: 0, height: 2, channels: 4, data: new Uint8Array(0) })).toThrow(RangeError);
  });

  test('line chart: series colours where the data are, gaps at NaN, text drawn', () => {
    const file = path.join(tmp, 'loss.png');
    const steps = Array.from({ length: 101 }, (_, i) => i * 10);
    const flat = steps.map(() => 2);
    const falling = steps.map((s) => (s >= 480 && s <= 520 ? NaN : 4 - s / 500));
    const chart = writeLineChart(
      file,
      [
        { name: 'flat', x: steps, y: flat, color: '#ff0000' },
        { name: 'falling', x: steps, y: falling, color: [0, 0, 255] },
      ],
      { title: 'Loss per step', xLabel: 'step', yLabel: 'loss', yRange: [0, 5] },
    );
    const png = decodePng(fs.readFileSync(file));
    expect(png).toMatchObject({ width: 800, height: 500, channels: 3 });
    expect(png.pixels.equals(Buffer.from(chart.image.data))).toBe(true);

    const at = (x: number, y: number) => {
      const [px, py] = chart.frame.toPixel(x, y);
      return rgbAt(png, Math.round(px), Math.round(py));
    };
    expect(at(250, 2)).toEqual([255, 0, 0]);
    expect(at(750, 2)).toEqual([255, 0, 0]);
    expect(at(200, 3.6)).toEqual([0, 0, 255]);
    expect(at(900, 2.2)).toEqual([0, 0, 255]);
    // The NaN gap (steps 480-520) is not bridged.
    expect(at(500, 3)).not.toEqual([0, 0, 255]);
    expect(at(250, 4.5)).toEqual([255, 255, 255]);
    // Title ink above the plotting area.
    const titleRow = [...Array(png.width).keys()].some((x) => rgbAt(png, x, 20).join() === '30,30,30');
    expect(titleRow).toBe(true);
    expect(chart.frame.box.top).toBeGreaterThan(30);
  });

  test('line chart: log axis, empty and odd series do not throw', () => {
    const chart = lineChart(
      [
        { name: 'loss', y: [10, 1, 0.1, 0, -1, NaN, 0.01] },
        { name: 'empty', y: [] },
        { name: 'single', y: [Infinity, 5] },
      ],
      { logY: true, width: 300, height: 200 },
    );
    expect(chart.frame.logY).toBe(true);
    expect(chart.frame.toPixel(1, 0)[1]).toBeNaN();
    const [, y10] = chart.frame.toPixel(0, 10);
    const [, y1] = chart.frame.toPixel(1, 1);
    const [, y01] = chart.frame.toPixel(2, 0.1);
    expect(y1 - y10).toBeCloseTo(y01 - y1, 6);
    expect(lineChart([]).image.width).toBe(800);
    expect(() => lineChart([{ name: 'a', y: [1] }], { width: 10 })).toThrow(RangeError);
  });

  test('histogram chart: overlaid translucent bars with the counts returned', () => {
    const file = path.join(tmp, 'confidence.png');
    const teacher = Array.from({ length: 300 }, (_, i) => 0.9 + (i % 10) * 0.005);
    const student = [...Array.from({ length: 100 }, (_, i) => 0.1 + (i % 10) * 0.005), 1.5, NaN];
    const chart = writeHistogramChart(
      file,
      [
        { name: 'teacher', values: teacher, color: '#0000ff' },
        { name: 'student', values: student, color: '#ff0000' },
      ],
      { bins: 10, range: [0, 1], title: 'max softmax probability', normalize: 'fraction', legend: false },
    );
    expect(Array.from(chart.histograms[0].counts)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 300]);
    expect(Array.from(chart.histograms[1].counts)).toEqual([0, 100, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(chart.histograms[1].dropped).toBe(2);

    const png = decodePng(fs.readFileSync(file));
    const at = (x: number, y: number) => {
      const [px, py] = chart.frame.toPixel(x, y);
      return rgbAt(png, Math.round(px), Math.round(py));
    };
    // 35% of the series colour over white, inside each bar; solid outline on its top.
    // (Points off the grid lines, which the translucent bars would show through.)
    expect(at(0.93, 0.53)).toEqual([166, 166, 255]);
    expect(at(0.13, 0.53)).toEqual([255, 166, 166]);
    expect(at(0.93, 1)).toEqual([0, 0, 255]);
    expect(at(0.53, 0.53)).toEqual([255, 255, 255]);
    expect(chart.frame.yRange[1]).toBeCloseTo(1.05);
    const legendBorder = (image: { data: Uint8Array }) => Buffer.from(image.data).includes(Buffer.from([180, 180, 180]));
    expect(legendBorder(chart.image)).toBe(false);
    expect(legendBorder(histogramChart([{ name: 'teacher', values: teacher }, { name: 'student', values: student }]).image)).toBe(true);

    const empty = histogramChart([{ name: 'none', values: [NaN] }]);
    expect(empty.histograms[0].count).toBe(0);
  });

  (python ? test : test.skip)('PIL opens the files with the right size, mode and pixels', () => {
    const rgba = path.join(tmp, 'rgba.png');
    const data = new Uint8Array(3 * 2 * 4).fill(200);
    data.set([10, 20, 30, 40], 0);
    writePng(rgba, { width: 3, height: 2, channels: 4, data });
    const chartFile = path.join(tmp, 'pil-chart.png');
    const chart = writeLineChart(chartFile, [{ name: 'a', y: [1, 2, 3], color: '#00ff00' }], { width: 640, height: 360 });
    const [px, py] = chart.frame.toPixel(1, 2).map(Math.round);
    const res = spawnSync(
      python!,
      [
        '-c',
        `
import sys
from PIL import Image
for f in sys.argv[1:3]:
    im = Image.open(f); im.load()
    print(im.format, im.size[0], im.size[1], im.mode)
print(Image.open(sys.argv[1]).getpixel((0, 0)), Image.open(sys.argv[2]).getpixel((int(sys.argv[3]), int(sys.argv[4]))))`,
        rgba,
        chartFile,
        String(px),
        String(py),
      ],
      { encoding: 'utf8' },
    );
    expect(res.stderr).toBe('');
    expect(res.stdout.trim().split('\n')).toEqual(['PNG 3 2 RGBA', 'PNG 640 360 RGB', '(10, 20, 30, 40) (0, 255, 0)']);
  });
});
