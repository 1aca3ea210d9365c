#!/usr/bin/env node
'use strict';
// Builds the native addon: resolves libtorch (scripts/libtorch.js), runs cmake-js with it,
// records what the addon was built against (build/Release/s2bnn-build.json, read by the runtime
// loader), and, when the libtorch is CPU-only, compiles the CUDA kernels with nvcc as a check.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { resolveLibtorch } = require('./libtorch');
const { checkCudaSources } = require('./cuda-check');

const root = path.resolve(__dirname, '..');
const log = (message) => process.stderr.write(`s2bnn: ${message}\n`);

function fail(message) {
  process.stderr.write(`s2bnn: build failed: ${message}\n`);
  process.exit(1);
}

// CMake caches where it found Torch: a build folder configured for another libtorch would keep
// compiling against that one, so it starts over.
function forgetOtherLibtorch(prefixPath) {
  const buildDir = path.join(root, 'build');
  const cache = path.join(buildDir, 'CMakeCache.txt');
  if (!fs.existsSync(cache)) return;
  const match = /^CMAKE_PREFIX_PATH:[A-Z]+=(.*)$/m.exec(fs.readFileSync(cache, 'utf8'));
  if (match && match[1] === prefixPath) return;
  log(`the build folder was configured for another libtorch (${match ? match[1] : 'unknown'}): starting it over`);
  fs.rmSync(buildDir, { recursive: true, force: true });
}

function main() {
  let libtorch;
  try {
    libtorch = resolveLibtorch({ allowInstall: true, log });
  } catch (err) {
    fail(err.message);
  }
  log(`libtorch ${libtorch.version} (${libtorch.source}, ${libtorch.libDir}${libtorch.cuda ? ', CUDA' : ''})`);

  // The libtorch root too: TorchConfig.cmake finds c10 with a plain find_library, which would
  // otherwise take a system libc10 (Debian's) over the pip torch's own and mix the two.
  const prefixPath = `${libtorch.cmakePrefix};${libtorch.root}`;
  forgetOtherLibtorch(prefixPath);
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const jobs = String(Math.max(1, require('os').availableParallelism?.() ?? require('os').cpus().length));
  const args = [
    cmakeJs,
    'compile',
    '--directory', root,
    '--parallel', jobs,
    `--CDCMAKE_PREFIX_PATH=${prefixPath}`,
    `--CDS2BNN_WITH_CUDA=${libtorch.cuda ? 'ON' : 'OFF'}`,
  ];
  if (process.env.S2BNN_DEBUG_BUILD === '1') args.push('--debug');
  const res = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: process.env });
  if (res.status !== 0) fail(`cmake-js exited with status ${res.status}`);

  const outDir = path.join(root, 'build', process.env.S2BNN_DEBUG_BUILD === '1' ? 'Debug' : 'Release');
  const info = {
    libtorchVersion: libtorch.version,
    libtorchSource: libtorch.source,
    libtorchRoot: libtorch.root,
    libtorchLibDir: libtorch.libDir,
    libtorchIncludeDir: libtorch.includeDir,
    cuda: libtorch.cuda,
    node: process.version,
    binary: 'source',
    builtAt: new Date().toISOString(),
  };
  fs.writeFileSync(path.join(outDir, 's2bnn-build.json'), `${JSON.stringify(info, null, 2)}\n`);

  if (!libtorch.cuda) {
    // The CUDA kernels are not linked into a CPU build, but they must keep compiling so a GPU
    // machine finds code that builds.
    const result = checkCudaSources({ log, requireNvcc: false, libtorch });
    if (!result.ok) fail(result.message);
  }
}

main();
