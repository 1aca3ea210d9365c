// Helpers shared by the .cu files: dtype dispatch onto CUDA's own scalar types (bit-compatible
// with at::Half / at::BFloat16), launch checking, and block reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "launch.h"

namespace s2bnn::cuda {

// float for half/bfloat16/float, double for double.
template <typename T>
struct OpMath {
  using type = float;
};
template <>
struct OpMath<double> {
  using type = double;
};
template <typename T>
using opmath_t = typename OpMath<T>::type;

template <typename T>
__device__ __forceinline__ opmath_t<T> load(const T* p, int64_t i) {
  return static_cast<opmath_t<T>>(p[i]);
}
template <typename T>
__device__ __forceinline__ void store(T* p, int64_t i, opmath_t<T> v) {
  p[i] = static_cast<T>(v);
}

inline void check_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("s2bnn CUDA kernel ") + what + " failed to launch: " +
                             cudaGetErrorString(status));
  }
}

template <typename Fn>
void dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: fn(float{}); break;
    case DType::Float64: fn(double{}); break;
    case DType::Float16: fn(__half{}); break;
    case DType::BFloat16: fn(__nv_bfloat16{}); break;
  }
}

inline unsigned blocks_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  // Grid-stride loops cover the rest; 65535 * 8 blocks keeps every SM busy on any GPU.
  return static_cast<unsigned>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

template <typename Acc>
__device__ __forceinline__ Acc warp_sum(Acc v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

template <typename Acc>
__device__ __forceinline__ Acc warp_max(Acc v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const Acc other = __shfl_down_sync(0xffffffffu, v, offset);
    v = other > v ? other : v;
  }
  return v;
}

// Block-wide reduction; every thread gets the result. `scratch` holds 32 values.
template <typename Acc, bool IsMax>
__device__ Acc block_reduce(Acc v, Acc* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = IsMax ? warp_max(v) : warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  if (warp == 0) {
    v = lane < warps ? scratch[lane] : (IsMax ? scratch[0] : Acc(0));
    v = IsMax ? warp_max(v) : warp_sum(v);
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  return scratch[0];
}

}  // namespace s2bnn::cuda
