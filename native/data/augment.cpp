#include "augment.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace s2bnn::data {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

bool finite_in(double v, double low, double high) { return std::isfinite(v) && v >= low && v <= high; }

void validate_normalization(const std::vector<float>& mean, const std::vector<float>& std, int64_t channels,
                            const std::string& where) {
  require(static_cast<int64_t>(mean.size()) == channels,
          where + "mean needs " + std::to_string(channels) + " value(s) (one per channel), got " +
              std::to_string(mean.size()));
  require(static_cast<int64_t>(std.size()) == channels,
          where + "std needs " + std::to_string(channels) + " value(s) (one per channel), got " +
              std::to_string(std.size()));
  for (size_t i = 0; i < std.size(); ++i) {
    require(std::isfinite(mean[i]), where + "mean[" + std::to_string(i) + "] must be finite");
    require(std::isfinite(std[i]) && std[i] > 0, where + "std[" + std::to_string(i) + "] must be > 0");
  }
}

// Python's round(): half to even (the default rounding mode of nearbyint).
int64_t round_half_even(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

// PIL's triangle filter for bilinear resampling.
inline float triangle(float x) {
  if (x < 0.0f) x = -x;
  return x < 1.0f ? 1.0f - x : 0.0f;
}

// Antialiased bilinear weights of outputs [first, first + n) of a resize from in_size to
// out_size, computed as torch's _upsample_bilinear2d_aa (and PIL's ImagingResample) does: the
// triangle is widened by the scale when downscaling, clipped to the image and renormalized.
//
// Crop-aware decodes generalize the source axis: it starts `frac` (in [0, 1)) pixels into the
// first pixel, spans in_size (possibly fractional) pixels, and taps are clipped to [low, limit).
// With frac 0, low 0 and limit = in_size (a full-scale crop) the arithmetic is exactly torch's.
void plan_axis(double in_size, double frac, int64_t low, int64_t limit, int64_t out_size, int64_t first, int64_t n,
               std::vector<int64_t>& start, std::vector<int64_t>& count, std::vector<float>& weights,
               int64_t& stride) {
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  const float support = scale >= 1.0f ? scale : 1.0f;
  const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
  stride = static_cast<int64_t>(std::ceil(support)) * 2 + 2;
  start.resize(n);
  count.resize(n);
  weights.assign(static_cast<size_t>(n * stride), 0.0f);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = first + k;
    const float center = static_cast<float>(frac + scale * (i + 0.5));
    int64_t xmin = std::max(static_cast<int64_t>(std::floor(center - support + 0.5)), low);
    int64_t xsize = std::min(static_cast<int64_t>(center + support + 0.5), limit) - xmin;
    xsize = std::min(xsize, stride);
    float* w = weights.data() + k * stride;
    if (xsize < 1) {  // only reachable through rounding at a reduced scale's last pixel
      xmin = std::max<int64_t>(low, std::min(xmin, limit - 1));
      xsize = 1;
      w[0] = 1.0f;
    } else {
      float total = 0.0f;
      for (int64_t j = 0; j < xsize; ++j) {
        w[j] = triangle(static_cast<float>((j + xmin - center + 0.5) * invscale));
        total += w[j];
      }
      if (total != 0.0f) {
        for (int64_t j = 0; j < xsize; ++j) w[j] /= total;
      }
    }
    start[k] = xmin;
    count[k] = xsize;
  }
}

