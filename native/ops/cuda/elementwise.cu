// Elementwise and per-channel kernels: sign_ste, binarize_weight, rprelu. The arithmetic is the
// shared kernels/math.h, the same functions the CPU kernels run.
#include "../kernels/math.h"
#include "common.cuh"

namespace s2bnn::cuda {
namespace {

using namespace s2bnn::kernels;

constexpr int kThreads = 256;

template <typename T>
__global__ void sign_forward_kernel(const T* x, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    store(y, i, sign_value(load(x, i)));
  }
}

template <typename T>
__global__ void sign_backward_kernel(const T* grad, const T* x, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    store(out, i, load(grad, i) * approx_sign_grad(load(x, i)));
  }
}

template <typename T>
__global__ void clipped_backward_kernel(const T* grad, const T* w, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    store(out, i, load(grad, i) * clipped_ste_grad(load(w, i)));
  }
}

template <typename T>
__global__ void biased_sign_forward_kernel(const T* x, const T* bias, T* y, int64_t total, int64_t channels,
                                           int64_t plane) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    store(y, i, sign_value(load(x, i) + load(bias, (i / plane) % channels)));
  }
}

template <typename T>
__global__ void biased_sign_backward_kernel(const T* grad, const T* x, const T* bias, T* grad_x, float* sums,
                                            int64_t batch, int64_t channels, int64_t plane) {
  using Acc = opmath_t<T>;
  __shared__ Acc scratch[32];
  const int64_t c = blockIdx.x;
  const Acc b = load(bias, c);
  Acc sum = 0;
  const int64_t count = batch * plane;
  for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
    const int64_t i = ((j / plane) * channels + c) * plane + j % plane;
    const Acc gi = load(grad, i) * approx_sign_grad(load(x, i) + b);
    store(grad_x, i, gi);
    sum += gi;
  }
  sum = block_reduce<Acc, false>(sum, scratch);
  if (threadIdx.x == 0) sums[c] = float(sum);
}

template <typename T>
__global__ void binarize_weight_kernel(const T* w, T* out, int64_t per_channel) {
  using Acc = opmath_t<T>;
  __shared__ Acc scratch[32];
  const T* row = w + blockIdx.x * per_channel;
  T* dst = out + blockIdx.x * per_channel;
  Acc sum = 0;
  for (int64_t i = threadIdx.x; i < per_channel; i += blockDim.x) {
    const Acc v = load(row, i);
    sum += v < Acc(0) ? -v : v;
  }
  const Acc alpha = block_reduce<Acc, false>(sum, scratch) / Acc(per_channel);
  for (int64_t i = threadIdx.x; i < per_channel; i += blockDim.x) {
    store(dst, i, alpha * sign_value(load(row, i)));
  }
}

template <typename T>
__global__ void rprelu_forward_kernel(const T* x, const T* bias_in, const T* slope,
                                      const T* bias_out, T* y, int64_t total, int64_t channels,
                                      int64_t plane) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (i / plane) % channels;
    store(y, i, rprelu_value(load(x, i), load(bias_in, c), load(slope, c), load(bias_out, c)));
  }
}

template <typename T>
__global__ void rprelu_backward_kernel(const T* grad, const T* x, const T* bias_in,
                                       const T* slope, T* grad_x, float* sums, int64_t batch,
                                       int64_t channels, int64_t plane) {
  using Acc = opmath_t<T>;
  __shared__ Acc scratch[32];
  const int64_t c = blockIdx.x;
  const Acc b = load(bias_in, c), a = load(slope, c);
  Acc sum_in = 0, sum_slope = 0, sum_out = 0;
  const int64_t count = batch * plane;
  for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
    const int64_t i = ((j / plane) * channels + c) * plane + j % plane;
    const Acc g = load(grad, i), z = load(x, i) + b;
    const Acc gz = rprelu_input_grad(g, z, a);
    store(grad_x, i, gz);
    sum_in += gz;
    sum_slope += rprelu_slope_grad(g, z);
    sum_out += g;
  }
  sum_in = block_reduce<Acc, false>(sum_in, scratch);
  sum_slope = block_reduce<Acc, false>(sum_slope, scratch);
  sum_out = block_reduce<Acc, false>(sum_out, scratch);
  if (threadIdx.x == 0) {
    sums[3 * c] = float(sum_in);
    sums[3 * c + 1] = float(sum_slope);
    sums[3 * c + 2] = float(sum_out);
  }
}

}  // namespace

