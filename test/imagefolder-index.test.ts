// The ImageFolder index file: written on the first open, read (no scan) on the next, rebuilt when
// the tree changed (a file added, removed or renamed at any depth, a class added) or when the file
// is corrupt, truncated, foreign or for another root; an unwritable index never fails open().
// Listing only: the image files are empty (nothing is decoded).
import * as fs from 'fs';
import * as path from 'path';

import { ImageFolder, defaultIndexPath } from '../lib';
import { tempDir } from './helpers';

const tmp = tempDir('index');

function touch(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, '');
}

// Moves every folder's modification time an hour (and a second per call) into the past, as if the
// tree had been quiet: an index is only trusted when its folders had not changed for 2 s before
// the scan (file times are coarse: a change within their granularity could go unseen).
let settled = 0;
function settle(root: string): void {
  const when = Date.now() / 1000 - 3600 - ++settled;
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(path.join(dir, entry.name));
    fs.utimesSync(dir, when, when);
  };
  walk(root);
}

function tree(name: string): string {
  const root = path.join(tmp, name);
  for (const c of ['b', 'a', 'Z']) for (let i = 0; i < 3; i++) touch(path.join(root, c, `${i}.jpg`));
  touch(path.join(root, 'a', 'deep', 'x.png'));
  touch(path.join(root, 'a', 'notes.txt'));
  settle(root);
  return root;
}

async function listing(ds: ImageFolder): Promise<[string[], string[], number[]]> {
  const labels = ds.labels();
  const out: [string[], string[], number[]] = [
    [...ds.classes],
    Array.from({ length: ds.length }, (_, i) => ds.path(i)),
    Array.from(labels.toTypedArray() as BigInt64Array, Number),
  ];
  labels.dispose();
  return out;
}

