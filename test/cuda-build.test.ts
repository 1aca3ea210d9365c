// A CUDA build of s2bnn (against a CUDA libtorch such as pip's torch 2.14.1+cu130) on any
// machine, with or without a GPU: it records CUDA and NCCL, every library it needs resolves
// through the libtorch it was built against (a pip torch's nvidia-* folders, never a CUDA
// toolkit's cudart beside it), and its CPU paths work. A CPU build skips the suite with the reason;
// S2BNN_REQUIRE_CUDA_BUILD=1 (the CI leg that builds against the CUDA torch) makes that a failure.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { Trainer, cudaDeviceCount, manualSeed, moco, native, ops, randn, readBuildInfo } from '../lib';
import { lddLibraries, repoRoot } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const prebuilt = require(path.join(repoRoot, 'scripts', 'prebuilt.js'));

const isCudaBuild = native().build.cuda;
if (!isCudaBuild && process.env.S2BNN_REQUIRE_CUDA_BUILD === '1') {
  throw new Error('S2BNN_REQUIRE_CUDA_BUILD=1 but this build of s2bnn uses a CPU-only libtorch');
}

(isCudaBuild ? describe : describe.skip)(`CUDA build${isCudaBuild ? '' : ' (skipped: this build uses a CPU-only libtorch)'}`, () => {
  const info = readBuildInfo()!;

  test('records CUDA, its version and the NCCL of libtorch\'s ProcessGroupNCCL', () => {
    expect(info.cuda).toBe(true);
    expect(native().build.cudaVersion).toMatch(/^\d+\.\d+$/);
    expect(native().build.nccl).toMatch(/^\d+\.\d+\.\d+$/);
    const res = spawnSync(process.execPath, [path.join(repoRoot, 'dist', 'cli.js'), 'info', '--json'], { encoding: 'utf8' });
    expect(res.status).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ cudaBuild: true, cudaVersion: native().build.cudaVersion, nccl: native().build.nccl });
  });

  test('every library resolves, and those libtorch ships come from its own folders', () => {
    const own = prebuilt.runtimeLibraryDirs({ libDir: info.libtorchLibDir, cuda: true }).map((dir: string) => fs.realpathSync(dir));
    for (const file of ['s2bnn.node', 'libs2bnn_ops.so']) {
      const { resolved, missing } = lddLibraries(path.join(repoRoot, 'build', 'Release', file));
      expect(missing).toEqual([]);
      for (const name of ['libtorch_cuda.so', 'libc10_cuda.so', 'libcudart.so.13', 'libnccl.so.2']) {
        const found = [...resolved.keys()].find((n) => n.startsWith(name.replace(/\.13$/, '')));
        expect([file, name, found && own.includes(resolved.get(found)!)]).toEqual([file, name, true]);
      }
      for (const [name, dir] of resolved) {
        if (/^lib(torch|c10|cudart|cublas|nccl|cudnn|nvrtc)/.test(name)) expect([file, name, own.includes(dir)]).toEqual([file, name, true]);
      }
    }
  });

  test('the CPU paths run: an operator, a ReActNet-A forward and a contrastive training step', async () => {
    manualSeed(3);
    const x = randn([2, 8, 6, 6]);
    const signs = Array.from(ops.signSte(x).toTypedArray() as Float32Array);
    expect(signs).toEqual(Array.from(x.toTypedArray() as Float32Array, (v) => (v > 0 ? 1 : v < 0 ? -1 : 0)));
    const spec = { arch: 'reactnet-a', width: 0.25, inChannels: 1, stem: 'small', head: 'mlp', mlpDim: 16 } as const;
    const student = moco(spec, { dim: 16, queueSize: 32 });
    expect(student.eval().forward(randn([2, 1, 16, 16])).shape).toEqual([2, 16]);
    const trainer = new Trainer({ model: student.train(), recipe: 'contrastive', optimizer: { kind: 'adam', lr: 1e-3 }, keyGroups: 2 });
    const first = await trainer.step([randn([4, 1, 16, 16]), randn([4, 1, 16, 16])]);
    const second = await trainer.step([randn([4, 1, 16, 16]), randn([4, 1, 16, 16])]);
    expect([Number.isFinite(first.loss), Number.isFinite(second.loss), trainer.steps]).toEqual([true, true, 2]);
    expect(cudaDeviceCount()).toBeGreaterThanOrEqual(0);
  });
});
