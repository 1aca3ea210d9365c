// The checkpoint slice (native/binding/checkpoint.cpp): a CheckpointHandle keeps a file's
// contents in native form; trees cross the boundary with TensorHandles at the leaves.

export type CheckpointFormat = 'zip' | 'legacy' | 'safetensors';

/** Builds the dicts JS sees, so that they belong to the caller's realm (jest and vm have their own Map). */
export type MakeDict = (ordered: boolean, entries: [string | number | bigint | boolean, unknown][]) => Map<unknown, unknown>;

/** How dicts cross into native code: the class of the nodes `checkpointFromJS` accepts. */
export type DictNodeClass = new (ordered: boolean, entries: [unknown, unknown][]) => {
  readonly ordered: boolean;
  readonly entries: [unknown, unknown][];
};

export interface SaveResult {
  /** Entries the format cannot hold, left out ("optimizer (dict)"); only safetensors drops any. */
  dropped: string[];
}

export interface CheckpointHandle {
  readonly format: string;
  toJS(makeDict: MakeDict): unknown;
  summary(makeDict: MakeDict): { fields: [string, unknown][]; tensors: [string, number[], string][] };
  transform(selectPrefix: string, stripPrefix: string, addPrefix: string, encoderQOnly: boolean): CheckpointHandle;
  save(path: string, format: CheckpointFormat): Promise<SaveResult>;
}

export interface CheckpointBinding {
  checkpointLoad(path: string): Promise<CheckpointHandle>;
  checkpointFromJS(value: unknown, dictNode: DictNodeClass): CheckpointHandle;
}
