// Drops DataLoaders while their workers are busy and native next() promises are pending, forces
// garbage collection, and checks that the finalizers ran and the process exits by itself.
// Prints "ok" on success. Usage: node --expose-gc loader-gc-child.js
// Loads the compiled package (npm test compiles it first, in `pretest`).
'use strict';
const s = require('../dist');

const n = 64, side = 32;
const pixels = new Uint8Array(n * side * side * 3);
for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
const dataset = new s.InMemoryDataset(
  s.tensor(pixels, { shape: [n, side, side, 3] }),
  s.tensor(new BigInt64Array(n), { shape: [n] }),
  ['only'],
);

let collected = 0;
const registry = new FinalizationRegistry(() => collected++);

const settle = () => new Promise((resolve) => setImmediate(resolve));

async function main() {
  const rounds = 12;
  for (let round = 0; round < rounds; round++) {
    (() => {
      const loader = new s.DataLoader(dataset, {
        batchSize: 16, views: 2, transform: s.transforms.mocoV2(side, 3), workers: 2, prefetch: 3, seed: round,
      });
      loader.epoch(0);
      // Raw native calls: nothing awaits these promises, so nothing keeps the loader reachable
      // while its workers fill them.
      const handle = loader['handle'];
      for (let k = 0; k < 3; k++) handle.next();
      registry.register(handle, round);
    })();
    global.gc();
    await settle();
  }
  for (let i = 0; i < 20 && collected < rounds / 2; i++) {
    global.gc();
    await settle();
  }
  if (collected < rounds / 2) throw new Error(`only ${collected} of ${rounds} loaders were collected`);
  // One more left pending at exit: the process must not wait for it forever.
  const last = new s.DataLoader(dataset, { batchSize: 16, transform: s.transforms.mocoV2(side, 3), workers: 2 });
  last.epoch(0);
  last['handle'].next();
  process.stdout.write('ok\n');
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
