'use strict';
// Prebuilt binaries. The package carries one build of the addon and the ops library per row of
// VARIANTS (made by `npm run build:prebuilt`, scripts/prebuild.js) under prebuilds/<key>/. At install
// the libtorch found decides the key (torch major.minor, CUDA major, C++ ABI); a matching build is
// copied to build/Release, its library search path filled in for that libtorch, and test-loaded
// before it is accepted. See docs/libtorch.md.

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { readDynamic, replaceSearchPath } = require('./elf');

/**
 * The builds the package ships: a new one is a row here, then `npm run prebuild -- --variant KEY`.
 * `libtorch` says where prebuild.js finds the libtorch to build against: the system's
 * (Debian's libtorch-dev) or a venv that scripts/torch-venv.sh fills with a pip requirement.
 */
const VARIANTS = [
  { torch: '1.13', cuda: null, libtorch: { system: 'Debian 12 libtorch-dev' } },
  { torch: '2.13', cuda: null, libtorch: { venv: '.venv-torch213', requirement: 'torch==2.13.0+cpu' } },
  { torch: '2.14', cuda: '13', libtorch: { venv: '.venv-torch214-cu130', requirement: 'torch==2.14.1' } },
];

// The room a prebuilt binary reserves for its run-time search path ($ORIGIN and this marker);
// install overwrites the marker with the user's libtorch folders.
const SEARCH_PATH_MARKER = `/s2bnn-libtorch-search-path${'-'.repeat(2000)}`;
const PREBUILT_RUNPATH = `$ORIGIN:${SEARCH_PATH_MARKER}`;
const LIBRARIES = ['s2bnn.node', 'libs2bnn_ops.so'];

function firstLibrary(libDir, pattern) {
  if (!fs.existsSync(libDir)) return null;
  const name = fs.readdirSync(libDir).filter((f) => pattern.test(f)).sort()[0];
  return name ? path.join(libDir, name) : null;
}

/**
 * The folders the addon searches at run time besides its own: libtorch's lib folder, then every
 * folder libtorch's main library names in its own RPATH ($ORIGIN expanded). A pip torch keeps
 * cudart, cuDNN and NCCL in nvidia-* packages beside it and finds them that way; so do we.
 */
function runtimeLibraryDirs(libtorch) {
  const dirs = [libtorch.libDir];
  const main = firstLibrary(libtorch.libDir, /^libtorch_cuda\.so/) || firstLibrary(libtorch.libDir, /^libtorch_cpu\.so/);
  if (main) {
    const { rpath, runpath } = readDynamic(main);
    for (const entry of `${rpath || ''}:${runpath || ''}`.split(':')) {
      if (!entry) continue;
      const dir = path.resolve(entry.replace(/\$ORIGIN|\$\{ORIGIN\}/g, path.dirname(fs.realpathSync(main))));
      if (!dirs.includes(dir) && fs.existsSync(dir)) dirs.push(dir);
    }
  }
  return dirs;
}

/** CUDA major version of a CUDA libtorch (from the cudart it links), or null for a CPU one. */
function cudaMajor(libtorch) {
  if (!libtorch.cuda) return null;
  const main = firstLibrary(libtorch.libDir, /^libtorch_cuda\.so/);
  const cudart = main && readDynamic(main).needed.find((n) => /^libcudart\.so\.\d+/.test(n));
  return cudart ? /^libcudart\.so\.(\d+)/.exec(cudart)[1] : 'unknown';
}

/** Whether libtorch uses libstdc++'s C++11 ABI: its c10 library then names std::__cxx11 types. */
function cxx11Abi(libtorch) {
  const c10 = firstLibrary(libtorch.libDir, /^libc10\.so/);
  if (!c10) return null;
  return fs.readFileSync(c10).includes('__cxx11');
}

function keyOf({ torch, cuda, cxx11Abi: abi }) {
  return `${process.platform}-${process.arch}-torch${torch}-${cuda ? `cu${cuda}` : 'cpu'}-${abi ? 'cxx11' : 'precxx11'}`;
}

function describeKey({ torch, cuda, cxx11Abi: abi }) {
  return `torch ${torch} ${cuda ? `CUDA ${cuda}` : 'CPU'}${abi ? '' : ' (pre-C++11 ABI)'}`;
}