// Where an axis of a crop (in the original's pixels: [offset, offset + size)) lies in a decoded
// image reduced by `scale` whose first pixel is `origin`: the first pixel it touches (`base`,
// in the decoded image, negative when decoding started later), the fraction of that pixel
// before the crop, its length in decoded pixels and the taps' range [low, limit) relative to
// base: the crop's pixels that were decoded. The decode plan makes sure every tap with a
// nonzero weight was.
struct AxisMap {
  int64_t base = 0, low = 0, limit = 0;
  double frac = 0, size = 0;
};
AxisMap map_axis(int64_t offset, int64_t size, int64_t scale, int64_t origin, int64_t decoded) {
  AxisMap m;
  m.base = offset / scale - origin;
  m.frac = static_cast<double>(offset % scale) / static_cast<double>(scale);
  m.size = static_cast<double>(size) / static_cast<double>(scale);
  const int64_t end = (offset + size + scale - 1) / scale - origin;
  m.low = std::max<int64_t>(0, -m.base);
  m.limit = std::min(end, decoded) - m.base;
  if (m.limit <= m.low) throw std::logic_error("the decoded region does not overlap the crop");
  return m;
}


inline float gray_of(float r, float g, float b) { return 0.2989f * r + 0.587f * g + 0.114f * b; }

inline float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

// Reflect padding index ("reflect": the edge pixel is not repeated), for any offset.
inline int64_t reflect(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

}  // namespace

int64_t default_blur_kernel_size(int64_t output_size) {
  const double target = 0.1 * static_cast<double>(output_size);
  const int64_t k = 2 * static_cast<int64_t>(std::round((target - 1.0) / 2.0)) + 1;
  return std::max<int64_t>(3, k);
}

void Transform::validate(int64_t channels) {
  require(channels == 1 || channels == 3, "transforms support 1 or 3 channels, got " + std::to_string(channels));
  if (kind == Kind::Eval) {
    require(eval.resize >= 1, "transform.resize must be >= 1");
    require(eval.crop >= 1, "transform.crop must be >= 1");
    require(eval.crop <= eval.resize, "transform.crop (" + std::to_string(eval.crop) +
                                          ") must be <= transform.resize (" + std::to_string(eval.resize) + ")");
    validate_normalization(eval.mean, eval.std, channels, "transform.");
    return;
  }
  AugmentOptions& o = augment;
  require(o.size >= 1, "transform.options.size must be >= 1");
  require(o.scale_min > 0 && o.scale_min <= o.scale_max && o.scale_max <= 1 && std::isfinite(o.scale_min),
          "transform.options.scale must be [min, max] with 0 < min <= max <= 1");
  require(o.ratio_min > 0 && o.ratio_min <= o.ratio_max && std::isfinite(o.ratio_max),
          "transform.options.ratio must be [min, max] with 0 < min <= max");
  require(finite_in(o.hflip, 0, 1), "transform.options.hflip must be a probability in [0, 1]");
  require(finite_in(o.grayscale, 0, 1), "transform.options.grayscale must be a probability in [0, 1]");
  require(finite_in(o.jitter.p, 0, 1), "transform.options.colorJitter.p must be a probability in [0, 1]");
  require(finite_in(o.jitter.brightness, 0, 1e6), "transform.options.colorJitter.brightness must be >= 0");
  require(finite_in(o.jitter.contrast, 0, 1e6), "transform.options.colorJitter.contrast must be >= 0");
  require(finite_in(o.jitter.saturation, 0, 1e6), "transform.options.colorJitter.saturation must be >= 0");
  require(finite_in(o.jitter.hue, 0, 0.5), "transform.options.colorJitter.hue must be in [0, 0.5]");
  require(finite_in(o.blur.p, 0, 1), "transform.options.blur.p must be a probability in [0, 1]");
  require(std::isfinite(o.blur.sigma_max) && o.blur.sigma_min > 0 && o.blur.sigma_min <= o.blur.sigma_max,
          "transform.options.blur.sigma must be [min, max] with 0 < min <= max");
  if (o.blur.kernel_size == 0) o.blur.kernel_size = default_blur_kernel_size(o.size);
  require(o.blur.kernel_size >= 1 && o.blur.kernel_size % 2 == 1 && o.blur.kernel_size <= 1001,
          "transform.options.blur.kernelSize must be an odd number between 1 and 1001");
  validate_normalization(o.mean, o.std, channels, "transform.options.");
}

