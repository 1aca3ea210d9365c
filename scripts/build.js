#!/usr/bin/env node
'use strict';
// The install step and the native build. `npm install` runs this file: it resolves libtorch
// (scripts/libtorch.js), installs the prebuilt binary the package carries for that libtorch
// (scripts/prebuilt.js) or, with none, builds from source with cmake-js and says why in one line.
// Either way it records what the addon was built against (build/Release/s2bnn-build.json, read by
// the runtime loader). A CPU build also compiles the CUDA kernels with nvcc, as a check.
//   node scripts/build.js            install: prebuilt if one fits, else from source
//   node scripts/build.js --source   always from source (as S2BNN_BUILD_FROM_SOURCE=1 or a debug
//                                    build, S2BNN_DEBUG_BUILD=1)
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { resolveLibtorch } = require('./libtorch');
const { checkCudaSources, cudaToolkitRoot } = require('./cuda-check');
const prebuilt = require('./prebuilt');

const root = path.resolve(__dirname, '..');
const log = (message) => process.stderr.write(`s2bnn: ${message}\n`);

class BuildError extends Error {}

// CMake caches where it found Torch: a build folder configured for another libtorch would keep
// compiling against that one, so it starts over.
function forgetOtherLibtorch(buildDir, prefixPath) {
  const cache = path.join(buildDir, 'CMakeCache.txt');
  if (!fs.existsSync(cache)) return;
  const match = /^CMAKE_PREFIX_PATH:[A-Z]+=(.*)$/m.exec(fs.readFileSync(cache, 'utf8'));
  if (match && match[1] === prefixPath) return;
  log(`the build folder was configured for another libtorch (${match ? match[1] : 'unknown'}): starting it over`);
  fs.rmSync(buildDir, { recursive: true, force: true });
}

// libtorch's CMake config asks the toolkit for the CUDA libraries libtorch_cuda links (nvrtc,
// cuBLAS, ...). A toolkit with only the compiler and cudart lacks them, while a pip torch carries
// them in its nvidia-* packages: use those, the very files libtorch loads.
const TORCH_CUDA_LIBRARIES = ['nvrtc', 'cublas', 'cublasLt', 'cufft', 'curand', 'cusparse', 'cusolver'];

function librariesBesideTorch(toolkit, torchDirs) {
  const toolkitDirs = ['lib64', 'lib', path.join('targets', `${os.arch() === 'arm64' ? 'sbsa' : 'x86_64'}-linux`, 'lib')]
    .map((dir) => path.join(toolkit, dir));
  const find = (dirs, name) => dirs.map((dir) => prebuilt.firstLibrary(dir, new RegExp(`^lib${name}\\.so(\\.\\d+)*$`))).find(Boolean);
  const found = {};
  for (const name of TORCH_CUDA_LIBRARIES) {
    const besideTorch = find(toolkitDirs, name) ? null : find(torchDirs, name);
    if (besideTorch) found[name] = besideTorch;
  }
  return found;
}

/**
 * Compiles the addon and the ops library against `libtorch` into `buildDir`/Release (or Debug)
 * with the given run-time search path, and returns that output folder.
 */
