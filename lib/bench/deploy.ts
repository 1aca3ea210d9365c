// Whole-network inference, the packed 1-bit ReActNet-A vs the same network in float32 (s2bnn's
// eval-mode model: oneDNN convolutions of the +-1 operands), in the same run: median latency per
// thread count, and the file sizes (float checkpoint vs packed model).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { saveCheckpoint } from '../checkpoint';
import { PackedModel } from '../deploy';
import { reactnetA } from '../models';
import { Tensor, getNumThreads, manualSeed, noGrad, rand, randn, setNumThreads, tidy } from '../tensor';
import { medianMs, medianMsAsync } from './timing';

export interface PackedModelFigure {
  impl: 'float32' | 'packed';
  batch: number;
  size: number;
  threads: number;
  /** Median milliseconds of one forward pass. */
  ms: number;
}

export interface PackedModelBench {
  figures: PackedModelFigure[];
  /** The float32 checkpoint (torch.save zip of the state dict) and the packed file, in bytes. */
  floatBytes: number;
  packedBytes: number;
  /** The packed file with the head's weights in float16 (`export --half-head`). */
  packedHalfHeadBytes: number;
}

/** Random weights of both signs and BatchNorm statistics away from the identity: timing and sizes only. */
function randomTrainedLike(classes: number) {
  manualSeed(0);
  const model = reactnetA({ binarize: 'both', numClasses: classes });
  const state = new Map<string, Tensor>();
  for (const [name, t] of model.stateDict()) {
    if (t.dtype !== 'float32') continue;
    state.set(name, tidy(() => (name.endsWith('running_var') ? rand(t.shape).add(0.5) : randn(t.shape).mul(0.1))));
  }
  model.loadStateDict(state, { strict: false });
  for (const t of state.values()) t.dispose();
  return model.eval();
}

export async function benchPackedModel(options: { threads: number[]; batch?: number; size?: number; classes?: number; samples?: number }): Promise<PackedModelBench> {
  const batch = options.batch ?? 1;
  const size = options.size ?? 224;
  const samples = options.samples ?? 10;
  const model = randomTrainedLike(options.classes ?? 1000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 's2bnn-bench-deploy-'));
  const before = getNumThreads();
  try {
    const floatFile = path.join(dir, 'float.pth');
    const packedFile = path.join(dir, 'packed.safetensors');
    await saveCheckpoint(floatFile, { state_dict: model.stateDict() });
    const { model: packed } = await PackedModel.fromModel(model);
    await packed.save(packedFile);
    const halfHeadFile = path.join(dir, 'packed-half-head.safetensors');
    await (await PackedModel.fromModel(model, { halfHead: true })).model.save(halfHeadFile);
    const x = randn([batch, 3, size, size]);
    const figures: PackedModelFigure[] = [];
    for (const threads of options.threads) {
      setNumThreads(threads);
      const floatForward = () => noGrad(() => tidy(() => void model.forward(x)));
      floatForward();
      figures.push({ impl: 'float32', batch, size, threads, ms: medianMs(floatForward, 0, samples, samples) });
      const packedForward = async () => (await packed.forward(x)).dispose();
      await packedForward();
      figures.push({ impl: 'packed', batch, size, threads, ms: await medianMsAsync(packedForward, samples) });
    }
    const bytes = (file: string) => fs.statSync(file).size;
    return { figures, floatBytes: bytes(floatFile), packedBytes: bytes(packedFile), packedHalfHeadBytes: bytes(halfHeadFile) };
  } finally {
    setNumThreads(before);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function formatPackedModelTable(bench: PackedModelBench): string {
  const lines = ['| threads | float32 ms | packed ms | speedup |', '|---|---|---|---|'];
  const threads = [...new Set(bench.figures.map((f) => f.threads))];
  for (const t of threads) {
    const f = bench.figures.find((x) => x.threads === t && x.impl === 'float32')!;
    const p = bench.figures.find((x) => x.threads === t && x.impl === 'packed')!;
    lines.push(`| ${t} | ${f.ms.toFixed(1)} | ${p.ms.toFixed(1)} | ${(f.ms / p.ms).toFixed(2)}x |`);
  }
  const MB = 1024 * 1024;
  const ratio = (bytes: number) => `${(bytes / MB).toFixed(2)} MB, ${(bench.floatBytes / bytes).toFixed(1)}x smaller`;
  lines.push('', `model file: float32 checkpoint ${(bench.floatBytes / MB).toFixed(1)} MB; packed ${ratio(bench.packedBytes)}; ` +
    `packed with a float16 head ${ratio(bench.packedHalfHeadBytes)}`);
  return lines.join('\n');
}
