// Packed (xnor-popcount) binary convolution on the CPU: pack_signs, pack_weights and
// bconv2d_packed (format and conventions: kernels/popcount.h, docs/bconv.md).
//
// bconv2d_packed has five CPU variants, chosen at run time:
//   "avx512"    AVX-512 VPOPCNTDQ: 16 output channels (two zmm of words) x 4 output pixels per
//               register tile, one vpopcntq per 8 (pixel, channel) pairs and packed word; for
//               C <= 32, 32-bit lanes (vpopcntd) and 32 channels per tile.
//   "avx2"      AVX2 nibble-LUT popcount (pshufb), byte counters flushed with vpsadbw.
//   "scalar"    the same tiling with the scalar popcnt instruction.
//   "reference" one output element at a time, the per-element function (and weight layout) the
//               CUDA popc kernel runs.
//   "mma-emulation"  the CUDA b1 tensor-core kernel's fragments and AND-popc arithmetic, run on
//               the CPU (tests; never the default).
// The default is the first the CPU supports, in that order; S2BNN_BCONV_KERNEL=<name> forces one
// (read once), and the internal op s2bnn::bconv2d_packed_kernel takes the name per call (tests).
//
// The tiled variants read a copy of the packed input padded with 0 words (+1) -- no im2col: a
// patch is kh runs of kw * words contiguous words -- and subtract the +1 taps' value at border
// pixels, which makes them exact.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define S2BNN_X86 1
#endif

#include "checks.h"
#include "kernels/popcount.h"
#include "ops.h"
#include "packed.h"

namespace s2bnn::packed {
namespace {

using kernels::BconvShape;

constexpr int64_t kNR = 16;  // output channels per weight block
constexpr int64_t kMR = 4;   // output pixels per register tile
// C <= 32: every word's high half is 0, so the AVX-512 kernel runs on 32-bit lanes (vpopcntd):
// 32 output channels per block, half the popcounts.
constexpr int64_t kNRHalf = 32;

enum class Kernel { Reference, Scalar, Avx2, Avx512, MmaEmulation };

const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::Reference: return "reference";
    case Kernel::Scalar: return "scalar";
    case Kernel::Avx2: return "avx2";
    case Kernel::Avx512: return "avx512";
    case Kernel::MmaEmulation: return "mma-emulation";
  }
  return "?";
}

bool supported(Kernel k) {
#if defined(S2BNN_X86)
  switch (k) {
    case Kernel::Reference:
    case Kernel::MmaEmulation: return true;
    case Kernel::Scalar: return __builtin_cpu_supports("popcnt");
    case Kernel::Avx2: return __builtin_cpu_supports("avx2");
    case Kernel::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
  }
  return false;
#else
  return k == Kernel::Reference || k == Kernel::Scalar || k == Kernel::MmaEmulation;
#endif
}

std::vector<Kernel> available() {
  std::vector<Kernel> out;
  for (Kernel k : {Kernel::Avx512, Kernel::Avx2, Kernel::Scalar, Kernel::Reference, Kernel::MmaEmulation}) {
    if (supported(k)) out.push_back(k);
  }
  return out;
}

Kernel parse_kernel(const std::string& name, const char* where) {
  for (Kernel k : {Kernel::Avx512, Kernel::Avx2, Kernel::Scalar, Kernel::Reference, Kernel::MmaEmulation}) {
    if (name == kernel_name(k)) {
      TORCH_CHECK(supported(k), where, ": kernel '", name, "' is not supported by this CPU");
      return k;
    }
  }
  TORCH_CHECK(false, where, ": unknown kernel '", name,
              "' (expected avx512, avx2, scalar, reference or mma-emulation)");
  return Kernel::Reference;
}

Kernel default_kernel() {
  static const Kernel chosen = [] {
    const char* env = std::getenv("S2BNN_BCONV_KERNEL");
    if (env && *env) return parse_kernel(env, "S2BNN_BCONV_KERNEL");
    return available().front();
  }();
  return chosen;
}

// ---- packing ---------------------------------------------------------------------------------

// rows x channels floats (row-major) -> rows x words packed words, bit set iff v (+ bias) < 0.
void pack_rows_scalar(const float* src, const float* bias, int64_t begin, int64_t end,
                      int64_t channels, int64_t words, uint64_t* out) {
  for (int64_t r = begin; r < end; ++r) {
    for (int64_t wd = 0; wd < words; ++wd) {
      out[r * words + wd] = kernels::pack_word(src + r * channels, bias, channels, wd);
    }
  }
}

#if defined(S2BNN_X86)
__attribute__((target("avx512f"))) void pack_rows_avx512(const float* src, const float* bias,
                                                         int64_t begin, int64_t end, int64_t channels,
                                                         int64_t words, uint64_t* out) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r = begin; r < end; ++r) {
    const float* row = src + r * channels;
    uint64_t* dst = out + r * words;
    for (int64_t wd = 0; wd < words; ++wd) {
      uint64_t bits = 0;
      const int64_t c0 = wd * 64;
      const int64_t count = std::min<int64_t>(64, channels - c0);
      for (int64_t j = 0; j < count; j += 16) {
        const int64_t n = std::min<int64_t>(16, count - j);
        const __mmask16 m = n == 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, row + c0 + j);
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + c0 + j));
        // Ordered less-than: NaN compares false and packs as +1, like pack_word.
        const __mmask16 neg = _mm512_mask_cmp_ps_mask(m, v, zero, _CMP_LT_OQ);
        bits |= static_cast<uint64_t>(neg) << j;
      }
      dst[wd] = bits;
    }
  }
}
#endif

