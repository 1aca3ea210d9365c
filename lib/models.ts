// Typed builders and the Model class over the native models (native/nn): ReActNet-A, the
// ResNet teachers and the MoCo wrapper, with the reference implementations' parameter names.
import { Checkpoint, OrderedDict, encoderState } from './checkpoint';
import type { Complexity, LoadResult, ModelHandle, NativeModelSpec } from './binding';
import { TensorHandle, native } from './native';
import { Device, Tensor } from './tensor';

export type Head = 'linear' | 'mlp';
export type Stem = 'imagenet' | 'small';

export interface HeadOptions {
  /** 'linear': Linear(features, numClasses). 'mlp': Linear-ReLU-Linear to mlpDim, L2-normalized. */
  head?: Head;
  /** Linear head classes (default 1000). */
  numClasses?: number;
  /** MLP head output size (default 128). */
  mlpDim?: number;
  /** Input channels (default 3; 1 for grayscale). */
  inChannels?: number;
  /** 'imagenet' downsamples in the stem; 'small' keeps the resolution of 28-64 px inputs. */
  stem?: Stem;
}

export interface ReActNetOptions extends HeadOptions {
  /** 'activations' = step 1 of two-step training (real weights), 'both' = step 2 (default). */
  binarize?: 'activations' | 'both';
  /** Multiplies every stage width (default 1, the paper's network). */
  width?: number;
}

export type ResNetArch = 'resnet18' | 'resnet34' | 'resnet50';

export interface ResNetOptions extends HeadOptions {
  /** Multiplies every stage width (default 1, torchvision's network): slim teachers for small data. */
  width?: number;
}

export interface MoCoOptions {
  /** Projection dimension of the MLP head (default 128). */
  dim?: number;
  /** Queue size K (default 65536). */
  queueSize?: number;
}

export type { Complexity, LoadResult } from './binding';

/** A model as the typed builders describe it: an arch and its options, defaults not yet applied. */
export type ModelSpec = { arch: string } & ReActNetOptions & MoCoOptions & { encoder?: ModelSpec };

// The models' defaults, in one place: the native builder receives every field resolved.
const HEAD_DEFAULTS = { head: 'linear', numClasses: 1000, mlpDim: 128, inChannels: 3, stem: 'imagenet' } as const;
const MOCO_DEFAULTS = { dim: 128, queueSize: 65536 } as const;

function resolveSpec(spec: ModelSpec): NativeModelSpec {
  if (spec === null || typeof spec !== 'object') throw Object.assign(new Error('a model spec must be an object'), { code: 'S2BNN_ARGUMENT' });
  if (spec.arch === 'moco') {
    if (spec.encoder === null || typeof spec.encoder !== 'object') {
      throw Object.assign(new Error('a moco model needs an encoder spec'), { code: 'S2BNN_ARGUMENT' });
    }
    return { arch: 'moco', encoder: resolveSpec(spec.encoder), dim: spec.dim ?? MOCO_DEFAULTS.dim, queueSize: spec.queueSize ?? MOCO_DEFAULTS.queueSize };
  }
  const head = {
    head: spec.head ?? HEAD_DEFAULTS.head,
    numClasses: spec.numClasses ?? HEAD_DEFAULTS.numClasses,
    mlpDim: spec.mlpDim ?? HEAD_DEFAULTS.mlpDim,
    inChannels: spec.inChannels ?? HEAD_DEFAULTS.inChannels,
    stem: spec.stem ?? HEAD_DEFAULTS.stem,
  };
  // Unknown archs reach the native builder, whose error lists the known ones.
  return { ...head, arch: spec.arch, binarize: spec.binarize ?? 'both', width: spec.width ?? 1 } as NativeModelSpec;
}

const createModel = (spec: ModelSpec) => native().createModel(resolveSpec(spec));

function tensors(pairs: [string, TensorHandle][]): Map<string, Tensor> {
  return new Map(pairs.map(([name, handle]) => [name, new Tensor(handle)]));
}

export type StateDictLike = Map<string, Tensor> | Record<string, Tensor> | Checkpoint;

export class Model {
  /** @internal */
  protected constructor(protected readonly handle: ModelHandle) {}

  /** @internal The native model, for the trainer and evaluation bindings. */
  get nativeHandle(): ModelHandle {
    return this.handle;
  }

  /** @internal */
  static fromSpec(spec: ModelSpec): Model {
    return new Model(createModel(spec));
  }

  get arch(): string {
    return this.handle.arch;
  }
  get training(): boolean {
    return this.handle.training;
  }
  /** Size of the pooled backbone features (1024 for ReActNet-A, 2048 for ResNet-50). */
  get featureDim(): number {
    return this.handle.featureDim;
  }
  /** A MoCo wrapper (encoder_q, encoder_k, queue)? */
  get isMoco(): boolean {
    return this.arch.startsWith('moco-');
  }
  /**
   * Modules the network registers but never runs, as state-dict prefixes: ReActNet-A's blocks
   * register both kinds of 1x1 stage, as the official S2-BNN code does (docs/checkpoints.md).
   * Their parameters get no gradient, and loading does not require them.
   */
  get unusedModules(): string[] {
    return this.handle.unusedModules();
  }

