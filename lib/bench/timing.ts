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

/** medianMs for asynchronous work (training steps on the worker thread); `samples` runs. */
export async function medianMsAsync(run: () => Promise<unknown>, samples: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = process.hrtime.bigint();
    await run();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}