void pack_rows(const float* src, const float* bias, int64_t rows, int64_t channels, int64_t words,
               uint64_t* out) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, channels));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
#if defined(S2BNN_X86)
    if (__builtin_cpu_supports("avx512f")) {
      pack_rows_avx512(src, bias, begin, end, channels, words, out);
      return;
    }
#endif
    pack_rows_scalar(src, bias, begin, end, channels, words, out);
  });
}

}  // namespace

void pack_signs_args(const at::Tensor& x, const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "pack_signs";
  checks::floating(op, "x", x);
  checks::rank(op, "x", x, 4, "[N, C, H, W]");
  TORCH_CHECK(x.size(1) > 0, op, ": x must have at least one channel, got shape ", checks::shape_of(x));
  if (bias && bias->defined()) {
    checks::floating(op, "bias", *bias);
    TORCH_CHECK(bias->device() == x.device(), op, ": bias is on ", bias->device(), " but x is on ",
                x.device());
    TORCH_CHECK(bias->numel() == x.size(1), op, ": bias must hold one value per channel (", x.size(1),
                " for x of shape ", checks::shape_of(x), "), got shape ", checks::shape_of(*bias));
  }
}

void pack_weights_args(const at::Tensor& w) {
  constexpr const char* op = "pack_weights";
  checks::floating(op, "w", w);
  checks::rank(op, "w", w, 4, "[out_channels, in_channels, kH, kW]");
  TORCH_CHECK(w.size(1) > 0, op, ": w must have at least one input channel, got shape ",
              checks::shape_of(w));
}

at::Tensor pack_signs_cpu(const at::Tensor& x, const c10::optional<at::Tensor>& bias) {
  pack_signs_args(x, bias);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor b;
  if (bias && bias->defined()) b = bias->to(at::kFloat).contiguous();
  // NHWC float32: a no-op for channels_last float32 input.
  const at::Tensor src = x.to(at::kFloat).contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t words = kernels::packed_words(C);
  at::Tensor out = at::empty({N, H, W, words}, x.options().dtype(at::kLong));
  pack_rows(src.data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr, N * H * W, C, words,
            reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>()));
  return out;
}

at::Tensor pack_weights_cpu(const at::Tensor& w) {
  pack_weights_args(w);
  const int64_t O = w.size(0), C = w.size(1), kh = w.size(2), kw = w.size(3);
  const at::Tensor src = w.to(at::kFloat).permute({0, 2, 3, 1}).contiguous();
  const int64_t words = kernels::packed_words(C);
  at::Tensor out = at::empty({O, kh, kw, words}, w.options().dtype(at::kLong));
  pack_rows(src.data_ptr<float>(), nullptr, O * kh * kw, C, words,
            reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>()));
  return out;
}

// ---- convolution -----------------------------------------------------------------------------

void prepared_weights_args(const at::Tensor& w, int64_t channels) {
  constexpr const char* op = "bconv_prepare";
  TORCH_CHECK(w.defined(), op, ": w is undefined");
  TORCH_CHECK(w.scalar_type() == at::kLong, op, ": w must be int64 packed weights from pack_weights, got ",
              w.scalar_type());
  checks::rank(op, "w", w, 4, "[out_channels, kH, kW, words] (from pack_weights)");
  const int64_t words = w.size(3);
  TORCH_CHECK(channels > 64 * (words - 1) && channels <= 64 * words, op, ": channels must be in (", 64 * (words - 1),
              ", ", 64 * words, "] for ", words, " packed words per pixel, got ", channels);
}

// Checks shared by the CPU and CUDA kernels; returns the geometry.
BconvShape bconv_shape(const at::Tensor& x, const at::Tensor& w, int64_t channels, int64_t stride,
                       int64_t padding, const c10::optional<at::Tensor>& scale,
                       const c10::optional<at::Tensor>& shift) {
  constexpr const char* op = "bconv2d_packed";
  TORCH_CHECK(x.defined(), op, ": x is undefined");
  TORCH_CHECK(w.defined(), op, ": w is undefined");
  TORCH_CHECK(x.scalar_type() == at::kLong, op,
              ": x must be int64 packed signs from pack_signs, got ", x.scalar_type());
  TORCH_CHECK(w.scalar_type() == at::kLong, op,
              ": w must be int64 packed weights from pack_weights, got ", w.scalar_type());
  checks::rank(op, "x", x, 4, "[N, H, W, words] (from pack_signs)");
  checks::rank(op, "w", w, 4, "[out_channels, kH, kW, words] (from pack_weights)");
  TORCH_CHECK(w.device() == x.device(), op, ": w is on ", w.device(), " but x is on ", x.device());
  TORCH_CHECK(w.size(3) == x.size(3), op, ": w has ", w.size(3), " words per tap but x has ", x.size(3),
              " (x ", checks::shape_of(x), ", w ", checks::shape_of(w), ")");
  TORCH_CHECK(w.size(1) == w.size(2) && w.size(1) > 0, op, ": w must have a square kernel, got shape ",
              checks::shape_of(w));
  TORCH_CHECK(w.size(0) > 0, op, ": w must have at least one output channel, got shape ",
              checks::shape_of(w));
  const int64_t words = x.size(3);
  TORCH_CHECK(channels > 64 * (words - 1) && channels <= 64 * words, op, ": channels must be in (",
              64 * (words - 1), ", ", 64 * words, "] for ", words, " packed words per pixel, got ",
              channels);
  TORCH_CHECK(stride > 0, op, ": stride must be a positive integer, got ", stride);
  TORCH_CHECK(padding >= 0, op, ": padding must be a non-negative integer, got ", padding);
  BconvShape s{};
  s.batch = x.size(0);
  s.height = x.size(1);
  s.width = x.size(2);
  s.words = words;
  s.channels = channels;
  s.out_channels = w.size(0);
  s.kernel = w.size(1);
  s.stride = stride;
  s.padding = padding;
  TORCH_CHECK(s.height + 2 * padding >= s.kernel && s.width + 2 * padding >= s.kernel, op,
              ": the padded input (", s.height, "x", s.width, " + 2 x ", padding,
              ") is smaller than the ", s.kernel, "x", s.kernel, " kernel");
  TORCH_CHECK(s.kernel * s.kernel * s.words * 64 < (int64_t(1) << 31), op,
              ": the kernel's taps x channels must stay below 2^31 (int32 accumulators), got w ",
              checks::shape_of(w));
  s.out_height = kernels::bconv_out_size(s.height, s.kernel, stride, padding);
  s.out_width = kernels::bconv_out_size(s.width, s.kernel, stride, padding);
  const bool has_scale = scale && scale->defined();
  const bool has_shift = shift && shift->defined();
  TORCH_CHECK(has_scale || !has_shift, op, ": shift needs scale (pass ones to shift only)");
  for (auto [name, t] : {std::pair<const char*, const c10::optional<at::Tensor>*>{"scale", &scale},
                         {"shift", &shift}}) {
    if (!(*t) || !(*t)->defined()) continue;
    const at::Tensor& v = **t;
    TORCH_CHECK(v.scalar_type() == at::kFloat, op, ": ", name, " must be float32, got ", v.scalar_type());
    TORCH_CHECK(v.device() == x.device(), op, ": ", name, " is on ", v.device(), " but x is on ", x.device());
    TORCH_CHECK(v.numel() == s.out_channels, op, ": ", name, " must hold one value per output channel (",
                s.out_channels, "), got shape ", checks::shape_of(v));
  }
  return s;
}

