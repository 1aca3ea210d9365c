// The few drawing primitives the charts need, on an RGB8 buffer: rectangles (opaque or
// blended), 1-2 px lines, and text in a built-in 5x7 bitmap font. No antialiasing: charts are
// read, not admired, and hard pixels keep the PNGs small and the tests exact.
import { RasterImage } from './png';

/** "#rrggbb" or [r, g, b] with 0-255 channels. */
export type Color = string | readonly [number, number, number];

export type Rgb = readonly [number, number, number];

export function parseColor(color: Color): Rgb {
  if (typeof color !== 'string') return [clampByte(color[0]), clampByte(color[1]), clampByte(color[2])];
  const m = /^#?([0-9a-f]{6})$/i.exec(color.trim());
  if (!m) throw new RangeError(`colour must be "#rrggbb" or [r, g, b], got ${JSON.stringify(color)}`);
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

function clampByte(v: number): number {
  return Number.isFinite(v) ? Math.max(0, Math.min(255, Math.round(v))) : 0;
}

// 5x7 glyphs, 7 rows each, one base-32 digit per row (bit 4 = leftmost column).
const FONT_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-+%/:()_,=[]#'!?<>*|";
const FONT_ROWS =
  'ehjlphe4c4444eeh1248vv2421he26aiv22vgu11he68guhhev124888ehhehheehhf12cehhvhhhuhhuhhuehggghesihhhisvgguggvvggugggehgnhhfhhhvhhhe44444e72222ichikokihggggggvhrllhhhhhpljhhehhhhheuhhugggehhhliduhhukihfgge11uv444444hhhhhhehhhhha4hhhlllahha4ahhhha4444v1248gv00e1fhfggmphhu00egghe11djhhf00ehvge698s8880fhhf1eggmphhh40c444e20622icggikokic44444e00qllhh00mphhh00ehhhe0uhhugg0fhhf1100mpggg00ege1u88s889600hhhjd00hhha400hhlla00ha4ah0hhhf1e00v248v00000cc000v000044v440op248j301248g00cc0cc024888428422248000000v0000c4800v0v00e88888ee22222eaavavaa44800004444404eh12404248g842842124804lel404444444';

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Horizontal distance between characters, in font pixels. */
export const GLYPH_ADVANCE = 6;

const UNKNOWN_GLYPH = FONT_CHARS.indexOf('?');

function glyphRows(ch: string): number[] {
  let index = FONT_CHARS.indexOf(ch);
  if (ch === ' ') return [0, 0, 0, 0, 0, 0, 0];
  if (index < 0) index = UNKNOWN_GLYPH;
  const rows: number[] = [];
  for (let r = 0; r < GLYPH_HEIGHT; r++) rows.push(parseInt(FONT_ROWS[index * GLYPH_HEIGHT + r], 32));
  return rows;
}

/** Width in pixels of `text` drawn at `scale`. */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * GLYPH_ADVANCE - 1) * scale;
}

export interface TextOptions {
  scale?: number;
  /** Which point of the text (x, y) is: horizontal alignment (default left)... */
  align?: 'left' | 'center' | 'right';
  /** ...and vertical (default top). */
  baseline?: 'top' | 'middle' | 'bottom';
  /** Read from bottom to top (a y-axis label); alignment then applies along the text. */
  vertical?: boolean;
}

