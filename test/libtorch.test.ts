// The libtorch resolver shared by the build and the loader, and the loader's refusal to load an
// addon against a libtorch other than the one it was built for.
import * as fs from 'fs';
import * as path from 'path';

import { checkLibtorch } from '../lib/native';
import { readBuildInfo, native } from '../lib';
import { lddLibraries, repoRoot, tempDir } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { resolveLibtorch } = require(path.join(repoRoot, 'scripts', 'libtorch.js'));

const tmp = tempDir('libtorch');

// A libtorch folder with the version where 1.x (`torch/version.h`) or later 2.x releases
// (`torch/headeronly/version.h`) keep it.
function fakeLibtorch(version: string, cuda = false, header: 'api' | 'headeronly' = 'api'): string {
  const root = fs.mkdtempSync(path.join(tmp, 'root-'));
  fs.mkdirSync(path.join(root, 'share', 'cmake', 'Torch'), { recursive: true });
  fs.writeFileSync(path.join(root, 'share', 'cmake', 'Torch', 'TorchConfig.cmake'), '# fake\n');
  const versionDir = path.join(root, 'include', 'torch', ...(header === 'api' ? ['csrc', 'api', 'include', 'torch'] : ['headeronly']));
  fs.mkdirSync(versionDir, { recursive: true });
  fs.writeFileSync(path.join(versionDir, 'version.h'), `#define TORCH_VERSION \\\n  "${version}"\n`);
  fs.mkdirSync(path.join(root, 'lib'));
  if (cuda) fs.writeFileSync(path.join(root, 'lib', 'libc10_cuda.so'), '');
  return root;
}

const quiet = { log: () => undefined };

describe('resolveLibtorch', () => {
  test('LIBTORCH wins and is described (version, CUDA)', () => {
    const root = fakeLibtorch('2.11.0', true);
    const found = resolveLibtorch({ env: { LIBTORCH: root }, ...quiet });
    expect(found).toMatchObject({ source: 'LIBTORCH', root, version: '2.11.0', cuda: true });
    expect(found.cmakePrefix).toBe(path.join(root, 'share', 'cmake'));
  });

  test('a 2.x libtorch keeps its version in torch/headeronly/version.h', () => {
    const root = fakeLibtorch('2.13.0', false, 'headeronly');
    expect(resolveLibtorch({ env: { LIBTORCH: root }, ...quiet })).toMatchObject({ version: '2.13.0', cuda: false });
  });

  test('a LIBTORCH that is not a libtorch is an error, not a silent fallback', () => {
    const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
    expect(() => resolveLibtorch({ env: { LIBTORCH: empty }, ...quiet })).toThrow(
      /LIBTORCH=.* has no share\/cmake\/Torch\/TorchConfig.cmake[\s\S]*three ways/,
    );
  });

  test('nothing found lists the three ways to provide libtorch', () => {
    expect(() =>
      resolveLibtorch({ env: {}, skipPython: true, systemLibDirs: ['/nonexistent'], allowInstall: false, ...quiet }),
    ).toThrow(/libtorch was not found[\s\S]*LIBTORCH=[\s\S]*python3[\s\S]*libtorch-dev/);
  });

  test('the libtorch this package was built with is the one the resolver finds here', () => {
    const info = readBuildInfo()!;
    const found = resolveLibtorch({ env: process.env, allowInstall: false, ...quiet });
    expect([found.version, found.libDir]).toEqual([info.libtorchVersion, info.libtorchLibDir]);
  });
});

describe('loader', () => {
  const info = readBuildInfo()!;

  test('the addon reports the libtorch it was built against', () => {
    expect(native().build.libtorchVersion).toBe(info.libtorchVersion);
  });

  test('a libtorch of another version at the recorded place is refused with a clear message', () => {
    const root = fakeLibtorch('9.9.0');
    expect(() => checkLibtorch({ ...info, libtorchRoot: root, libtorchIncludeDir: path.join(root, 'include') })).toThrow(
      /built against libtorch .* now holds libtorch 9\.9\.0[\s\S]*npm rebuild s2bnn/,
    );
  });

  test('a libtorch that disappeared is refused with a clear message', () => {
    expect(() => checkLibtorch({ ...info, libtorchIncludeDir: '/nonexistent/include' })).toThrow(
      /no longer there[\s\S]*npm rebuild s2bnn/,
    );
  });

  test('LIBTORCH pointing at another version than the build is refused', () => {
    const root = fakeLibtorch('9.9.0');
    const saved = process.env.LIBTORCH;
    process.env.LIBTORCH = root;
    try {
      expect(() => checkLibtorch(info)).toThrow(/LIBTORCH=.* is libtorch 9\.9\.0, but s2bnn was built against/);
    } finally {
      if (saved === undefined) delete process.env.LIBTORCH;
      else process.env.LIBTORCH = saved;
    }
  });

  // Debian's libtorch and a pip torch on one machine: the build must link one of them only.
  test('every libtorch library the addon and the ops library load comes from the libtorch they were built against', () => {
    const libDir = fs.realpathSync(info.libtorchLibDir);
    for (const file of ['s2bnn.node', 'libs2bnn_ops.so']) {
      const torchLibraries = [...lddLibraries(path.join(repoRoot, 'build', 'Release', file)).resolved].filter(([name]) => /^lib(?:torch|c10)\w*\.so/.test(name));
      expect(torchLibraries.map(([name]) => name)).toEqual(expect.arrayContaining(['libc10.so', 'libtorch_cpu.so'].map((n) => expect.stringMatching(new RegExp(`^${n.replace('.', '\\.')}`)))));
      for (const [name, dir] of torchLibraries) {
        expect([file, name, dir]).toEqual([file, name, libDir]);
      }
    }
  });

  test('the current build passes its own check', () => {
    expect(() => checkLibtorch(info)).not.toThrow();
  });
});