namespace {

// ---- register tiles --------------------------------------------------------------------------
// A tile is mr (<= kMR) output pixels x kNR output channels of one output row. The input is the
// (zero-word padded) packed image, so a patch is `kh` runs of `run` = kw * words contiguous words,
// `row_stride` words apart; consecutive pixels' patches start `lda` = stride * words words apart:
//   ones[i][j] = sum_ky sum_r popcount(a[ky * row_stride + i * lda + r] ^ b[(ky * run + r) * kNR + j])
// Then the epilogue in registers: value = base - 2 * ones - border[i][j]
// (kernels::accumulator_from_xor), written as int32 or as float value * scale[j] + shift[j], for
// the first `lanes` channels.
struct TileIn {
  const uint64_t* a;     // the first pixel's patch
  int64_t lda;           // words between consecutive pixels' patches
  int64_t row_stride;    // words between the kernel rows of a patch
  int64_t kh;            // kernel rows
  int64_t run;           // words per kernel row
  const uint64_t* b;     // weight block [kh * run][kNR]
  const uint32_t* b32;   // half-word tiles: weight block [kh * run][kNRHalf] (low halves)
};

struct TileOut {
  int32_t* acc;           // int32 output at (pixel 0, channel o0), or null
  float* out;             // float output at (pixel 0, channel o0), or null
  int64_t ldo;            // elements between consecutive pixels (O)
  int64_t lanes;          // valid channels in this block (<= kNR)
  int64_t base;           // taps * C
  const int32_t* border;  // [mr][kNR] out-of-image corrections, or null (none in this tile)
  const float* scale;     // at o0, or null
  const float* shift;     // at o0, or null
};

// Scalar epilogue of an [mr][kNR] block of popcounts.
void store_tile(const uint64_t* ones, int64_t mr, const TileOut& t) {
  for (int64_t i = 0; i < mr; ++i) {
    const uint64_t* cnt = ones + i * kNR;
    for (int64_t j = 0; j < t.lanes; ++j) {
      const int32_t v = kernels::accumulator_from_xor(static_cast<int64_t>(cnt[j]), 1, t.base,
                                                      t.border ? t.border[i * kNR + j] : 0);
      if (t.acc) {
        t.acc[i * t.ldo + j] = v;
      } else {
        t.out[i * t.ldo + j] = kernels::bconv_affine(v, t.scale[j], t.shift ? t.shift[j] : 0.0f);
      }
    }
  }
}

#define S2BNN_TILE_SCALAR_BODY(POPCOUNT)                                \
  uint64_t acc[MR * kNR] = {};                                          \
  const uint64_t* bk = in.b;                                            \
  for (int64_t ky = 0; ky < in.kh; ++ky) {                              \
    const uint64_t* row = in.a + ky * in.row_stride;                    \
    for (int64_t r = 0; r < in.run; ++r, bk += kNR) {                   \
      for (int i = 0; i < MR; ++i) {                                    \
        const uint64_t ai = row[i * in.lda + r];                        \
        for (int j = 0; j < kNR; ++j) acc[i * kNR + j] += POPCOUNT(ai ^ bk[j]); \
      }                                                                 \
    }                                                                   \
  }                                                                     \
  store_tile(acc, MR, t);

template <int MR>
void tile_portable(const TileIn& in, const TileOut& t) {
  S2BNN_TILE_SCALAR_BODY(kernels::popcount64)
}

#if defined(S2BNN_X86)
template <int MR>
__attribute__((target("popcnt"))) void tile_scalar(const TileIn& in, const TileOut& t) {
  S2BNN_TILE_SCALAR_BODY(__builtin_popcountll)
}

// GCC 12's masked AVX-512 intrinsics trip -Wuninitialized on their own internals.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <int MR>
__attribute__((target("avx512f,avx512vpopcntdq"))) void tile_avx512(const TileIn& in, const TileOut& t) {
  __m512i acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
  const uint64_t* bk = in.b;
  for (int64_t ky = 0; ky < in.kh; ++ky) {
    const uint64_t* row = in.a + ky * in.row_stride;
    for (int64_t r = 0; r < in.run; ++r, bk += kNR) {
      const __m512i b0 = _mm512_loadu_si512(bk);
      const __m512i b1 = _mm512_loadu_si512(bk + 8);
      for (int i = 0; i < MR; ++i) {
        const __m512i ai = _mm512_set1_epi64(static_cast<long long>(row[i * in.lda + r]));
        acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_popcnt_epi64(_mm512_xor_si512(ai, b0)));
        acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_popcnt_epi64(_mm512_xor_si512(ai, b1)));
      }
    }
  }
  // Epilogue in registers: counts fit in int32 (bconv_shape checks taps * 64 * words < 2^31).
  const __mmask16 mask = t.lanes >= 16 ? __mmask16(0xffff) : __mmask16((1u << t.lanes) - 1);
  const __m512i base = _mm512_set1_epi32(static_cast<int32_t>(t.base));
  __m512 scale = _mm512_setzero_ps(), shift = _mm512_setzero_ps();
  if (!t.acc) {
    scale = _mm512_maskz_loadu_ps(mask, t.scale);
    if (t.shift) shift = _mm512_maskz_loadu_ps(mask, t.shift);
  }
  for (int i = 0; i < MR; ++i) {
    const __m512i ones = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(acc[i][0])),
                                            _mm512_cvtepi64_epi32(acc[i][1]), 1);
    __m512i v = _mm512_sub_epi32(base, _mm512_slli_epi32(ones, 1));
    if (t.border) v = _mm512_sub_epi32(v, _mm512_loadu_si512(t.border + i * kNR));
    if (t.acc) {
      _mm512_mask_storeu_epi32(t.acc + i * t.ldo, mask, v);
    } else {
      _mm512_mask_storeu_ps(t.out + i * t.ldo, mask,
                            _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v), scale), shift));
    }
  }
}

