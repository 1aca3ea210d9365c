// 1-bit deployment (docs/deployment.md): a trained step-2 ReActNet-A exported to a packed model
// whose binary convolutions run on sign bits (xnor-popcount), and inference with it.
import * as fs from 'fs';

import { Checkpoint, encoderState } from './checkpoint';
import { Model, Stem } from './models';
import type { PackedModelHandle } from './binding';
import { TensorHandle, native } from './native';
import { Device, Tensor } from './tensor';
import { scorePass } from './train/evaluate';
import { BatchSource } from './train/loop';
import { encoderSpec, isLeanLayout } from './train/specs';


/** The network a packed file describes (its `config` metadata). */
export interface PackedModelConfig {
  arch: 'reactnet-a';
  inChannels: number;
  /** 2: the ImageNet stem; 1: the small stem for 28-64 px inputs. */
  stemStride: 1 | 2;
  /** 'linear': logits; 'mlp': L2-normalized embeddings (a pre-training checkpoint). */
  head: 'linear' | 'mlp';
  /** The head's weight matrices in the file: float32 (exact) or float16 (`halfHead`). */
  headDtype: 'float32' | 'float16';
  /** Classes, or the embedding size. */
  outputs: number;
  blockStrides: number[];
}

export interface PackResult {
  model: PackedModel;
  /** Binary convolution weights packed to bits. */
  binaryWeights: number;
  /**
   * Of those, weights that were exactly 0: training binarizes them to 0 (torch.sign), the packed
   * model to +1, so with any such weight the packed network is not the trained one exactly.
   */
  zeroWeights: number;
}

/** A packed ReActNet-A: binary convolutions on bits, float stem, shortcuts and head. */
export interface PackOptions {
  /** The stem stride the network was trained with (its weights do not tell); default 'imagenet'. */
  stem?: Stem;
  /**
   * Store the head's weight matrices as float16: ReActNet-A's 1000-class Linear is half of the
   * packed file. The head then computes with rounded weights, so logits move by about 1e-3
   * relative and a near-tie can change its top-1: measure before deploying (docs/deployment.md).
   */
  halfHead?: boolean;
}

export class PackedModel {
  private constructor(private readonly handle: PackedModelHandle) {}

  /** Reads and validates a file written by `save` or `s2bnn export`. */
  static async load(file: string): Promise<PackedModel> {
    return new PackedModel(await native().loadPackedModel(file));
  }

  /** Packs a step-2 ReActNet-A from its state dict (plain names: `feature.*`, `fc.*`). */
  static async fromState(state: Map<string, Tensor>, options: PackOptions = {}): Promise<PackResult> {
    const pairs: [string, TensorHandle][] = [...state].map(([k, v]) => [k, v.handle]);
    const r = await native().packReActNet(pairs, options.stem ?? 'imagenet', options.halfHead ?? false);
    return { model: new PackedModel(r.model), binaryWeights: r.binaryWeights, zeroWeights: r.zeroWeights };
  }

  /** Packs a ReActNet-A model built in this process (`reactnetA({ binarize: 'both' })`). */
  static async fromModel(model: Model, options: PackOptions = {}): Promise<PackResult> {
    if (model.arch !== 'reactnet-a') throw new Error(`only ReActNet-A networks are packed, this model is ${model.arch}`);
    return PackedModel.fromState(new Map(model.stateDict()), options);
  }

  /**
   * Packs the encoder of any checkpoint layout s2bnn reads (lincls output, a reference
   * linear-eval checkpoint, a pre-training checkpoint with its MLP head). Step-1 checkpoints
   * are refused: their convolution weights are real-valued and have no packed form.
   */
  static async fromCheckpoint(checkpoint: Checkpoint, options: PackOptions = {}): Promise<PackResult> {
    const spec = encoderSpec(checkpoint, { stem: options.stem });
    if (spec.arch !== 'reactnet-a') throw new Error(`only ReActNet-A networks are packed, the checkpoint holds a ${spec.arch}`);
    if (spec.step === 1) {
      throw new Error('the checkpoint is from step 1 of two-step training (real-valued conv weights); export a step-2 checkpoint');
    }
    return PackedModel.fromState(encoderState(checkpoint), { ...options, stem: options.stem ?? spec.stem });
  }

