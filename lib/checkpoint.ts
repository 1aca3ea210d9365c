// PyTorch checkpoints from TypeScript: torch.save zip files, the legacy pre-1.6 format and
// safetensors, read and written natively (native/io). A Checkpoint keeps the file's contents in
// native form, so renaming keys and converting formats are lossless (ints stay ints, 1.0 stays a
// float); toObject() gives a JS view of the contents.
import type { CheckpointFormat, CheckpointHandle, MakeDict, SaveResult } from './binding';
import { TensorHandle, native } from './native';
import { Tensor } from './tensor';

/** A Python OrderedDict (what state dicts are); a plain Map stands for a dict. */
export class OrderedDict<K = PyKey, V = PyValue> extends Map<K, V> {}

export type PyKey = string | number | bigint | boolean;
/**
 * Checkpoint contents in JS: None -> null, int -> number (bigint beyond 2^53), float -> number,
 * bytes -> Uint8Array, list -> array, tuple -> frozen array, dict -> Map, OrderedDict ->
 * OrderedDict, tensor -> Tensor. Writing maps back the same way; integral numbers become ints.
 */
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Tensor
  | readonly PyValue[]
  | Map<PyKey, PyValue>
  | { [key: string]: PyValue };

export type { CheckpointFormat, SaveResult } from './binding';

export interface TensorInfo {
  /** Dotted path in the checkpoint, e.g. "state_dict.encoder_q.conv1.weight". */
  name: string;
  shape: number[];
  dtype: string;
}

export interface CheckpointSummary {
  format: string;
  /** Top-level entries that are not tensors or containers (epoch, arch, ...). */
  fields: Record<string, PyValue>;
  tensors: TensorInfo[];
}

export interface KeyTransform {
  /** Keep only keys under this prefix, without it (e.g. "module.encoder_q." for a MoCo teacher with its head). */
  selectPrefix?: string;
  /** Remove this prefix where present (e.g. "module." from multi-GPU checkpoints). */
  stripPrefix?: string;
  /** Keep only `[module.]encoder_q.*` outside the head and drop that prefix (linear evaluation). */
  encoderQOnly?: boolean;
  /** Prepend this to every key (e.g. "module.encoder_q." for the reference multi-GPU layout). */
  addPrefix?: string;
}

// Dicts cross the native boundary as DictNodes (in) and through makeDict (out), so that the Maps
// users see belong to their own realm (jest and vm contexts have their own Map).
class DictNode {
  constructor(
    readonly ordered: boolean,
    readonly entries: [unknown, unknown][],
  ) {}
}

const makeDict: MakeDict = (ordered, entries) => (ordered ? new OrderedDict(entries) : new Map(entries)) as Map<unknown, unknown>;

function isHandle(value: unknown): value is TensorHandle {
  return value instanceof native().TensorHandle;
}

// Native trees carry TensorHandles; JS sees Tensors (and the reverse on the way in).
function wrapTensors(value: unknown): PyValue {
  if (isHandle(value)) return new Tensor(value);
  if (Array.isArray(value)) {
    const out = value.map(wrapTensors);
    return Object.isFrozen(value) ? Object.freeze(out) : out;
  }
  if (value instanceof Map) {
    for (const [k, v] of value) value.set(k, wrapTensors(v));
    return value as Map<PyKey, PyValue>;
  }
  return value as PyValue;
}

function unwrapTensors(value: unknown, seen = new Set<unknown>()): unknown {
  if (value instanceof Tensor) return value.handle;
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (seen.has(value)) throw new TypeError('checkpoint data contains a cycle');
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      const out = value.map((v) => unwrapTensors(v, seen));
      return Object.isFrozen(value) ? Object.freeze(out) : out;
    }
    if (value instanceof Map) {
      return new DictNode(value instanceof OrderedDict, [...value].map(([k, v]) => [k, unwrapTensors(v, seen)]));
    }
    // A plain object whose values are all tensors is a state dict: an OrderedDict, as in PyTorch.
    const entries = Object.entries(value);
    const stateDict = entries.length > 0 && entries.every(([, v]) => v instanceof Tensor);
    return new DictNode(stateDict, entries.map(([k, v]) => [k, unwrapTensors(v, seen)]));
  } finally {
    seen.delete(value);
  }
}