// The half-word AVX-512 tile (C <= 32): 32 output channels in two zmm of 32-bit lanes; `border`
// rows are kNRHalf apart.
template <int MR>
__attribute__((target("avx512f,avx512vpopcntdq"))) void tile_avx512_half(const TileIn& in, const TileOut& t) {
  __m512i acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
  const uint32_t* bk = in.b32;
  for (int64_t ky = 0; ky < in.kh; ++ky) {
    const uint64_t* row = in.a + ky * in.row_stride;
    for (int64_t r = 0; r < in.run; ++r, bk += kNRHalf) {
      const __m512i b0 = _mm512_loadu_si512(bk);
      const __m512i b1 = _mm512_loadu_si512(bk + 16);
      for (int i = 0; i < MR; ++i) {
        const __m512i ai = _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(row[i * in.lda + r])));
        acc[i][0] = _mm512_add_epi32(acc[i][0], _mm512_popcnt_epi32(_mm512_xor_si512(ai, b0)));
        acc[i][1] = _mm512_add_epi32(acc[i][1], _mm512_popcnt_epi32(_mm512_xor_si512(ai, b1)));
      }
    }
  }
  const int64_t lanes1 = t.lanes > 16 ? t.lanes - 16 : 0;
  const __mmask16 mask[2] = {t.lanes >= 16 ? __mmask16(0xffff) : __mmask16((1u << t.lanes) - 1),
                             lanes1 >= 16 ? __mmask16(0xffff) : __mmask16((1u << lanes1) - 1)};
  const __m512i base = _mm512_set1_epi32(static_cast<int32_t>(t.base));
  for (int h = 0; h < 2; ++h) {
    __m512 scale = _mm512_setzero_ps(), shift = _mm512_setzero_ps();
    if (!t.acc) {
      scale = _mm512_maskz_loadu_ps(mask[h], t.scale + 16 * h);
      if (t.shift) shift = _mm512_maskz_loadu_ps(mask[h], t.shift + 16 * h);
    }
    for (int i = 0; i < MR; ++i) {
      __m512i v = _mm512_sub_epi32(base, _mm512_slli_epi32(acc[i][h], 1));
      if (t.border) v = _mm512_sub_epi32(v, _mm512_loadu_si512(t.border + i * kNRHalf + 16 * h));
      if (t.acc) {
        _mm512_mask_storeu_epi32(t.acc + i * t.ldo + 16 * h, mask[h], v);
      } else {
        _mm512_mask_storeu_ps(t.out + i * t.ldo + 16 * h, mask[h],
                              _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v), scale), shift));
      }
    }
  }
}
#pragma GCC diagnostic pop

