// Training progress for people watching: on a terminal one line redrawn in place, elsewhere (a
// log file, CI, nohup) a plain line every so often, so logs stay readable and small. Reporting
// must never take training down, so odd input (NaN, zero steps, a closed stream) prints as
// it is or as "?" instead of throwing.

/** Caller-chosen fields shown after the throughput, in insertion order (e.g. { loss: 6.12, lr: 0.3 }). */
export type ProgressFields = Record<string, number | string>;

/** Where progress goes: process.stderr by default; any object with write() for tests or files. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  /** Terminal width; redrawn lines are cut to fit, since a wrapped line cannot be redrawn. */
  columns?: number;
}

export interface ProgressOptions {
  /** Epochs in the whole run; epochs are numbered from 1 to this. */
  epochs: number;
  stepsPerEpoch: number;
  /** Images per step (the batch size), for img/s; leave out to show no throughput. */
  imagesPerStep?: number;
  stream?: ProgressStream;
  /** Redraw one line (true) or print log lines (false); default: whether the stream is a TTY. */
  tty?: boolean;
  /** Monotonic clock in milliseconds (default performance.now). */
  now?: () => number;
  /** Without a TTY, the least time between two log lines within an epoch (default 30 s). */
  logEverySeconds?: number;
  /** On a TTY, the least time between two redraws (default 0.1 s); the last step always draws. */
  redrawEverySeconds?: number;
  /** Characters in the progress bar (default 10). */
  barWidth?: number;
  /** Weight of the newest step in the smoothed step time, 0 < s <= 1 (default 0.1). */
  smoothing?: number;
  /** Also show the estimated time left for the whole run (default true). */
  runEta?: boolean;
}

