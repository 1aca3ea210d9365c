// Training metrics as JSON Lines: one object per line, each written with its own write call, so
// a run killed at any point leaves every earlier line intact (at most the last one torn), and
// the file can be read while it grows, by this module or by any JSON tool (jq, pandas, ...).
import * as fs from 'fs';

/** What a line records; the training loop writes "step" and "epoch", anything else is allowed. */
export type MetricKind = 'step' | 'epoch' | 'eval' | 'event' | (string & {});

export type MetricValue = number | bigint | string | boolean | null | readonly MetricValue[] | { readonly [key: string]: MetricValue };

/** One line: kind, epoch and step (when given), time, then the caller's fields in their order. */
export interface MetricRecord {
  kind: MetricKind;
  epoch?: number;
  step?: number;
  /** Wall clock when written, in seconds since the Unix epoch. */
  time: number;
  [field: string]: MetricValue | undefined;
}

/** The fields of a line; epoch, step and time go to their fixed places at the front. */
export type MetricFields = { epoch?: number; step?: number; time?: number } & { [field: string]: MetricValue | undefined };

export interface MetricsOpenOptions {
  /**
   * Continue the existing file (after a resume) instead of starting it over. A torn last line
   * left by a crash is removed first, so it cannot run into the next record.
   */
  append?: boolean;
  /**
   * With append: keep only the existing records this accepts, e.g.
   * `(r) => (r.epoch ?? 0) <= checkpointEpoch`, so the epochs trained again after resuming from
   * a checkpoint are not in the file twice.
   */
  keep?: (record: MetricRecord) => boolean;
  /** Also fsync after every line, so an OS crash or power loss cannot lose lines (default false). */
  fsync?: boolean;
  /** Wall clock in milliseconds since the epoch (default Date.now). */
  now?: () => number;
}

// JSON has no NaN or Infinity; a diverging loss is worth keeping, so they travel as these strings
// (which Python's float() also reads) and readMetrics turns them back into numbers.
const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  return value;
}

function reviveNonFinite(value: unknown): unknown {
  if (typeof value === 'string') return value in NON_FINITE ? NON_FINITE[value] : value;
  if (Array.isArray(value)) return value.map(reviveNonFinite);
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) (value as Record<string, unknown>)[k] = reviveNonFinite(v);
  }
  return value;
}

function parseLine(line: string): MetricRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  return reviveNonFinite(value) as MetricRecord;
}

export interface ParsedMetrics {
  records: MetricRecord[];
  /** The text ended in an unterminated line that is not a whole record (a write cut short), left out. */
  tornTail: boolean;
}

/**
 * Parses JSONL metrics text. An unterminated last line that does not parse is a torn write and is
 * skipped; any other line that is not a JSON object is an error naming its line number.
 */
export function parseMetrics(text: string, source = 'metrics'): ParsedMetrics {
  const lines = text.split('\n');
  // After a final newline split() yields one empty string, which is not a line.
  const last = lines.pop() ?? '';
  const records: MetricRecord[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const record = parseLine(line);
    if (!record) throw new SyntaxError(`${source}:${i + 1}: not a JSON object: ${line.slice(0, 80)}`);
    records.push(record);
  });
  let tornTail = false;
  if (last.trim() !== '') {
    const record = parseLine(last);
    if (record) records.push(record);
    else tornTail = true;
  }
  return { records, tornTail };
}

/** Reads a metrics file (see parseMetrics); `kind` keeps only records of that kind. */
export function readMetrics(path: string, options: { kind?: MetricKind } = {}): MetricRecord[] {
  const { records } = parseMetrics(fs.readFileSync(path, 'utf8'), path);
  return options.kind === undefined ? records : records.filter((r) => r.kind === options.kind);
}

/** Appends metric records to a JSONL file; see MetricsWriter.open. */
export class MetricsWriter {
  private fd: number | null;

  private constructor(
    /** The file written. */
    readonly path: string,
    fd: number,
    private readonly fsync: boolean,
    private readonly now: () => number,
  ) {
    this.fd = fd;
  }

  /** Opens `path` for writing: a new file (replacing any old one) or, with `append`, the existing one continued. */
  static open(path: string, options: MetricsOpenOptions = {}): MetricsWriter {
    if (options.append && fs.existsSync(path)) {
      repairForAppend(path, options.keep);
    }
    const fd = fs.openSync(path, options.append ? 'a' : 'w');
    return new MetricsWriter(path, fd, options.fsync ?? false, options.now ?? Date.now);
  }

  /** Appends one record and returns it; it is in the file (the OS's cache) when this returns. */
  write(kind: MetricKind, fields: MetricFields = {}): MetricRecord {
    if (this.fd === null) throw new Error(`metrics file ${this.path} is closed`);
    const { epoch, step, time, ...rest } = fields;
    const record: MetricRecord = {
      kind,
      ...(epoch === undefined ? {} : { epoch }),
      ...(step === undefined ? {} : { step }),
      time: time ?? this.now() / 1000,
      ...rest,
    };
    const bytes = Buffer.from(`${JSON.stringify(record, replacer)}\n`, 'utf8');
    let offset = 0;
    while (offset < bytes.length) offset += fs.writeSync(this.fd, bytes, offset, bytes.length - offset);
    if (this.fsync) fs.fsyncSync(this.fd);
    return record;
  }

  /** A "step" record (`step` is the global step, as TensorBoard counts). */
  step(epoch: number, step: number, fields: Record<string, MetricValue> = {}): MetricRecord {
    return this.write('step', { ...fields, epoch, step });
  }

  /** An "epoch" record, e.g. the epoch's mean loss and its duration. */
  epoch(epoch: number, fields: Record<string, MetricValue> = {}): MetricRecord {
    return this.write('epoch', { ...fields, epoch });
  }

  close(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

function repairForAppend(path: string, keep?: (record: MetricRecord) => boolean): void {
  const text = fs.readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const tail = lines.pop() ?? '';
  if (!keep && tail.trim() === '') return;
  // A whole record that only lacks its newline is kept; a torn one goes.
  if (tail.trim() !== '' && parseLine(tail)) lines.push(tail);
  // Lines that do not parse are kept as they are: readMetrics will point at them, and a resume
  // should not destroy what it cannot read.
  const kept = keep
    ? lines.filter((line) => {
        const record = line.trim() === '' ? undefined : parseLine(line);
        return record === undefined ? line.trim() !== '' : keep(record);
      })
    : lines;
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, kept.map((line) => `${line}\n`).join(''));
    fs.renameSync(tmp, path);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
