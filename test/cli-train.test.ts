// The training commands as a user runs them, on a slice of the built-in Fashion-MNIST: pretrain
// (teacher and students), a stop by SIGINT and --resume, lincls, knn, eval, reproduce --preset
// smoke, bench-step, and one-line errors for bad flags.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { Checkpoint, PRESETS, Tensor } from '../lib';
import { readMetrics } from '../lib/report';
import { pythonWithTorch, repoRoot, tempDir } from './helpers';

const cli = path.join(repoRoot, 'dist', 'cli.js');
const tmp = tempDir('cli-train');

// A bounded run: a flag check that failed to trigger would otherwise start a long training.
function run(...args: string[]) {
  const res = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8', cwd: repoRoot, env: { ...process.env, S2BNN_NUM_THREADS: '2' }, timeout: 240_000, killSignal: 'SIGKILL',
  });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

const small = ['--subset', '512', '--batch-size', '64', '--width', '0.125', '--queue-size', '256', '--workers', '2'];
const teacher = path.join(tmp, 'teacher');

describe('pretrain', () => {
  test('a slim MoCo v2 teacher (mixed precision), then a distilled two-step student with every output file', () => {
    let r = run('pretrain', '--recipe', 'moco-v2', '--arch', 'resnet18', '--precision', 'bfloat16', '--epochs', '1', ...small, '--out', teacher, '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toMatchObject({ completed: true, position: { epoch: 1, batch: 0 } });
    expect(JSON.parse(fs.readFileSync(path.join(teacher, 'config.json'), 'utf8')).precision).toBe('bfloat16');

    const step1 = path.join(tmp, 'distill1');
    r = run('pretrain', '--recipe', 'distill', '--step', '1', '--teacher', `${teacher}/checkpoint.pth`, '--teacher-arch', 'resnet18',
      '--epochs', '1', ...small, '--out', step1);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/done in \d+ s; checkpoint/);
    const step2 = path.join(tmp, 'distill2');
    r = run('pretrain', '--recipe', 'contrastive+distill', '--init', `${step1}/checkpoint.pth`, '--teacher', `${teacher}/checkpoint.pth`,
      '--teacher-arch', 'resnet18', '--epochs', '2', ...small, '--out', step2, '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    const summary = JSON.parse(r.stdout);
    expect(summary.epochs).toHaveLength(2);
    expect(summary.epochs[0].contrastive).toBeGreaterThan(0);
    expect(summary.calibration.teacher.entropy).toBeGreaterThan(0);
    for (const file of ['checkpoint.pth', 'config.json', 'metrics.jsonl', 'loss.png', 'calibration-entropy.png', 'calibration-max-probability.png']) {
      expect(fs.existsSync(path.join(step2, file))).toBe(true);
    }
    expect(fs.readdirSync(step2).some((f) => f.startsWith('events.out.tfevents.'))).toBe(true);
    expect(readMetrics(path.join(step2, 'metrics.jsonl'), { kind: 'step' })).toHaveLength(16);
  });

  test('SIGINT stops after the step in flight with a checkpoint; --resume finishes the run', async () => {
    const out = path.join(tmp, 'interrupted');
    const args = [cli, 'pretrain', '--recipe', 'contrastive', '--epochs', '6', ...small, '--out', out];
    const child = spawn(process.execPath, args, { cwd: repoRoot, env: { ...process.env, S2BNN_NUM_THREADS: '2' } });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    // Interrupt once the first steps are on disk.
    const metrics = path.join(out, 'metrics.jsonl');
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (fs.existsSync(metrics) && fs.readFileSync(metrics, 'utf8').split('\n').length > 3) {
          clearInterval(poll);
          child.kill('SIGINT');
          resolve();
        }
      }, 50);
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(130);
    expect(stderr).toMatch(/stopped at epoch 1, batch \d+; checkpoint .*continue with the same command and --resume/);
    const saved = (await Checkpoint.load(path.join(out, 'checkpoint.pth'))).toObject() as Map<string, unknown>;
    const run1 = JSON.parse(saved.get('s2bnn') as string);
    expect(run1.batch).toBeGreaterThan(0);

    const r = run('pretrain', '--recipe', 'contrastive', '--epochs', '6', ...small, '--out', out, '--resume', '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout).completed).toBe(true);
    const steps = readMetrics(metrics, { kind: 'step' }).map((m) => m.step);
    expect(steps).toEqual(Array.from({ length: 48 }, (_, i) => i + 1));
  });

  test('the same command gives the same run; --seed gives another (weights, queue and data all seeded)', () => {
    const epochLoss = (out: string, ...extra: string[]) => {
      const r = run('pretrain', '--recipe', 'moco-v2', '--arch', 'resnet18', '--epochs', '1', ...small, '--subset', '128', '--out', out, '--json', ...extra);
      expect([r.code, r.stderr]).toEqual([0, '']);
      return readMetrics(path.join(out, 'metrics.jsonl'), { kind: 'step' }).map((m) => m.loss);
    };
    const first = epochLoss(path.join(tmp, 'seeded-a'));
    expect(epochLoss(path.join(tmp, 'seeded-b'))).toEqual(first);
    expect(epochLoss(path.join(tmp, 'seeded-c'), '--seed', '1')).not.toEqual(first);
  });

  test('bad flags are one clear line and exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['pretrain', '--recipe', 'simclr'], /--recipe must be moco-v2, contrastive, contrastive\+distill, distill; got 'simclr'/],
      [['pretrain', '--recipe', 'distill'], /the distill recipe needs --teacher CKPT/],
      [['pretrain', '--recipe', 'distill', '--teacher', '/nope.pth'], /--teacher: no such file '\/nope.pth'/],
      [['pretrain', '--epochs', '0'], /option '--epochs' must be a positive number, got '0'/],
      [['pretrain', '--recipe', 'contrastive', '--batch-size', '96', '--queue-size', '1000'], /must be a multiple of --batch-size/],
      [['pretrain', '--recipe', 'contrastive', '--data', '/no/such/dir'], /--data: '\/no\/such\/dir' is neither 'fashion-mnist' nor an existing folder/],
      [['lincls'], /lincls needs --pretrained CKPT/],
      [['eval', '--checkpoint', `${teacher}/checkpoint.pth`], /no linear head 'fc.weight'/],
      [['reproduce', '--preset', 'huge'], /--preset must be default, full, smoke; got 'huge'/],
      [['reproduce', '--rows', 'distill,simclr'], /--rows: unknown row 'simclr' \(expected moco-baseline, contrastive, contrastive\+distill, distill\)/],
      [['reproduce', '--teacher', '/nope.pth'], /--teacher: no such file '\/nope.pth'/],
      [['pretrain', '--recipe', 'moco-v2', '--teacher-precision', 'fp16'], /--teacher-precision must be float32, bfloat16; got 'fp16'/],
      [['pretrain', '--recipe', 'contrastive', '--precision', 'bfloat16'], /mixed precision \(bfloat16\) trains real-valued ResNets; reactnet-a keeps its binary operators in float32/],
      [['reproduce', '--teacher-width', '32'], /--teacher-width must be at most 16 \(the widest ResNet-18 s2bnn builds\), got 32/],
      [['reproduce', '--teacher', `${teacher}/checkpoint.pth`, '--teacher-epochs', '2'], /they do not go with --teacher CKPT/],
    ];
    for (const [args, message] of cases) {
      const r = run(...args);
      expect({ args, stderr: r.stderr.trim().split('\n').length }).toEqual({ args, stderr: 1 });
      expect(r.stderr).toMatch(message);
      expect(r.code).not.toBe(0);
    }
  });
});

