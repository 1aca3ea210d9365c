// The deployment commands: export (a checkpoint's ReActNet-A to a packed 1-bit model) and infer
// (accuracy and speed of a packed model on a dataset).
import * as fs from 'fs';

import { PackedModel, exportPacked, inferPacked } from '../deploy';
import { Stem } from '../models';
import { leanLayoutNotice } from '../train/specs';
import { SCORING_FLAGS, data, saveLogitsFlag, scoreTestSplit } from './train';
import { UsageError, choice, deviceFlag, optionalString, parseFlags } from './flags';

export const DEPLOY_USAGE = `  export CKPT --out MODEL [options]   pack a trained step-2 ReActNet-A into a 1-bit model: sign
                                bits of the binary convolutions, BatchNorm folded (docs/deployment.md)
      --stem imagenet|small     the stem the network was trained with (default: from the
                                checkpoint's run config, else imagenet)
      --half-head               store the head's weights as float16 (about 1.4x smaller for
                                1000 classes; logits then differ from the float network's by ~1e-3)
      --json                    print the summary as JSON
  infer MODEL [options]         top-1/top-5 and images/s of a packed model
      --data fashion-mnist|DIR  (DIR/val is evaluated; DIR/train is not needed), --resize N
                                --crop N, --batch-size N (256)
      --save-logits FILE.safetensors, --workers N, --threads N, --device cpu|cuda, --json`;

const MB = 1024 * 1024;

export async function exportCommand(args: string[]): Promise<void> {
  const flags = parseFlags(args, { out: 'string', stem: 'string', 'half-head': 'boolean', json: 'boolean' }, ['checkpoint']);
  const file = existingPath(flags._[0]);
  const out = optionalString(flags, 'out');
  if (!out) throw new UsageError('export needs --out MODEL (the packed file to write)');
  const stem = flags.stem === undefined ? undefined : choice(flags, 'stem', ['imagenet', 'small'] as const, 'imagenet');
  const result = await exportPacked(file, out, { stem: stem as Stem | undefined, halfHead: flags['half-head'] === true });
  if (result.leanLayout) process.stderr.write(`s2bnn export: note: ${leanLayoutNotice(file)}\n`);
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const c = result.config;
  const head = `${c.head === 'linear' ? `linear head, ${c.outputs} classes` : `MLP head, ${c.outputs}-d embeddings`}, ${c.headDtype}`;
  process.stdout.write(
    `wrote ${out}: packed ReActNet-A (${head}, stem stride ${c.stemStride}), ${result.binaryWeights} binary weights as bits\n` +
      `size ${(result.packedBytes / MB).toFixed(2)} MB vs ${(result.checkpointBytes / MB).toFixed(2)} MB checkpoint ` +
      `(${(result.checkpointBytes / result.packedBytes).toFixed(1)}x smaller)\n`,
  );
  if (result.zeroWeights > 0) {
    process.stderr.write(
      `s2bnn export: warning: ${result.zeroWeights} binary weights are exactly 0; training binarizes them to 0, the packed model to +1\n`,
    );
  }
}

function existingPath(file: string): string {
  if (!fs.existsSync(file)) throw new UsageError(`no such file '${file}'`);
  return file;
}

export async function inferCommand(args: string[]): Promise<void> {
  const flags = parseFlags(args, SCORING_FLAGS, ['model']);
  const file = existingPath(flags._[0]);
  saveLogitsFlag(flags);
  const target = deviceFlag(flags);
  const dataset = await data(flags, { trainOptional: true });
  const model = await PackedModel.load(file);
  const config = model.config;
  if (config.head !== 'linear') throw new UsageError(`${file} has an MLP head (a pre-training checkpoint): export a classifier (lincls output) to infer classes`);
  if (config.outputs !== dataset.numClasses) throw new UsageError(`${file} classifies ${config.outputs} classes, ${dataset.name} has ${dataset.numClasses}`);
  if (config.inChannels !== dataset.channels) throw new UsageError(`${file} takes ${config.inChannels}-channel images, ${dataset.name} has ${dataset.channels}`);
  if (target === 'cuda') model.to('cuda');
  const result = await scoreTestSplit(flags, dataset, (test, keepLogits) => inferPacked(model, test, { keepLogits }));
  const summary = { top1: result.top1, top5: result.top5, count: result.count, imagesPerSecond: result.imagesPerSecond };
  if (flags.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    process.stdout.write(
      `top-1 ${result.top1.toFixed(2)}  top-5 ${result.top5.toFixed(2)}  ${result.imagesPerSecond.toFixed(1)} images/s  (${result.count} images)\n`,
    );
  }
}
