// Row kernels of the two losses. Distribution-loss rows are short (the 128-d head): one thread
// per row runs exactly the CPU's kernels/rows.h code. InfoNCE rows are long (1 + K, K = 65536):
// one block per row with block reductions, same formulas.
#include "../kernels/rows.h"
#include "common.cuh"

namespace s2bnn::cuda {
namespace {

using namespace s2bnn::kernels;

template <typename T>
__global__ void distribution_rows_kernel(const T* s, const T* t, float* losses, int64_t rows,
                                         int64_t width, float inv_t) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  using Acc = opmath_t<T>;
  losses[r] = float(distribution_loss_row<T, Acc>(s + r * width, t + r * width, width, Acc(inv_t)));
}

template <typename T>
__global__ void distribution_rows_with_grad_kernel(const T* s, const T* t, T* gs, float* losses,
                                                   int64_t rows, int64_t width, float inv_t,
                                                   float scale) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  using Acc = opmath_t<T>;
  losses[r] = float(distribution_loss_row_with_grad<T, Acc>(s + r * width, t + r * width,
                                                            gs + r * width, width, Acc(inv_t),
                                                            Acc(scale)));
}

template <typename T>
__global__ void info_nce_rows_kernel(T* logits, float* losses, int64_t width, float inv_t) {
  using Acc = opmath_t<T>;
  __shared__ Acc scratch[32];
  T* row = logits + blockIdx.x * width;
  Acc local_max = -INFINITY, poison = 0;
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
    const T v = static_cast<T>(Acc(row[c]) * Acc(inv_t));
    row[c] = v;
    local_max = max_acc(local_max, Acc(v));
    poison += Acc(v) * Acc(0);
  }
  const Acc row_max = block_reduce<Acc, true>(local_max, scratch);
  Acc local_sum = 0;
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
    local_sum += exp_acc<Acc>(Acc(row[c]) - row_max);
  }
  const Acc sum = block_reduce<Acc, false>(local_sum, scratch);
  poison = block_reduce<Acc, false>(poison, scratch);
  // Thread 0 wrote row[0] itself in the first loop, so reading it here needs no extra barrier.
  if (threadIdx.x == 0) losses[blockIdx.x] = float(row_max + log(sum) - Acc(row[0]) + poison);
}

template <typename T>
__global__ void info_nce_rows_grad_kernel(const T* logits, T* grad, int64_t width,
                                          const float* upstream, float scale) {
  using Acc = opmath_t<T>;
  __shared__ Acc scratch[32];
  const T* row = logits + blockIdx.x * width;
  T* out = grad + blockIdx.x * width;
  Acc local_max = -INFINITY;
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) local_max = max_acc(local_max, Acc(row[c]));
  const Acc row_max = block_reduce<Acc, true>(local_max, scratch);
  Acc local_sum = 0;
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) local_sum += exp_acc<Acc>(Acc(row[c]) - row_max);
  const Acc sum = block_reduce<Acc, false>(local_sum, scratch);
  const Acc factor = Acc(upstream[0]) * Acc(scale);
  const Acc norm = factor / sum;
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
    const Acc p = exp_acc<Acc>(Acc(row[c]) - row_max) * norm;
    out[c] = static_cast<T>(c == 0 ? p - factor : p);
  }
}

constexpr int kRowThreads = 128;
constexpr int kBlockThreads = 512;

}  // namespace

void distribution_loss_rows(DType dtype, const void* student, const void* teacher, float* losses,
                            int64_t rows, int64_t width, float inv_temperature,
                            cudaStream_t stream) {
  if (rows == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    distribution_rows_kernel<T><<<blocks_for(rows, kRowThreads), kRowThreads, 0, stream>>>(
        static_cast<const T*>(student), static_cast<const T*>(teacher), losses, rows, width,
        inv_temperature);
  });
  check_launch("distribution_loss_rows");
}

void distribution_loss_rows_with_grad(DType dtype, const void* student, const void* teacher,
                                      void* grad_student, float* losses, int64_t rows,
                                      int64_t width, float inv_temperature, float scale,
                                      cudaStream_t stream) {
  if (rows == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    distribution_rows_with_grad_kernel<T>
        <<<blocks_for(rows, kRowThreads), kRowThreads, 0, stream>>>(
            static_cast<const T*>(student), static_cast<const T*>(teacher),
            static_cast<T*>(grad_student), losses, rows, width, inv_temperature, scale);
  });
  check_launch("distribution_loss_rows_with_grad");
}

void info_nce_rows(DType dtype, void* logits, float* losses, int64_t rows, int64_t width,
                   float inv_temperature, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    info_nce_rows_kernel<T><<<static_cast<unsigned>(rows), kBlockThreads, 0, stream>>>(
        static_cast<T*>(logits), losses, width, inv_temperature);
  });
  check_launch("info_nce_rows");
}

void info_nce_rows_grad(DType dtype, const void* logits, void* grad, int64_t rows, int64_t width,
                        const float* upstream, float scale, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    info_nce_rows_grad_kernel<T><<<static_cast<unsigned>(rows), kBlockThreads, 0, stream>>>(
        static_cast<const T*>(logits), static_cast<T*>(grad), width, upstream, scale);
  });
  check_launch("info_nce_rows_grad");
}

}  // namespace s2bnn::cuda
