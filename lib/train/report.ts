// What a training run leaves behind and shows while it runs: a progress line (stderr), JSONL
// metrics per step and epoch, TensorBoard scalars, and at the end PNG plots of the loss curves.
import * as fs from 'fs';
import * as path from 'path';

import { MetricsWriter, ProgressReporter, TensorBoardWriter, readMetrics, writeLineChart } from '../report';
import { EpochInfo, Position, StepInfo } from './loop';

export interface RunReporterOptions {
  /** Output folder: metrics.jsonl, events.out.tfevents.*, loss.png. */
  out: string;
  epochs: number;
  stepsPerEpoch: number;
  batchSize: number;
  /** Where a resumed run starts: earlier metrics are kept, later ones dropped. */
  start?: Position;
  /** No progress line (e.g. --json runs); files are still written. */
  quiet?: boolean;
  /** Prefix of the TensorBoard tags and JSONL kinds' "phase" (e.g. "pretrain", "lincls"). */
  phase: string;
}

const STEP_FIELDS = ['loss', 'contrastive', 'distill', 'acc1', 'acc5'] as const;

export class RunReporter {
  private readonly metrics: MetricsWriter;
  private readonly tensorboard: TensorBoardWriter;
  private readonly progress: ProgressReporter | null;
  private epochStarted = -1;

  constructor(private readonly options: RunReporterOptions) {
    const start = options.start ?? { epoch: 0, batch: 0 };
    const resumed = start.epoch > 0 || start.batch > 0;
    const stepsDone = start.epoch * options.stepsPerEpoch + start.batch;
    fs.mkdirSync(options.out, { recursive: true });
    this.metrics = MetricsWriter.open(path.join(options.out, 'metrics.jsonl'), {
      append: resumed,
      // Records after the checkpoint belong to steps that will run again.
      keep: (r) => (r.kind === 'step' ? (r.step ?? 0) <= stepsDone : (r.epoch ?? 0) < start.epoch),
    });
    this.tensorboard = new TensorBoardWriter(options.out);
    this.progress = options.quiet
      ? null
      : new ProgressReporter({ epochs: options.epochs, stepsPerEpoch: options.stepsPerEpoch, imagesPerStep: options.batchSize });
  }

  readonly onStepEnd = (info: StepInfo): void => {
    if (this.epochStarted !== info.epoch) {
      this.progress?.startEpoch(info.epoch + 1, { startStep: info.batch });
      this.epochStarted = info.epoch;
    }
    const fields: Record<string, number> = { lr: info.lr };
    for (const name of STEP_FIELDS) {
      const value = info.result[name];
      if (value !== undefined) fields[name] = value;
    }
    this.metrics.step(info.epoch, info.step, { ...fields, seconds: info.seconds, phase: this.options.phase } as never);
    const tags: Record<string, number> = {};
    for (const [name, value] of Object.entries(fields)) tags[`${this.options.phase}/${name}`] = value;
    this.tensorboard.addScalars(tags, info.step);
    this.progress?.step({ loss: info.result.loss, ...(info.result.acc1 !== undefined ? { acc1: info.result.acc1 } : {}) }, { images: info.images });
  };

  readonly onEpochEnd = (info: EpochInfo): void => {
    this.progress?.endEpoch({ ...info.means });
    this.metrics.epoch(info.epoch, { ...info.means, lr: info.lr, seconds: info.seconds, images: info.images, phase: this.options.phase } as never);
    const tags: Record<string, number> = {};
    for (const [name, value] of Object.entries(info.means)) tags[`${this.options.phase}/epoch_${name}`] = value;
    this.tensorboard.addScalars(tags, info.epoch + 1);
    this.tensorboard.flush();
  };

  log(message: string): void {
    if (this.progress) this.progress.log(message);
  }

  /** Extra epoch-level scalars (e.g. evaluation accuracy). */
  record(epoch: number, values: Record<string, number>): void {
    this.metrics.epoch(epoch, { ...values, phase: this.options.phase } as never);
    const tags: Record<string, number> = {};
    for (const [name, value] of Object.entries(values)) tags[`${this.options.phase}/${name}`] = value;
    this.tensorboard.addScalars(tags, epoch + 1);
  }

  /** Closes the files and draws loss.png from the whole metrics file (all sessions of a resumed run). */
  close(): void {
    this.progress?.close();
    this.metrics.close();
    this.tensorboard.close();
    const file = path.join(this.options.out, 'metrics.jsonl');
    const steps = readMetrics(file, { kind: 'step' });
    if (steps.length < 2) return;
    const series = STEP_FIELDS.filter((f) => f === 'loss' || f === 'contrastive' || f === 'distill')
      .map((name) => ({
        name,
        x: steps.filter((r) => typeof r[name] === 'number').map((r) => r.step as number),
        y: steps.filter((r) => typeof r[name] === 'number').map((r) => r[name] as number),
      }))
      .filter((s) => s.y.length > 0 && (s.name === 'loss' || s.y.length > 0));
    const distinct = series.filter((s, i) => i === 0 || s.y.some((v, j) => v !== series[0].y[j]));
    writeLineChart(path.join(this.options.out, 'loss.png'), distinct, {
      title: `${this.options.phase} loss`,
      xLabel: 'step',
      yLabel: 'loss',
    });
  }
}
