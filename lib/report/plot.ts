// Charts of a run as PNG files, drawn here rather than through a plotting package: line charts of
// named series (loss per step for several runs, accuracy per epoch) and overlaid histograms
// (teacher vs student confidence or entropy). Axes, ticks, title and legend; no antialiasing.
import { Box, Canvas, Color, GLYPH_HEIGHT, Rgb, parseColor, textWidth } from './canvas';
import { Histogram, histogram } from './histogram';
import { RasterImage, writePng } from './png';

export type { Color } from './canvas';

/** Series colours in order (matplotlib's tab10), for series that do not name one. */
export const PALETTE: readonly string[] = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
];

const BACKGROUND: Rgb = [255, 255, 255];
const GRID: Rgb = [230, 230, 230];
const AXIS: Rgb = [60, 60, 60];
const INK: Rgb = [30, 30, 30];
const LEGEND_BORDER: Rgb = [180, 180, 180];

export interface ChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Image size in pixels (default 800 x 500). */
  width?: number;
  height?: number;
  /** Font pixel size for labels, 1 or more (default 2 from 600 px wide, else 1); the title is one larger. */
  fontScale?: number;
  /** Draw a legend (default: when there is more than one series). */
  legend?: boolean;
  /** Line width in pixels, 1 or 2 (default 2). */
  lineWidth?: number;
}

export interface LineSeries {
  name: string;
  y: ArrayLike<number>;
  /** Default: 0, 1, 2, ... */
  x?: ArrayLike<number>;
  color?: Color;
}

export interface LineChartOptions extends ChartOptions {
  /** Default: the data's x extent. */
  xRange?: readonly [number, number];
  /** Default: the data's y extent with 5% room on each side. */
  yRange?: readonly [number, number];
  /** Logarithmic y axis (for losses over orders of magnitude); y <= 0 is not drawn. */
  logY?: boolean;
}

export interface HistogramSeries {
  name: string;
  values: ArrayLike<number>;
  color?: Color;
}

export interface HistogramChartOptions extends ChartOptions {
  /** Equal-width bins over `range` (default 50). */
  bins?: number;
  /** Default: the extent of all series' finite values. Values outside are left out. */
  range?: readonly [number, number];
  /** Bar heights: counts, or each series' fraction of its own values (to compare series of different sizes). Default 'count'. */
  normalize?: 'count' | 'fraction';
}

/** Where data land in the image, for callers that annotate charts (and for tests). */
export interface ChartFrame {
  /** The plotting area in pixels, edges included. */
  box: Box;
  xRange: [number, number];
  yRange: [number, number];
  logY: boolean;
  /** Pixel position (fractional) of a data point; NaN where it has none (y <= 0 on a log axis). */
  toPixel(x: number, y: number): [number, number];
}

export interface Chart {
  image: RasterImage;
  frame: ChartFrame;
}

export interface HistogramChart extends Chart {
  /** One per series, in order, with the shared bins. */
  histograms: Histogram[];
}