CropBox sample_crop(Philox& rng, int64_t height, int64_t width, double scale_min, double scale_max, double ratio_min,
                    double ratio_max) {
  const double area = static_cast<double>(height) * static_cast<double>(width);
  const double log_min = std::log(ratio_min), log_max = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale_min, scale_max);
    const double aspect = std::exp(rng.uniform(log_min, log_max));
    const int64_t w = round_half_even(std::sqrt(target_area * aspect));
    const int64_t h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      CropBox box;
      box.height = h;
      box.width = w;
      box.top = static_cast<int64_t>(rng.below(static_cast<uint64_t>(height - h + 1)));
      box.left = static_cast<int64_t>(rng.below(static_cast<uint64_t>(width - w + 1)));
      return box;
    }
  }
  CropBox box;
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  if (in_ratio < ratio_min) {
    box.width = width;
    box.height = round_half_even(static_cast<double>(width) / ratio_min);
  } else if (in_ratio > ratio_max) {
    box.height = height;
    box.width = round_half_even(static_cast<double>(height) * ratio_max);
  } else {
    box.width = width;
    box.height = height;
  }
  box.top = (height - box.height) / 2;
  box.left = (width - box.width) / 2;
  return box;
}

AugmentParams sample_augment(const AugmentOptions& o, Philox& rng, int64_t height, int64_t width) {
  AugmentParams p;
  p.crop = sample_crop(rng, height, width, o.scale_min, o.scale_max, o.ratio_min, o.ratio_max);
  p.jitter = rng.bernoulli(o.jitter.p);
  if (p.jitter) {
    for (int i = 3; i > 0; --i) std::swap(p.order[i], p.order[rng.below(static_cast<uint64_t>(i + 1))]);
    const auto factor = [&](double amount) { return rng.uniform(std::max(0.0, 1.0 - amount), 1.0 + amount); };
    const double b = factor(o.jitter.brightness), c = factor(o.jitter.contrast), s = factor(o.jitter.saturation);
    const double h = rng.uniform(-o.jitter.hue, o.jitter.hue);
    // An amount of 0 is torchvision's None: the op is not part of the jitter.
    p.brightness = o.jitter.brightness > 0 ? b : 1.0;
    p.contrast = o.jitter.contrast > 0 ? c : 1.0;
    p.saturation = o.jitter.saturation > 0 ? s : 1.0;
    p.hue = o.jitter.hue > 0 ? h : 0.0;
  }
  p.grayscale = rng.bernoulli(o.grayscale);
  p.blur = rng.bernoulli(o.blur.p);
  if (p.blur) p.sigma = rng.uniform(o.blur.sigma_min, o.blur.sigma_max);
  p.flip = rng.bernoulli(o.hflip);
  return p;
}

Image convert_channels(const Image& image, int64_t channels, std::vector<uint8_t>& storage) {
  Image out;
  out.height = image.height;
  out.width = image.width;
  out.channels = channels;
  out.scale = image.scale;
  out.origin_y = image.origin_y;
  out.origin_x = image.origin_x;
  out.full_height = image.full_height;
  out.full_width = image.full_width;
  const int64_t n = image.height * image.width;
  storage.resize(static_cast<size_t>(n * channels));
  const uint8_t* src = image.pixels;
  const int64_t sc = image.channels;
  if (sc != 1 && sc != 3 && sc != 4) {
    throw std::runtime_error("images must have 1, 3 or 4 channels, got " + std::to_string(sc));
  }
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* p = src + i * sc;
    uint8_t* q = storage.data() + i * channels;
    if (channels == 1) {
      // PIL's L24 conversion: L = R * 299/1000 + G * 587/1000 + B * 114/1000, rounded.
      q[0] = sc == 1 ? p[0] : static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
    } else {
      for (int64_t c = 0; c < 3; ++c) q[c] = sc == 1 ? p[0] : p[c];
    }
  }
  out.pixels = storage.data();
  return out;
}