// Byte counters hold at most 8 per step, so they are flushed into 64-bit lanes every 31 steps.
template <int MR>
__attribute__((target("avx2"))) void tile_avx2(const TileIn& in, const TileOut& t) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2,
                                       2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  __m256i wide[MR][4], bytes[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int q = 0; q < 4; ++q) wide[i][q] = bytes[i][q] = zero;
  int steps = 0;
  const uint64_t* bk = in.b;
  for (int64_t ky = 0; ky < in.kh; ++ky) {
    const uint64_t* row = in.a + ky * in.row_stride;
    for (int64_t r = 0; r < in.run; ++r, bk += kNR) {
      for (int q = 0; q < 4; ++q) {
        const __m256i bq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bk + 4 * q));
        for (int i = 0; i < MR; ++i) {
          const __m256i v = _mm256_xor_si256(_mm256_set1_epi64x(static_cast<long long>(row[i * in.lda + r])), bq);
          const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
          const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
          bytes[i][q] = _mm256_add_epi8(bytes[i][q], _mm256_add_epi8(lo, hi));
        }
      }
      if (++steps == 31) {
        steps = 0;
        for (int i = 0; i < MR; ++i)
          for (int q = 0; q < 4; ++q) {
            wide[i][q] = _mm256_add_epi64(wide[i][q], _mm256_sad_epu8(bytes[i][q], zero));
            bytes[i][q] = zero;
          }
      }
    }
  }
  alignas(32) uint64_t ones[MR * kNR];
  for (int i = 0; i < MR; ++i)
    for (int q = 0; q < 4; ++q) {
      const __m256i total = _mm256_add_epi64(wide[i][q], _mm256_sad_epu8(bytes[i][q], zero));
      _mm256_store_si256(reinterpret_cast<__m256i*>(ones + i * kNR + 4 * q), total);
    }
  store_tile(ones, MR, t);
}
#endif

using TileFn = void (*)(const TileIn&, const TileOut&);

// tiles[mr - 1] handles mr pixels.
std::array<TileFn, kMR> tiles_for(Kernel kernel) {
#if defined(S2BNN_X86)
  switch (kernel) {
    case Kernel::Avx512: return {&tile_avx512<1>, &tile_avx512<2>, &tile_avx512<3>, &tile_avx512<4>};
    case Kernel::Avx2: return {&tile_avx2<1>, &tile_avx2<2>, &tile_avx2<3>, &tile_avx2<4>};
    default: return {&tile_scalar<1>, &tile_scalar<2>, &tile_scalar<3>, &tile_scalar<4>};
  }
#else
  return {&tile_portable<1>, &tile_portable<2>, &tile_portable<3>, &tile_portable<4>};
#endif
}

// Output writers: int32 accumulators, or acc * scale + shift in float32.
struct Epilogue {
  int32_t* acc = nullptr;
  float* out = nullptr;
  const float* scale = nullptr;
  const float* shift = nullptr;
  void write(int64_t index, int64_t o, int32_t value) const {
    if (acc) {
      acc[index] = value;
    } else {
      out[index] = kernels::bconv_affine(value, scale[o], shift ? shift[o] : 0.0f);
    }
  }
};

// One output element at a time with kernels::bconv_output_element on the weights transposed to
// [K, O]: exactly what the CUDA popc kernel runs per thread (test/bconv.test.ts drives it).
void run_reference(const uint64_t* x, const uint64_t* w, const BconvShape& s, const Epilogue& epi) {
  const int64_t pixels = s.batch * s.out_height * s.out_width;
  const int64_t K = s.kernel * s.kernel * s.words;
  std::vector<uint64_t> w_t(static_cast<size_t>(K * s.out_channels));
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t kk = 0; kk < K; ++kk) w_t[kk * s.out_channels + o] = w[o * K + kk];
  const int64_t O = s.out_channels;
  at::parallel_for(0, pixels, std::max<int64_t>(1, 4096 / O), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t ox = p % s.out_width, oy = (p / s.out_width) % s.out_height;
      const int64_t n = p / (s.out_width * s.out_height);
      for (int64_t o = 0; o < O; ++o) epi.write(p * O + o, o, kernels::bconv_output_element(x, w_t.data(), s, n, oy, ox, o, 1, O));
    }
  });
}

// The CUDA b1 tensor-core kernel's arithmetic on the CPU: the same tiles (16 pixels x 8 output
// channels per warp), lanes, fragment loads, patch popcounts reduced over each lane group, and
// epilogue (kernels/popcount.h); the mma.m16n8k256 .and.popc itself is done here as a matrix
// product of the fragments placed by the PTX layout. Slow: for tests.
void run_mma_emulation(const uint64_t* x, const uint64_t* w, const BconvShape& s, const Epilogue& epi) {
  using namespace kernels;
  const int64_t P = bconv_pixels(s), O = s.out_channels;
  const int64_t tiles_m = (P + kMmaM - 1) / kMmaM, tiles_n = (O + kMmaN - 1) / kMmaN;
  const int64_t slices = mma_slices(s);
  at::parallel_for(0, tiles_m * tiles_n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t pixel0 = (tile / tiles_n) * kMmaM, o0 = (tile % tiles_n) * kMmaN;
      int64_t d[32][4] = {};
      int64_t patch_pop[32][2] = {};  // per lane: its chunks of rows g and g + 8
      for (int64_t slice = 0; slice < slices; ++slice) {
        uint32_t a[32][4], b[32][2];
        uint32_t A[kMmaM][kMmaChunks] = {}, B[kMmaN][kMmaChunks] = {};
        for (int lane = 0; lane < 32; ++lane) {
          mma_load_a(x, s, pixel0, slice, lane, a[lane]);
          mma_load_b(w, s, o0, slice, lane, b[lane]);
          patch_pop[lane][0] += popcount64(a[lane][0]) + popcount64(a[lane][2]);
          patch_pop[lane][1] += popcount64(a[lane][1]) + popcount64(a[lane][3]);
          for (int r = 0; r < 4; ++r) A[mma_a_row(lane, r)][mma_a_chunk(lane, r)] = a[lane][r];
          for (int r = 0; r < 2; ++r) B[mma_b_col(lane)][mma_b_chunk(lane, r)] = b[lane][r];
        }
        for (int lane = 0; lane < 32; ++lane) {
          for (int r = 0; r < 4; ++r) {
            const int row = mma_d_row(lane, r), col = mma_d_col(lane, r);
            for (int q = 0; q < kMmaChunks; ++q) d[lane][r] += popcount64(A[row][q] & B[col][q]);
          }
        }
      }
      for (int lane = 0; lane < 32; ++lane) {
        for (int r = 0; r < 4; ++r) {
          const int64_t pixel = pixel0 + mma_d_row(lane, r), o = o0 + mma_d_col(lane, r);
          if (pixel >= P || o >= O) continue;
          // The CUDA kernel sums the group's four lanes with __shfl_xor_sync(1) and (2).
          int64_t patch_ones = 0;
          for (int t = 0; t < 4; ++t) patch_ones += patch_pop[(lane & ~3) + t][r >= 2 ? 1 : 0];
          epi.write(pixel * O + o, o, mma_output_value(w, s, pixel, o, d[lane][r], patch_ones));
        }
      }
    }
  });
}