/** Draws named series as lines (NaN, ±Infinity and log-axis y <= 0 leave gaps). */
export function lineChart(series: readonly LineSeries[], options: LineChartOptions = {}): Chart {
  const logY = options.logY ?? false;
  const points = series.map((s) => {
    const n = s.x ? Math.min(s.x.length, s.y.length) : s.y.length;
    const xs = new Float64Array(n);
    const ys = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      xs[i] = s.x ? s.x[i] : i;
      ys[i] = s.y[i];
    }
    return { xs, ys };
  });
  const xRange = options.xRange ? checkRange(options.xRange, 'xRange') : padRange(extent(points.map((p) => p.xs)), 0);
  let yRange: [number, number];
  if (options.yRange) yRange = checkRange(options.yRange, 'yRange');
  else if (logY) {
    const [lo, hi] = extent(points.map((p) => p.ys.map((v) => (v > 0 ? Math.log10(v) : NaN))), [0, 1]);
    const [plo, phi] = padRange([lo, hi], 0.05);
    yRange = [10 ** plo, 10 ** phi];
  } else yRange = padRange(extent(points.map((p) => p.ys)), 0.05);
  if (logY && !(yRange[0] > 0)) throw new RangeError(`a log y axis needs yRange above 0, got [${yRange}]`);

  const layout = new Layout(options, xRange, yRange, logY);
  const { canvas, frame } = layout;
  const colors = series.map((s, i) => parseColor(s.color ?? PALETTE[i % PALETTE.length]));
  const width = lineWidthOf(options);
  points.forEach(({ xs, ys }, k) => {
    let prev: [number, number] | null = null;
    for (let i = 0; i < xs.length; i++) {
      const [px, py] = frame.toPixel(xs[i], ys[i]);
      const drawable = Number.isFinite(px) && Number.isFinite(py);
      if (drawable && prev) canvas.line(prev[0], prev[1], px, py, colors[k], width, frame.box);
      else if (drawable && !isDrawable(frame, xs[i + 1], ys[i + 1])) canvas.dot(px, py, colors[k], width + 2, frame.box);
      prev = drawable ? [px, py] : null;
    }
  });
  layout.finish(series.map((s, i) => ({ name: s.name, color: colors[i], filled: false })));
  return { image: canvas.toImage(), frame };
}

/**
 * Draws the distributions of several series over the same bins, overlaid: translucent bars with
 * solid outlines, so that where they overlap both stay visible.
 */
export function histogramChart(series: readonly HistogramSeries[], options: HistogramChartOptions = {}): HistogramChart {
  const range = options.range ? checkRange(options.range, 'range') : extent(series.map((s) => s.values), [0, 1]);
  const histograms = series.map((s) => histogram(s.values, { bins: options.bins ?? 50, range }));
  const heights = histograms.map((h) =>
    options.normalize === 'fraction' ? h.counts.map((c) => (h.count > 0 ? c / h.count : 0)) : h.counts,
  );
  let top = 0;
  for (const hs of heights) for (const v of hs) top = Math.max(top, v);
  const yRange: [number, number] = [0, top > 0 ? top * 1.05 : 1];
  const edges = histograms[0]?.edges ?? Float64Array.of(range[0], range[1]);
  const xRange: [number, number] = [edges[0], edges[edges.length - 1]];

  const layout = new Layout(
    { ...options, yLabel: options.yLabel ?? (options.normalize === 'fraction' ? 'fraction' : 'count') },
    xRange,
    yRange,
    false,
  );
  const { canvas, frame } = layout;
  const colors = series.map((s, i) => parseColor(s.color ?? PALETTE[i % PALETTE.length]));
  const width = lineWidthOf(options);
  const baseline = frame.box.bottom;
  const xPixel = (x: number) => Math.round(frame.toPixel(x, 0)[0]);
  const yPixel = (y: number) => Math.round(frame.toPixel(xRange[0], y)[1]);
  // Bars of each bin end where the next begins, so no pixel is blended twice by one series.
  heights.forEach((hs, k) => {
    for (let b = 0; b < hs.length; b++) {
      if (hs[b] <= 0) continue;
      const right = b + 1 < hs.length ? xPixel(edges[b + 1]) - 1 : xPixel(edges[b + 1]);
      canvas.fillRect(xPixel(edges[b]), yPixel(hs[b]), right, baseline, colors[k], 0.35);
    }
  });
  heights.forEach((hs, k) => {
    let previousY = baseline;
    for (let b = 0; b < hs.length; b++) {
      const x0 = xPixel(edges[b]);
      const x1 = xPixel(edges[b + 1]);
      const y = yPixel(hs[b]);
      canvas.line(x0, previousY, x0, y, colors[k], width, frame.box);
      canvas.line(x0, y, x1, y, colors[k], width, frame.box);
      previousY = y;
    }
    canvas.line(xPixel(edges[hs.length]), previousY, xPixel(edges[hs.length]), baseline, colors[k], width, frame.box);
  });
  layout.finish(series.map((s, i) => ({ name: s.name, color: colors[i], filled: true })));
  return { image: canvas.toImage(), frame, histograms };
}

