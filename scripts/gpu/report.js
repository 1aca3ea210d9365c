#!/usr/bin/env node
'use strict';
// Gathers what scripts/gpu/check.sh wrote into one JSON report, OUT/gpu-report.json:
//   node scripts/gpu/report.js OUT STARTED_EPOCH_SECONDS
const fs = require('fs');
const path = require('path');

const [out, started] = process.argv.slice(2);
if (!out) {
  process.stderr.write('usage: node scripts/gpu/report.js OUT [STARTED_EPOCH_SECONDS]\n');
  process.exit(2);
}
const read = (name) => (fs.existsSync(path.join(out, name)) ? fs.readFileSync(path.join(out, name), 'utf8') : null);
const jsonLines = (name) => (read(name) || '').split('\n').filter((l) => l.trim().startsWith('{')).map((l) => JSON.parse(l));

function tests() {
  const text = read('tests.json');
  if (!text) return null;
  const r = JSON.parse(text);
  const failures = r.testResults.flatMap((file) => file.assertionResults
    .filter((a) => a.status === 'failed')
    .map((a) => ({ file: path.relative(process.cwd(), file.name), test: a.fullName, message: (a.failureMessages[0] || '').split('\n')[0] })));
  const suiteErrors = r.testResults.filter((f) => f.status === 'failed' && f.assertionResults.length === 0)
    .map((f) => ({ file: path.relative(process.cwd(), f.name), message: (f.message || '').split('\n').slice(0, 3).join(' ') }));
  return { passed: r.numPassedTests, failed: r.numFailedTests, skipped: r.numPendingTests, suitesFailed: r.numFailedTestSuites, failures, suiteErrors };
}

// Each s2bnn figure beside the PyTorch step on the same GPU: the speedup is python ms / s2bnn ms.
function benchStep() {
  const figures = jsonLines('bench-step.jsonl');
  return figures.filter((f) => f.impl === 's2bnn').map((ours) => {
    const py = figures.find((f) => f.impl === 'python-reference' && f.recipe === ours.recipe && f.batch === ours.batch && f.size === ours.size);
    return {
      recipe: ours.recipe, batch: ours.batch, size: ours.size, teacher: ours.teacherArch,
      s2bnnMs: ours.ms, pythonMs: py ? py.ms : null, speedup: py ? py.ms / ours.ms : null,
      s2bnnPeakMiB: ours.peakBytes / 2 ** 20, pythonPeakMiB: py ? py.peakBytes / 2 ** 20 : null,
    };
  });
}

function benchBconv(name) {
  return jsonLines(name).map((f) => ({ shape: f.shape, batch: f.batch, count: f.count, cudnnMs: f.floatMs, packedMs: f.packedMs, layerMs: f.layerMs, speedup: f.speedup, layerSpeedup: f.layerSpeedup }));
}

const info = jsonLines('info.log')[0] || null;
const report = {
  check: 'scripts/gpu/check.sh',
  finishedAt: new Date().toISOString(),
  seconds: started ? Math.round(Date.now() / 1000 - Number(started)) : null,
  machine: (read('machine.log') || '').trim().split('\n'),
  steps: jsonLines('steps.jsonl'),
  build: info,
  tests: tests(),
  benchStep: benchStep(),
  benchBconv: { batch1: benchBconv('bench-bconv.jsonl'), batch32: benchBconv('bench-bconv-batch32.jsonl') },
  nccl: { linked: info ? info.nccl : null, job: 'none yet: the one-GPU NCCL job runs here once `s2bnn launch` (data parallelism) exists' },
};
report.ok = report.steps.length > 0 && report.steps.every((s) => s.status === 0);
fs.writeFileSync(path.join(out, 'gpu-report.json'), `${JSON.stringify(report, null, 2)}\n`);
process.stdout.write(`s2bnn gpu check: ${report.ok ? 'all steps passed' : `failed steps: ${report.steps.filter((s) => s.status !== 0).map((s) => s.name).join(', ')}`}` +
  ` in ${report.seconds} s; report: ${path.join(out, 'gpu-report.json')}\n`);
process.exit(report.ok ? 0 : 1);
