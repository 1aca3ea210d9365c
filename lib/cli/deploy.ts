// The deployment commands: export (a checkpoint's ReActNet-A to a packed 1-bit model) and infer
// (accuracy and speed of a packed model on a dataset).
import * as fs from 'fs';

import { PackedModel, exportPacked, inferPacked } from '../deploy';
import { leanLayoutNotice } from '../train/specs';
import { UsageError, command } from './command';
import { checkDevice } from './flags';
import { SCORING_FLAGS, checkSaveLogits, data, scoreTestSplit } from './train';

const MB = 1024 * 1024;

export const exportCommand = command({
  name: 'export',
  args: ['CKPT'],
  summary: 'pack a trained step-2 ReActNet-A into a 1-bit model: sign bits of the binary convolutions, BatchNorm folded (docs/deployment.md)',
  flags: {
    out: { type: 'string', value: 'MODEL', required: true, help: 'the packed file to write' },
    stem: { type: ['imagenet', 'small'] as const, help: 'the stem the network was trained with', default: "the checkpoint's run config, else imagenet" },
    'half-head': {
      type: 'boolean',
      help: "store the head's weights as float16 (about 1.4x smaller for 1000 classes; logits then differ from the float network's by ~1e-3)",
    },
    json: { type: 'boolean', help: 'print the summary as JSON' },
  },
  async run(flags, [file]) {
    const out = flags.out!;
    const result = await exportPacked(existingPath(file), out, { stem: flags.stem, halfHead: flags['half-head'] === true });
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
  },
});

function existingPath(file: string): string {
  if (!fs.existsSync(file)) throw new UsageError(`no such file '${file}'`);
  return file;
}

export const inferCommand = command({
  name: 'infer',
  args: ['MODEL'],
  summary: 'top-1/top-5 and images/s of a packed model (DIR/val is evaluated; DIR/train is not needed)',
  flags: SCORING_FLAGS,
  async run(flags, [modelFile]) {
    const file = existingPath(modelFile);
    checkSaveLogits(flags);
    const target = checkDevice(flags.device);
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
  },
});
