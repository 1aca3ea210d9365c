// Packed (1-bit) binary convolution on the GPU: sign packing and the popc convolution. The
// arithmetic is kernels/popcount.h, the functions the CPU reference kernel runs over the same
// index space (test/bconv.test.ts proves them; a GPU run has only launch and memory left).
//
// Two kernels, same results:
// - popc: one thread per output element (n, oy, ox, o), o fastest: a warp shares one pixel, so
//   its activation words are broadcast loads. XOR + popc per 64-bit word (__popcll).
// - mma: b1 tensor cores, mma.sync.m16n8k256 with .and.popc (the native form on sm_90, where
//   .xor.popc is emulated): one warp per 16 pixels x 8 output channels, AND popcounts plus the
//   correction terms of kernels::accumulator_from_and. Its fragment loads, lane reductions and
//   epilogue are the popcount.h functions that the CPU "mma-emulation" kernel runs in the tests.
// Which is faster is unmeasured (no GPU was available); bconv2d_packed runs popc unless
// S2BNN_BCONV_CUDA_KERNEL=mma, and bconv2d_packed_kernel takes "popc" or "mma" per call.
#include "../kernels/popcount.h"
#include "common.cuh"

namespace s2bnn::cuda {
namespace {

using namespace s2bnn::kernels;

constexpr int kThreads = 256;

__global__ void pack_rows_kernel(const float* src, const float* bias, int64_t rows, int64_t channels,
                                 int64_t words, uint64_t* out) {
  const int64_t total = rows * words;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / words, word = i % words;
    out[i] = pack_word(src + row * channels, bias, channels, word);
  }
}

// w_t: the weights transposed to [K, O] (K = kernel * kernel * words).
template <bool Affine>
__global__ void bconv_popc_kernel(const uint64_t* x, const uint64_t* w_t, BconvShape s, const float* scale,
                                  const float* shift, int32_t* acc, float* out) {
  const int64_t total = s.batch * s.out_height * s.out_width * s.out_channels;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = i % s.out_channels;
    const int64_t pixel = i / s.out_channels;
    const int64_t ox = pixel % s.out_width, oy = (pixel / s.out_width) % s.out_height;
    const int64_t n = pixel / (s.out_width * s.out_height);
    const int32_t value = bconv_output_element(x, w_t, s, n, oy, ox, o, 1, s.out_channels);
    if (Affine) {
      out[i] = bconv_affine(value, scale[o], shift ? shift[o] : 0.0f);
    } else {
      acc[i] = value;
    }
  }
}

template <bool Affine>
__global__ void bconv_mma_kernel(const uint64_t* x, const uint64_t* w, BconvShape s, const float* scale,
                                 const float* shift, int32_t* acc, float* out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const int lane = threadIdx.x & 31;
  const int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
  const int64_t P = bconv_pixels(s), O = s.out_channels;
  const int64_t tiles_m = (P + kMmaM - 1) / kMmaM, tiles_n = (O + kMmaN - 1) / kMmaN;
  if (warp >= tiles_m * tiles_n) return;  // warp-uniform: the mma below sees full warps only
  // Consecutive warps take consecutive channel tiles of the same pixels (A loads hit in L1).
  const int64_t pixel0 = (warp / tiles_n) * kMmaM, o0 = (warp % tiles_n) * kMmaN;
  const int64_t slices = mma_slices(s);
  int d[4] = {0, 0, 0, 0};
  int pop[2] = {0, 0};
  for (int64_t slice = 0; slice < slices; ++slice) {
    uint32_t a[4], b[2];
    mma_load_a(x, s, pixel0, slice, lane, a);
    mma_load_b(w, s, o0, slice, lane, b);
    pop[0] += __popc(a[0]) + __popc(a[2]);
    pop[1] += __popc(a[1]) + __popc(a[3]);
    asm volatile(
        "mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  for (int j = 0; j < 2; ++j) {
    pop[j] += __shfl_xor_sync(0xffffffffu, pop[j], 1);
    pop[j] += __shfl_xor_sync(0xffffffffu, pop[j], 2);
  }
  for (int r = 0; r < 4; ++r) {
    const int64_t pixel = pixel0 + mma_d_row(lane, r), o = o0 + mma_d_col(lane, r);
    if (pixel >= P || o >= O) continue;
    const int32_t value = mma_output_value(w, s, pixel, o, d[r], pop[r >= 2 ? 1 : 0]);
    if (Affine) {
      out[pixel * O + o] = bconv_affine(value, scale[o], shift ? shift[o] : 0.0f);
    } else {
      acc[pixel * O + o] = value;
    }
  }
#endif
}

}  // namespace

void pack_sign_rows(const float* src, const float* bias, int64_t rows, int64_t channels, int64_t words,
                    uint64_t* out, cudaStream_t stream) {
  const int64_t total = rows * words;
  if (total == 0) return;
  pack_rows_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream>>>(src, bias, rows, channels, words, out);
  check_launch("pack_sign_rows");
}

void bconv2d_packed(const uint64_t* x, const uint64_t* w, const uint64_t* w_t, const BconvShape& shape,
                    const float* scale, const float* shift, void* out, bool mma, cudaStream_t stream) {
  const int64_t total = shape.batch * shape.out_height * shape.out_width * shape.out_channels;
  if (total == 0) return;
  if (mma) {
    const int64_t warps = ((bconv_pixels(shape) + kMmaM - 1) / kMmaM) *
                          ((shape.out_channels + kMmaN - 1) / kMmaN);
    const int64_t blocks = (warps * 32 + kThreads - 1) / kThreads;
    if (blocks > 0x7fffffff) throw std::runtime_error("bconv2d_packed (mma): output too large for one launch");
    if (scale) {
      bconv_mma_kernel<true><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
          x, w, shape, scale, shift, nullptr, static_cast<float*>(out));
    } else {
      bconv_mma_kernel<false><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
          x, w, shape, nullptr, nullptr, static_cast<int32_t*>(out), nullptr);
    }
    check_launch("bconv2d_packed (mma)");
    return;
  }
  if (scale) {
    bconv_popc_kernel<true><<<blocks_for(total, kThreads), kThreads, 0, stream>>>(
        x, w_t, shape, scale, shift, nullptr, static_cast<float*>(out));
  } else {
    bconv_popc_kernel<false><<<blocks_for(total, kThreads), kThreads, 0, stream>>>(
        x, w_t, shape, nullptr, nullptr, static_cast<int32_t*>(out), nullptr);
  }
  check_launch("bconv2d_packed");
}

}  // namespace s2bnn::cuda