function compile({ libtorch, buildDir, runpath }) {
  // The libtorch root too: TorchConfig.cmake finds c10 with a plain find_library, which would
  // otherwise take a system libc10 (Debian's) over the pip torch's own and mix the two.
  const prefixPath = `${libtorch.cmakePrefix};${libtorch.root}`;
  forgetOtherLibtorch(buildDir, prefixPath);
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const jobs = String(Math.max(1, os.availableParallelism?.() ?? os.cpus().length));
  const debug = process.env.S2BNN_DEBUG_BUILD === '1';
  const args = [
    '--directory', root,
    '--out', buildDir,
    '--parallel', jobs,
    `--CDCMAKE_PREFIX_PATH=${prefixPath}`,
    `--CDS2BNN_WITH_CUDA=${libtorch.cuda ? 'ON' : 'OFF'}`,
    `--CDS2BNN_RUNPATH=${runpath}`,
    `--CDS2BNN_IMAGE_CODECS_OPTIONAL=${process.env.S2BNN_IMAGE_CODECS === 'optional' ? 'ON' : 'OFF'}`,
  ];
  if (libtorch.cuda) {
    // libtorch's CMake config looks for the toolkit with the old FindCUDA, which derives the root
    // from nvcc's location and is lost when nvcc is a wrapper on PATH: name it.
    const toolkit = cudaToolkitRoot();
    if (!toolkit) throw new BuildError('a CUDA libtorch needs nvcc (the CUDA toolkit) to build s2bnn: set CUDA_HOME or put nvcc on PATH');
    args.push(`--CDCUDA_TOOLKIT_ROOT_DIR=${toolkit}`, `--CDCUDAToolkit_ROOT=${toolkit}`,
      `--CDCMAKE_CUDA_COMPILER=${path.join(toolkit, 'bin', 'nvcc')}`);
    const torchDirs = prebuilt.runtimeLibraryDirs(libtorch).slice(1);
    for (const [name, file] of Object.entries(librariesBesideTorch(toolkit, torchDirs))) args.push(`--CDCUDA_${name}_LIBRARY=${file}`);
    const includeDirs = torchDirs.map((dir) => path.resolve(dir, '..', 'include')).filter((dir) => fs.existsSync(dir));
    args.push(`--CDS2BNN_LIBRARY_INCLUDE_DIRS=${includeDirs.join(';')}`);
  }
  if (debug) args.push('--debug');
  // configure, then build: `cmake-js compile` would skip configuring a configured folder (keeping
  // its old options) and retry a failed build from scratch.
  for (const step of ['configure', 'build']) {
    const res = spawnSync(process.execPath, [cmakeJs, step, ...args], { cwd: root, stdio: 'inherit', env: process.env });
    if (res.status !== 0) throw new BuildError(`cmake-js ${step} exited with status ${res.status}`);
  }
  return path.join(buildDir, debug ? 'Debug' : 'Release');
}

function buildRecord(libtorch, extra) {
  return {
    libtorchVersion: libtorch.version,
    libtorchSource: libtorch.source,
    libtorchRoot: libtorch.root,
    libtorchLibDir: libtorch.libDir,
    libtorchIncludeDir: libtorch.includeDir,
    cuda: libtorch.cuda,
    node: process.version,
    builtAt: new Date().toISOString(),
    ...extra,
  };
}

function buildFromSource(libtorch, reason) {
  const runpath = ['$ORIGIN', ...prebuilt.runtimeLibraryDirs(libtorch)].join(':');
  const outDir = compile({ libtorch, buildDir: path.join(root, 'build'), runpath });
  const record = buildRecord(libtorch, { binary: 'source', sourceReason: reason });
  fs.writeFileSync(path.join(outDir, 's2bnn-build.json'), `${JSON.stringify(record, null, 2)}\n`);
  if (!libtorch.cuda) {
    // The CUDA kernels are not linked into a CPU build, but they must keep compiling so a GPU
    // machine finds code that builds.
    const result = checkCudaSources({ log, requireNvcc: false, libtorch });
    if (!result.ok) throw new BuildError(result.message);
  }
}

function main() {
  try {
    const libtorch = resolveLibtorch({ allowInstall: true, log });
    log(`libtorch ${libtorch.version} (${libtorch.source}, ${libtorch.libDir}${libtorch.cuda ? ', CUDA' : ''})`);
    const sourceReason = process.argv.includes('--source') ? 'asked for (--source)'
      : process.env.S2BNN_BUILD_FROM_SOURCE === '1' ? 'S2BNN_BUILD_FROM_SOURCE=1'
        : process.env.S2BNN_DEBUG_BUILD === '1' ? 'S2BNN_DEBUG_BUILD=1 (prebuilt binaries are release builds)' : null;
    const choice = sourceReason ? { reason: sourceReason } : prebuilt.choose(libtorch, root);
    if (choice.dir) {
      const installed = prebuilt.install({ dir: choice.dir, libtorch, outDir: path.join(root, 'build', 'Release'),
        record: (manifest) => buildRecord(libtorch, { binary: 'prebuilt', prebuilt: manifest.key, builtAgainst: manifest.libtorchVersion }) });
      if (installed.ok) {
        log(`installed the prebuilt binary ${installed.key} (no compiler needed)`);
        return;
      }
      choice.reason = installed.reason;
    }
    log(`building from source: ${choice.reason}`);
    buildFromSource(libtorch, choice.reason);
  } catch (err) {
    process.stderr.write(`s2bnn: build failed: ${err.message}\n`);
    process.exit(1);
  }
}

module.exports = { compile, buildRecord };

if (require.main === module) main();
