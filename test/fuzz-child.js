// Fuzzes the checkpoint reader in a child process, so a crash fails the test instead of killing
// jest. Each case truncates a real checkpoint and/or flips random bytes, then loads it: the load
// must either succeed (and the contents must convert and save) or fail with a coded Error.
// Usage: node fuzz-child.js SEED CASES FILE...   Prints {"loaded":n,"rejected":n,"codes":{...}}.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const s = require('../dist');

function random(seed) {
  // xorshift32: deterministic cases for a given seed
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

async function main() {
  const [seed, cases, ...files] = process.argv.slice(2);
  const next = random(Number(seed));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 's2bnn-fuzz-'));
  const originals = files.map((f) => fs.readFileSync(f));
  const result = { loaded: 0, rejected: 0, codes: {} };
  for (let i = 0; i < Number(cases); i++) {
    const original = originals[i % originals.length];
    let bytes = Buffer.from(original);
    const mode = next();
    if (mode < 0.4) bytes = bytes.subarray(0, Math.floor(next() * bytes.length));
    if (mode >= 0.3) {
      const flips = 1 + Math.floor(next() * 8);
      for (let k = 0; k < flips && bytes.length > 0; k++) bytes[Math.floor(next() * bytes.length)] = Math.floor(next() * 256);
    }
    const file = path.join(dir, `case-${i}.pth`);
    fs.writeFileSync(file, bytes);
    if (process.env.S2BNN_FUZZ_LAST) fs.writeFileSync(process.env.S2BNN_FUZZ_LAST, bytes);
    try {
      const checkpoint = await s.Checkpoint.load(file);
      checkpoint.toObject();
      checkpoint.summary();
      await checkpoint.save(path.join(dir, 'out.pth'));
      result.loaded++;
    } catch (err) {
      if (typeof err.code !== 'string') throw new Error(`case ${i}: an error without a code: ${err.stack}`);
      result.rejected++;
      result.codes[err.code] = (result.codes[err.code] || 0) + 1;
    } finally {
      fs.rmSync(file, { force: true });
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(result));
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
