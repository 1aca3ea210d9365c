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
  return median(samples);
}

/** medianMs for asynchronous work (training steps on the worker thread); `samples` runs. */
export async function medianMsAsync(run: () => Promise<unknown>, samples: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = process.hrtime.bigint();
    await run();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(times);
}

/** The middle value (the upper one of an even count), as every figure here reports. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