void resample(const Image& input, int64_t channels, const CropBox& box, int64_t target_h, int64_t target_w,
              int64_t out_top, int64_t out_left, int64_t out_h, int64_t out_w, bool flip, float* out, Workspace& ws) {
  Image converted;
  const Image* image = &input;
  if (input.channels != channels) {
    converted = convert_channels(input, channels, ws.converted);
    image = &converted;
  }
  if (box.top < 0 || box.left < 0 || box.height < 1 || box.width < 1 ||
      box.top + box.height > image->original_height() || box.left + box.width > image->original_width()) {
    throw std::invalid_argument("crop box outside the image");
  }
  const AxisMap mx = map_axis(box.left, box.width, image->scale, image->origin_x, image->width);
  const AxisMap my = map_axis(box.top, box.height, image->scale, image->origin_y, image->height);
  int64_t sx = 0, sy = 0;
  plan_axis(mx.size, mx.frac, mx.low, mx.limit, target_w, out_left, out_w, ws.x_start, ws.x_count, ws.x_weights, sx);
  plan_axis(my.size, my.frac, my.low, my.limit, target_h, out_top, out_h, ws.y_start, ws.y_count, ws.y_weights, sy);
  const int64_t row_first = ws.y_start[0];
  const int64_t row_end = ws.y_start[out_h - 1] + ws.y_count[out_h - 1];
  const int64_t rows = row_end - row_first;
  const int64_t C = channels;
  // Horizontal pass first (as torch does) over the source rows the vertical pass needs:
  // temp[c][row][x]. Each row's span of source pixels is converted to float once; the taps then
  // read floats, all channels of a pixel in one loop, each channel summed in torch's order
  // (t0 * w0, then + t_j * w_j), so the values are the same as tap-by-tap conversion.
  ws.temp.resize(static_cast<size_t>(C * rows * out_w));
  float* temp = ws.temp.data();
  const int64_t span_first = ws.x_start[0];
  int64_t span_end = span_first;
  for (int64_t x = 0; x < out_w; ++x) span_end = std::max(span_end, ws.x_start[x] + ws.x_count[x]);
  ws.row.resize(static_cast<size_t>((span_end - span_first) * C));
  float* row = ws.row.data();
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src_row = image->pixels + ((my.base + row_first + r) * image->width + mx.base + span_first) * C;
    // The table's values, computed in a loop that vectorizes (a correctly rounded division).
    for (int64_t k = 0; k < (span_end - span_first) * C; ++k) row[k] = static_cast<float>(src_row[k]) / 255.0f;
    float* t0 = temp + r * out_w;
    if (C == 3) {
      float* t1 = t0 + rows * out_w;
      float* t2 = t1 + rows * out_w;
      for (int64_t x = 0; x < out_w; ++x) {
        const float* src = row + (ws.x_start[x] - span_first) * 3;
        const float* w = ws.x_weights.data() + x * sx;
        const int64_t n = ws.x_count[x];
        float a0 = src[0] * w[0], a1 = src[1] * w[0], a2 = src[2] * w[0];
        for (int64_t j = 1; j < n; ++j) {
          a0 += src[3 * j] * w[j];
          a1 += src[3 * j + 1] * w[j];
          a2 += src[3 * j + 2] * w[j];
        }
        t0[x] = a0;
        t1[x] = a1;
        t2[x] = a2;
      }
    } else {
      for (int64_t x = 0; x < out_w; ++x) {
        const float* src = row + (ws.x_start[x] - span_first) * C;
        const float* w = ws.x_weights.data() + x * sx;
        const int64_t n = ws.x_count[x];
        for (int64_t c = 0; c < C; ++c) {
          float acc = src[c] * w[0];
          for (int64_t j = 1; j < n; ++j) acc += src[j * C + c] * w[j];
          t0[c * rows * out_w + x] = acc;
        }
      }
    }
  }
  // Vertical pass, row by row so the loops over x vectorize; each output still sums its taps in
  // torch's order (t0 * w0, then + t_j * w_j).
  for (int64_t c = 0; c < C; ++c) {
    const float* plane = temp + c * rows * out_w;
    for (int64_t y = 0; y < out_h; ++y) {
      const float* w = ws.y_weights.data() + y * sy;
      const int64_t n = ws.y_count[y];
      const float* first = plane + (ws.y_start[y] - row_first) * out_w;
      float* dst = out + (c * out_h + y) * out_w;
      const float w0 = w[0];
      for (int64_t x = 0; x < out_w; ++x) dst[x] = first[x] * w0;
      for (int64_t j = 1; j < n; ++j) {
        const float wj = w[j];
        const float* src = first + j * out_w;
        for (int64_t x = 0; x < out_w; ++x) dst[x] += src[x] * wj;
      }
      if (flip) std::reverse(dst, dst + out_w);
    }
  }
}

