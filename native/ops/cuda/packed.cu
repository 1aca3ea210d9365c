// Packed (1-bit) binary convolution on the GPU: sign packing and the popc convolution. The
// arithmetic is kernels/popcount.h, the functions the CPU reference kernel runs over the same
// index space (test/bconv.test.ts proves them; a GPU run has only launch and memory left).
//
// One thread per output element (n, oy, ox, o), o fastest: a warp shares one pixel, so its
// activation words are broadcast loads. XOR + popc per 64-bit word (__popcll); on sm_90 the b1
// tensor cores only have the AND form (accumulator_from_and in popcount.h), which is not used
// here yet: which path is faster is unmeasured (docs/bconv.md).
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

template <bool Affine>
__global__ void bconv_popc_kernel(const uint64_t* x, const uint64_t* w, BconvShape s, const float* scale,
                                  const float* shift, int32_t* acc, float* out) {
  const int64_t total = s.batch * s.out_height * s.out_width * s.out_channels;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = i % s.out_channels;
    const int64_t pixel = i / s.out_channels;
    const int64_t ox = pixel % s.out_width, oy = (pixel / s.out_width) % s.out_height;
    const int64_t n = pixel / (s.out_width * s.out_height);
    const int32_t value = bconv_output_element(x, w, s, n, oy, ox, o);
    if (Affine) {
      out[i] = bconv_affine(value, scale[o], shift ? shift[o] : 0.0f);
    } else {
      acc[i] = value;
    }
  }
}

}  // namespace

void pack_sign_rows(const float* src, const float* bias, int64_t rows, int64_t channels, int64_t words,
                    uint64_t* out, cudaStream_t stream) {
  const int64_t total = rows * words;
  if (total == 0) return;
  pack_rows_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream>>>(src, bias, rows, channels, words, out);
  check_launch("pack_sign_rows");
}

void bconv2d_packed(const uint64_t* x, const uint64_t* w, const BconvShape& shape, const float* scale,
                    const float* shift, void* out, cudaStream_t stream) {
  const int64_t total = shape.batch * shape.out_height * shape.out_width * shape.out_channels;
  if (total == 0) return;
  if (scale) {
    bconv_popc_kernel<true><<<blocks_for(total, kThreads), kThreads, 0, stream>>>(
        x, w, shape, scale, shift, nullptr, static_cast<float*>(out));
  } else {
    bconv_popc_kernel<false><<<blocks_for(total, kThreads), kThreads, 0, stream>>>(
        x, w, shape, nullptr, nullptr, static_cast<int32_t*>(out), nullptr);
  }
  check_launch("bconv2d_packed");
}

}  // namespace s2bnn::cuda