/** lineChart written to a PNG file. */
export function writeLineChart(path: string, series: readonly LineSeries[], options: LineChartOptions = {}): Chart {
  const chart = lineChart(series, options);
  writePng(path, chart.image);
  return chart;
}

/** histogramChart written to a PNG file. */
export function writeHistogramChart(path: string, series: readonly HistogramSeries[], options: HistogramChartOptions = {}): HistogramChart {
  const chart = histogramChart(series, options);
  writePng(path, chart.image);
  return chart;
}

function lineWidthOf(options: ChartOptions): number {
  return options.lineWidth === 1 ? 1 : 2;
}

function isDrawable(frame: ChartFrame, x: number | undefined, y: number | undefined): boolean {
  if (x === undefined || y === undefined) return false;
  const [px, py] = frame.toPixel(x, y);
  return Number.isFinite(px) && Number.isFinite(py);
}

function checkRange(range: readonly [number, number], name: string): [number, number] {
  const [lo, hi] = range;
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(lo < hi)) throw new RangeError(`${name} must be finite with low < high, got [${lo}, ${hi}]`);
  return [lo, hi];
}

function extent(arrays: readonly ArrayLike<number>[], fallback: [number, number] = [0, 1]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return lo <= hi ? [lo, hi] : fallback;
}

function padRange([lo, hi]: [number, number], fraction: number): [number, number] {
  if (lo === hi) {
    const room = Math.abs(lo) * 0.1 || 1;
    return [lo - room, hi + room];
  }
  const room = (hi - lo) * fraction;
  return [lo - room, hi + room];
}

interface Tick {
  value: number;
  label: string;
}

/** About `count` round ticks (1, 2 or 5 times a power of ten apart) within [lo, hi]. */
function linearTicks(lo: number, hi: number, count: number): Tick[] {
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  if (!(step > 0) || !Number.isFinite(step)) return [];
  const values: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) values.push(k * step);
  const magnitude = Math.max(...values.map(Math.abs));
  return values.map((v) => ({ value: v, label: tickLabel(v, step, magnitude) }));
}

function tickLabel(value: number, step: number, magnitude: number): string {
  if (Math.abs(value) < step * 1e-6) return '0';
  if (magnitude >= 1e5 || magnitude < 1e-3) {
    const digits = Math.max(0, Math.floor(Math.log10(Math.abs(value))) - Math.floor(Math.log10(step) + 1e-9));
    const [mantissa, exponent] = value.toExponential(Math.min(digits, 6)).split('e');
    return `${mantissa.replace(/\.?0+$/, '')}e${exponent.replace('+', '')}`;
  }
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return value.toFixed(Math.min(decimals, 10));
}

/** Ticks of a log axis: powers of ten, with 2x and 5x when the range spans few decades. */
function logTicks(lo: number, hi: number, count: number): Tick[] {
  const a = Math.log10(lo);
  const b = Math.log10(hi);
  const decades: number[] = [];
  for (let e = Math.ceil(a - 1e-9); e <= b + 1e-9; e++) decades.push(e);
  let values: number[];
  if (decades.length >= 3) {
    const every = Math.max(1, Math.ceil(decades.length / count));
    values = decades.filter((e) => e % every === 0).map((e) => 10 ** e);
  } else {
    values = [];
    for (let e = Math.floor(a) - 1; e <= Math.ceil(b); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e;
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) values.push(v);
      }
    }
    if (values.length < 2) return linearTicks(lo, hi, count).filter((t) => t.value > 0);
  }
  return values.map((v) => {
    const label = v >= 1e-3 && v < 1e5 ? String(Number(v.toPrecision(3))) : v.toExponential(0).replace('+', '');
    return { value: v, label };
  });
}