void sign_forward(DType dtype, const void* x, void* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    sign_forward_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<T*>(y), n);
  });
  check_launch("sign_forward");
}

void sign_backward(DType dtype, const void* grad, const void* x, void* out, int64_t n,
                   cudaStream_t stream) {
  if (n == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    sign_backward_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(grad), static_cast<const T*>(x), static_cast<T*>(out), n);
  });
  check_launch("sign_backward");
}

void clipped_backward(DType dtype, const void* grad, const void* w, void* out, int64_t n,
                      cudaStream_t stream) {
  if (n == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    clipped_backward_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(grad), static_cast<const T*>(w), static_cast<T*>(out), n);
  });
  check_launch("clipped_backward");
}

void biased_sign_forward(DType dtype, const void* x, const void* bias, void* y, int64_t batch,
                         int64_t channels, int64_t plane, cudaStream_t stream) {
  const int64_t total = batch * channels * plane;
  if (total == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    biased_sign_forward_kernel<T><<<blocks_for(total, kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<T*>(y), total, channels, plane);
  });
  check_launch("biased_sign_forward");
}

void biased_sign_backward(DType dtype, const void* grad, const void* x, const void* bias, void* grad_x,
                          float* sums, int64_t batch, int64_t channels, int64_t plane, cudaStream_t stream) {
  if (channels == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    biased_sign_backward_kernel<T><<<static_cast<unsigned>(channels), kThreads * 2, 0, stream>>>(
        static_cast<const T*>(grad), static_cast<const T*>(x), static_cast<const T*>(bias),
        static_cast<T*>(grad_x), sums, batch, channels, plane);
  });
  check_launch("biased_sign_backward");
}

void binarize_weight_forward(DType dtype, const void* w, void* out, int64_t channels,
                             int64_t per_channel, cudaStream_t stream) {
  if (channels == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    binarize_weight_kernel<T><<<static_cast<unsigned>(channels), kThreads, 0, stream>>>(
        static_cast<const T*>(w), static_cast<T*>(out), per_channel);
  });
  check_launch("binarize_weight_forward");
}

void rprelu_forward(DType dtype, const void* x, const void* bias_in, const void* slope,
                    const void* bias_out, void* y, int64_t batch, int64_t channels, int64_t plane,
                    cudaStream_t stream) {
  const int64_t total = batch * channels * plane;
  if (total == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    rprelu_forward_kernel<T><<<blocks_for(total, kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(bias_in), static_cast<const T*>(slope),
        static_cast<const T*>(bias_out), static_cast<T*>(y), total, channels, plane);
  });
  check_launch("rprelu_forward");
}

void rprelu_backward(DType dtype, const void* grad, const void* x, const void* bias_in,
                     const void* slope, void* grad_x, float* sums, int64_t batch,
                     int64_t channels, int64_t plane, cudaStream_t stream) {
  if (channels == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    rprelu_backward_kernel<T><<<static_cast<unsigned>(channels), kThreads * 2, 0, stream>>>(
        static_cast<const T*>(grad), static_cast<const T*>(x), static_cast<const T*>(bias_in),
        static_cast<const T*>(slope), static_cast<T*>(grad_x), sums, batch, channels, plane);
  });
  check_launch("rprelu_backward");
}

}  // namespace s2bnn::cuda
