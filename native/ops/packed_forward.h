// The packed training forward of binary_conv2d (packed_forward.cpp).
#pragma once

#include <ATen/ATen.h>

namespace s2bnn::ops {

// The convolution of sign(x [+ input_bias]) with alpha * sign(w) computed on bits, or nullopt
// where the packed path does not apply (not a CPU float32 square convolution, switched off, or an
// exact zero among the operands, which training binarizes to 0).
c10::optional<at::Tensor> packed_binary_conv_forward(const at::Tensor& x, const at::Tensor& w, at::IntArrayRef stride,
                                                     at::IntArrayRef padding, const c10::optional<at::Tensor>& input_bias);

void set_packed_training_forward(bool on);
bool packed_training_forward();

}  // namespace s2bnn::ops
