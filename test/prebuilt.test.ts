// Prebuilt binaries: which one fits a libtorch, and the install that fills in a prebuilt binary's
// library search path for the user's libtorch and test-loads it. The install runs on a real,
// minimal Node addon built here with the same reserved search path as a prebuilt s2bnn, which
// needs a library from a folder that only the filled-in path names.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { readBuildInfo } from '../lib';
import { repoRoot, tempDir } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const prebuilt = require(path.join(repoRoot, 'scripts', 'prebuilt.js'));
// eslint-disable-next-line @typescript-eslint/no-var-requires
const elf = require(path.join(repoRoot, 'scripts', 'elf.js'));
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { resolveLibtorch } = require(path.join(repoRoot, 'scripts', 'libtorch.js'));

const tmp = tempDir('prebuilt');
const quiet = { log: () => undefined };

function run(command: string, args: string[], cwd = tmp): void {
  const res = spawnSync(command, args, { cwd, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${res.stdout}${res.stderr}`);
}

const ADDON_SOURCE = `
#include <node_api.h>
int dependency_value(void);
static napi_value init(napi_env env, napi_value exports) {
  napi_value build, value;
  napi_create_object(env, &build);
  napi_create_string_utf8(env, "1.0.0", NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, build, "libtorchVersion", value);
  napi_create_int32(env, dependency_value(), &value);
  napi_set_named_property(env, build, "dependency", value);
  napi_set_named_property(env, exports, "build", build);
  return exports;
}
NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
`;

/**
 * A package folder carrying one "prebuilt binary" for `key`: an addon and an ops library whose
 * search path is the reserved one, both needing libdependency.so, which lives in `libDir`.
 */
function fakePackage(key: string, libDir: string): string {
  const packageRoot = fs.mkdtempSync(path.join(tmp, 'package-'));
  const dir = path.join(packageRoot, 'prebuilds', key);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(tmp, 'dependency.c'), 'int dependency_value(void) { return 42; }\n');
  fs.writeFileSync(path.join(tmp, 'addon.c'), ADDON_SOURCE);
  run('gcc', ['-shared', '-fPIC', '-o', path.join(libDir, 'libdependency.so'), 'dependency.c']);
  const headers = path.join(repoRoot, 'node_modules', 'node-api-headers', 'include');
  const link = ['-shared', '-fPIC', `-I${headers}`, `-L${libDir}`, `-Wl,-rpath,${prebuilt.PREBUILT_RUNPATH}`, '-Wl,--enable-new-dtags'];
  run('gcc', [...link, '-o', path.join(dir, 's2bnn.node'), 'addon.c', '-ldependency']);
  run('gcc', [...link, '-o', path.join(dir, 'libs2bnn_ops.so'), 'dependency.c']);
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ key, torch: '1.0', cuda: null, cxx11Abi: true, libtorchVersion: '1.0.0' }));
  return packageRoot;
}

function fakeLibtorch(libDir: string) {
  return { version: '1.0.3', cuda: false, libDir, root: path.dirname(libDir), includeDir: path.join(path.dirname(libDir), 'include') };
}

describe('ELF reader', () => {
  test('reads the addon built here: what it needs and where it looks', () => {
    const info = readBuildInfo()!;
    const addon = elf.readDynamic(path.join(repoRoot, 'build', 'Release', 's2bnn.node'));
    expect(addon.needed).toContain('libs2bnn_ops.so');
    expect(addon.needed.some((name: string) => /^libtorch_cpu\.so/.test(name))).toBe(true);
    const searchPath = (addon.runpath ?? addon.rpath).split(':');
    expect(searchPath[0]).toBe('$ORIGIN');
    expect(searchPath).toContain(info.libtorchLibDir);
  });

  test('a file that is not ELF is refused by name', () => {
    const file = path.join(tmp, 'not-elf.so');
    fs.writeFileSync(file, 'hello');
    expect(() => elf.readDynamic(file)).toThrow(/not-elf\.so is not an ELF file/);
  });
});

describe('choosing a prebuilt binary', () => {
  const libtorch = resolveLibtorch({ env: process.env, allowInstall: false, ...quiet });
  const facts = prebuilt.factsOf(libtorch);
  const key = prebuilt.keyOf(facts);

  test('the key names platform, torch major.minor, CUDA major and the C++ ABI', () => {
    const [major, minor] = libtorch.version.split('.');
    expect(key).toBe(`${process.platform}-${process.arch}-torch${major}.${minor}-${libtorch.cuda ? `cu${facts.cuda}` : 'cpu'}-cxx11`);
    expect(prebuilt.keyOf({ torch: '2.14', cuda: '13', cxx11Abi: true })).toMatch(/-torch2\.14-cu13-cxx11$/);
    expect(prebuilt.keyOf({ torch: '2.4', cuda: null, cxx11Abi: false })).toMatch(/-torch2\.4-cpu-precxx11$/);
  });

  test('a package with the matching build picks it; a patch release of libtorch still matches', () => {
    const packageRoot = fs.mkdtempSync(path.join(tmp, 'choose-'));
    for (const k of [key, prebuilt.keyOf({ torch: '9.9', cuda: null, cxx11Abi: true })]) {
      fs.mkdirSync(path.join(packageRoot, 'prebuilds', k), { recursive: true });
      fs.writeFileSync(path.join(packageRoot, 'prebuilds', k, 'manifest.json'), JSON.stringify({ key: k, ...facts }));
    }
    expect(prebuilt.choose(libtorch, packageRoot)).toEqual({ dir: path.join(packageRoot, 'prebuilds', key), key });
    const patched = { ...libtorch, version: libtorch.version.replace(/\.\d+$/, '.9') };
    expect(prebuilt.choose(patched, packageRoot).key).toBe(key);
  });

  test('another libtorch gets a one-line reason naming it and what the package carries', () => {
    const packageRoot = fs.mkdtempSync(path.join(tmp, 'choose-'));
    const other = prebuilt.keyOf({ torch: '9.9', cuda: '13', cxx11Abi: true });
    fs.mkdirSync(path.join(packageRoot, 'prebuilds', other), { recursive: true });
    fs.writeFileSync(path.join(packageRoot, 'prebuilds', other, 'manifest.json'), JSON.stringify({ key: other, torch: '9.9', cuda: '13', cxx11Abi: true }));
    const choice = prebuilt.choose(libtorch, packageRoot);
    expect(choice.dir).toBeUndefined();
    expect(choice.reason).toMatch(new RegExp(`no prebuilt binary for libtorch ${libtorch.version.replace(/\./g, '\\.')} .*the package carries torch 9\\.9 CUDA 13$`));
    expect(choice.reason).not.toMatch(/\n/);
  });

  test('a checkout carries none and says so', () => {
    expect(prebuilt.choose(libtorch, fs.mkdtempSync(path.join(tmp, 'checkout-'))).reason).toMatch(/carries no prebuilt binaries/);
  });
});

describe('installing a prebuilt binary', () => {
  test('fills in the search path for the libtorch found, test-loads it and records it', () => {
    const libDir = fs.mkdtempSync(path.join(tmp, 'lib-'));
    const packageRoot = fakePackage('test-key', libDir);
    const source = path.join(packageRoot, 'prebuilds', 'test-key');
    // As shipped, the addon cannot find its library: only the filled-in path names that folder.
    const asShipped = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(source, 's2bnn.node'))})`], { encoding: 'utf8' });
    expect(asShipped.stderr).toMatch(/libdependency\.so: cannot open shared object file/);

    const outDir = path.join(packageRoot, 'build', 'Release');
    const result = prebuilt.install({ dir: source, libtorch: fakeLibtorch(libDir), outDir, record: (manifest: { key: string }) => ({ binary: 'prebuilt', prebuilt: manifest.key }) });
    expect(result).toEqual({ ok: true, key: 'test-key' });
    for (const name of ['s2bnn.node', 'libs2bnn_ops.so']) {
      expect(elf.readDynamic(path.join(outDir, name)).runpath).toBe(`$ORIGIN:${libDir}`);
      expect(fs.statSync(path.join(outDir, name)).size).toBe(fs.statSync(path.join(source, name)).size);
    }
    const loaded = spawnSync(process.execPath, ['-e', `process.stdout.write(JSON.stringify(require(${JSON.stringify(path.join(outDir, 's2bnn.node'))}).build))`], { encoding: 'utf8' });
    expect(JSON.parse(loaded.stdout)).toEqual({ libtorchVersion: '1.0.0', dependency: 42 });
    expect(JSON.parse(fs.readFileSync(path.join(outDir, 's2bnn-build.json'), 'utf8'))).toEqual({ binary: 'prebuilt', prebuilt: 'test-key' });
  });

  test('a prebuilt binary that does not load here is refused with the loader error, leaving nothing', () => {
    const libDir = fs.mkdtempSync(path.join(tmp, 'lib-'));
    const packageRoot = fakePackage('broken-key', libDir);
    fs.rmSync(path.join(libDir, 'libdependency.so'));
    const outDir = path.join(packageRoot, 'build', 'Release');
    const result = prebuilt.install({ dir: path.join(packageRoot, 'prebuilds', 'broken-key'), libtorch: fakeLibtorch(libDir), outDir, record: () => ({}) });
    expect(result.ok).toBe(false);
    expect(result.reason).toMatch(/prebuilt binary broken-key does not load here .*libdependency\.so/);
    expect(fs.existsSync(outDir)).toBe(false);
  });

  test('a search path longer than the reserved room is an error naming both lengths', () => {
    const libDir = fs.mkdtempSync(path.join(tmp, 'lib-'));
    const packageRoot = fakePackage('long-key', libDir);
    const file = path.join(packageRoot, 'prebuilds', 'long-key', 'libs2bnn_ops.so');
    expect(() => elf.replaceSearchPath(file, prebuilt.SEARCH_PATH_MARKER, `/${'x'.repeat(5000)}`)).toThrow(/search path \(5001 bytes\) does not fit the \d+ bytes reserved/);
  });
});