/** Numbers for progress lines: integers whole, others to 4 significant digits, NaN and Infinity as such. */
export function formatValue(value: unknown): string {
  if (typeof value === 'string') return value.replace(/[\r\n\t]+/g, ' ');
  if (typeof value !== 'number') {
    try {
      return String(value);
    } catch {
      return '?';
    }
  }
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (Number.isInteger(value) && abs < 1e6) return String(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return value.toExponential(2);
  return value.toPrecision(4).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

/** 45s, 2m13s, 6h02m, 3d04h; "?" for an unknown (NaN, negative or infinite) duration. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  const m = Math.round(seconds / 60);
  if (m < 24 * 60) return `${Math.floor(m / 60)}h${pad(m % 60)}m`;
  const h = Math.round(seconds / 3600);
  return `${Math.floor(h / 24)}d${pad(h % 24)}h`;
}

function positiveOr(value: number | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : fallback;
}

/**
 * Progress of a run of epochs of N steps. Per epoch: startEpoch(k), step() after every step,
 * endEpoch() once; log() prints a message without breaking the redrawn line.
 *
 *     epoch 3/200 [#####.....] 120/469  412 img/s  loss 6.123  eta 2m13s  run eta 7h02m
 */
export class ProgressReporter {
  private readonly epochs: number;
  private readonly stepsPerEpoch: number;
  private readonly imagesPerStep: number | undefined;
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly logEveryMs: number;
  private readonly redrawEveryMs: number;
  private readonly barWidth: number;
  private readonly smoothing: number;
  private readonly showRunEta: boolean;

  private epoch = NaN;
  private stepsDone = 0;
  private epochStartMs = NaN;
  private epochFromStart = true;
  private lastStepMs = NaN;
  private lastOutputMs = NaN;
  private fields: ProgressFields = {};
  private smoothedStepMs: number | undefined;
  private smoothedImages: number | undefined;
  // Whole epochs (from one epoch's start to the next's), with whatever runs between them
  // (evaluation, checkpoints): the run's ETA is most honest when measured that way.
  private previousEpochStartMs = NaN;
  private previousEpochWasWhole = false;
  private cycleMsTotal = 0;
  private cycles = 0;
  private lineShown = false;

  constructor(options: ProgressOptions) {
    this.epochs = options.epochs;
    this.stepsPerEpoch = options.stepsPerEpoch;
    this.imagesPerStep = options.imagesPerStep;
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? this.stream.isTTY === true;
    this.now = options.now ?? (() => performance.now());
    this.logEveryMs = (options.logEverySeconds ?? 30) * 1000;
    this.redrawEveryMs = (options.redrawEverySeconds ?? 0.1) * 1000;
    this.barWidth = Math.min(200, Math.floor(positiveOr(options.barWidth, 10)));
    const smoothing = options.smoothing ?? 0.1;
    this.smoothing = smoothing > 0 && smoothing <= 1 ? smoothing : 0.1;
    this.showRunEta = options.runEta ?? true;
  }

  /** Starts epoch `epoch` (1-based); `startStep` is the steps already done when resuming mid-epoch. */
  startEpoch(epoch: number, options: { startStep?: number } = {}): void {
    const now = this.now();
    if (this.previousEpochWasWhole && Number.isFinite(now - this.previousEpochStartMs)) {
      this.cycleMsTotal += now - this.previousEpochStartMs;
      this.cycles++;
    }
    this.finishLine();
    this.epoch = epoch;
    this.stepsDone = options.startStep ?? 0;
    this.epochFromStart = this.stepsDone === 0;
    this.previousEpochStartMs = now;
    this.previousEpochWasWhole = false;
    this.epochStartMs = now;
    this.lastStepMs = now;
    this.lastOutputMs = now;
    this.fields = {};
  }

  /**
   * Records finished steps (default 1) with the latest fields; `images` overrides imagesPerStep
   * for a short last batch.
   */
  step(fields: ProgressFields = {}, options: { steps?: number; images?: number } = {}): void {
    const now = this.now();
    const steps = options.steps ?? 1;
    this.stepsDone += steps;
    this.fields = fields;
    const perStepMs = (now - this.lastStepMs) / steps;
    this.lastStepMs = now;
    if (Number.isFinite(perStepMs) && perStepMs >= 0) {
      this.smoothedStepMs = this.smooth(this.smoothedStepMs, perStepMs);
      const images = options.images !== undefined ? options.images / steps : this.imagesPerStep;
      if (images !== undefined && Number.isFinite(images)) this.smoothedImages = this.smooth(this.smoothedImages, images);
    }
    const lastStep = this.stepsDone >= this.stepsPerEpoch;
    if (this.tty) {
      if (lastStep || !this.lineShown || now - this.lastOutputMs >= this.redrawEveryMs) this.redraw(now);
    } else if (now - this.lastOutputMs >= this.logEveryMs) {
      this.writeSafely(`${this.describe(now, false)}\n`);
      this.lastOutputMs = now;
    }
  }

  /** Ends the epoch with one final line (elapsed time instead of the epoch's ETA); `fields` replace the last step's. */
  endEpoch(fields?: ProgressFields): void {
    const now = this.now();
    if (fields) this.fields = fields;
    this.previousEpochWasWhole = this.epochFromStart;
    const line = this.describe(now, true);
    this.writeSafely(this.tty ? `\r${this.fit(line)}\x1b[K\n` : `${line}\n`);
    this.lineShown = false;
    this.lastOutputMs = now;
  }

  /** Prints a message on its own line (on a TTY above the progress line, which is redrawn). */
  log(message: string): void {
    if (this.tty && this.lineShown) {
      this.writeSafely(`\r\x1b[K${message}\n`);
      this.lineShown = false;
      this.redraw(this.now());
    } else {
      this.writeSafely(`${message}\n`);
    }
  }

  /** The progress line as it would be shown now. */
  line(): string {
    return this.describe(this.now(), false);
  }

  /** Ends a redrawn line left open, so what the program prints next starts on a new line. */
  close(): void {
    this.finishLine();
  }

  private smooth(previous: number | undefined, sample: number): number {
    return previous === undefined ? sample : this.smoothing * sample + (1 - this.smoothing) * previous;
  }

  private finishLine(): void {
    if (this.tty && this.lineShown) this.writeSafely('\n');
    this.lineShown = false;
  }

  private redraw(now: number): void {
    this.writeSafely(`\r${this.fit(this.describe(now, false))}\x1b[K`);
    this.lineShown = true;
    this.lastOutputMs = now;
  }

  private fit(line: string): string {
    const columns = this.stream.columns;
    return typeof columns === 'number' && columns > 1 && line.length >= columns ? line.slice(0, columns - 1) : line;
  }

  private writeSafely(text: string): void {
    try {
      this.stream.write(text);
    } catch {
      // A closed or broken stream costs the progress display, never the run.
    }
  }

  private describe(now: number, ended: boolean): string {
    const total = Number.isFinite(this.stepsPerEpoch) && this.stepsPerEpoch > 0 ? this.stepsPerEpoch : NaN;
    const epoch = `epoch ${formatValue(this.epoch)}/${Number.isFinite(this.epochs) ? formatValue(this.epochs) : '?'}`;
    const counts = `${formatValue(this.stepsDone)}/${Number.isNaN(total) ? '?' : formatValue(total)}`;
    let where: string;
    if (this.tty) where = `${this.bar(this.stepsDone / total)} ${counts}`;
    else if (ended) where = `done ${counts}`;
    else where = `step ${counts} (${Number.isNaN(total) ? '?' : Math.floor((100 * this.stepsDone) / total)}%)`;
    const parts = [`${epoch} ${where}`];

    if (this.smoothedImages !== undefined && this.smoothedStepMs !== undefined) {
      const rate = this.smoothedStepMs > 0 ? this.smoothedImages / (this.smoothedStepMs / 1000) : NaN;
      parts.push(`${Number.isFinite(rate) ? formatValue(Math.round(rate)) : '?'} img/s`);
    }
    for (const [name, value] of Object.entries(this.fields)) parts.push(`${name} ${formatValue(value)}`);

    const stepMs = this.smoothedStepMs ?? NaN;
    const epochLeftMs = ended ? 0 : Math.max(0, total - this.stepsDone) * stepMs;
    if (ended) parts.push(`took ${formatDuration((now - this.epochStartMs) / 1000)}`);
    else parts.push(`eta ${formatDuration(epochLeftMs / 1000)}`);
    if (this.showRunEta && this.epochs > 1) {
      const epochMs = this.cycles > 0 ? this.cycleMsTotal / this.cycles : ended && this.epochFromStart ? now - this.epochStartMs : total * stepMs;
      const epochsLeft = Math.max(0, this.epochs - this.epoch);
      parts.push(`run eta ${formatDuration((epochLeftMs + (epochsLeft > 0 ? epochsLeft * epochMs : 0)) / 1000)}`);
    }
    return parts.join('  ');
  }

  private bar(fraction: number): string {
    const filled = Number.isFinite(fraction) ? Math.floor(Math.min(1, Math.max(0, fraction)) * this.barWidth) : 0;
    return `[${'#'.repeat(filled)}${'.'.repeat(this.barWidth - filled)}]`;
  }
}
