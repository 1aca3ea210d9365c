// The commands on a user's own ImageFolder tree: the scale a folder trains at (its images' side
// and the small stem up to 64 px) and the images a command skipped as unreadable, said and listed.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { openData } from '../lib/cli/data';
import { encodePng } from '../lib/report/png';
import { repoRoot, tempDir } from './helpers';

const cli = path.join(repoRoot, 'dist', 'cli.js');
const tmp = tempDir('cli-folder');

function photo(side: number, seed: number): Buffer {
  const data = new Uint8Array(side * side * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 97) % 251;
  return encodePng({ width: side, height: side, channels: 3, data });
}

// DIR/{train,val}/{a,b}/*.png of side x side pixels.
function imageFolder(name: string, side: number, perClass: number): string {
  const root = path.join(tmp, name);
  for (const split of ['train', 'val']) {
    for (const cls of ['a', 'b']) {
      fs.mkdirSync(path.join(root, split, cls), { recursive: true });
      for (let i = 0; i < perClass; i++) fs.writeFileSync(path.join(root, split, cls, `${i}.png`), photo(side, i + (cls === 'b' ? 50 : 0)));
    }
  }
  return root;
}

test("a folder of small images trains at their own size with the small stem; large ones at 224 px", async () => {
  const small = await openData(imageFolder('small', 32, 2), {});
  expect([small.size, small.stem]).toEqual([32, 'small']);
  const large = await openData(imageFolder('large', 96, 2), {});
  expect([large.size, large.stem]).toEqual([224, 'imagenet']);
  const chosen = await openData(path.join(tmp, 'small'), { size: 64, stem: 'imagenet' });
  expect([chosen.size, chosen.stem]).toEqual([64, 'imagenet']);
});

test('pretrain says how many images it skipped as unreadable and where their list is', () => {
  const root = imageFolder('damaged', 24, 6); // 14 training images with the two below: 7 full batches of 2
  fs.writeFileSync(path.join(root, 'train', 'a', 'garbage.png'), Buffer.from('not an image at all'));
  const whole = photo(24, 3);
  fs.writeFileSync(path.join(root, 'train', 'b', 'truncated.png'), whole.subarray(0, whole.length >> 1));
  const out = path.join(tmp, 'run');
  const res = spawnSync(
    process.execPath,
    [cli, 'pretrain', '--recipe', 'moco-v2', '--arch', 'resnet18', '--width', '0.125', '--epochs', '1', '--batch-size', '2',
      '--queue-size', '16', '--data', root, '--out', out, '--workers', '1', '--json'],
    { encoding: 'utf8', env: { ...process.env, S2BNN_NUM_THREADS: '2' }, timeout: 120_000, killSignal: 'SIGKILL' },
  );
  expect(res.status).toBe(0);
  const list = path.join(out, 'skipped-images.txt');
  expect(res.stderr.trim()).toBe(
    `s2bnn pretrain: skipped 2 unreadable image(s), each replaced by the next in the epoch order; the list: ${list}`,
  );
  const lines = fs.readFileSync(list, 'utf8').trim().split('\n').map((line) => line.split('\t'));
  expect(lines.map(([file]) => path.basename(file)).sort()).toEqual(['garbage.png', 'truncated.png']);
  for (const [, reason] of lines) expect(reason.length).toBeGreaterThan(0);
});
