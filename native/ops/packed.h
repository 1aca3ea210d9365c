// Argument checks and geometry shared by the CPU (packed.cpp) and CUDA (cuda_register.cpp)
// kernels of the packed binary convolution ops.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "kernels/popcount.h"

namespace s2bnn::packed {

void pack_signs_args(const at::Tensor& x, const c10::optional<at::Tensor>& bias);
void pack_weights_args(const at::Tensor& w);

// Checks bconv_prepare's arguments (packed int64 weights, channels within their words).
void prepared_weights_args(const at::Tensor& w, int64_t channels);

// Checks bconv2d_packed's arguments (dtypes, ranks, words, channels, stride, padding, scale and
// shift) and returns the geometry.
kernels::BconvShape bconv_shape(const at::Tensor& x, const at::Tensor& w, int64_t channels, int64_t stride,
                                int64_t padding, const c10::optional<at::Tensor>& scale,
                                const c10::optional<at::Tensor>& shift);

}  // namespace s2bnn::packed
