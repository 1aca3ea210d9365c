// Runs a workload in a fresh Node process and prints its RSS growth in MiB as JSON. A fresh
// process shows the allocator effects a user's program sees. Usage:
//   node --expose-gc rss-child.js WORKLOAD WARMUP COUNT YIELD_EVERY (0: a tight synchronous loop)
// Loads the compiled package (npm test compiles it first, in `pretest`).
'use strict';
const s = require('../dist');

const collect = async () => {
  for (let i = 0; i < 3; i++) {
    global.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
};

const workloads = {
  // Tensor in (zero-copy), op, TypedArray out, backward, dispose.
  cycles: (i) => {
    const a = s.tensor(new Float32Array(1024).fill(i), { shape: [32, 32] });
    const b = a.mul(2).requiresGrad_();
    const c = s.signSte(b);
    c.data();
    const loss = c.sum();
    loss.backward();
    for (const t of [a, b, c, loss]) t.dispose();
  },
  // A new user's loop: 16 KiB tensors created and forgotten, never disposed.
  forgotten: () => {
    s.zeros([64, 64]);
  },
  // 128 KiB tensors through a multi-threaded forward + backward, like a training step's head.
  training: (() => {
    let student;
    let teacher;
    return () => {
      student = student || s.randn([256, 128]);
      teacher = teacher || s.randn([256, 128]);
      s.tidy(() => {
        const leaf = student.detach().requiresGrad_();
        s.distributionLoss(leaf, teacher, 0.2).backward();
      });
    };
  })(),
};

async function main() {
  const [mode, warmup, count, yieldEvery] = [process.argv[2], ...process.argv.slice(3, 6).map(Number)];
  const work = workloads[mode];
  if (!work) throw new Error(`unknown workload ${mode}`);
  const run = async (n) => {
    for (let i = 0; i < n; i++) {
      work(i);
      if (yieldEvery > 0 && i % yieldEvery === yieldEvery - 1) await new Promise((resolve) => setImmediate(resolve));
    }
    await collect();
  };
  await run(warmup);
  const before = process.memoryUsage().rss;
  await run(count);
  process.stdout.write(JSON.stringify({ growthMiB: (process.memoryUsage().rss - before) / 2 ** 20 }));
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
