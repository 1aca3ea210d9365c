// Checkpoint files: both torch.save formats and safetensors, read from and written for Python's
// torch.load; lossless conversion; key remapping; bad input (truncated, foreign, malicious,
// fuzzed) is a coded error and never a crash, a hang or executed code.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Checkpoint, OrderedDict, PyValue, Tensor, loadCheckpoint, saveCheckpoint, tensor } from '../lib';
import { pythonWithTorch, repoRoot, runPython, tempDir, values } from './helpers';

const tmp = tempDir('checkpoint');
const { python, reason } = pythonWithTorch();
const cli = path.join(repoRoot, 'dist', 'cli.js');

function s2bnn(...args: string[]) {
  const res = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

async function expectRejected(file: string, message: RegExp) {
  await expect(loadCheckpoint(file)).rejects.toMatchObject({ code: 'S2BNN_CHECKPOINT', message: expect.stringMatching(message) });
}

describe('writing for torch.load', () => {
  test('JS values map to their Python types', async () => {
    const file = path.join(tmp, 'js.pth');
    await saveCheckpoint(file, {
      epoch: 3,
      lr: 0.5,
      arch: 'reactnet-a',
      done: false,
      none: null,
      big: 2n ** 60n,
      pair: Object.freeze([1, 2]),
      list: [1, 'two'],
      blob: new Uint8Array([0, 255]),
      empty: new Uint8Array(0),
      state_dict: { w: tensor([[1, 2]]), step: tensor([7n]) },
      nested: new Map<number, PyValue>([[0, new Map([['momentum_buffer', tensor([0.5])]])]]),
    });
    const loaded = (await loadCheckpoint(file)).toObject() as Map<string, PyValue>;
    expect(loaded.get('epoch')).toBe(3);
    expect(loaded.get('lr')).toBe(0.5);
    expect(loaded.get('big')).toBe(2n ** 60n);
    expect(Object.isFrozen(loaded.get('pair'))).toBe(true);
    expect(loaded.get('list')).toEqual([1, 'two']);
    expect(loaded.get('state_dict')).toBeInstanceOf(OrderedDict);
    expect(values((loaded.get('state_dict') as Map<string, Tensor>).get('w')!)).toEqual([1, 2]);
    if (!python) return;
    // torch.load's defaults: from torch 2.6 weights-only, which refuses anything but plain data.
    const printed = runPython(python, ['-c', `
import torch, collections
d = torch.load('${file}')
print(type(d['state_dict']).__name__, d['epoch'], repr(d['lr']), d['done'], d['none'], d['big'], d['pair'], d['list'], d['blob'], d['empty'],
      d['state_dict']['w'].tolist(), d['state_dict']['step'].dtype, d['nested'][0]['momentum_buffer'].item())`]);
    expect(printed.trim()).toBe(
      "OrderedDict 3 0.5 False None 1152921504606846976 (1, 2) [1, 'two'] b'\\x00\\xff' b'' [[1.0, 2.0]] torch.int64 0.5",
    );
  });

  test('a failed write leaves the previous file intact and no temporary file behind', async () => {
    const file = path.join(tmp, 'keep.safetensors');
    await saveCheckpoint(file, { state_dict: { w: tensor([1]) } });
    const before = fs.readFileSync(file);
    // Fails while writing: safetensors holds only tensors in the state dict.
    await expect(saveCheckpoint(file, { state_dict: new Map<string, PyValue>([['w', tensor([2])], ['step', 3]]) })).rejects.toThrow(
      /safetensors holds only tensors; 'step' is a int/,
    );
    expect(fs.readFileSync(file)).toEqual(before);
    // Values JS cannot store are refused before any file is touched.
    await expect(saveCheckpoint(file, { fn: (() => 1) as unknown as PyValue })).rejects.toThrow(/checkpoint.fn cannot be stored/);
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
    await expect(saveCheckpoint(path.join(tmp, 'missing-dir', 'x.pth'), { a: 1 })).rejects.toThrow(/cannot create a file in .*missing-dir/);
  });
});

(python ? describe : describe.skip)(`files written by PyTorch${python ? '' : ` (skipped: ${reason})`}`, () => {
  let expected: Record<string, unknown>;
  beforeAll(() => {
    runPython(python!, ['test/python/checkpoints.py', 'make', tmp]);
    expected = JSON.parse(fs.readFileSync(path.join(tmp, 'rich.json'), 'utf8'));
  });

  test.each(['zip', 'legacy'])('%s: every value and tensor as PyTorch wrote it', async (format) => {
    const checkpoint = await loadCheckpoint(path.join(tmp, `rich.${format}.pth`));
    expect(checkpoint.format).toBe(format);
    const summary = checkpoint.summary();
    const root = checkpoint.toObject() as Map<string, PyValue>;
    for (const [name, want] of Object.entries(expected)) {
      if (want && typeof want === 'object' && 'dtype' in (want as object)) {
        const spec = want as { dtype: string; shape: number[] };
        const info = summary.tensors.find((t) => t.name === name);
        expect([name, info?.dtype, info?.shape]).toEqual([name, spec.dtype, spec.shape]);
      }
    }
    expect(root.get('epoch')).toBe(7);
    expect(root.get('best_acc1')).toBe(61.51); // a numpy float64 scalar
    expect(root.get('huge')).toBe(2n ** 80n);
    expect(root.get('negative')).toBe(-(2 ** 40));
    expect(root.get('flags')).toEqual([true, false, null]);
    expect(Array.from(root.get('blob') as Uint8Array)).toEqual((expected.blob as { bytes: number[] }).bytes);
    const special = (root.get('special') as Tensor).toTypedArray() as Float32Array;
    expect(Number.isNaN(special[0]) && special[1] === Infinity && Object.is(special[2], -0)).toBe(true);
    expect(special[3]).toBe(1e-45 as number === 0 ? 0 : new Float32Array([1e-45])[0]);
    const views = root.get('views') as Map<string, Tensor>;
    expect(views.get('row')!.toArray()).toEqual([4, 5, 6, 7]);
    expect(views.get('column')!.toArray()).toEqual([2, 6, 10]);
    expect(views.get('empty')!.shape).toEqual([0, 4]);
    const optimizer = root.get('optimizer') as Map<string, PyValue>;
    expect((optimizer.get('state') as Map<number, PyValue>).has(0)).toBe(true);
  });

  test.each([
    ['zip', 'zip'], ['zip', 'legacy'], ['legacy', 'zip'], ['legacy', 'legacy'],
  ])('convert %s -> %s is lossless in torch.load (tensors bit for bit, views kept)', async (from, to) => {
    const input = path.join(tmp, `rich.${from}.pth`);
    const output = path.join(tmp, `converted.${from}.${to}.pth`);
    const { code, stderr } = s2bnn('convert', input, output, '--format', to);
    expect([code, stderr]).toEqual([0, expect.stringContaining('->')]);
    expect(runPython(python!, ['test/python/checkpoints.py', 'compare', input, output]).trim()).toBe('same');
  });

  test('safetensors written by s2bnn follow the spec; safetensors written to the spec load', async () => {
    const output = path.join(tmp, 'model.safetensors');
    const sd = { 'layer.weight': tensor([[1, -2], [3, 4]]), 'layer.bias': tensor([0.5], { dtype: 'float16' }), steps: tensor([9n]) };
    const { dropped } = await Checkpoint.fromObject({ epoch: 5, lr: 0.1, state_dict: sd, optimizer: { a: 1 } }).save(output);
    expect(dropped).toEqual(['optimizer (dict)']);
    const parsed = JSON.parse(runPython(python!, ['test/python/checkpoints.py', 'read-safetensors', output]));
    expect(parsed.__metadata__).toEqual({ epoch: '5', lr: '0.1' });
    expect(parsed['layer.weight']).toEqual({ dtype: 'F32', shape: [2, 2], values: [1, -2, 3, 4] });
    expect(parsed['layer.bias']).toEqual({ dtype: 'F16', shape: [1], values: [0.5] });
    expect(parsed.steps).toEqual({ dtype: 'I64', shape: [1], values: [9] });

    const written = path.join(tmp, 'python.safetensors');
    runPython(python!, ['test/python/checkpoints.py', 'write-safetensors', written]);
    const loaded = await loadCheckpoint(written);
    expect(loaded.format).toBe('safetensors');
    expect(loaded.summary().fields).toEqual({ format: 'pt' });
    const state = loaded.stateDict();
    expect(state.get('weight')!.toArray()).toEqual([[0, 1, 2], [3, 4, 5]]);
    expect(state.get('half')!.dtype).toBe('float16');
  });

  test('a pickle that calls os.system is refused and nothing runs', async () => {
    const file = path.join(tmp, 'malicious.pth');
    const marker = '/tmp/s2bnn-pwned';
    fs.rmSync(marker, { force: true });
    runPython(python!, ['test/python/checkpoints.py', 'malicious', file]);
    await expectRejected(file, /calls 'posix.system', which is not allowed: only tensors, containers and numbers are read/);
    expect(fs.existsSync(marker)).toBe(false);
  });

  test('fuzzing: 6,000 truncated and byte-flipped checkpoints give coded errors, never a crash or a hang', () => {
    const small = path.join(tmp, 'small.safetensors');
    runPython(python!, ['test/python/checkpoints.py', 'write-safetensors', small]);
    const files = [path.join(tmp, 'rich.zip.pth'), path.join(tmp, 'rich.legacy.pth'), small];
    const res = spawnSync(process.execPath, [path.join(__dirname, 'fuzz-child.js'), '20261125', '6000', ...files], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect([res.signal, res.status, res.stderr]).toEqual([null, 0, '']);
    const result = JSON.parse(res.stdout);
    expect(result.loaded + result.rejected).toBe(6000);
    expect(result.rejected).toBeGreaterThan(3000);
    expect(Object.keys(result.codes)).toEqual(['S2BNN_CHECKPOINT']);
  });
});

describe('bad files', () => {
  const write = (name: string, data: Buffer | string) => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, data);
    return file;
  };

  test('missing, empty, a folder, or not a checkpoint', async () => {
    await expectRejected(path.join(tmp, 'nope.pth'), /nope.pth: cannot open: No such file or directory/);
    await expectRejected(write('empty.pth', ''), /the file is empty/);
    await expectRejected(tmp, /not a regular file/);
    await expectRejected(write('text.pth', 'hello, world'), /not a PyTorch checkpoint \(neither a zip file, a legacy torch.save file nor safetensors\)/);
  });

  test('truncated zip and legacy files name the problem', async () => {
    const file = path.join(tmp, 'whole.pth');
    await saveCheckpoint(file, { state_dict: { w: tensor(new Float32Array(1000)) } });
    const bytes = fs.readFileSync(file);
    await expectRejected(write('cut-zip.pth', bytes.subarray(0, bytes.length - 30)), /not a valid checkpoint zip/);
    const legacy = path.join(tmp, 'whole-legacy.pth');
    await Checkpoint.fromObject({ state_dict: { w: tensor(new Float32Array(1000)) } }).save(legacy, { format: 'legacy' });
    const lbytes = fs.readFileSync(legacy);
    await expectRejected(write('cut-legacy.pth', lbytes.subarray(0, lbytes.length - 100)), /truncated/);
  });

  test('a zip that is not a checkpoint', async () => {
    // A stored zip holding one text file (built by hand: local header, data, central directory).
    const name = Buffer.from('notes.txt');
    const data = Buffer.from('hi');
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(1, 8);
    end.writeUInt16LE(1, 10);
    end.writeUInt32LE(central.length + name.length, 12);
    end.writeUInt32LE(local.length + name.length + data.length, 16);
    const zip = Buffer.concat([local, name, data, central, name, end]);
    await expectRejected(write('other.zip', zip), /a zip without data.pkl is not a PyTorch checkpoint/);
  });
});