describe('evaluation commands', () => {
  test('lincls trains a head whose checkpoint eval scores identically; knn scores the backbone', async () => {
    const student = path.join(tmp, 'distill2', 'checkpoint.pth');
    const out = path.join(tmp, 'lincls');
    let r = run('lincls', '--pretrained', student, '--subset', '512', '--epochs', '2', '--batch-size', '128', '--out', out, '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    const lincls = JSON.parse(r.stdout);
    expect(lincls.top1).toBeGreaterThan(10); // 10 classes: above chance
    expect(lincls.count).toBe(10000);

    const logits = path.join(tmp, 'logits.safetensors');
    r = run('eval', '--checkpoint', lincls.checkpoint, '--save-logits', logits, '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    const evaluated = JSON.parse(r.stdout);
    expect(evaluated.top1).toBeCloseTo(lincls.top1, 5);
    const saved = (await Checkpoint.load(logits)).toObject() as Map<string, Tensor>;
    expect(saved.get('logits')!.shape).toEqual([10000, 10]);
    expect(Array.from(saved.get('labels')!.toTypedArray().slice(0, 10) as BigInt64Array, Number)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    // The trained classifier packed to bits: logits equal up to float rounding except where a
    // pre-sign value sits within rounding of 0 (the float network's oneDNN sums and the packed
    // exact sums round differently, so such a sign can flip and move that image's logits).
    const packed = path.join(tmp, 'packed.safetensors');
    r = run('export', lincls.checkpoint, '--out', packed, '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toMatchObject({ zeroWeights: 0, config: { stemStride: 1, head: 'linear', outputs: 10 } });
    const packedLogits = path.join(tmp, 'packed-logits.safetensors');
    r = run('infer', packed, '--save-logits', packedLogits, '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    const inferred = JSON.parse(r.stdout);
    expect(inferred.count).toBe(10000);
    // This 1-epoch, 1/8-width network has near-ties: a flip within rounding may move one of them.
    expect(Math.abs(inferred.top1 - evaluated.top1)).toBeLessThanOrEqual(0.0101); // one image of 10,000
    expect(Math.abs(inferred.top5 - evaluated.top5)).toBeLessThanOrEqual(0.0501);
    const fromBits = (await Checkpoint.load(packedLogits)).toObject() as Map<string, Tensor>;
    const scale = saved.get('logits')!.abs().max().item() as number;
    const rowDiff = Array.from(fromBits.get('logits')!.sub(saved.get('logits')!).abs().max(1).toTypedArray() as Float32Array);
    expect(rowDiff).toHaveLength(10000);
    const differing = rowDiff.filter((d) => d > 1e-3 * scale).length;
    process.stderr.write(`packed vs float logits: ${differing} of 10000 images differ by more than 1e-3 of the largest logit\n`);
    expect(differing).toBeLessThan(100); // < 1 % of the images

    r = run('knn', '--pretrained', `${teacher}/checkpoint.pth`, '--subset', '1000', '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toMatchObject({ k: 200, temperature: 0.07, count: 10000 });
    expect(JSON.parse(r.stdout).top1).toBeGreaterThan(20);
  });

  test('finetune trains the whole network on a class-balanced label fraction', () => {
    const student = path.join(tmp, 'distill2', 'checkpoint.pth');
    const r = run('finetune', '--pretrained', student, '--subset', '2000', '--label-fraction', '0.01', '--epochs', '2', '--out', path.join(tmp, 'ft'), '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    const result = JSON.parse(r.stdout);
    expect(result.labelled).toBe(20); // 2 per class
    expect(result.count).toBe(10000);
    expect(result.top1).toBeGreaterThan(0);
    expect(fs.existsSync(result.checkpoint)).toBe(true);
  });

  test("lincls writes main_lincls.py's layout; eval reads it with or without DataParallel's prefix", async () => {
    const written = await Checkpoint.load(path.join(tmp, 'lincls', 'lincls.pth'));
    const root = written.toObject() as Map<string, unknown>;
    expect([...written.stateDict().keys()].every((k) => k.startsWith('module.'))).toBe(true);
    expect((root.get('best_acc1') as Tensor).shape).toEqual([]);
    const params = ((root.get('optimizer') as Map<string, unknown>).get('param_groups') as Map<string, unknown>[])[0].get('params');
    expect(params).toEqual([0, 1]); // the two fc parameters main_lincls.py optimizes
    const file = path.join(tmp, 'plain-lincls.pth.tar');
    await written.transform({ stripPrefix: 'module.' }).save(file);
    const r = run('eval', '--checkpoint', file, '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout).count).toBe(10000);
  });
});

test('reproduce --preset smoke runs the whole experiment and writes the JSON table', () => {
  const json = path.join(tmp, 'reproduce.json');
  const r = run('reproduce', '--preset', 'smoke', '--out', path.join(tmp, 'reproduce'), '--json', json);
  expect(r.code).toBe(0);
  const result = JSON.parse(fs.readFileSync(json, 'utf8'));
  expect(result.rows.map((row: { recipe: string }) => row.recipe)).toEqual(['moco-baseline', 'contrastive', 'contrastive+distill', 'distill']);
  for (const row of result.rows) {
    expect(row.top1).toBeGreaterThan(0);
    expect(row.top5).toBeGreaterThanOrEqual(row.top1);
    expect(row.paperTop1).toBeGreaterThan(40);
  }
  expect(result.teacherTop1).toBeGreaterThan(0);
  expect(result.seconds).toBeGreaterThan(0);
  expect(r.stdout).toMatch(/\| distill \| [\d.]+ \| [\d.]+ \| 61.51 \|/);
  expect(r.stderr).toMatch(/s2bnn reproduce: expected duration: about [\d.]+ min on this machine \(teacher [\d.]+, students [\d.]+;/);

  // An ablation: the same teacher, two rows, changed students.
  const out = path.join(tmp, 'reproduce-ablation');
  const again = run('reproduce', '--preset', 'smoke', '--out', out, '--json', json, '--teacher', path.join(tmp, 'reproduce', 'teacher', 'checkpoint.pth'),
    '--rows', 'distill,contrastive+distill,moco-baseline', '--student-epochs', '1', '--distill-weight', '2', '--distill-temperature', '0.5',
    '--student-lr', '0.004', '--baseline-lr', '0.01');
  expect([again.code, again.stderr]).toEqual([0, expect.stringContaining('contrastive+distill')]);
  const ablation = JSON.parse(fs.readFileSync(json, 'utf8'));
  expect(ablation.rows.map((row: { recipe: string }) => row.recipe)).toEqual(['moco-baseline', 'contrastive+distill', 'distill']);
  expect(ablation.studentChanges).toEqual({ epochs: 1, lr: 0.004, baselineLr: 0.01, distillTemperature: 0.5, distillWeight: 2 });
  expect(fs.existsSync(path.join(out, 'teacher'))).toBe(false);
  const config = JSON.parse(fs.readFileSync(path.join(out, 'contrastive-distill-step2', 'config.json'), 'utf8'));
  expect([config.epochs, config.lr, config.distillTemperature, config.distillWeight, config.contrastiveWeight]).toEqual([1, 0.004, 0.5, 2, 1]);
  // Each learning rate goes to its optimizer: --student-lr to the Adam rows, --baseline-lr to the SGD baseline.
  const baseline = JSON.parse(fs.readFileSync(path.join(out, 'moco-baseline', 'config.json'), 'utf8'));
  expect([baseline.epochs, baseline.optimizer, baseline.lr]).toEqual([1, 'sgd', 0.01]);
  expect(again.stdout).toMatch(/Students changed from the preset: \{"epochs":1,"lr":0.004,"baselineLr":0.01,"distillTemperature":0.5,"distillWeight":2\}/);

  // A changed teacher: what the students learn from.
  const withTeacher = path.join(tmp, 'reproduce-teacher');
  const third = run('reproduce', '--preset', 'smoke', '--out', withTeacher, '--json', json, '--rows', 'distill', '--student-epochs', '1',
    '--teacher-epochs', '2', '--teacher-width', '0.25', '--teacher-training-precision', 'bfloat16');
  expect([third.code, third.stderr]).toEqual([0, expect.stringContaining('teacher: moco-v2, resnet18, width 0.25, 2 epochs')]);
  expect(JSON.parse(fs.readFileSync(json, 'utf8')).teacherChanges).toEqual({ epochs: 2, width: 0.25, precision: 'bfloat16' });
  const teacherConfig = JSON.parse(fs.readFileSync(path.join(withTeacher, 'teacher', 'config.json'), 'utf8'));
  expect([teacherConfig.epochs, teacherConfig.width, teacherConfig.lr, teacherConfig.precision]).toEqual([2, 0.25, PRESETS.smoke.teacher.lr, 'bfloat16']);
  expect(third.stdout).toMatch(/Teacher changed from the preset: \{"epochs":2,"width":0.25,"precision":"bfloat16"\}/);
});

test('reproduce --validation scores every linear classifier on held-out training images too', () => {
  const json = path.join(tmp, 'reproduce-validation.json');
  const r = run('reproduce', '--preset', 'smoke', '--out', path.join(tmp, 'reproduce-validation'), '--json', json, '--rows', 'distill',
    '--teacher', path.join(tmp, 'reproduce', 'teacher', 'checkpoint.pth'), '--validation', '300');
  expect(r.code).toBe(0);
  const result = JSON.parse(fs.readFileSync(json, 'utf8'));
  expect(result.validationImages).toBeGreaterThanOrEqual(290);
  for (const top1 of [result.rows[0].validationTop1, result.teacherValidationTop1]) {
    expect(top1).toBeGreaterThanOrEqual(0);
    expect(top1).toBeLessThanOrEqual(100);
  }
  expect(r.stdout).toMatch(/\| validation top-1 \(\d+ held-out train images\) \|/);
});

test('bench-step measures the native step against the PyTorch step', () => {
  const { python } = pythonWithTorch();
  const args = ['bench-step', '--recipe', 'contrastive+distill', '--batch-size', '4', '--size', '32', '--steps', '1', '--teacher-arch', 'resnet18', '--phases', '--json'];
  const r = run(...(python ? args : [...args, '--no-python']));
  expect([r.code, r.stderr]).toEqual([0, '']);
  const figures = r.stdout.trim().split('\n').map((line) => JSON.parse(line));
  expect(figures.map((f) => f.impl)).toEqual(python ? ['s2bnn', 'python-reference'] : ['s2bnn']);
  for (const f of figures) {
    expect(f.imagesPerSecond).toBeGreaterThan(0);
    expect(f.peakBytes).toBeGreaterThan(0);
    // Both sides mark the same phases; together they cover the step.
    expect(Object.keys(f.phaseMs)).toEqual(['student', 'keys', 'teacher', 'loss', 'backward', 'optimizer']);
    const total = Object.values(f.phaseMs as Record<string, number>).reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(0.5 * f.ms);
    expect(total).toBeLessThan(1.5 * f.ms);
  }
});