interface LegendEntry {
  name: string;
  color: Rgb;
  filled: boolean;
}

// Margins, ticks, grid, axes, title and legend around the plotting area.
class Layout {
  readonly canvas: Canvas;
  readonly frame: ChartFrame;
  private readonly scale: number;
  private readonly xTicks: Tick[];
  private readonly yTicks: Tick[];

  constructor(
    private readonly options: ChartOptions,
    xRange: [number, number],
    yRange: [number, number],
    logY: boolean,
  ) {
    const width = checkSize(options.width ?? 800, 'width');
    const height = checkSize(options.height ?? 500, 'height');
    this.scale = Math.max(1, Math.round(options.fontScale ?? (width >= 600 ? 2 : 1)));
    const s = this.scale;
    const glyph = GLYPH_HEIGHT * s;
    this.canvas = new Canvas(width, height, BACKGROUND);

    const plotHeightGuess = height - 4 * glyph - 40;
    this.yTicks = logY ? logTicks(yRange[0], yRange[1], Math.max(2, plotHeightGuess / (glyph * 4))) : linearTicks(yRange[0], yRange[1], Math.max(2, plotHeightGuess / (glyph * 4)));
    const yLabelWidth = Math.max(0, ...this.yTicks.map((t) => textWidth(t.label, s)));
    const left = 10 + (options.yLabel ? glyph + 10 : 0) + yLabelWidth + 8;
    const top = 12 + (options.title ? GLYPH_HEIGHT * (s + 1) + 12 : 0);
    const bottom = height - 1 - (8 + glyph + 8 + (options.xLabel ? glyph + 10 : 0));

    // As many x ticks as fit with their labels apart; the last label may overhang the box.
    let xTicks = linearTicks(xRange[0], xRange[1], 8);
    const widest = (ts: Tick[]) => Math.max(0, ...ts.map((t) => textWidth(t.label, s)));
    const right = width - 1 - Math.max(20, Math.ceil(widest(xTicks) / 2) + 6);
    for (let count = 8; count > 1; count--) {
      xTicks = linearTicks(xRange[0], xRange[1], count);
      if (xTicks.length * (widest(xTicks) + 3 * glyph) <= right - left) break;
    }
    this.xTicks = xTicks;

    const box: Box = { left, top, right: Math.max(left + 1, right), bottom: Math.max(top + 1, bottom) };
    const ty = (y: number) => (logY ? (y > 0 ? Math.log10(y) : NaN) : y);
    const [ty0, ty1] = [ty(yRange[0]), ty(yRange[1])];
    this.frame = {
      box,
      xRange,
      yRange,
      logY,
      toPixel: (x, y) => [
        box.left + ((x - xRange[0]) / (xRange[1] - xRange[0])) * (box.right - box.left),
        box.bottom - ((ty(y) - ty0) / (ty1 - ty0)) * (box.bottom - box.top),
      ],
    };
    this.drawGrid();
  }

  private drawGrid(): void {
    const { canvas, frame } = this;
    const { box } = frame;
    for (const t of this.yTicks) {
      const py = Math.round(frame.toPixel(frame.xRange[0], t.value)[1]);
      if (py >= box.top && py <= box.bottom) canvas.fillRect(box.left, py, box.right, py, GRID);
    }
    for (const t of this.xTicks) {
      const px = Math.round(frame.toPixel(t.value, frame.yRange[0])[0]);
      if (px >= box.left && px <= box.right) canvas.fillRect(px, box.top, px, box.bottom, GRID);
    }
  }