// What the tiled kernels read of the weights: [block][K][nr] words (lanes of o >= O are 0 and
// discarded; 32-bit words for the half-word AVX-512 tile) and the +1 tap values [taps][O]. A
// packed model makes them once (bconv_prepare); a plain bconv2d_packed call makes them each time.
struct TiledWeights {
  at::Tensor blocked;   // int32 storage
  at::Tensor plus_one;  // int32 [taps * O]
};

bool half_words(Kernel kernel, int64_t channels) { return kernel == Kernel::Avx512 && channels <= 32; }

int64_t tiled_blocked_ints(int64_t out_channels, int64_t K, bool half) {
  const int64_t nr = half ? kNRHalf : kNR;
  return (out_channels + nr - 1) / nr * K * nr * (half ? 1 : 2);
}

TiledWeights tile_weights(const uint64_t* w, int64_t O, int64_t taps, int64_t Cw, int64_t channels, Kernel kernel) {
  const int64_t K = taps * Cw;
  const bool half = half_words(kernel, channels);
  const int64_t nr = half ? kNRHalf : kNR;
  const int64_t blocks = (O + nr - 1) / nr;
  // Scratch as tensors: the s2bnn CPU allocator reuses blocks of 256 KiB and more, so the 1.2 MB
  // of the largest layer is neither faulted in nor zeroed serially on every call.
  TiledWeights out{at::empty({tiled_blocked_ints(O, K, half)}, at::kInt), at::empty({taps * O}, at::kInt)};
  uint64_t* wb = half ? nullptr : reinterpret_cast<uint64_t*>(out.blocked.data_ptr<int32_t>());
  uint32_t* wb32 = half ? reinterpret_cast<uint32_t*>(out.blocked.data_ptr<int32_t>()) : nullptr;
  int32_t* plus_one = out.plus_one.data_ptr<int32_t>();
  // In parallel too: serial, it was a quarter of the 1024-channel 7x7 layer's time at 2 threads.
  at::parallel_for(0, blocks, 1, [&](int64_t blk_begin, int64_t blk_end) {
    for (int64_t o = blk_begin * nr; o < blk_end * nr; ++o) {
      const int64_t blk = o / nr, lane = o % nr;
      for (int64_t kk = 0; kk < K; ++kk) {
        const uint64_t word = o < O ? w[o * K + kk] : 0;  // lanes past O: 0, discarded
        if (half) {
          wb32[(blk * K + kk) * nr + lane] = static_cast<uint32_t>(word);
        } else {
          wb[(blk * K + kk) * nr + lane] = word;
        }
      }
      if (o >= O) continue;
      for (int64_t t = 0; t < taps; ++t) {
        plus_one[t * O + o] = static_cast<int32_t>(kernels::plus_one_tap_value(w + (o * taps + t) * Cw, Cw, channels));
      }
    }
  });
  return out;
}

void run_tiled(const uint64_t* x, const TiledWeights& weights, const BconvShape& s, const Epilogue& epi,
               Kernel kernel) {
  const int64_t O = s.out_channels, k = s.kernel, taps = k * k, Cw = s.words, p = s.padding;
  const int64_t K = taps * Cw;  // words per patch
  const bool half = half_words(kernel, s.channels);
  const int64_t nr = half ? kNRHalf : kNR;
  const int64_t blocks = (O + nr - 1) / nr;
  const uint64_t* wb = half ? nullptr : reinterpret_cast<const uint64_t*>(weights.blocked.data_ptr<int32_t>());
  const uint32_t* wb32 = half ? reinterpret_cast<const uint32_t*>(weights.blocked.data_ptr<int32_t>()) : nullptr;
  const int32_t* plus_one = weights.plus_one.data_ptr<int32_t>();
  // The input with `padding` rows and columns of 0 words (+1) around each image: every tap reads
  // memory, and the epilogue subtracts what the +1 taps added.
  const int64_t Hp = s.height + 2 * p, Wp = s.width + 2 * p;
  at::Tensor padded_buffer;
  uint64_t* padded = nullptr;
  const uint64_t* xp = x;
  if (p > 0) {
    padded_buffer = at::zeros({s.batch * Hp * Wp * Cw}, at::kLong);
    padded = reinterpret_cast<uint64_t*>(padded_buffer.data_ptr<int64_t>());
    at::parallel_for(0, s.batch * s.height, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t n = r / s.height, y = r % s.height;
        std::memcpy(padded + ((n * Hp + y + p) * Wp + p) * Cw, x + r * s.width * Cw,
                    s.width * Cw * sizeof(uint64_t));
      }
    });
    xp = padded;
  }
  // Output columns whose taps all lie inside the image: [ox_in0, ox_in1).
  int64_t ox_in0 = s.out_width, ox_in1 = 0;
  for (int64_t ox = 0; ox < s.out_width; ++ox) {
    int64_t kx0, kx1;
    kernels::valid_taps(ox, s.width, k, s.stride, p, &kx0, &kx1);
    if (kx0 == 0 && kx1 == k) {
      ox_in0 = std::min(ox_in0, ox);
      ox_in1 = ox + 1;
    }
  }
  auto tiles = tiles_for(kernel);
