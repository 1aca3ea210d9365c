// TensorBoard event files written directly: TFRecord framing around hand-encoded protobuf Event
// messages, so `tensorboard --logdir` can follow a run without TensorFlow, protobuf or any
// package beyond node itself. Only the few fields scalars and histograms need are encoded (field
// numbers from tensorflow/core/util/event.proto and framework/summary.proto).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { HistogramOptions, histogram } from './histogram';

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32C (Castagnoli), the checksum of TFRecord files. Pass a previous result as `crc` to continue. */
export function crc32c(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * The CRC as TFRecord stores it: rotated and offset, because a CRC computed over data that
 * itself holds CRCs is otherwise weak.
 */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length (uint64 LE), masked CRC of the length, data, masked CRC of the data. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(16 + data.length);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

// Protobuf wire types.
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

class ProtoWriter {
  private readonly parts: Uint8Array[] = [];

  private key(field: number, wireType: number): void {
    this.rawVarint(BigInt((field << 3) | wireType));
  }

  private rawVarint(value: bigint): void {
    const bytes: number[] = [];
    // int64 fields carry negatives as their 64-bit two's complement (ten bytes).
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
      bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    bytes.push(Number(v));
    this.parts.push(Uint8Array.from(bytes));
  }

  int64(field: number, value: bigint): this {
    this.key(field, VARINT);
    this.rawVarint(value);
    return this;
  }

  double(field: number, value: number): this {
    this.key(field, FIXED64);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    this.parts.push(b);
    return this;
  }

  float(field: number, value: number): this {
    this.key(field, FIXED32);
    const b = Buffer.alloc(4);
    b.writeFloatLE(value);
    this.parts.push(b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.key(field, LENGTH_DELIMITED);
    this.rawVarint(BigInt(value.length));
    this.parts.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  packedDoubles(field: number, values: ArrayLike<number>): this {
    const b = Buffer.alloc(8 * values.length);
    for (let i = 0; i < values.length; i++) b.writeDoubleLE(values[i], 8 * i);
    return this.bytes(field, b);
  }

  finish(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

/** Summary.Value for a scalar: tag (1), simple_value (2, float). */
function scalarValue(tag: string, value: number): Uint8Array {
  return new ProtoWriter().string(1, tag).float(2, value).finish();
}

/** Event: wall_time (1, double seconds), step (2, int64), file_version (3) or summary (5). */
function summaryEvent(wallTime: number, step: bigint, values: Uint8Array[]): Uint8Array {
  const summary = new ProtoWriter();
  for (const v of values) summary.bytes(1, v);
  return new ProtoWriter().double(1, wallTime).int64(2, step).bytes(5, summary.finish()).finish();
}

function checkStep(step: number | bigint): bigint {
  if (typeof step === 'bigint') return step;
  if (!Number.isSafeInteger(step)) throw new RangeError(`TensorBoard step must be an integer, got ${step}`);
  return BigInt(step);
}

export interface TensorBoardWriterOptions {
  /** Appended to the file name (e.g. ".teacher"), to tell several writers in one directory apart. */
  filenameSuffix?: string;
  /** Buffered events reach the file at least this often, when the next one is added (default 10 s). */
  flushSeconds?: number;
  /** Wall clock in milliseconds since the epoch (default Date.now); event times and the file name use it. */
  now?: () => number;
  /** Host name in the file name (default os.hostname()). */
  hostname?: string;
}

/**
 * Writes one `events.out.tfevents.<seconds>.<hostname>` file in `logDir` (created if missing).
 * Events are buffered and written whole, so TensorBoard, which reads the file while it grows,
 * sees complete records; `flush()` forces them out, `close()` flushes and closes.
 */
export class TensorBoardWriter {
  /** The event file this writer appends to. */
  readonly path: string;
  private fd: number | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private lastFlushMs: number;
  private readonly now: () => number;
  private readonly flushMs: number;

  constructor(logDir: string, options: TensorBoardWriterOptions = {}) {
    this.now = options.now ?? Date.now;
    this.flushMs = Math.max(0, (options.flushSeconds ?? 10) * 1000);
    fs.mkdirSync(logDir, { recursive: true });
    const startMs = this.now();
    const base = path.join(
      logDir,
      `events.out.tfevents.${Math.floor(startMs / 1000)}.${options.hostname ?? os.hostname()}${options.filenameSuffix ?? ''}`,
    );
    // Two writers started in the same second would pick the same name: the second one counts up.
    let file = base;
    for (let n = 1; ; n++) {
      try {
        this.fd = fs.openSync(file, 'wx');
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        file = `${base}.${n}`;
      }
    }
    this.path = file;
    this.lastFlushMs = startMs;
    // TensorBoard reads the first event's file_version to know how to read the rest.
    this.append(new ProtoWriter().double(1, startMs / 1000).int64(2, 0n).string(3, 'brain.Event:2').finish());
    this.flush();
  }

  /** Logs `value` under `tag` (e.g. "loss/train") at `step`; stored as float32, NaN and ±Infinity included. */
  addScalar(tag: string, value: number, step: number | bigint, wallTime?: number): void {
    this.addScalars({ [tag]: value }, step, wallTime);
  }

  /** Several scalars at one step, in one event (e.g. { "loss/train": 6.1, "lr": 0.3 }). */
  addScalars(values: Record<string, number>, step: number | bigint, wallTime?: number): void {
    const s = checkStep(step);
    const encoded = Object.entries(values).map(([tag, v]) => scalarValue(tag, v));
    this.append(summaryEvent(wallTime ?? this.now() / 1000, s, encoded));
  }

  /**
   * Logs the distribution of `values` (e.g. a layer's weights) under `tag`. NaN and ±Infinity are
   * left out; when no value is left nothing is written and false is returned, so a diverged run
   * loses a histogram rather than its training loop.
   */
  addHistogram(tag: string, values: ArrayLike<number>, step: number | bigint, options: HistogramOptions & { wallTime?: number } = {}): boolean {
    const s = checkStep(step);
    const h = histogram(values, options);
    if (h.count === 0) return false;
    // HistogramProto: TensorBoard takes bucket i as (bucket_limit[i-1], bucket_limit[i]], the
    // first starting at min and the last ending at max, so the limits are the right edges.
    const histo = new ProtoWriter()
      .double(1, h.min)
      .double(2, h.max)
      .double(3, h.count)
      .double(4, h.sum)
      .double(5, h.sumSquares)
      .packedDoubles(6, h.edges.subarray(1))
      .packedDoubles(7, h.counts)
      .finish();
    const value = new ProtoWriter().string(1, tag).bytes(5, histo).finish();
    this.append(summaryEvent(options.wallTime ?? this.now() / 1000, s, [value]));
    return true;
  }

  /** Writes buffered events to the file. */
  flush(): void {
    if (this.fd === null) return;
    const data = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    let offset = 0;
    while (offset < data.length) offset += fs.writeSync(this.fd, data, offset, data.length - offset);
    this.lastFlushMs = this.now();
  }

  /** Flushes and closes the file; later adds throw. */
  close(): void {
    if (this.fd === null) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = null;
  }

  private append(event: Uint8Array): void {
    if (this.fd === null) throw new Error(`TensorBoard writer for ${this.path} is closed`);
    const record = tfRecord(event);
    this.pending.push(record);
    this.pendingBytes += record.length;
    if (this.pendingBytes >= 1 << 20 || this.now() - this.lastFlushMs >= this.flushMs) this.flush();
  }
}