  get config(): PackedModelConfig {
    const raw = JSON.parse(this.handle.config) as Record<string, unknown>;
    return {
      arch: 'reactnet-a',
      inChannels: raw.in_channels as number,
      stemStride: raw.stem_stride as 1 | 2,
      head: raw.head as 'linear' | 'mlp',
      headDtype: raw.head_dtype as 'float32' | 'float16',
      outputs: raw.outputs as number,
      blockStrides: raw.block_strides as number[],
    };
  }

  get featureDim(): number {
    return this.handle.featureDim;
  }

  get device(): string {
    return this.handle.device;
  }

  /** Logits (linear head) or L2-normalized embeddings (MLP head) of float32 [N, C, H, W] images. */
  async forward(x: Tensor): Promise<Tensor> {
    return new Tensor(await this.handle.forward(x.handle));
  }

  /** Globally pooled backbone features [N, featureDim]. */
  async features(x: Tensor): Promise<Tensor> {
    return new Tensor(await this.handle.features(x.handle));
  }

  /** Atomic write of the packed file (safetensors, format `s2bnn-packed`). */
  async save(file: string): Promise<void> {
    await this.handle.save(file);
  }

  /** The tensors of the file under their names (shared memory). */
  tensors(): Map<string, Tensor> {
    return new Map(this.handle.tensors().map(([k, v]) => [k, new Tensor(v)]));
  }

  to(device: Device): this {
    this.handle.to(device);
    return this;
  }
}

export interface ExportResult {
  out: string;
  binaryWeights: number;
  zeroWeights: number;
  /** File sizes in bytes. */
  checkpointBytes: number;
  packedBytes: number;
  config: PackedModelConfig;
  /** The checkpoint was in s2bnn's earlier lean layout (it packs the same; see leanLayoutNotice). */
  leanLayout: boolean;
}

/** `s2bnn export`: pack a checkpoint's ReActNet-A and write it to `out`. */
export async function exportPacked(checkpointFile: string, out: string, options: PackOptions = {}): Promise<ExportResult> {
  const checkpoint = await Checkpoint.load(checkpointFile);
  const packed = await PackedModel.fromCheckpoint(checkpoint, options);
  await packed.model.save(out);
  return {
    out,
    binaryWeights: packed.binaryWeights,
    zeroWeights: packed.zeroWeights,
    checkpointBytes: fs.statSync(checkpointFile).size,
    packedBytes: fs.statSync(out).size,
    config: packed.model.config,
    leanLayout: isLeanLayout(checkpoint),
  };
}

export interface InferenceResult {
  /** Percent (linear heads only). */
  top1: number;
  top5: number;
  count: number;
  /** Images per second of the forward passes alone (data loading excluded). */
  imagesPerSecond: number;
  logits?: Tensor;
  labels?: Tensor;
}

/** Top-1/top-5 of a packed classifier over one pass of `data` (its epoch 0). */
export async function inferPacked(model: PackedModel, data: BatchSource, options: { keepLogits?: boolean } = {}): Promise<InferenceResult> {
  if (model.config.head !== 'linear') throw new Error('the packed model has an MLP head (a pre-training checkpoint): it gives embeddings, not classes');
  let seconds = 0;
  const { lossSum: _unused, ...scores } = await scorePass(data, 'inferPacked', options.keepLogits ?? false, async (batch) => {
    const started = process.hrtime.bigint();
    const out = await model.forward(batch.views[0]);
    seconds += Number(process.hrtime.bigint() - started) / 1e9;
    try {
      const hits = native().topkCorrect(out.handle, batch.labels.handle);
      return { ...hits, count: batch.labels.shape[0], logits: options.keepLogits ? out.cpu() : undefined };
    } finally {
      out.dispose();
    }
  });
  return { ...scores, imagesPerSecond: scores.count / seconds };
}