export class Canvas {
  readonly data: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
    background: Color = '#ffffff',
  ) {
    this.data = new Uint8Array(width * height * 3);
    const [r, g, b] = parseColor(background);
    for (let i = 0; i < this.data.length; i += 3) {
      this.data[i] = r;
      this.data[i + 1] = g;
      this.data[i + 2] = b;
    }
  }

  toImage(): RasterImage {
    return { width: this.width, height: this.height, channels: 3, data: this.data };
  }

  pixel(x: number, y: number): Rgb {
    const i = (y * this.width + x) * 3;
    return [this.data[i], this.data[i + 1], this.data[i + 2]];
  }

  /** Sets one pixel, blended over what is there when alpha < 1; outside the canvas it is a no-op. */
  set(x: number, y: number, color: Rgb, alpha = 1): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    if (alpha >= 1) {
      this.data[i] = color[0];
      this.data[i + 1] = color[1];
      this.data[i + 2] = color[2];
    } else {
      for (let c = 0; c < 3; c++) this.data[i + c] = Math.round(this.data[i + c] * (1 - alpha) + color[c] * alpha);
    }
  }

  /** Fills the pixels x0 <= x <= x1, y0 <= y <= y1 (corners in either order). */
  fillRect(x0: number, y0: number, x1: number, y1: number, color: Rgb, alpha = 1): void {
    const left = Math.max(0, Math.round(Math.min(x0, x1)));
    const right = Math.min(this.width - 1, Math.round(Math.max(x0, x1)));
    const top = Math.max(0, Math.round(Math.min(y0, y1)));
    const bottom = Math.min(this.height - 1, Math.round(Math.max(y0, y1)));
    for (let y = top; y <= bottom; y++) for (let x = left; x <= right; x++) this.set(x, y, color, alpha);
  }

  strokeRect(x0: number, y0: number, x1: number, y1: number, color: Rgb): void {
    this.fillRect(x0, y0, x1, y0, color);
    this.fillRect(x0, y1, x1, y1, color);
    this.fillRect(x0, y0, x0, y1, color);
    this.fillRect(x1, y0, x1, y1, color);
  }

  /**
   * A straight line of `width` px (1 or 2) between pixel centres, drawn only inside `clip`
   * (default: the canvas). The segment is clipped before it is walked, so wild coordinates cost
   * nothing.
   */
  line(x0: number, y0: number, x1: number, y1: number, color: Rgb, width = 1, clip?: Box): void {
    const box = clip ?? { left: 0, top: 0, right: this.width - 1, bottom: this.height - 1 };
    const clipped = clipSegment(x0, y0, x1, y1, box);
    if (!clipped) return;
    let [ax, ay] = [Math.round(clipped[0]), Math.round(clipped[1])];
    const [bx, by] = [Math.round(clipped[2]), Math.round(clipped[3])];
    const dx = Math.abs(bx - ax);
    const dy = -Math.abs(by - ay);
    const sx = ax < bx ? 1 : -1;
    const sy = ay < by ? 1 : -1;
    let err = dx + dy;
    // Bresenham; a 2 px line is the 1 px line with a 2x2 brush, kept inside the clip box.
    for (;;) {
      this.brush(ax, ay, color, width, box);
      if (ax === bx && ay === by) break;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        ax += sx;
      }
      if (e2 <= dx) {
        err += dx;
        ay += sy;
      }
    }
  }

  /** A square dot of `size` px centred on (x, y), inside `clip`. */
  dot(x: number, y: number, color: Rgb, size: number, clip?: Box): void {
    const box = clip ?? { left: 0, top: 0, right: this.width - 1, bottom: this.height - 1 };
    const half = Math.floor(size / 2);
    const cx = Math.round(x);
    const cy = Math.round(y);
    for (let py = cy - half; py < cy - half + size; py++) {
      for (let px = cx - half; px < cx - half + size; px++) {
        if (px >= box.left && px <= box.right && py >= box.top && py <= box.bottom) this.set(px, py, color);
      }
    }
  }

  private brush(x: number, y: number, color: Rgb, width: number, box: Box): void {
    for (let oy = 0; oy < width; oy++) {
      for (let ox = 0; ox < width; ox++) {
        const px = x + ox;
        const py = y + oy;
        if (px >= box.left && px <= box.right && py >= box.top && py <= box.bottom) this.set(px, py, color);
      }
    }
  }

  /** Draws `text` in the built-in font; characters it lacks show as "?". */
  text(text: string, x: number, y: number, color: Rgb, options: TextOptions = {}): void {
    const scale = Math.max(1, Math.round(options.scale ?? 1));
    const length = textWidth(text, scale);
    const thickness = GLYPH_HEIGHT * scale;
    const alongShift = options.align === 'center' ? length / 2 : options.align === 'right' ? length : 0;
    const acrossShift = options.baseline === 'middle' ? thickness / 2 : options.baseline === 'bottom' ? thickness : 0;
    for (let i = 0; i < text.length; i++) {
      const rows = glyphRows(text[i]);
      for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
        for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
          if (!(rows[gy] & (16 >> gx))) continue;
          const along = (i * GLYPH_ADVANCE + gx) * scale - alongShift;
          const across = gy * scale - acrossShift;
          // Vertical text turns a quarter anticlockwise: along the text is up, the glyph's top faces left.
          const px = options.vertical ? x + across : x + along;
          const py = options.vertical ? y - along - (scale - 1) : y + across;
          this.fillRect(Math.round(px), Math.round(py), Math.round(px) + scale - 1, Math.round(py) + scale - 1, color);
        }
      }
    }
  }
}

/** A pixel rectangle, edges included. */
export interface Box {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

// Liang-Barsky: the part of the segment inside the box, or null.
function clipSegment(x0: number, y0: number, x1: number, y1: number, box: Box): [number, number, number, number] | null {
  if (![x0, y0, x1, y1].every(Number.isFinite)) return null;
  const dx = x1 - x0;
  const dy = y1 - y0;
  let t0 = 0;
  let t1 = 1;
  const edges: [number, number][] = [
    [-dx, x0 - box.left],
    [dx, box.right - x0],
    [-dy, y0 - box.top],
    [dy, box.bottom - y0],
  ];
  for (const [p, q] of edges) {
    if (p === 0) {
      if (q < 0) return null;
      continue;
    }
    const t = q / p;
    if (p < 0) {
      if (t > t1) return null;
      if (t > t0) t0 = t;
    } else {
      if (t < t0) return null;
      if (t < t1) t1 = t;
    }
  }
  return [x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy];
}