void adjust_brightness(float* img, int64_t c, int64_t h, int64_t w, double factor) {
  const float f = static_cast<float>(factor);
  const int64_t n = c * h * w;
  for (int64_t i = 0; i < n; ++i) img[i] = clamp01(f * img[i]);
}

void adjust_contrast(float* img, int64_t c, int64_t h, int64_t w, double factor) {
  const int64_t hw = h * w;
  double sum = 0;
  if (c == 3) {
    for (int64_t i = 0; i < hw; ++i) sum += gray_of(img[i], img[hw + i], img[2 * hw + i]);
  } else {
    for (int64_t i = 0; i < hw; ++i) sum += img[i];
  }
  const float mean = static_cast<float>(sum / static_cast<double>(hw));
  const float f = static_cast<float>(factor), g = static_cast<float>(1.0 - factor);
  const float offset = g * mean;
  for (int64_t i = 0; i < c * hw; ++i) img[i] = clamp01(f * img[i] + offset);
}

void adjust_saturation(float* img, int64_t c, int64_t h, int64_t w, double factor) {
  if (c != 3) return;
  const int64_t hw = h * w;
  const float f = static_cast<float>(factor), g = static_cast<float>(1.0 - factor);
  float *r = img, *gr = img + hw, *b = img + 2 * hw;
  for (int64_t i = 0; i < hw; ++i) {
    const float l = g * gray_of(r[i], gr[i], b[i]);
    r[i] = clamp01(f * r[i] + l);
    gr[i] = clamp01(f * gr[i] + l);
    b[i] = clamp01(f * b[i] + l);
  }
}

