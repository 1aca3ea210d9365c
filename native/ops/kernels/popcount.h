// Packed (1-bit) binary convolution arithmetic shared by the CPU kernels (packed.cpp) and the
// CUDA kernels (cuda/packed.cu). Plain scalars and raw pointers only.
//
// Packed format (docs/bconv.md):
// - A packed row holds C channels in ceil(C / 64) uint64 words; bit (c % 64) of word (c / 64)
//   is 1 iff the value is negative (-1), 0 iff it is +1. sign(0) and NaN therefore pack as +1.
//   Bits of channels >= C are 0 in every packed tensor.
// - For one tap, sum_c a_c * b_c = C - 2 * popcount(a XOR b): the padding bits are 0 in both
//   operands, so their XOR is 0 and they do not count.
// - Zero padding: an out-of-image tap contributes 0 (training convolves zero-padded +-1 inputs).
//   The reference skips those taps; the tiled kernels treat them as all-+1 words (0 bits) and
//   subtract the per-(o, tap) value of a +1 input, C - 2 * popcount(w[o, tap]).
// - AND form (binary tensor cores): popcount(a XOR b) = popcount(a) + popcount(b)
//   - 2 * popcount(a AND b), so over T taps
//   sum = T * C - 2 * (popc(a) + popc(b)) + 4 * popc(a AND b).
#pragma once

#include <cstdint>

#include "math.h"

namespace s2bnn::kernels {

S2BNN_HD int popcount64(uint64_t v) {
#if defined(__CUDA_ARCH__)
  return __popcll(v);
#else
  return __builtin_popcountll(v);
#endif
}

S2BNN_HD int64_t packed_words(int64_t channels) { return (channels + 63) / 64; }

// Geometry of one packed convolution: x [batch, height, width, words], w [out_channels, kernel,
// kernel, words], output [batch, out_height, out_width, out_channels] (NHWC).
struct BconvShape {
  int64_t batch, height, width, words, channels;
  int64_t out_channels, kernel, stride, padding;
  int64_t out_height, out_width;
};

S2BNN_HD int64_t bconv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding) {
  return (in + 2 * padding - kernel) / stride + 1;
}

// Word `word` of a packed row of `channels` floats: bit j set iff row[c] (+ bias[c]) < 0 for
// c = 64 * word + j < channels. `bias` may be null. (NaN < 0 is false: NaN packs as +1.)
S2BNN_HD uint64_t pack_word(const float* row, const float* bias, int64_t channels, int64_t word) {
  uint64_t bits = 0;
  const int64_t c0 = word * 64;
  const int64_t count = channels - c0 < 64 ? channels - c0 : 64;
  for (int64_t j = 0; j < count; ++j) {
    const float v = bias ? row[c0 + j] + bias[c0 + j] : row[c0 + j];
    bits |= static_cast<uint64_t>(v < 0.0f) << j;
  }
  return bits;
}

// popcount(a XOR b) over `words` words.
S2BNN_HD int64_t xor_popcount(const uint64_t* a, const uint64_t* b, int64_t words) {
  int64_t ones = 0;
  for (int64_t i = 0; i < words; ++i) ones += popcount64(a[i] ^ b[i]);
  return ones;
}

// Sum over the channels of a * b for one tap, a, b in {-1, +1}.
S2BNN_HD int64_t packed_tap_dot(const uint64_t* a, const uint64_t* b, int64_t words, int64_t channels) {
  return channels - 2 * xor_popcount(a, b, words);
}

// What an out-of-image tap adds when the tiled kernels read it as all +1 (0 bits): sum_c w_c.
// Subtracting it restores zero padding.
S2BNN_HD int64_t plus_one_tap_value(const uint64_t* w_tap, int64_t words, int64_t channels) {
  int64_t ones = 0;
  for (int64_t i = 0; i < words; ++i) ones += popcount64(w_tap[i]);
  return channels - 2 * ones;
}

// Range [lo, hi) of kernel offsets whose input coordinate out * stride - padding + k lies in
// [0, size).
S2BNN_HD void valid_taps(int64_t out, int64_t size, int64_t kernel, int64_t stride, int64_t padding,
                         int64_t* lo, int64_t* hi) {
  const int64_t start = out * stride - padding;
  *lo = start < 0 ? -start : 0;
  *hi = size - start < kernel ? size - start : kernel;
  if (*hi < *lo) *hi = *lo;
}

// The exact accumulator of output (n, oy, ox, o): the zero-padded convolution of the +-1
// tensors, skipping out-of-image taps. The reference kernel (CPU) and the popc kernel (CUDA) run
// this per output element.
S2BNN_HD int32_t bconv_output_element(const uint64_t* x, const uint64_t* w, const BconvShape& s,
                                      int64_t n, int64_t oy, int64_t ox, int64_t o) {
  int64_t ky0, ky1, kx0, kx1;
  valid_taps(oy, s.height, s.kernel, s.stride, s.padding, &ky0, &ky1);
  valid_taps(ox, s.width, s.kernel, s.stride, s.padding, &kx0, &kx1);
  int64_t acc = 0;
  for (int64_t ky = ky0; ky < ky1; ++ky) {
    const int64_t iy = oy * s.stride - s.padding + ky;
    for (int64_t kx = kx0; kx < kx1; ++kx) {
      const int64_t ix = ox * s.stride - s.padding + kx;
      const uint64_t* a = x + ((n * s.height + iy) * s.width + ix) * s.words;
      const uint64_t* b = w + ((o * s.kernel + ky) * s.kernel + kx) * s.words;
      acc += packed_tap_dot(a, b, s.words, s.channels);
    }
  }
  return static_cast<int32_t>(acc);
}

// The tiled kernels' epilogue: `xor_ones` is popcount(patch XOR w) summed over all kernel*kernel
// taps with out-of-image taps read as 0 words; `border` is the sum of plus_one_tap_value over the
// out-of-image taps (0 inside the image).
S2BNN_HD int32_t accumulator_from_xor(int64_t xor_ones, int64_t taps, int64_t channels, int64_t border) {
  return static_cast<int32_t>(taps * channels - 2 * xor_ones - border);
}

// The AND form (b1 tensor cores): and_ones = popc(a AND b), a_ones = popc(a), b_ones = popc(b),
// all summed over the same `taps` taps (out-of-image taps as 0 words in a); `border` as above.
S2BNN_HD int32_t accumulator_from_and(int64_t and_ones, int64_t a_ones, int64_t b_ones, int64_t taps,
                                      int64_t channels, int64_t border) {
  return static_cast<int32_t>(taps * channels - 2 * (a_ones + b_ones) + 4 * and_ones - border);
}

// The fused epilogue with scale (and shift): BatchNorm and alpha folded per output channel.
S2BNN_HD float bconv_affine(int32_t acc, float scale, float shift) {
  return static_cast<float>(acc) * scale + shift;
}

}  // namespace s2bnn::kernels
