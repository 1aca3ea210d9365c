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
// this per output element. Word kk of o's weights (kk = tap * words + c) is read at
// w[o * o_stride + kk * k_stride]: pack_weights' [O, K] layout is (K, 1); the CUDA kernel reads a
// transposed [K, O] copy, (1, O), so a warp's 32 output channels load consecutive words.
S2BNN_HD int32_t bconv_output_element(const uint64_t* x, const uint64_t* w, const BconvShape& s,
                                      int64_t n, int64_t oy, int64_t ox, int64_t o, int64_t o_stride,
                                      int64_t k_stride) {
  int64_t ky0, ky1, kx0, kx1;
  valid_taps(oy, s.height, s.kernel, s.stride, s.padding, &ky0, &ky1);
  valid_taps(ox, s.width, s.kernel, s.stride, s.padding, &kx0, &kx1);
  int64_t acc = 0;
  for (int64_t ky = ky0; ky < ky1; ++ky) {
    const int64_t iy = oy * s.stride - s.padding + ky;
    for (int64_t kx = kx0; kx < kx1; ++kx) {
      const int64_t ix = ox * s.stride - s.padding + kx;
      const uint64_t* a = x + ((n * s.height + iy) * s.width + ix) * s.words;
      const uint64_t* b = w + o * o_stride + (ky * s.kernel + kx) * s.words * k_stride;
      int64_t ones = 0;
      for (int64_t c = 0; c < s.words; ++c) ones += popcount64(a[c] ^ b[c * k_stride]);
      acc += s.channels - 2 * ones;
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

// ---- b1 tensor cores: mma.sync.m16n8k256 .and.popc --------------------------------------------
// A warp computes a tile of 16 output pixels (flattened n, oy, ox) x 8 output channels. The K
// dimension is a patch's taps * words words (tap-major, as in pack_weights), walked in slices of
// 256 bits = 4 words = 8 32-bit chunks; chunk q of a slice is the low (q even) or high (q odd)
// half of word 4 * slice + q / 2. Out-of-image taps and words beyond K load as 0.
// Fragments (PTX ISA, "Matrix fragments for mma.m16n8k256", .b1; lane = 4 * g + t):
//   A (16 x 256, row): a0 = (row g, chunk t), a1 = (row g + 8, chunk t),
//                      a2 = (row g, chunk 4 + t), a3 = (row g + 8, chunk 4 + t)
//   B (256 x 8, col):  b0 = (col g, chunk t), b1 = (col g, chunk 4 + t)
//   C/D (16 x 8 s32):  d0, d1 = (row g, cols 2t, 2t + 1), d2, d3 = (row g + 8, cols 2t, 2t + 1)
// A bit of chunk q pairs with the same bit of B's chunk q, so the sum over k of popc(a AND b) only
// needs A and B to agree on the chunk order (they do by construction); rows and columns follow
// the table above. The CPU emulation (packed.cpp, kernel "mma-emulation") runs these functions
// with the same lanes and registers and does the matrix product itself.
constexpr int kMmaM = 16, kMmaN = 8, kMmaChunks = 8, kMmaSliceWords = 4;

S2BNN_HD int mma_a_row(int lane, int reg) { return (lane >> 2) + ((reg & 1) ? 8 : 0); }
S2BNN_HD int mma_a_chunk(int lane, int reg) { return (lane & 3) + ((reg & 2) ? 4 : 0); }
S2BNN_HD int mma_b_col(int lane) { return lane >> 2; }
S2BNN_HD int mma_b_chunk(int lane, int reg) { return (lane & 3) + (reg ? 4 : 0); }
S2BNN_HD int mma_d_row(int lane, int reg) { return (lane >> 2) + (reg >= 2 ? 8 : 0); }
S2BNN_HD int mma_d_col(int lane, int reg) { return 2 * (lane & 3) + (reg & 1); }

S2BNN_HD int64_t bconv_pixels(const BconvShape& s) { return s.batch * s.out_height * s.out_width; }
S2BNN_HD int64_t mma_slices(const BconvShape& s) {
  return (s.kernel * s.kernel * s.words + kMmaSliceWords - 1) / kMmaSliceWords;
}

S2BNN_HD uint32_t word_half(uint64_t v, int q) { return q & 1 ? static_cast<uint32_t>(v >> 32) : static_cast<uint32_t>(v); }

// Chunk q of slice `slice` of output pixel `pixel`'s patch (0 outside the image or past K).
S2BNN_HD uint32_t mma_patch_chunk(const uint64_t* x, const BconvShape& s, int64_t pixel, int64_t slice, int q) {
  const int64_t word = slice * kMmaSliceWords + q / 2;
  if (pixel >= bconv_pixels(s) || word >= s.kernel * s.kernel * s.words) return 0;
  const int64_t tap = word / s.words, c = word % s.words;
  const int64_t ox = pixel % s.out_width, oy = (pixel / s.out_width) % s.out_height;
  const int64_t n = pixel / (s.out_width * s.out_height);
  const int64_t iy = oy * s.stride - s.padding + tap / s.kernel;
  const int64_t ix = ox * s.stride - s.padding + tap % s.kernel;
  if (iy < 0 || iy >= s.height || ix < 0 || ix >= s.width) return 0;
  return word_half(x[((n * s.height + iy) * s.width + ix) * s.words + c], q);
}

// Chunk q of slice `slice` of output channel o's weights (0 past O or K).
S2BNN_HD uint32_t mma_weight_chunk(const uint64_t* w, const BconvShape& s, int64_t o, int64_t slice, int q) {
  const int64_t K = s.kernel * s.kernel * s.words;
  const int64_t word = slice * kMmaSliceWords + q / 2;
  if (o >= s.out_channels || word >= K) return 0;
  return word_half(w[o * K + word], q);
}

// One lane's fragments for the tile starting at pixel0 / o0.
S2BNN_HD void mma_load_a(const uint64_t* x, const BconvShape& s, int64_t pixel0, int64_t slice, int lane,
                         uint32_t a[4]) {
  for (int r = 0; r < 4; ++r) a[r] = mma_patch_chunk(x, s, pixel0 + mma_a_row(lane, r), slice, mma_a_chunk(lane, r));
}
S2BNN_HD void mma_load_b(const uint64_t* w, const BconvShape& s, int64_t o0, int64_t slice, int lane, uint32_t b[2]) {
  for (int r = 0; r < 2; ++r) b[r] = mma_weight_chunk(w, s, o0 + mma_b_col(lane), slice, mma_b_chunk(lane, r));
}

// popc(w[o]) over all taps, and the +1 value of o's out-of-image taps for an output pixel.
S2BNN_HD int64_t weight_ones(const uint64_t* w, const BconvShape& s, int64_t o) {
  const int64_t K = s.kernel * s.kernel * s.words;
  int64_t ones = 0;
  for (int64_t i = 0; i < K; ++i) ones += popcount64(w[o * K + i]);
  return ones;
}
S2BNN_HD int64_t border_value(const uint64_t* w, const BconvShape& s, int64_t pixel, int64_t o) {
  const int64_t ox = pixel % s.out_width, oy = (pixel / s.out_width) % s.out_height;
  int64_t ky0, ky1, kx0, kx1;
  valid_taps(oy, s.height, s.kernel, s.stride, s.padding, &ky0, &ky1);
  valid_taps(ox, s.width, s.kernel, s.stride, s.padding, &kx0, &kx1);
  if (ky0 == 0 && ky1 == s.kernel && kx0 == 0 && kx1 == s.kernel) return 0;
  int64_t total = 0;
  for (int64_t ky = 0; ky < s.kernel; ++ky) {
    for (int64_t kx = 0; kx < s.kernel; ++kx) {
      if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) continue;
      total += plus_one_tap_value(w + ((o * s.kernel + ky) * s.kernel + kx) * s.words, s.words, s.channels);
    }
  }
  return total;
}

// The accumulator of (pixel, o) from the tile's AND popcount and the pixel's patch popcount.
S2BNN_HD int32_t mma_output_value(const uint64_t* w, const BconvShape& s, int64_t pixel, int64_t o,
                                  int64_t and_ones, int64_t patch_ones) {
  return accumulator_from_and(and_ones, patch_ones, weight_ones(w, s, o), s.kernel * s.kernel, s.channels,
                              border_value(w, s, pixel, o));
}

}  // namespace s2bnn::kernels
