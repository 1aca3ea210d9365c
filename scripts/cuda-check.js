#!/usr/bin/env node
'use strict';
// Compiles native/ops/cuda/*.cu with nvcc for sm_80 and sm_90 without linking: proof that the
// CUDA kernels build, on machines whose libtorch is CPU-only. `--require-nvcc` (CI) turns a
// missing nvcc into a failure instead of a notice.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const cudaDir = path.join(root, 'native', 'ops', 'cuda');
const ARCHS = ['80', '90'];
// PTX of the newest architecture too, which later GPUs compile at load (as CMakeLists.txt builds).
const PTX_ARCH = '90';

function findNvcc() {
  const candidates = [process.env.NVCC, 'nvcc', '/usr/local/cuda/bin/nvcc'].filter(Boolean);
  for (const exe of candidates) {
    const res = spawnSync(exe, ['--version'], { encoding: 'utf8' });
    if (res.status === 0) return exe;
  }
  return null;
}

// cuda_register.cpp is the at::Tensor side of the kernels; a CPU-only libtorch still ships the
// c10/cuda headers, so it can at least be syntax-checked against them and the CUDA toolkit.
// CPU builds lack the generated c10/cuda/impl/cuda_cmake_macros.h; a stub stands in for it.
function checkRegistration({ nvcc, libtorch, outDir }) {
  const includeDir = libtorch.includeDir;
  if (!fs.existsSync(path.join(includeDir, 'c10', 'cuda', 'CUDAGuard.h'))) {
    return { ok: true, message: 'libtorch has no c10/cuda headers: cuda_register.cpp not checked' };
  }
  const stubDir = path.join(outDir, 'stub');
  const macros = path.join(includeDir, 'c10', 'cuda', 'impl', 'cuda_cmake_macros.h');
  if (!fs.existsSync(macros)) {
    fs.mkdirSync(path.join(stubDir, 'c10', 'cuda', 'impl'), { recursive: true });
    fs.writeFileSync(path.join(stubDir, 'c10', 'cuda', 'impl', 'cuda_cmake_macros.h'),
      '#define C10_CUDA_BUILD_SHARED_LIBS\n');
  }
  // The compiler's default /usr/include must not be re-added: -isystem would break include_next.
  const includes = [includeDir, path.join(includeDir, 'torch', 'csrc', 'api', 'include'), stubDir,
    cudaIncludeDir(nvcc)].filter((dir) => dir !== '/usr/include');
  const args = [
    `-std=${cxxStandard(libtorch.version)}`, '-fsyntax-only', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Werror',
    '-D_GLIBCXX_USE_CXX11_ABI=1',
    ...includes.map((dir) => `-isystem${dir}`),
    path.join(root, 'native', 'ops', 'cuda_register.cpp'),
  ];
  const res = spawnSync(process.env.CXX || 'g++', args, { encoding: 'utf8' });
  if (res.status !== 0) {
    return { ok: false, message: `cuda_register.cpp does not compile:\n${res.stdout}${res.stderr}` };
  }
  return { ok: true, message: 'cuda_register.cpp compiles against the libtorch CUDA headers' };
}

// As CMakeLists.txt: ATen's headers require C++20 from torch 2.14 on.
function cxxStandard(version) {
  const [major, minor] = version.split('.').map(Number);
  return major > 2 || (major === 2 && minor >= 14) ? 'c++20' : 'c++17';
}

// The toolkit's root folder. nvcc is often a wrapper script (exec /usr/local/cuda-X/bin/nvcc),
// so ask nvcc where it really runs from (_HERE_ in its dry-run trace). CUDA_HOME wins.
function cudaToolkitRoot(nvcc = findNvcc()) {
  if (process.env.CUDA_HOME) return path.resolve(process.env.CUDA_HOME);
  if (!nvcc) return null;
  const dryrun = spawnSync(nvcc, ['--dryrun', '-c', 'x.cu'], { encoding: 'utf8' });
  const here = /_HERE_=(\S+)/.exec(`${dryrun.stdout}${dryrun.stderr}`);
  return here ? path.resolve(here[1], '..') : '/usr/local/cuda';
}

function cudaIncludeDir(nvcc) {
  return path.join(cudaToolkitRoot(nvcc), 'include');
}

function checkCudaSources({ log = console.error, requireNvcc = false, libtorch = null } = {}) {
  const nvcc = findNvcc();
  if (!nvcc) {
    const message = 'nvcc not found: the CUDA kernels were not compile-checked';
    if (requireNvcc) return { ok: false, message };
    log(message);
    return { ok: true, message };
  }
  const sources = fs.readdirSync(cudaDir).filter((f) => f.endsWith('.cu')).sort();
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 's2bnn-cuda-check-'));
  try {
    for (const source of sources) {
      const args = [
        '-c', path.join(cudaDir, source),
        '-o', path.join(outDir, `${source}.o`),
        '-std=c++17', '-O3', '-Xcompiler', '-fPIC',
        ...ARCHS.flatMap((a) => ['-gencode', `arch=compute_${a},code=sm_${a}`]),
        '-gencode', `arch=compute_${PTX_ARCH},code=compute_${PTX_ARCH}`,
      ];
      const res = spawnSync(nvcc, args, { encoding: 'utf8' });
      if (res.status !== 0) {
        return { ok: false, message: `nvcc failed on ${source}:\n${res.stdout}${res.stderr}` };
      }
      log(`nvcc: ${source} compiles for sm_${ARCHS.join(', sm_')} and compute_${PTX_ARCH} PTX`);
    }
    if (libtorch) {
      const registration = checkRegistration({ nvcc, libtorch, outDir });
      if (!registration.ok) return registration;
      log(registration.message);
    }
    return { ok: true, message: `${sources.length} CUDA sources compile` };
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}

module.exports = { checkCudaSources, findNvcc, cudaToolkitRoot };

if (require.main === module) {
  const { resolveLibtorch } = require('./libtorch');
  const result = checkCudaSources({
    requireNvcc: process.argv.includes('--require-nvcc'),
    libtorch: resolveLibtorch({ allowInstall: false }),
  });
  if (!result.ok) {
    console.error(result.message);
    process.exit(1);
  }
  console.log(result.message);
}
