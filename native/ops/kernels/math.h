// Per-element and per-row arithmetic shared by the CPU kernels and the CUDA kernels. The CPU
// kernels run exactly these functions over the same index space as the CUDA launches, so the CPU
// tests prove the arithmetic and a GPU run only has the launch and memory plumbing left to prove.
// No libtorch or CUDA types here: plain scalars and raw pointers.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define S2BNN_HD __host__ __device__ __forceinline__
#define S2BNN_SIMD(...)
#else
// Forced inlining: the CPU kernels call these from target_clones loops (AVX2, AVX-512), and an
// out-of-line copy would be compiled for the baseline ISA only.
#define S2BNN_HD inline __attribute__((always_inline))
// Float reductions only vectorize when the compiler may reorder the sum; OpenMP's simd reduction
// grants exactly that for one loop (built with -fopenmp-simd, no OpenMP runtime needed).
#define S2BNN_PRAGMA(text) _Pragma(#text)
#define S2BNN_SIMD(...) S2BNN_PRAGMA(omp simd __VA_ARGS__)
#endif

namespace s2bnn::kernels {

// torch.sign: (0 < x) - (x < 0), so sign(0) = sign(-0) = sign(NaN) = 0.
template <typename T>
S2BNN_HD T sign_value(T x) {
  return static_cast<T>(static_cast<int>(T(0) < x) - static_cast<int>(x < T(0)));
}

// Derivative of ReActNet's ApproxSign F(x): 2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 elsewhere.
// Both pieces equal 2 - 2|x| exactly in floating point (|x| = -x is exact), so one formula serves.
template <typename T>
S2BNN_HD T approx_sign_grad(T x) {
  const T magnitude = x < T(0) ? -x : x;
  return magnitude < T(1) ? T(2) - T(2) * magnitude : T(0);
}

// Derivative of clamp(w, -1, 1) as torch defines it: 1 on the closed band [-1, 1].
template <typename T>
S2BNN_HD T clipped_ste_grad(T w) {
  return (w >= T(-1) && w <= T(1)) ? T(1) : T(0);
}

// RPReLU: y = prelu(x + bias_in, slope) + bias_out. torch's prelu takes the negative branch for
// z <= 0, and its backward takes the slope branch for z <= 0 too.
template <typename T>
S2BNN_HD T rprelu_value(T x, T bias_in, T slope, T bias_out) {
  const T z = x + bias_in;
  return (z > T(0) ? z : slope * z) + bias_out;
}

template <typename T>
S2BNN_HD T rprelu_input_grad(T grad, T z, T slope) {
  return z > T(0) ? grad : slope * grad;
}

template <typename T>
S2BNN_HD T rprelu_slope_grad(T grad, T z) {
  return z > T(0) ? T(0) : grad * z;
}

}  // namespace s2bnn::kernels