  /** Axes, tick labels, titles and legend, drawn over the data. */
  finish(legend: LegendEntry[]): void {
    const { canvas, frame, scale: s, options } = this;
    const { box } = frame;
    const glyph = GLYPH_HEIGHT * s;
    canvas.strokeRect(box.left, box.top, box.right, box.bottom, AXIS);
    for (const t of this.yTicks) {
      const py = Math.round(frame.toPixel(frame.xRange[0], t.value)[1]);
      if (py < box.top || py > box.bottom) continue;
      canvas.fillRect(box.left - 4, py, box.left - 1, py, AXIS);
      canvas.text(t.label, box.left - 8, py, INK, { scale: s, align: 'right', baseline: 'middle' });
    }
    for (const t of this.xTicks) {
      const px = Math.round(frame.toPixel(t.value, frame.yRange[0])[0]);
      if (px < box.left || px > box.right) continue;
      canvas.fillRect(px, box.bottom + 1, px, box.bottom + 4, AXIS);
      canvas.text(t.label, px, box.bottom + 8, INK, { scale: s, align: 'center' });
    }
    const middleX = (box.left + box.right) / 2;
    if (options.title) canvas.text(options.title, middleX, 12, INK, { scale: s + 1, align: 'center' });
    if (options.xLabel) canvas.text(options.xLabel, middleX, box.bottom + 8 + glyph + 10, INK, { scale: s, align: 'center' });
    if (options.yLabel) canvas.text(options.yLabel, 10, (box.top + box.bottom) / 2, INK, { scale: s, align: 'center', vertical: true });
    if (options.legend ?? legend.length > 1) this.drawLegend(legend);
  }

  // In the corner of the plotting area that hides the least of the data.
  private drawLegend(entries: LegendEntry[]): void {
    if (entries.length === 0) return;
    const { canvas, frame, scale: s } = this;
    const { box } = frame;
    const glyph = GLYPH_HEIGHT * s;
    const row = glyph + 6;
    const swatch = 8 * s;
    const width = 8 + swatch + 6 + Math.max(...entries.map((e) => textWidth(e.name, s))) + 8;
    const height = 6 + row * entries.length;
    const inset = 8;
    const corners: [number, number][] = [
      [box.right - inset - width, box.top + inset],
      [box.left + inset, box.top + inset],
      [box.right - inset - width, box.bottom - inset - height],
      [box.left + inset, box.bottom - inset - height],
    ];
    let best = corners[0];
    let bestInk = Infinity;
    for (const [x, y] of corners) {
      let ink = 0;
      for (let py = Math.max(0, y); py <= Math.min(canvas.height - 1, y + height); py++) {
        for (let px = Math.max(0, x); px <= Math.min(canvas.width - 1, x + width); px++) {
          const [r, g, b] = canvas.pixel(px, py);
          const plain = (r === BACKGROUND[0] && g === BACKGROUND[1] && b === BACKGROUND[2]) || (r === GRID[0] && g === GRID[1] && b === GRID[2]);
          if (!plain) ink++;
        }
      }
      if (ink < bestInk) {
        bestInk = ink;
        best = [x, y];
      }
    }
    const [x, y] = best;
    canvas.fillRect(x, y, x + width, y + height, BACKGROUND, 0.85);
    canvas.strokeRect(x, y, x + width, y + height, LEGEND_BORDER);
    entries.forEach((e, i) => {
      const cy = y + 6 + i * row + Math.floor(glyph / 2);
      if (e.filled) {
        canvas.fillRect(x + 8, cy - Math.floor(glyph / 2), x + 8 + swatch, cy + Math.floor(glyph / 2), e.color, 0.35);
        canvas.strokeRect(x + 8, cy - Math.floor(glyph / 2), x + 8 + swatch, cy + Math.floor(glyph / 2), e.color);
      } else {
        canvas.fillRect(x + 8, cy - 1, x + 8 + swatch, cy, e.color);
      }
      canvas.text(e.name, x + 8 + swatch + 6, cy, INK, { scale: s, baseline: 'middle' });
    });
  }
}

function checkSize(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 64 || value > 16384) throw new RangeError(`chart ${name} must be an integer from 64 to 16384, got ${value}`);
  return value;
}