  /** Logits (linear head) or L2-normalized embeddings (MLP head). */
  forward(x: Tensor): Tensor {
    return new Tensor(this.handle.forward(x.handle));
  }
  /** Pooled backbone features [N, featureDim], without the head. */
  features(x: Tensor): Tensor {
    return new Tensor(this.handle.features(x.handle));
  }

  train(mode = true): this {
    this.handle.train(mode);
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  to(device: Device): this {
    this.handle.to(device);
    return this;
  }

  parameters(): Tensor[] {
    return [...this.namedParameters().values()];
  }
  namedParameters(): Map<string, Tensor> {
    return tensors(this.handle.namedParameters());
  }
  namedBuffers(): Map<string, Tensor> {
    return tensors(this.handle.namedBuffers());
  }
  /**
   * Parameters and buffers under the reference names, in PyTorch's order; shares memory. `prefix`
   * goes before every key (`module.`: the keys DistributedDataParallel saves).
   */
  stateDict(options: { prefix?: string } = {}): OrderedDict<string, Tensor> {
    const prefix = options.prefix ?? '';
    return new OrderedDict(this.handle.stateDict().map(([name, handle]) => [prefix + name, new Tensor(handle)]));
  }

  /**
   * Copies a state dict in: a Map, a plain object, or a Checkpoint, whose state dict is taken in
   * whatever layout it was saved (docs/checkpoints.md): DataParallel's `module.` prefix is
   * dropped; a MoCo checkpoint gives a model that is not MoCo its query encoder; an encoder's
   * checkpoint gives a MoCo model both encoders (the key encoder as the query encoder's copy, as
   * MoCo starts it) and leaves its queue as it is. A shape mismatch always throws, naming the key
   * and both shapes; with `strict` (the default) missing or unexpected keys throw too, except
   * the unused modules' (`unusedModules`: checkpoints in s2bnn's earlier lean layout lack them).
   * Returns the keys that did not match.
   */
  loadStateDict(source: StateDictLike, options: { strict?: boolean } = {}): LoadResult {
    const entries: Map<string, Tensor> =
      source instanceof Checkpoint
        ? this.stateOf(source)
        : source instanceof Map
          ? source
          : new Map(Object.entries(source));
    return this.handle.loadStateDict(
      [...entries].map(([name, t]) => [name, t.handle]),
      options.strict ?? true,
    );
  }

  private stateOf(checkpoint: Checkpoint): Map<string, Tensor> {
    if (!this.isMoco) return encoderState(checkpoint);
    const state = new Map([...checkpoint.stateDict()].map(([k, v]) => [k.replace(/^module\./, ''), v]));
    if ([...state.keys()].some((k) => k.startsWith('encoder_k.'))) return state;
    const own = this.stateDict();
    return new Map<string, Tensor>([
      ['queue', own.get('queue')!],
      ['queue_ptr', own.get('queue_ptr')!],
      ...[...encoderState(checkpoint)].flatMap(([k, v]): [string, Tensor][] => [[`encoder_q.${k}`, v], [`encoder_k.${k}`, v]]),
    ]);
  }

  /** Drops every parameter's gradient (zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    this.handle.zeroGrad();
  }

  /** Freezes every parameter except those under the given name prefixes; returns how many froze. */
  freeze(options: { except?: string[] } = {}): number {
    return this.handle.freeze(options.except ?? []);
  }

  /** Inference cost at an input size (default 224 x 224) and the parameter count. */
  complexity(inputSize: number | [number, number] = 224): Complexity {
    const [h, w] = typeof inputSize === 'number' ? [inputSize, inputSize] : inputSize;
    return this.handle.complexity(h, w);
  }
}

/** MoCo: a query encoder, its momentum copy (encoder_k) and the key queue. */
export class MoCoModel extends Model {
  /** key <- m * key + (1 - m) * query, for every parameter. */
  momentumUpdate(momentum: number): void {
    this.handle.momentumUpdate(momentum);
  }
  /** Writes keys [B, dim] over the oldest queue entries. */
  enqueue(keys: Tensor): void {
    this.handle.enqueue(keys.handle);
  }
  /** @internal */
  static override fromSpec(spec: ModelSpec): MoCoModel {
    return new MoCoModel(createModel(spec));
  }
}

/** ReActNet-A exactly as docs/method.md describes it (defaults: step 2, linear head, 1000 classes). */
export function reactnetA(options: ReActNetOptions = {}): Model {
  return Model.fromSpec({ arch: 'reactnet-a', ...options });
}

/** torchvision's ResNet-18/34/50 (v1.5), as the real-valued teachers. */
export function resnet(arch: ResNetArch, options: ResNetOptions = {}): Model {
  return Model.fromSpec({ ...options, arch });
}

/** A MoCo wrapper around two encoders built from `encoder` (given an MLP head of `dim`). */
export function moco(
  encoder: ({ arch: 'reactnet-a' } & ReActNetOptions) | ({ arch: ResNetArch } & ResNetOptions),
  options: MoCoOptions = {},
): MoCoModel {
  const dim = options.dim ?? MOCO_DEFAULTS.dim;
  return MoCoModel.fromSpec({ arch: 'moco', encoder: { ...encoder, head: 'mlp', mlpDim: dim }, dim, queueSize: options.queueSize });
}
