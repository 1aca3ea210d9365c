// `s2bnn bench-data` on a tiny ImageFolder of PNGs written with the package's own encoder (no
// Python needed), plus the PNG decode of those files (RGBA: alpha dropped).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { ImageFolder } from '../lib';
import { writePng } from '../lib/report/png';
import { repoRoot, tempDir } from './helpers';

const tmp = tempDir('bench-data');

const pictures = new Map<string, Uint8Array>();
beforeAll(() => {
  for (let c = 0; c < 2; c++) {
    for (let i = 0; i < 6; i++) {
      const width = 50 + 7 * i, height = 40 + 5 * c, channels = i % 2 ? 4 : 3;
      const data = new Uint8Array(width * height * channels);
      for (let k = 0; k < data.length; k++) data[k] = (k * 37 + ((k / width) | 0) * 11 + c * 50) & 255;
      const file = path.join(tmp, 'train', `c${c}`, `${i}.png`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      writePng(file, { width, height, channels: channels as 3 | 4, data });
      pictures.set(file, channels === 3 ? data : data.filter((_, k) => k % 4 !== 3));
    }
  }
});

const cli = path.join(repoRoot, 'dist', 'cli.js');
function run(...args: string[]) {
  const res = spawnSync(process.execPath, [cli, 'bench-data', ...args], {
    encoding: 'utf8', env: { ...process.env, S2BNN_CACHE_DIR: path.join(tmp, 'cache') }, timeout: 60_000, killSignal: 'SIGKILL',
  });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

describe('bench-data', () => {
  test('PNGs written by lib/report/png decode to their RGB pixels', async () => {
    const ds = await ImageFolder.open(path.join(tmp, 'train'), { index: false });
    expect(ds.length).toBe(12);
    for (let i = 0; i < ds.length; i++) {
      const image = await ds.read(i);
      expect(Buffer.from(image.toTypedArray() as Uint8Array).equals(Buffer.from(pictures.get(ds.path(i)) as Uint8Array))).toBe(true);
      image.dispose();
    }
  });

  test('measures the pre-training views and the eval transforms (--json), on DIR/train', () => {
    let r = run('--data', tmp, '--size', '32', '--batch-size', '4', '--workers', '2', '--seconds', '0.3', '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    const views = JSON.parse(r.stdout);
    expect(views).toMatchObject({ root: path.join(tmp, 'train'), workers: 2, views: 2, size: 32, transform: 's2bnn-lite', cropDecode: true, skipped: 0 });
    expect(views.images).toBeGreaterThan(0);
    expect(views.viewsPerSecond).toBeCloseTo(2 * views.imagesPerSecond, 6);
    expect(views.peakRssMiB).toBeGreaterThan(10);
    r = run('--data', path.join(tmp, 'train'), '--size', '32', '--eval', '--seconds', '0.3', '--workers', '1', '--no-crop-decode');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(/pipeline +eval 37 -> 32, 1 view\(s\) of 32 px, crop-aware decode off/);
    expect(r.stdout).toMatch(/images\/s +\d+\.\d \(\d+\.\d per worker\)/);
  });

  test('usage errors exit with 2 and one line', () => {
    for (const [args, message] of [
      [[], /--data DIR is required/],
      [['--data', tmp, '--views', '3'], /--views must be 1 or 2/],
      [['--data', tmp, '--recipe', 'simclr'], /--recipe must be s2bnn-lite or moco-v2/],
    ] as [string[], RegExp][]) {
      const r = run(...args);
      expect([r.code, r.stderr.trim().split('\n').length]).toEqual([2, 1]);
      expect(r.stderr).toMatch(message);
    }
    const r = run('--data', path.join(tmp, 'missing'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not a folder/);
  });
});