// torchvision's _rgb2hsv / _hsv2rgb, elementwise, in float. Written without branches or libm
// calls (every quotient computed, then selected, as torch computes them) so it vectorizes.
void adjust_hue(float* img, int64_t c, int64_t h, int64_t w, double factor) {
  if (c != 3) return;
  const int64_t hw = h * w;
  const float shift = static_cast<float>(factor);
  float *rp = img, *gp = img + hw, *bp = img + 2 * hw;
  // floor() for |x| < 2^31 through truncation, which SSE2 vectorizes.
  const auto floor_small = [](float x) {
    const float t = static_cast<float>(static_cast<int32_t>(x));
    return t > x ? t - 1.0f : t;
  };
  for (int64_t i = 0; i < hw; ++i) {
    const float r = rp[i], g = gp[i], b = bp[i];
    const float maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
    const bool eqc = maxc == minc;
    const float cr = maxc - minc;
    const float s = cr / (eqc ? 1.0f : maxc);
    const float div = eqc ? 1.0f : cr;
    const float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
    const float hr = bc - gc, hg = 2.0f + rc - bc, hb = 4.0f + gc - rc;
    float hue = maxc == r ? hr : (maxc == g ? hg : hb);
    // fmod(hue / 6 + 1, 1), then torch.remainder(hue + shift, 1): a - floor(a) rounds exactly
    // as both do here.
    hue = hue / 6.0f + 1.0f;
    hue = hue - floor_small(hue);
    hue = hue + shift;
    hue = hue - floor_small(hue);
    const float v = maxc;
    const float h6 = hue * 6.0f;
    const float fi = floor_small(h6);
    const float f = h6 - fi;
    const float sector = fi == 6.0f ? 0.0f : fi;  // torch: int(floor(h * 6)) % 6
    const float p = clamp01(v * (1.0f - s));
    const float q = clamp01(v * (1.0f - s * f));
    const float t = clamp01(v * (1.0f - s * (1.0f - f)));
    // R, G, B per sector 0..5: (v q p p t v), (t v v q p p), (p p t v v q); one select per
    // case keeps the loop free of control flow.
    float nr = p, ng = p, nb = v;
    nr = sector == 4.0f ? t : nr;
    nr = sector == 1.0f ? q : nr;
    nr = sector == 0.0f ? v : nr;
    nr = sector == 5.0f ? v : nr;
    ng = sector == 3.0f ? q : ng;
    ng = sector == 1.0f ? v : ng;
    ng = sector == 2.0f ? v : ng;
    ng = sector == 0.0f ? t : ng;
    nb = sector == 5.0f ? q : nb;
    nb = sector == 2.0f ? t : nb;
    nb = sector == 0.0f ? p : nb;
    nb = sector == 1.0f ? p : nb;
    rp[i] = nr;
    gp[i] = ng;
    bp[i] = nb;
  }
}

void to_grayscale(float* img, int64_t c, int64_t h, int64_t w) {
  if (c != 3) return;
  const int64_t hw = h * w;
  for (int64_t i = 0; i < hw; ++i) {
    const float l = gray_of(img[i], img[hw + i], img[2 * hw + i]);
    img[i] = img[hw + i] = img[2 * hw + i] = l;
  }
}

void gaussian_blur(float* img, int64_t c, int64_t h, int64_t w, int64_t kernel_size, double sigma, Workspace& ws) {
  const int64_t k = kernel_size, half = k / 2;
  ws.kernel.resize(static_cast<size_t>(k));
  float* kernel = ws.kernel.data();
  const float s = static_cast<float>(sigma);
  float total = 0.0f;
  for (int64_t i = 0; i < k; ++i) {
    const float x = static_cast<float>(i - half) / s;
    kernel[i] = std::exp(-0.5f * x * x);
    total += kernel[i];
  }
  for (int64_t i = 0; i < k; ++i) kernel[i] /= total;
  ws.temp.resize(static_cast<size_t>(h * w));
  float* temp = ws.temp.data();
  for (int64_t ch = 0; ch < c; ++ch) {
    float* plane = img + ch * h * w;
    // Horizontal pass: the interior tap by tap (vectorizes over x), the reflected borders per
    // pixel; both sum the taps in order from 0.
    const int64_t lo = std::min(half, w), hi = std::max(lo, w - half);
    for (int64_t y = 0; y < h; ++y) {
      const float* row = plane + y * w;
      float* t = temp + y * w;
      for (int64_t x = 0; x < w; ++x) t[x] = 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        const float kj = kernel[j];
        const int64_t shift = j - half;
        for (int64_t x = lo; x < hi; ++x) t[x] += kj * row[x + shift];
      }
      for (int64_t x = 0; x < w; ++x) {
        if (x >= lo && x < hi) x = hi;
        if (x >= w) break;
        float acc = 0.0f;
        for (int64_t j = 0; j < k; ++j) acc += kernel[j] * row[reflect(x + j - half, w)];
        t[x] = acc;
      }
    }
    for (int64_t y = 0; y < h; ++y) {
      float* dst = plane + y * w;
      if (y >= half && y + half < h) {
        for (int64_t x = 0; x < w; ++x) dst[x] = 0.0f;
        for (int64_t j = 0; j < k; ++j) {
          const float* src = temp + (y + j - half) * w;
          for (int64_t x = 0; x < w; ++x) dst[x] += kernel[j] * src[x];
        }
      } else {
        for (int64_t x = 0; x < w; ++x) dst[x] = 0.0f;
        for (int64_t j = 0; j < k; ++j) {
          const float* src = temp + reflect(y + j - half, h) * w;
          for (int64_t x = 0; x < w; ++x) dst[x] += kernel[j] * src[x];
        }
      }
    }
  }
}