#if defined(S2BNN_X86)
  if (half) tiles = {&tile_avx512_half<1>, &tile_avx512_half<2>, &tile_avx512_half<3>, &tile_avx512_half<4>};
#endif
  const int64_t rows = s.batch * s.out_height;
  const int64_t threads = at::get_num_threads();
  // Few rows (late layers, 7x7): also split the output channels so every thread has work.
  const int64_t splits = std::min<int64_t>(blocks, std::max<int64_t>(1, (4 * threads + rows - 1) / rows));
  const int64_t per_split = (blocks + splits - 1) / splits;

  // Items are split-major (item = split * rows + row), and a thread walks its items block by
  // block: one block's weights (K x nr words) stay in L1/L2 while they meet every row of the
  // thread's range, instead of streaming all weights once per row (the 7x7 layers hold 1.2 MB).
  at::parallel_for(0, rows * splits, 1, [&](int64_t begin, int64_t end) {
    alignas(64) int32_t border[kMR * kNRHalf];
    for (int64_t first = begin; first < end;) {
      const int64_t split = first / rows;
      const int64_t last = std::min(end, (split + 1) * rows);  // this split's rows in the range
      const int64_t b0 = split * per_split, b1 = std::min(blocks, b0 + per_split);
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t o0 = blk * nr;
        TileIn in;
        in.lda = s.stride * Cw;
        in.row_stride = Wp * Cw;
        in.kh = k;
        in.run = k * Cw;
        in.b = half ? nullptr : wb + blk * K * nr;
        in.b32 = half ? wb32 + blk * K * nr : nullptr;
        TileOut t;
        t.ldo = O;
        t.lanes = std::min<int64_t>(nr, O - o0);
        t.base = taps * s.channels;
        t.scale = epi.scale ? epi.scale + o0 : nullptr;
        t.shift = epi.shift ? epi.shift + o0 : nullptr;
        for (int64_t item = first; item < last; ++item) {
          const int64_t row = item - split * rows;
          const int64_t n = row / s.out_height, oy = row % s.out_height;
          int64_t ky0, ky1;
          kernels::valid_taps(oy, s.height, k, s.stride, p, &ky0, &ky1);
          const bool row_inside = ky0 == 0 && ky1 == k;
          const uint64_t* row_a = xp + (n * Hp + oy * s.stride) * Wp * Cw;  // kernel row 0, pixel 0
          const int64_t out_row = row * s.out_width;
          for (int64_t ox0 = 0; ox0 < s.out_width; ox0 += kMR) {
            const int64_t mr = std::min<int64_t>(kMR, s.out_width - ox0);
            in.a = row_a + ox0 * in.lda;
            t.acc = epi.acc ? epi.acc + (out_row + ox0) * O + o0 : nullptr;
            t.out = epi.acc ? nullptr : epi.out + (out_row + ox0) * O + o0;
            t.border = nullptr;
            if (!row_inside || ox0 < ox_in0 || ox0 + mr > ox_in1) {
              // Some pixel of this tile reads padding: sum the +1 value of its out-of-image taps.
              for (int64_t i = 0; i < mr; ++i) {
                int32_t* corr = border + i * nr;
                for (int64_t j = 0; j < nr; ++j) corr[j] = 0;
                int64_t kx0, kx1;
                kernels::valid_taps(ox0 + i, s.width, k, s.stride, p, &kx0, &kx1);
                for (int64_t ky = 0; ky < k; ++ky) {
                  for (int64_t kx = 0; kx < k; ++kx) {
                    if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) continue;
                    const int32_t* v = plus_one + (ky * k + kx) * O + o0;
                    for (int64_t j = 0; j < t.lanes; ++j) corr[j] += v[j];
                  }
                }
              }
              t.border = border;
            }
            tiles[mr - 1](in, t);
          }
        }
      }
      first = last;
    }
  });
}

// The output tensor and epilogue of a call; `sc` and `sh` keep contiguous copies alive.
struct Output {
  at::Tensor out, sc, sh;
  Epilogue epi;
};

Output make_output(const at::Tensor& x, const BconvShape& s, const c10::optional<at::Tensor>& scale,
                   const c10::optional<at::Tensor>& shift) {
  Output o;
  const bool affine = scale && scale->defined();
  o.out = at::empty({s.batch, s.out_channels, s.out_height, s.out_width}, x.options().dtype(affine ? at::kFloat : at::kInt),
                    at::MemoryFormat::ChannelsLast);
  if (affine) {
    o.sc = scale->contiguous();
    o.epi.out = o.out.data_ptr<float>();
    o.epi.scale = o.sc.data_ptr<float>();
    if (shift && shift->defined()) {
      o.sh = shift->contiguous();
      o.epi.shift = o.sh.data_ptr<float>();
    }
  } else {
    o.epi.acc = o.out.data_ptr<int32_t>();
  }
  return o;
}

