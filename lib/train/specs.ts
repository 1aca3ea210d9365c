// Which network a checkpoint holds: architecture, width, input channels, head, from the run
// configuration s2bnn stores, from the `arch` field the reference stores, or from the weights.
import { Checkpoint } from '../checkpoint';
import { Model, ReActNetOptions, ResNetArch, reactnetA, resnet } from '../models';
import { Tensor } from '../tensor';
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
 * The encoder's weights (head included) under plain names, from any layout a pre-training
 * checkpoint comes in: a MoCo state dict (`encoder_q.*`, with or without DataParallel's
 * `module.`), s2bnn's distill-only layout (`encoder_q.*`), or a bare encoder (`module.` or not).
 */
export function encoderState(checkpoint: Checkpoint): Map<string, Tensor> {
  const state = checkpoint.stateDict();
  const strip = (k: string) => k.replace(/^module\./, '').replace(/^encoder_q\./, '');
  const isQuery = (k: string) => /^(module\.)?encoder_q\./.test(k);
  const hasQuery = [...state.keys()].some(isQuery);
  return new Map([...state].filter(([k]) => !hasQuery || isQuery(k)).map(([k, v]) => [strip(k), v]));
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