describe('key remapping (convert flags)', () => {
  test('strip, encoder_q selection and add, on the state dict only', async () => {
    const file = path.join(tmp, 'moco-like.pth');
    await saveCheckpoint(file, {
      epoch: 800,
      state_dict: {
        'module.queue': tensor([0]),
        'module.encoder_q.conv1.weight': tensor([1]),
        'module.encoder_q.fc.0.weight': tensor([2]),
        'module.encoder_k.conv1.weight': tensor([3]),
      },
    });
    const out = path.join(tmp, 'encoder.pth');
    expect(s2bnn('convert', file, out, '--encoder-q-only').code).toBe(0);
    const encoder = await loadCheckpoint(out);
    expect([...encoder.stateDict().keys()]).toEqual(['conv1.weight']);
    expect(encoder.summary().fields).toEqual({ epoch: 800 });
    const prefixed = (await loadCheckpoint(file)).transform({ stripPrefix: 'module.', addPrefix: 'student.' });
    expect([...prefixed.stateDict().keys()]).toEqual([
      'student.queue', 'student.encoder_q.conv1.weight', 'student.encoder_q.fc.0.weight', 'student.encoder_k.conv1.weight',
    ]);
  });

  test('inspect prints the format, fields and tensors', async () => {
    const file = path.join(tmp, 'inspect.pth');
    await saveCheckpoint(file, { epoch: 2, arch: 'resnet50', state_dict: { 'fc.weight': tensor([[1, 2, 3]]) } });
    const text = s2bnn('inspect', file);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/format  zip\nepoch   2\narch    "resnet50"\ntensors 1 \(3 elements\)\n  state_dict.fc.weight  float32   \[1, 3\]/);
    const json = JSON.parse(s2bnn('inspect', file, '--json').stdout);
    expect(json.tensors).toEqual([{ name: 'state_dict.fc.weight', shape: [1, 3], dtype: 'float32' }]);
    expect(s2bnn('inspect').stderr).toMatch(/missing CKPT/);
    expect(s2bnn('convert', file, path.join(tmp, 'x.pth'), '--format', 'onnx').stderr).toMatch(/--format must be zip, legacy or safetensors/);
  });
});