at::Tensor bconv_cpu_with(const at::Tensor& x, const at::Tensor& w, int64_t channels, int64_t stride,
                          int64_t padding, const c10::optional<at::Tensor>& scale,
                          const c10::optional<at::Tensor>& shift, Kernel kernel) {
  const BconvShape s = bconv_shape(x, w, channels, stride, padding, scale, shift);
  const at::Tensor xc = x.contiguous(), wc = w.contiguous();
  Output o = make_output(x, s, scale, shift);
  if (o.out.numel() == 0) return o.out;
  const auto* xp = reinterpret_cast<const uint64_t*>(xc.data_ptr<int64_t>());
  const auto* wp = reinterpret_cast<const uint64_t*>(wc.data_ptr<int64_t>());
  if (kernel == Kernel::Reference) {
    run_reference(xp, wp, s, o.epi);
  } else if (kernel == Kernel::MmaEmulation) {
    run_mma_emulation(xp, wp, s, o.epi);
  } else {
    run_tiled(xp, tile_weights(wp, s.out_channels, s.kernel * s.kernel, s.words, s.channels, kernel), s, o.epi, kernel);
  }
  return o.out;
}

}  // namespace

at::Tensor bconv2d_packed_cpu(const at::Tensor& x, const at::Tensor& w, int64_t channels, int64_t stride,
                              int64_t padding, const c10::optional<at::Tensor>& scale,
                              const c10::optional<at::Tensor>& shift) {
  return bconv_cpu_with(x, w, channels, stride, padding, scale, shift, default_kernel());
}

at::Tensor bconv2d_packed_kernel_cpu(const at::Tensor& x, const at::Tensor& w, int64_t channels,
                                     int64_t stride, int64_t padding, const c10::optional<at::Tensor>& scale,
                                     const c10::optional<at::Tensor>& shift, c10::string_view kernel) {
  TORCH_CHECK(x.device().is_cpu(), "bconv2d_packed_kernel: picks a CPU kernel, x is on ", x.device());
  return bconv_cpu_with(x, w, channels, stride, padding, scale, shift,
                        parse_kernel(std::string(kernel), "bconv2d_packed_kernel"));
}

// The default kernel's weight layout, or nothing for the kernels that read the packed weights
// as they are (reference, mma-emulation).
std::vector<at::Tensor> bconv_prepare_cpu(const at::Tensor& w, int64_t channels) {
  prepared_weights_args(w, channels);
  const Kernel kernel = default_kernel();
  if (kernel == Kernel::Reference || kernel == Kernel::MmaEmulation) return {};
  const at::Tensor wc = w.contiguous();
  TiledWeights t = tile_weights(reinterpret_cast<const uint64_t*>(wc.data_ptr<int64_t>()), w.size(0),
                                w.size(1) * w.size(2), w.size(3), channels, kernel);
  return {t.blocked, t.plus_one};
}

at::Tensor bconv2d_prepared_cpu(const at::Tensor& x, const at::Tensor& w, at::TensorList prepared, int64_t channels,
                                int64_t stride, int64_t padding, const c10::optional<at::Tensor>& scale,
                                const c10::optional<at::Tensor>& shift) {
  const Kernel kernel = default_kernel();
  if (prepared.empty()) return bconv_cpu_with(x, w, channels, stride, padding, scale, shift, kernel);
  const BconvShape s = bconv_shape(x, w, channels, stride, padding, scale, shift);
  const int64_t taps = s.kernel * s.kernel;
  TORCH_CHECK(prepared.size() == 2 && prepared[0].device().is_cpu() && prepared[1].device().is_cpu() &&
                  prepared[0].scalar_type() == at::kInt && prepared[1].scalar_type() == at::kInt &&
                  prepared[0].is_contiguous() && prepared[1].is_contiguous() &&
                  prepared[0].numel() == tiled_blocked_ints(s.out_channels, taps * s.words, half_words(kernel, s.channels)) &&
                  prepared[1].numel() == taps * s.out_channels,
              "bconv2d_prepared: `prepared` was not made by bconv_prepare on the CPU for these weights");
  Output o = make_output(x, s, scale, shift);
  if (o.out.numel() == 0) return o.out;
  const at::Tensor xc = x.contiguous();
  run_tiled(reinterpret_cast<const uint64_t*>(xc.data_ptr<int64_t>()), TiledWeights{prepared[0], prepared[1]}, s, o.epi,
            kernel);
  return o.out;
}

std::vector<std::string> bconv2d_packed_cpu_kernels() {
  std::vector<std::string> out;
  for (Kernel k : available()) out.emplace_back(kernel_name(k));
  // The default first (S2BNN_BCONV_KERNEL may pick another than the fastest).
  const std::string chosen = kernel_name(default_kernel());
  std::stable_partition(out.begin(), out.end(), [&](const std::string& n) { return n == chosen; });
  return out;
}

}  // namespace s2bnn::packed

namespace s2bnn::ops {
std::vector<std::string> bconv2d_packed_cpu_kernels() { return packed::bconv2d_packed_cpu_kernels(); }
}  // namespace s2bnn::ops

TORCH_LIBRARY_IMPL(s2bnn, CPU, m) {
  m.impl("pack_signs", &s2bnn::packed::pack_signs_cpu);
  m.impl("pack_weights", &s2bnn::packed::pack_weights_cpu);
  m.impl("bconv2d_packed", &s2bnn::packed::bconv2d_packed_cpu);
  m.impl("bconv2d_packed_kernel", &s2bnn::packed::bconv2d_packed_kernel_cpu);
  m.impl("bconv_prepare", &s2bnn::packed::bconv_prepare_cpu);
  m.impl("bconv2d_prepared", &s2bnn::packed::bconv2d_prepared_cpu);
}