void normalize(float* img, int64_t c, int64_t h, int64_t w, const std::vector<float>& mean,
               const std::vector<float>& std) {
  const int64_t hw = h * w;
  for (int64_t ch = 0; ch < c; ++ch) {
    float* plane = img + ch * hw;
    const float m = mean[ch], s = std[ch];
    for (int64_t i = 0; i < hw; ++i) plane[i] = (plane[i] - m) / s;
  }
}

void apply_augment(const Image& image, int64_t channels, const AugmentOptions& o, const AugmentParams& p, float* out,
                   Workspace& ws, bool normalize_output) {
  const int64_t s = o.size;
  resample(image, channels, p.crop, s, s, 0, 0, s, s, p.flip, out, ws);
  if (p.jitter) {
    for (const int op : p.order) {
      switch (op) {
        case kBrightness:
          if (p.brightness != 1.0) adjust_brightness(out, channels, s, s, p.brightness);
          break;
        case kContrast:
          if (p.contrast != 1.0) adjust_contrast(out, channels, s, s, p.contrast);
          break;
        case kSaturation:
          if (p.saturation != 1.0) adjust_saturation(out, channels, s, s, p.saturation);
          break;
        default:
          if (p.hue != 0.0) adjust_hue(out, channels, s, s, p.hue);
          break;
      }
    }
  }
  if (p.grayscale) to_grayscale(out, channels, s, s);
  if (p.blur) gaussian_blur(out, channels, s, s, o.blur.kernel_size, p.sigma, ws);
  if (normalize_output) normalize(out, channels, s, s, o.mean, o.std);
}

int64_t reduction_for(int64_t crop_h, int64_t crop_w, int64_t out_h, int64_t out_w) {
  int64_t d = 1;
  while (d < 8 && crop_h >= 2 * d * out_h && crop_w >= 2 * d * out_w) d *= 2;
  return d;
}

namespace {

// Relative costs of decoding, per original pixel: entropy decoding (paid for every pixel of every
// row up to the last one a decode needs, whatever is cropped or skipped), the rest (IDCT,
// upsampling, color conversion) per decoded pixel at reduction d, and a decode's fixed part
// (header, tables, buffers) as a fraction of the image. Measured with libjpeg-turbo 2.1.5 on the
// benchmark's photo-like 500 x 375 quality-90 4:2:0 JPEGs (docs/data.md): a whole decode took
// 0.88 ms, entropy decoding alone 0.55 ms, the rest 0.33 ms at full scale and 0.19, 0.13 and
// 0.05 ms at 1/2, 1/4 and 1/8 (the reduced IDCTs do not shrink by d^2), a decode of one row 0.03 ms.
constexpr double kEntropyCost = 1.6, kDecodeCost = 0.09;
double pixel_cost(int64_t scale) { return scale >= 8 ? 0.15 : scale >= 4 ? 0.40 : scale >= 2 ? 0.57 : 1.0; }

double decode_cost(const DecodeRegion& r, int64_t height, int64_t width) {
  const double image = static_cast<double>(height) * static_cast<double>(width);
  const double rows = static_cast<double>(r.box.top + r.box.height) * static_cast<double>(width);
  const double area = static_cast<double>(r.box.height) * static_cast<double>(r.box.width);
  return kDecodeCost * image + kEntropyCost * rows + pixel_cost(r.scale) * area;
}

}  // namespace

