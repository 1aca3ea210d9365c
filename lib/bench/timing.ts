// The timing loop every benchmark uses: at least `minSamples` runs, then more until `minTimeMs`
// has passed or `maxSamples` were taken; the median in milliseconds.
export function medianMs(run: () => void, minTimeMs: number, minSamples: number, maxSamples: number): number {
  const samples: number[] = [];
  const start = process.hrtime.bigint();
  const elapsedMs = () => Number(process.hrtime.bigint() - start) / 1e6;
  while (samples.length < minSamples || (samples.length < maxSamples && elapsedMs() < minTimeMs)) {
    const t0 = process.hrtime.bigint();
    run();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}