describe('ImageFolder index', () => {
  test('first open scans and writes it; the next reads it and gives the same listing', async () => {
    const root = tree('same');
    const index = path.join(tmp, 'same.idx');
    const first = await ImageFolder.open(root, { index });
    expect(first.index).toEqual({ path: index, status: 'created', reason: 'no index yet' });
    expect(fs.statSync(index).size).toBeLessThan(400);
    const second = await ImageFolder.open(root, { index });
    expect(second.index.status).toBe('loaded');
    expect(await listing(second)).toEqual(await listing(first));
    expect(second.classes).toEqual(['Z', 'a', 'b']);
    expect(second.path(3)).toBe(path.join(root, 'a', '0.jpg'));
    expect(second.path(6)).toBe(path.join(root, 'a', 'deep', 'x.png'));
    // A subset keeps the information; index: false leaves the file alone.
    expect(second.subset([0]).index.status).toBe('loaded');
    const off = await ImageFolder.open(root, { index: false });
    expect(off.index).toEqual({ path: null, status: 'off', reason: '' });
  });

  test('a change anywhere in the tree makes it stale: rebuilt, and the new listing is right', async () => {
    const root = tree('stale');
    const index = path.join(tmp, 'stale.idx');
    await ImageFolder.open(root, { index });
    const changes: [string, () => void, number][] = [
      ['file added in a class folder', () => touch(path.join(root, 'b', '9.jpg')), 11],
      ['file added in a nested folder', () => touch(path.join(root, 'a', 'deep', 'y.jpeg')), 12],
      ['file removed', () => fs.rmSync(path.join(root, 'Z', '0.jpg')), 11],
      ['file renamed', () => fs.renameSync(path.join(root, 'Z', '1.jpg'), path.join(root, 'Z', '7.jpg')), 11],
      ['class added', () => touch(path.join(root, 'c', '0.jpg')), 12],
    ];
    for (const [what, change, length] of changes) {
      // Right after the change (possibly within the file times' granularity of the last scan).
      change();
      const ds = await ImageFolder.open(root, { index });
      expect([what, ds.index.status]).toEqual([what, 'rebuilt']);
      const scanned = await ImageFolder.open(root, { index: false });
      expect(ds.length).toBe(length);
      expect(await listing(ds)).toEqual(await listing(scanned));
      // The tree was changed less than 2 s before that scan: not trusted yet.
      const racy = await ImageFolder.open(root, { index });
      expect([what, racy.index.status, racy.index.reason]).toEqual([what, 'rebuilt', expect.stringMatching(/^index not trusted: '.*' had changed within 2 s of the scan$/)]);
      settle(root);
      const stale = await ImageFolder.open(root, { index });
      expect([what, stale.index.status, stale.index.reason]).toEqual([what, 'rebuilt', expect.stringMatching(/^stale index: '.*' changed$/)]);
      expect((await ImageFolder.open(root, { index })).index.status).toBe('loaded');
      expect(await listing(stale)).toEqual(await listing(scanned));
    }
  });

  test('a change made while the index is written is never missed', async () => {
    // Without the 2 s rule, a file added within the same timestamp tick as the scan would leave
    // its folder's time unchanged and the index would keep the old listing.
    const root = tree('racy');
    const index = path.join(tmp, 'racy.idx');
    for (let k = 0; k < 5; k++) {
      fs.utimesSync(path.join(root, 'a'), new Date(), new Date());
      await ImageFolder.open(root, { index });
      touch(path.join(root, 'a', `new${k}.jpg`));
      const ds = await ImageFolder.open(root, { index });
      expect(ds.index.status).toBe('rebuilt');
      expect(Array.from({ length: ds.length }, (_, i) => path.basename(ds.path(i)))).toContain(`new${k}.jpg`);
    }
  });

  test('corrupt, truncated, foreign and other-root index files are rebuilt, never fatal', async () => {
    const root = tree('corrupt');
    const index = path.join(tmp, 'corrupt.idx');
    await ImageFolder.open(root, { index });
    const good = fs.readFileSync(index);
    const scanned = await listing(await ImageFolder.open(root, { index: false }));
    const flipped = Buffer.from(good);
    flipped[Math.floor(good.length / 2)] ^= 0x40;
    const cases: [string, Buffer, RegExp][] = [
      ['bit flip', flipped, /checksum/],
      ['truncated', good.subarray(0, good.length - 11), /checksum|truncated/],
      ['empty', Buffer.alloc(0), /not an s2bnn index/],
      ['foreign', Buffer.from('hello, this is not an index file at all'), /not an s2bnn index/],
    ];
    for (const [what, bytes, reason] of cases) {
      fs.writeFileSync(index, bytes);
      const ds = await ImageFolder.open(root, { index });
      expect([what, ds.index.status]).toEqual([what, 'rebuilt']);
      expect(ds.index.reason).toMatch(reason);
      expect(await listing(ds)).toEqual(scanned);
    }
    // The same index file used for another root.
    const other = tree('other');
    const ds = await ImageFolder.open(other, { index });
    expect([ds.index.status, ds.index.reason]).toEqual(['rebuilt', 'index written for another root']);
    expect(ds.path(0)).toBe(path.join(other, 'Z', '0.jpg'));
  });

  test('an unwritable index is reported and the scan still works; bad options are argument errors', async () => {
    const root = tree('unwritable');
    const blocker = path.join(tmp, 'a-file');
    fs.writeFileSync(blocker, 'x');
    const ds = await ImageFolder.open(root, { index: path.join(blocker, 'sub', 'x.idx') });
    expect(ds.index.status).toBe('unwritten');
    expect(ds.index.reason).toMatch(/cannot write the index/);
    expect(ds.length).toBe(10);
    await expect(ImageFolder.open(root, { index: '' })).rejects.toMatchObject({ code: 'S2BNN_ARGUMENT' });
    await expect(ImageFolder.open(root, { index: 3 as unknown as string })).rejects.toThrow(/index must be a file path or false/);
  });

  test('the default index lives in S2BNN_CACHE_DIR, one file per real root path', async () => {
    const root = tree('default');
    const saved = process.env.S2BNN_CACHE_DIR;
    process.env.S2BNN_CACHE_DIR = path.join(tmp, 'cache');
    try {
      const expected = defaultIndexPath(root);
      expect(path.dirname(expected)).toBe(path.join(tmp, 'cache'));
      fs.symlinkSync(root, path.join(tmp, 'link'));
      expect(defaultIndexPath(path.join(tmp, 'link'))).toBe(expected);
      expect(defaultIndexPath(tree('default2'))).not.toBe(expected);
      expect((await ImageFolder.open(root)).index).toMatchObject({ path: expected, status: 'created' });
      expect((await ImageFolder.open(root)).index.status).toBe('loaded');
    } finally {
      if (saved === undefined) delete process.env.S2BNN_CACHE_DIR;
      else process.env.S2BNN_CACHE_DIR = saved;
    }
  });
});