DecodeRequest plan_augment_decode(const AugmentParams* params, int64_t views, int64_t size, int64_t height,
                                  int64_t width) {
  DecodeRequest request;
  for (int64_t v = 0; v < views; ++v) {
    const CropBox& c = params[v].crop;
    request.regions.push_back({c, reduction_for(c.height, c.width, size, size)});
    request.view_region[static_cast<size_t>(v)] = v;
  }
  if (views == 2) {
    // One decode of both crops' bounding box at the finer of their scales, when that is cheaper
    // than two decodes.
    const CropBox &a = params[0].crop, &b = params[1].crop;
    DecodeRegion both;
    both.box.top = std::min(a.top, b.top);
    both.box.left = std::min(a.left, b.left);
    both.box.height = std::max(a.top + a.height, b.top + b.height) - both.box.top;
    both.box.width = std::max(a.left + a.width, b.left + b.width) - both.box.left;
    both.scale = std::min(request.regions[0].scale, request.regions[1].scale);
    const double two = decode_cost(request.regions[0], height, width) + decode_cost(request.regions[1], height, width);
    if (decode_cost(both, height, width) <= two) {
      request.regions = {both};
      request.view_region = {0, 0};
    }
  }
  return request;
}

namespace {

// Resize the shorter side to `resize`, then the centered `crop` window.
struct EvalGeometry {
  int64_t rh, rw, top, left;
};

EvalGeometry eval_geometry(const EvalOptions& o, int64_t h, int64_t w) {
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  // torchvision: new_long = int(size * long / short) (Python float division, truncated).
  const int64_t new_long = static_cast<int64_t>(static_cast<double>(o.resize) * static_cast<double>(longer) /
                                                static_cast<double>(shorter));
  const int64_t rh = w <= h ? new_long : o.resize;
  const int64_t rw = w <= h ? o.resize : new_long;
  return {rh, rw, round_half_even((rh - o.crop) / 2.0), round_half_even((rw - o.crop) / 2.0)};
}

}  // namespace

DecodeRequest plan_eval_decode(const EvalOptions& o, int64_t h, int64_t w) {
  const auto [rh, rw, top, left] = eval_geometry(o, h, w);
  DecodeRegion r;
  r.scale = reduction_for(h, w, rh, rw);
  // The source pixels the window's taps reach: the window mapped back, widened by the filter's
  // support and one (reduced) pixel for rounding.
  const auto span = [&](int64_t first, int64_t n, int64_t in, int64_t out, int64_t& offset, int64_t& length) {
    const double scale = static_cast<double>(in) / static_cast<double>(out);
    const double support = std::max(scale, 1.0) + static_cast<double>(r.scale) + 1.0;
    const int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(std::floor(first * scale - support)));
    const int64_t hi = std::min<int64_t>(in, static_cast<int64_t>(std::ceil((first + n) * scale + support)));
    offset = lo;
    length = hi - lo;
  };
  span(top, o.crop, h, rh, r.box.top, r.box.height);
  span(left, o.crop, w, rw, r.box.left, r.box.width);
  DecodeRequest request;
  request.regions = {r};
  return request;
}

void apply_eval(const Image& image, int64_t channels, const EvalOptions& o, float* out, Workspace& ws,
                bool normalize_output) {
  const int64_t h = image.original_height(), w = image.original_width();
  const auto [rh, rw, top, left] = eval_geometry(o, h, w);
  CropBox whole;
  whole.height = h;
  whole.width = w;
  resample(image, channels, whole, rh, rw, top, left, o.crop, o.crop, false, out, ws);
  if (normalize_output) normalize(out, channels, o.crop, o.crop, o.mean, o.std);
}

}  // namespace s2bnn::data