describe('packing', () => {
  function sources(): string {
    const root = fs.mkdtempSync(path.join(tmp, 'sources-'));
    fs.mkdirSync(path.join(root, 'native', 'ops'), { recursive: true });
    fs.writeFileSync(path.join(root, 'native', 'ops', 'a.cpp'), 'int a() { return 1; }\n');
    fs.writeFileSync(path.join(root, 'CMakeLists.txt'), 'project(x)\n');
    return root;
  }
  function manifest(root: string, key: string, sourceHash?: string) {
    fs.mkdirSync(path.join(root, 'prebuilds', key), { recursive: true });
    fs.writeFileSync(path.join(root, 'prebuilds', key, 'manifest.json'), JSON.stringify({ key, sourceHash }));
  }

  test('prebuilt binaries of the current sources pass; a changed source or no hash names the build', () => {
    const root = sources();
    manifest(root, 'fresh', prebuilt.sourceHash(root));
    manifest(root, 'unhashed');
    expect(prebuilt.staleBuilds(root)).toEqual(['unhashed: its manifest records no source hash']);
    fs.writeFileSync(path.join(root, 'native', 'ops', 'a.cpp'), 'int a() { return 2; }\n');
    expect(prebuilt.staleBuilds(root)).toEqual([
      'fresh: built from other sources than native/ and CMakeLists.txt now hold',
      'unhashed: its manifest records no source hash',
    ]);
  });

  test('the hash covers file names too', () => {
    const root = sources();
    const before = prebuilt.sourceHash(root);
    fs.renameSync(path.join(root, 'native', 'ops', 'a.cpp'), path.join(root, 'native', 'ops', 'b.cpp'));
    expect(prebuilt.sourceHash(root)).not.toBe(before);
  });
});