/** What decides which prebuilt binary fits a libtorch. */
function factsOf(libtorch) {
  const [major, minor] = libtorch.version.split('.');
  return { torch: `${major}.${minor}`, cuda: cudaMajor(libtorch), cxx11Abi: cxx11Abi(libtorch) };
}

function readManifests(packageRoot) {
  const dir = path.join(packageRoot, 'prebuilds');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).sort().flatMap((name) => {
    const file = path.join(dir, name, 'manifest.json');
    return fs.existsSync(file) ? [{ dir: path.join(dir, name), manifest: JSON.parse(fs.readFileSync(file, 'utf8')) }] : [];
  });
}

/** The prebuilt binary for `libtorch` ({dir, key}), or why there is none ({reason}). */
function choose(libtorch, packageRoot) {
  const available = readManifests(packageRoot);
  if (available.length === 0) {
    return { reason: 'this copy of s2bnn carries no prebuilt binaries (a checkout; `npm run prebuild` makes them)' };
  }
  const facts = factsOf(libtorch);
  const key = keyOf(facts);
  const match = available.find((p) => p.manifest.key === key);
  if (match) return { dir: match.dir, key };
  const carried = available.map((p) => describeKey(p.manifest)).join(', ');
  return { reason: `no prebuilt binary for libtorch ${libtorch.version} (${describeKey(facts)}, ${key}); the package carries ${carried}` };
}

// A prebuilt binary can still fail where it was not made: an older glibc or libstdc++, a missing
// libjpeg. Loading it in a child process finds out before the install says it worked.
function testLoad(outDir) {
  const script = `const b = require(${JSON.stringify(path.join(outDir, 's2bnn.node'))}).build; process.stdout.write(b.libtorchVersion);`;
  const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120000 });
  if (res.status === 0) return null;
  const detail = `${res.stderr || ''}`.split('\n').find((line) => /Error|error/.test(line)) || `exit status ${res.status}`;
  return detail.trim();
}

/**
 * Installs the prebuilt binary in `dir` for `libtorch` into `outDir`. `record(manifest)` gives the
 * build record to write. Returns {ok, key} or {ok: false, reason} with outDir left empty.
 */
function install({ dir, libtorch, outDir, record }) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  const searchPath = runtimeLibraryDirs(libtorch).join(':');
  for (const name of LIBRARIES) {
    const target = path.join(outDir, name);
    fs.copyFileSync(path.join(dir, name), target);
    if (!replaceSearchPath(target, SEARCH_PATH_MARKER, searchPath)) {
      fs.rmSync(outDir, { recursive: true, force: true });
      return { ok: false, reason: `the prebuilt ${name} has no room for a library search path` };
    }
  }
  const failure = testLoad(outDir);
  if (failure) {
    fs.rmSync(outDir, { recursive: true, force: true });
    return { ok: false, reason: `the prebuilt binary ${manifest.key} does not load here (${failure})` };
  }
  fs.writeFileSync(path.join(outDir, 's2bnn-build.json'), `${JSON.stringify(record(manifest), null, 2)}\n`);
  return { ok: true, key: manifest.key };
}

// What a binary is built from: native/ and CMakeLists.txt. A manifest keeps this hash, so a
// package cannot ship binaries of other sources (`npm pack` checks, scripts/prebuild.js --verify).
function sourceHash(packageRoot) {
  const files = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) files.push(full);
    }
  };
  walk(path.join(packageRoot, 'native'));
  files.push(path.join(packageRoot, 'CMakeLists.txt'));
  const hash = crypto.createHash('sha256');
  for (const file of files.map((f) => path.relative(packageRoot, f)).sort()) {
    hash.update(`${file}\0`);
    hash.update(fs.readFileSync(path.join(packageRoot, file)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

/** The prebuilt binaries whose sources differ from these, each with why ([] when all match). */
function staleBuilds(packageRoot) {
  const current = sourceHash(packageRoot);
  return readManifests(packageRoot).flatMap(({ manifest }) => {
    if (!manifest.sourceHash) return [`${manifest.key}: its manifest records no source hash`];
    return manifest.sourceHash === current ? [] : [`${manifest.key}: built from other sources than native/ and CMakeLists.txt now hold`];
  });
}

module.exports = {
  VARIANTS,
  PREBUILT_RUNPATH,
  SEARCH_PATH_MARKER,
  LIBRARIES,
  firstLibrary,
  runtimeLibraryDirs,
  factsOf,
  keyOf,
  describeKey,
  choose,
  install,
  sourceHash,
  staleBuilds,
};
