#!/usr/bin/env node
'use strict';
// Builds the prebuilt binaries the package carries (one per row of VARIANTS in prebuilt.js) into
// prebuilds/<key>/, ready for `npm pack`. Each variant finds its own libtorch: the system's, or a
// venv that scripts/torch-venv.sh creates from the row's pip requirement.
//   npm run build:prebuilt -- --all
//   npm run build:prebuilt -- --variant linux-x64-torch2.13-cpu-cxx11
//   npm run build:prebuilt -- --list
//   npm run build:prebuilt -- --verify     (npm pack runs it: prebuilds/ must match the sources)
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { resolveLibtorch } = require('./libtorch');
const { compile } = require('./build');
const prebuilt = require('./prebuilt');

const root = path.resolve(__dirname, '..');
const log = (message) => process.stderr.write(`s2bnn prebuild: ${message}\n`);

// The key a row will have: the ABI is the C++11 one for every libtorch the table names.
function keyOfRow(row) {
  return prebuilt.keyOf({ torch: row.torch, cuda: row.cuda, cxx11Abi: true });
}

function libtorchFor(row) {
  const env = { ...process.env };
  delete env.LIBTORCH;
  if (row.libtorch.system) return resolveLibtorch({ env, skipPython: true, allowInstall: false, log });
  const venv = path.join(root, row.libtorch.venv);
  const python = path.join(venv, 'bin', 'python');
  if (!fs.existsSync(python)) {
    log(`creating ${row.libtorch.venv} with ${row.libtorch.requirement}`);
    const res = spawnSync('bash', [path.join(__dirname, 'torch-venv.sh'), venv, row.libtorch.requirement], { stdio: 'inherit' });
    if (res.status !== 0) throw new Error(`scripts/torch-venv.sh ${row.libtorch.venv} ${row.libtorch.requirement} failed`);
  }
  return resolveLibtorch({ env: { ...env, S2BNN_PYTHON: python }, allowInstall: false, log });
}

function osName() {
  try {
    return /^PRETTY_NAME="?([^"\n]*)/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))[1];
  } catch {
    return `${os.type()} ${os.release()}`;
  }
}

function buildVariant(row) {
  const wanted = keyOfRow(row);
  const libtorch = libtorchFor(row);
  const facts = prebuilt.factsOf(libtorch);
  const key = prebuilt.keyOf(facts);
  if (key !== wanted) {
    throw new Error(`variant ${wanted} found libtorch ${libtorch.version} at ${libtorch.root}, which is ${key}`);
  }
  log(`${key}: libtorch ${libtorch.version} from ${libtorch.root}`);
  const started = Date.now();
  const outDir = compile({ libtorch, buildDir: path.join(root, 'build-prebuild', key), runpath: prebuilt.PREBUILT_RUNPATH });
  const target = path.join(root, 'prebuilds', key);
  fs.rmSync(target, { recursive: true, force: true });
  fs.mkdirSync(target, { recursive: true });
  for (const name of prebuilt.LIBRARIES) fs.copyFileSync(path.join(outDir, name), path.join(target, name));
  const manifest = {
    key,
    ...facts,
    libtorchVersion: libtorch.version,
    libtorchFrom: row.libtorch.system || `pip ${row.libtorch.requirement}`,
    sourceHash: prebuilt.sourceHash(root),
    s2bnnVersion: require(path.join(root, 'package.json')).version,
    builtOn: { os: osName(), glibc: process.report?.getReport().header.glibcVersionRuntime ?? null },
    builtAt: new Date().toISOString(),
  };
  fs.writeFileSync(path.join(target, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const bytes = prebuilt.LIBRARIES.reduce((sum, name) => sum + fs.statSync(path.join(target, name)).size, 0);
  log(`${key}: prebuilds/${key} (${(bytes / 2 ** 20).toFixed(1)} MiB) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

function main() {
  const args = process.argv.slice(2);
  const keys = prebuilt.VARIANTS.map(keyOfRow);
  if (args.includes('--verify')) {
    const stale = prebuilt.staleBuilds(root);
    if (stale.length > 0) {
      throw new Error(`prebuilds/ does not match the sources; rebuild with \`npm run build:prebuilt -- --all\`:\n  ${stale.join('\n  ')}`);
    }
    const count = fs.existsSync(path.join(root, 'prebuilds')) ? fs.readdirSync(path.join(root, 'prebuilds')).length : 0;
    log(count === 0 ? 'no prebuilt binaries: the package will build from source on install' : `${count} prebuilt binaries match the sources`);
    return;
  }
  if (args.includes('--list') || args.length === 0) {
    for (const [i, row] of prebuilt.VARIANTS.entries()) {
      process.stdout.write(`${keys[i]}  ${row.libtorch.system || `pip ${row.libtorch.requirement} in ${row.libtorch.venv}`}\n`);
    }
    if (args.length === 0) process.stdout.write('build one with --variant KEY, or all with --all\n');
    return;
  }
  let rows = prebuilt.VARIANTS;
  if (!args.includes('--all')) {
    const at = args.indexOf('--variant');
    const key = at >= 0 ? args[at + 1] : undefined;
    if (!key || !keys.includes(key)) {
      throw new Error(`--variant needs one of: ${keys.join(', ')} (got ${key === undefined ? 'nothing' : key})`);
    }
    rows = [prebuilt.VARIANTS[keys.indexOf(key)]];
  }
  for (const row of rows) buildVariant(row);
}

try {
  main();
} catch (err) {
  process.stderr.write(`s2bnn prebuild: ${err.message}\n`);
  process.exit(1);
}
