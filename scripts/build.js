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

function main() {
  let libtorch;
  try {
    libtorch = resolveLibtorch({ allowInstall: true, log });
  } catch (err) {
    fail(err.message);
  }
  log(`libtorch ${libtorch.version} (${libtorch.source}, ${libtorch.libDir}${libtorch.cuda ? ', CUDA' : ''})`);

  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const jobs = String(Math.max(1, require('os').availableParallelism?.() ?? require('os').cpus().length));
  const args = [
    cmakeJs,
    'compile',
    '--directory', root,
    '--parallel', jobs,
    `--CDCMAKE_PREFIX_PATH=${libtorch.cmakePrefix}`,
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
