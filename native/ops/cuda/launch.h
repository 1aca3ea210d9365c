// Launchers of the CUDA kernels: raw device pointers, sizes and a stream, no libtorch types, so
// the .cu files compile with nvcc alone (the CPU-only build compiles them as a check) and
// cuda_register.cpp adapts them to at::Tensor.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../kernels/popcount.h"

namespace s2bnn::cuda {

enum class DType { Float32, Float64, Float16, BFloat16 };

// Elementwise, n elements.
void sign_forward(DType dtype, const void* x, void* y, int64_t n, cudaStream_t stream);
void sign_backward(DType dtype, const void* grad, const void* x, void* out, int64_t n,
                   cudaStream_t stream);
void clipped_backward(DType dtype, const void* grad, const void* w, void* out, int64_t n,
                      cudaStream_t stream);

// sign(x + bias[c]) for x [batch, channels, plane]; backward writes grad_x and, per channel c,
// sums[c] = the bias gradient (float32, one block per channel: deterministic).
void biased_sign_forward(DType dtype, const void* x, const void* bias, void* y, int64_t batch,
                         int64_t channels, int64_t plane, cudaStream_t stream);
void biased_sign_backward(DType dtype, const void* grad, const void* x, const void* bias, void* grad_x,
                          float* sums, int64_t batch, int64_t channels, int64_t plane, cudaStream_t stream);

// One block per output channel: alpha = mean |w[o]|, out = alpha * sign(w).
void binarize_weight_forward(DType dtype, const void* w, void* out, int64_t channels,
                             int64_t per_channel, cudaStream_t stream);

// x is [batch, channels, plane] contiguous; parameters hold `channels` values.
void rprelu_forward(DType dtype, const void* x, const void* bias_in, const void* slope,
                    const void* bias_out, void* y, int64_t batch, int64_t channels, int64_t plane,
                    cudaStream_t stream);
// Writes grad_x and, per channel c, sums[3c + {0,1,2}] = gradients of bias_in, slope, bias_out
// (float32, one block per channel: deterministic).
void rprelu_backward(DType dtype, const void* grad, const void* x, const void* bias_in,
                     const void* slope, void* grad_x, float* sums, int64_t batch,
                     int64_t channels, int64_t plane, cudaStream_t stream);

// Per-row losses (float32) of [rows, width] student/teacher logits.
void distribution_loss_rows(DType dtype, const void* student, const void* teacher, float* losses,
                            int64_t rows, int64_t width, float inv_temperature,
                            cudaStream_t stream);
// Per-row losses and grad_student = scale * (softmax(s/T) - softmax(t/T)) in one pass.
void distribution_loss_rows_with_grad(DType dtype, const void* student, const void* teacher,
                                      void* grad_student, float* losses, int64_t rows,
                                      int64_t width, float inv_temperature, float scale,
                                      cudaStream_t stream);

// Scales each [width] row of raw dot products by 1/T in place and writes its cross-entropy with
// the positive at index 0 (float32 per row). One block per row.
void info_nce_rows(DType dtype, void* logits, float* losses, int64_t rows, int64_t width,
                   float inv_temperature, cudaStream_t stream);
// grad = upstream[0] * scale * (softmax(row) - onehot(0)).
void info_nce_rows_grad(DType dtype, const void* logits, void* grad, int64_t rows, int64_t width,
                        const float* upstream, float scale, cudaStream_t stream);

// Packed binary convolution (packed.cu). Rows of `channels` floats (+ bias[c], bias may be null)
// -> rows x words sign words (kernels/popcount.h: bit set iff negative).
void pack_sign_rows(const float* src, const float* bias, int64_t rows, int64_t channels, int64_t words,
                    uint64_t* out, cudaStream_t stream);
// x [N, H, W, words], w [O, k, k, words] -> NHWC output: int32 accumulators when scale is null,
// else float32 acc * scale[o] + shift[o] (shift may be null). `mma`: the b1 tensor-core kernel
// (sm_80+, reads w), else the popc kernel (reads w_t, the weights as [kernel * kernel * words, O];
// may be null when mma).
void bconv2d_packed(const uint64_t* x, const uint64_t* w, const uint64_t* w_t, const kernels::BconvShape& shape,
                    const float* scale, const float* shift, void* out, bool mma, cudaStream_t stream);

}  // namespace s2bnn::cuda
