'use strict';
// The one libtorch resolver. The build (scripts/build.js) and the runtime loader (lib/native.ts)
// both use it, so they agree on which libtorch is meant. Order (docs/libtorch.md): the LIBTORCH folder,
// then the `torch` package of python3 (a research repo's PyTorch, often a CUDA build), then a
// system install (Debian's libtorch-dev). With none of these on Debian/Ubuntu as root, it can
// install libtorch-dev with apt.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const HOW_TO_PROVIDE = [
  'Provide libtorch in one of three ways:',
  '  1. LIBTORCH=/path/to/libtorch  (an unpacked libtorch archive, or the `torch` folder of a',
  '     PyTorch install, e.g. $(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))"))',
  '  2. a python3 on PATH whose `torch` package ships its CMake files (pip install torch)',
  '  3. a system libtorch, e.g. on Debian/Ubuntu: apt-get install libtorch-dev',
].join('\n');

class LibtorchNotFound extends Error {
  constructor(detail) {
    super(`libtorch was not found${detail ? ` (${detail})` : ''}.\n${HOW_TO_PROVIDE}`);
    this.name = 'LibtorchNotFound';
    this.code = 'S2BNN_NO_LIBTORCH';
  }
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

// torch/version.h holds the version up to 2.8 or so; later releases include it from
// torch/headeronly/version.h.
const VERSION_HEADERS = [
  ['torch', 'csrc', 'api', 'include', 'torch', 'version.h'],
  ['torch', 'headeronly', 'version.h'],
];

function readVersionHeader(includeDirs) {
  for (const dir of includeDirs) {
    for (const parts of VERSION_HEADERS) {
      const header = path.join(dir, ...parts);
      if (!isFile(header)) continue;
      const match = /#define\s+TORCH_VERSION\s+\\?\s*"([^"]+)"/.exec(fs.readFileSync(header, 'utf8'));
      if (match) return match[1];
    }
  }
  return null;
}

function hasCuda(libDir) {
  return fs.existsSync(libDir) && fs.readdirSync(libDir).some((f) => /^libc10_cuda\.so/.test(f));
}

// A libtorch folder laid out like the official archive or a PyTorch package:
// share/cmake/Torch, lib/, include/.
function describeFolder(root, source) {
  const cmakeDir = path.join(root, 'share', 'cmake', 'Torch');
  if (!isFile(path.join(cmakeDir, 'TorchConfig.cmake'))) return null;
  const libDir = path.join(root, 'lib');
  const includeDir = path.join(root, 'include');
  const version = readVersionHeader([includeDir]);
  if (!version) return null;
  return {
    source,
    root,
    cmakePrefix: path.join(root, 'share', 'cmake'),
    libDir,
    includeDir,
    version,
    cuda: hasCuda(libDir),
  };
}

function fromEnvironment(env) {
  const root = env.LIBTORCH;
  if (!root) return null;
  const found = describeFolder(path.resolve(root), 'LIBTORCH');
  if (!found) {
    // A set but wrong LIBTORCH is a user mistake: say so instead of silently using another one.
    throw new LibtorchNotFound(
      `LIBTORCH=${root} has no share/cmake/Torch/TorchConfig.cmake or torch/version.h`,
    );
  }
  return found;
}

function pythonCandidates(env) {
  const seen = new Set();
  const out = [];
  for (const exe of [env.S2BNN_PYTHON, 'python3', '/usr/bin/python3']) {
    if (!exe || seen.has(exe)) continue;
    seen.add(exe);
    out.push(exe);
  }
  return out;
}

function fromPython(env) {
  const script =
    'import os, torch, torch.utils\n' +
    'print(os.path.dirname(torch.__file__))\n' +
    'print(torch.utils.cmake_prefix_path)\n';
  for (const exe of pythonCandidates(env)) {
    const res = spawnSync(exe, ['-c', script], { encoding: 'utf8', timeout: 60000, env });
    if (res.status !== 0 || !res.stdout) continue;
    const [torchDir] = res.stdout.trim().split('\n');
    const found = torchDir && describeFolder(torchDir, `python:${exe}`);
    if (found) return found;
  }
  return null;
}

function multiarchLibDirs() {
  const dirs = [];
  const res = spawnSync('gcc', ['-print-multiarch'], { encoding: 'utf8' });
  const triplet = res.status === 0 ? res.stdout.trim() : `${os.arch() === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;
  if (triplet) dirs.push(`/usr/lib/${triplet}`);
  dirs.push('/usr/lib', '/usr/local/lib', '/usr/lib64');
  return dirs;
}

function fromSystem(libDirs = multiarchLibDirs()) {
  for (const libDir of libDirs) {
    const cmakeDir = path.join(libDir, 'cmake', 'Torch');
    if (!isFile(path.join(cmakeDir, 'TorchConfig.cmake'))) continue;
    const prefix = libDir.startsWith('/usr/local/') ? '/usr/local' : '/usr';
    const includeDirs = [path.join(prefix, 'include'), '/usr/include', '/usr/local/include'];
    const version = readVersionHeader(includeDirs);
    if (!version) continue;
    return {
      source: 'system',
      root: prefix,
      cmakePrefix: path.join(libDir, 'cmake'),
      libDir,
      includeDir: includeDirs.find((d) => fs.existsSync(path.join(d, 'torch'))) || includeDirs[0],
      version,
      cuda: hasCuda(libDir),
    };
  }
  return null;
}

function canInstallWithApt() {
  return (
    process.platform === 'linux' &&
    typeof process.getuid === 'function' &&
    process.getuid() === 0 &&
    fs.existsSync('/etc/debian_version') &&
    isFile('/usr/bin/apt-get')
  );
}

function installWithApt(log) {
  log('s2bnn: no libtorch found; installing Debian package libtorch-dev with apt-get');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', 'libtorch-dev']]) {
    const res = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (res.status !== 0) throw new LibtorchNotFound(`apt-get ${args.join(' ')} failed`);
  }
}

/**
 * Finds libtorch. Options: `env` (defaults to process.env), `skipPython`, `allowInstall`
 * (apt-get install libtorch-dev as a last resort), `systemLibDirs` (where to look for a system
 * install; defaults to the multiarch and /usr/local folders), `log`.
 */
function resolveLibtorch(options = {}) {
  const env = options.env || process.env;
  const log = options.log || ((m) => process.stderr.write(`${m}\n`));
  const found =
    fromEnvironment(env) ||
    (options.skipPython ? null : fromPython(env)) ||
    fromSystem(options.systemLibDirs);
  if (found) return found;
  if (options.allowInstall && env.S2BNN_NO_APT !== '1' && canInstallWithApt()) {
    installWithApt(log);
    const installed = fromSystem(options.systemLibDirs);
    if (installed) return installed;
  }
  throw new LibtorchNotFound();
}

module.exports = { resolveLibtorch, describeFolder, readVersionHeader, LibtorchNotFound, HOW_TO_PROVIDE };

if (require.main === module) {
  try {
    process.stdout.write(`${JSON.stringify(resolveLibtorch({ allowInstall: false }), null, 2)}\n`);
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
}
