// Binning shared by the TensorBoard histograms and the histogram charts, with numpy.histogram's
// conventions (equal-width bins, the last one closed on the right) so figures match Python's.

export interface HistogramOptions {
  /** Number of equal-width bins (default 30). */
  bins?: number;
  /** [low, high] of the bins; values outside are left out. Default: the finite values' min and max. */
  range?: readonly [number, number];
}

export interface Histogram {
  /** bins + 1 ascending edges; bin i is [edges[i], edges[i + 1]), the last one also holds edges[bins]. */
  edges: Float64Array;
  counts: Float64Array;
  /** Values counted in some bin. */
  count: number;
  /** Values left out: NaN, ±Infinity, or outside `range`. */
  dropped: number;
  /** Of the counted values; min and max are NaN when none were counted. */
  min: number;
  max: number;
  sum: number;
  sumSquares: number;
}

export function histogram(values: ArrayLike<number>, options: HistogramOptions = {}): Histogram {
  const bins = options.bins ?? 30;
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`histogram bins must be a positive integer, got ${bins}`);
  let [low, high] = options.range ?? finiteExtent(values);
  if (!Number.isFinite(low) || !Number.isFinite(high) || low > high) {
    throw new RangeError(`histogram range must be finite with low <= high, got [${low}, ${high}]`);
  }
  if (low === high) {
    // As numpy does: a single value still gets bins of width 1/bins around it.
    low -= 0.5;
    high += 0.5;
  }
  const edges = new Float64Array(bins + 1);
  // Interpolated this way the edges stay finite even when high - low overflows.
  for (let i = 0; i <= bins; i++) edges[i] = low * (1 - i / bins) + high * (i / bins);

  const counts = new Float64Array(bins);
  // Halved so that high - low cannot overflow (halving is exact).
  const scale = bins / (high / 2 - low / 2);
  let count = 0;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sumSquares = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v >= low && v <= high)) continue;
    let bin = Math.floor((v / 2 - low / 2) * scale);
    // Rounding can put a value one bin off its edge; the edges decide, as they are what is shown.
    if (bin >= bins) bin = bins - 1;
    else if (v < edges[bin]) bin--;
    else if (bin + 1 < bins && v >= edges[bin + 1]) bin++;
    counts[bin]++;
    count++;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sumSquares += v * v;
  }
  return {
    edges,
    counts,
    count,
    dropped: values.length - count,
    min: count ? min : NaN,
    max: count ? max : NaN,
    sum,
    sumSquares,
  };
}

function finiteExtent(values: ArrayLike<number>): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return min <= max ? [min, max] : [0, 1];
}