export class Checkpoint {
  private constructor(private readonly handle: CheckpointHandle) {}

  /** Reads a torch.save file (zip or legacy) or a .safetensors file. */
  static async load(path: string): Promise<Checkpoint> {
    return new Checkpoint(await native().checkpointLoad(path));
  }

  /** A checkpoint built from JS values (see PyValue); plain objects of tensors become OrderedDicts. */
  static fromObject(value: PyValue | Record<string, unknown>): Checkpoint {
    return new Checkpoint(native().checkpointFromJS(unwrapTensors(value), DictNode));
  }

  /** 'zip', 'legacy' or 'safetensors' for loaded files, 'memory' for fromObject(). */
  get format(): string {
    return this.handle.format;
  }

  /** The whole contents as JS values; tensors share memory with the checkpoint. */
  toObject(): PyValue {
    return wrapTensors(this.handle.toJS(makeDict));
  }

  /** The state dict: root['state_dict'], root['model'], or the root when it is a dict of tensors. */
  stateDict(): Map<string, Tensor> {
    const root = this.toObject();
    const candidates = root instanceof Map ? [root.get('state_dict'), root.get('model'), root] : [];
    for (const candidate of candidates) {
      if (candidate instanceof Map && [...candidate.values()].every((v) => v instanceof Tensor) && candidate.size > 0) {
        return candidate as Map<string, Tensor>;
      }
    }
    throw new Error("no state dict found: expected a dict of tensors, or a dict with a 'state_dict' (or 'model') entry");
  }

  summary(): CheckpointSummary {
    const raw = this.handle.summary(makeDict);
    return {
      format: this.format,
      fields: Object.fromEntries(raw.fields.map(([k, v]) => [k, v as PyValue])),
      tensors: raw.tensors.map(([name, shape, dtype]) => ({ name, shape, dtype })),
    };
  }

  /** A checkpoint whose state-dict keys are renamed (select, strip, encoder_q selection, add, in that order). */
  transform(t: KeyTransform): Checkpoint {
    return new Checkpoint(
      this.handle.transform(t.selectPrefix ?? '', t.stripPrefix ?? '', t.addPrefix ?? '', t.encoderQOnly ?? false),
    );
  }

  /**
   * Writes atomically (temporary file, fsync, rename). The format defaults to the path's
   * extension: .safetensors -> safetensors, anything else -> zip (what torch.save writes).
   * safetensors holds the state dict plus top-level scalars as string metadata; anything else is
   * left out and listed in the result.
   */
  save(path: string, options: { format?: CheckpointFormat } = {}): Promise<SaveResult> {
    return this.handle.save(path, options.format ?? formatForPath(path));
  }
}

/**
 * The encoder's weights (head included) under plain names, from any layout a checkpoint comes in:
 * a MoCo state dict (`encoder_q.*`, with or without DataParallel's `module.`; the key encoder and
 * queue are left out), or a bare network (`module.` or not).
 */
export function encoderState(checkpoint: Checkpoint): Map<string, Tensor> {
  const state = checkpoint.stateDict();
  const strip = (k: string) => k.replace(/^module\./, '').replace(/^encoder_q\./, '');
  const isQuery = (k: string) => /^(module\.)?encoder_q\./.test(k);
  const hasQuery = [...state.keys()].some(isQuery);
  return new Map([...state].filter(([k]) => !hasQuery || isQuery(k)).map(([k, v]) => [strip(k), v]));
}

export function formatForPath(path: string): CheckpointFormat {
  return path.endsWith('.safetensors') ? 'safetensors' : 'zip';
}

export function loadCheckpoint(path: string): Promise<Checkpoint> {
  return Checkpoint.load(path);
}

/** torch.save from TypeScript: `saveCheckpoint('x.pth', { epoch: 3, state_dict: model.stateDict() })`. */
export async function saveCheckpoint(
  path: string,
  value: PyValue | Record<string, unknown>,
  options: { format?: CheckpointFormat } = {},
): Promise<SaveResult> {
  return Checkpoint.fromObject(value).save(path, options);
}
