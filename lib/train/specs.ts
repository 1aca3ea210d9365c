// Which network a checkpoint holds (architecture, width, input channels, head), from the record
// s2bnn stores or else from the weights: the official scripts' `arch` field names the teacher's
// torchvision architecture, not the student's. And the layout a file is in: the official one, or
// s2bnn 0.1's lean one (docs/checkpoints.md).
import { Checkpoint, encoderState, loadCheckpoint } from '../checkpoint';
import { Model, ReActNetOptions, ResNetArch, reactnetA, resnet } from '../models';
import { Arch, PretrainConfig } from './pretrain';

export interface EncoderSpec {
  arch: Arch;
  width: number;
  inChannels: number;
  stem: 'imagenet' | 'small';
  /** ReActNet-A's binarization step (2 unless a step-1 run wrote the checkpoint). */
  step: 1 | 2;
}

/** What s2bnn records in its checkpoints (the `s2bnn` JSON string), if anything. */
function s2bnnRecord(checkpoint: Checkpoint): { config?: PretrainConfig; encoder?: EncoderSpec } | null {
  const root = checkpoint.toObject();
  if (!(root instanceof Map) || typeof root.get('s2bnn') !== 'string') return null;
  return JSON.parse(root.get('s2bnn') as string) as { config?: PretrainConfig; encoder?: EncoderSpec };
}

/** The run configuration an s2bnn pre-training checkpoint carries, if any. */
export function runConfig(checkpoint: Checkpoint): PretrainConfig | null {
  return s2bnnRecord(checkpoint)?.config ?? null;
}

/**
 * The encoder a checkpoint holds. `fallback` fills what the file cannot tell (ReActNet-A's stem
 * stride is not visible in its weights).
 */
export function encoderSpec(checkpoint: Checkpoint, fallback: Partial<EncoderSpec> = {}): EncoderSpec {
  const config = runConfig(checkpoint);
  if (config) {
    return { arch: config.arch, width: config.width, inChannels: config.inChannels, stem: config.stem, step: config.step };
  }
  // lincls and finetune checkpoints carry the encoder they were trained on.
  const recorded = s2bnnRecord(checkpoint)?.encoder;
  if (recorded) return recorded;
  const state = encoderState(checkpoint);
  const stemConv = state.get('feature.0.conv1.weight');
  if (stemConv) {
    // Step 1 and step 2 have the same weights; only the run configuration tells them apart.
    return {
      arch: 'reactnet-a',
      width: stemConv.shape[0] / 32,
      inChannels: stemConv.shape[1],
      stem: fallback.stem ?? 'imagenet',
      step: fallback.step ?? 2,
    };
  }
  const conv1 = state.get('conv1.weight');
  if (conv1) {
    const arch: ResNetArch = state.has('layer1.0.conv3.weight') ? 'resnet50' : state.has('layer3.5.conv1.weight') ? 'resnet34' : 'resnet18';
    return { arch, width: conv1.shape[0] / 64, inChannels: conv1.shape[1], stem: conv1.shape[2] === 3 ? 'small' : 'imagenet', step: 2 };
  }
  throw new Error('the checkpoint holds neither a ReActNet-A (feature.0.conv1) nor a ResNet (conv1) encoder');
}

/** A classifier (linear head of `numClasses`) with the encoder's architecture. */
export function classifierFor(spec: EncoderSpec, numClasses: number): Model {
  const common = { head: 'linear' as const, numClasses, inChannels: spec.inChannels, stem: spec.stem };
  if (spec.arch === 'reactnet-a') {
    const options: ReActNetOptions = { ...common, width: spec.width, binarize: spec.step === 1 ? 'activations' : 'both' };
    return reactnetA(options);
  }
  return resnet(spec.arch, { ...common, width: spec.width });
}

/** The classes of a classifier checkpoint's linear head. */
export function headClasses(checkpoint: Checkpoint): number {
  const state = encoderState(checkpoint);
  const fc = state.get('fc.weight');
  if (!fc) throw new Error("the checkpoint has no linear head 'fc.weight' (is it a pre-training checkpoint? run lincls first)");
  return fc.shape[0];
}

/**
 * Whether a ReActNet-A checkpoint is in the lean layout s2bnn wrote before it took the official
 * one: blocks without the 1x1 stage they do not run (docs/checkpoints.md). Such files still load
 * everywhere; the unused modules keep their initial values.
 */
export function isLeanLayout(checkpoint: Checkpoint): boolean {
  const keys = new Set(encoderState(checkpoint).keys());
  for (let block = 1; keys.has(`feature.${block}.move11.bias`); block++) {
    if (!keys.has(`feature.${block}.binary_pw.weight`) || !keys.has(`feature.${block}.binary_pw_down1.weight`)) return true;
  }
  return false;
}

/** The one line the commands print for a file in the lean layout. */
export function leanLayoutNotice(file: string): string {
  return `${file} is in s2bnn's earlier lean layout (ReActNet blocks without the 1x1 stage they do not run); it loads as it is, and what s2bnn writes now has the official layout`;
}

/** Loads a checkpoint; a file in the lean layout is announced to `onNotice` in one line. */
export async function readCheckpoint(file: string, onNotice?: (message: string) => void): Promise<Checkpoint> {
  const checkpoint = await loadCheckpoint(file);
  if (isLeanLayout(checkpoint)) onNotice?.(leanLayoutNotice(file));
  return checkpoint;
}

// A lean block registered its 1x1 stage (one of the two kinds) between move21 and move22.
const LEAN_BLOCK_ORDER = [
  'move11', 'binary_3x3', 'bn1', 'move12', 'prelu1', 'move13', 'move21', 'binary_pw', 'bn2',
  'binary_pw_down1', 'binary_pw_down2', 'bn2_1', 'bn2_2', 'move22', 'prelu2', 'move23',
];

/**
 * The parameters an s2bnn optimizer held before the official layout, in its order, given the
 * parameters it holds now (`Trainer.parameterNames()`) and the model's unused modules: the query
 * encoder only, without the unused modules, a doubling block's 1x1 stage before its move22. A
 * resume maps the old state indices through this list.
 */
export function leanParameterNames(names: string[], unusedModules: string[]): string[] {
  const moco = names.some((n) => n.startsWith('encoder_q.'));
  const unused = (n: string) => unusedModules.some((m) => n.startsWith(`${m}.`));
  const kept = names.filter((n) => (!moco || n.startsWith('encoder_q.')) && !unused(n));
  const block = (n: string) => /feature\.(\d+)\.(\w+)\./.exec(n);
  const rank = (n: string) => LEAN_BLOCK_ORDER.indexOf(block(n)![2]);
  // Each block's parameters are consecutive; only their order within the block changes.
  const out: string[] = [];
  for (let i = 0; i < kept.length; ) {
    const match = block(kept[i]);
    let end = i + 1;
    while (match && end < kept.length && block(kept[end])?.[1] === match[1]) end++;
    out.push(...kept.slice(i, end).sort((a, b) => (match ? rank(a) - rank(b) : 0)));
    i = end;
  }
  return out;
}
