// The s2bnn operators as C++ functions. Each call goes through the PyTorch dispatcher, so it
// picks the CPU or CUDA kernel and records autograd exactly as torch.ops.s2bnn.* does in Python.
// Every operator has a `*_reference` twin: the same formula written as a composition of plain
// torch ops the way the reference implementation writes it; tests and benchmarks compare the two.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <string>
#include <tuple>
#include <vector>

namespace s2bnn::ops {

// sign(x) forward; backward multiplies by the ApproxSign derivative (docs/method.md).
at::Tensor sign_ste(const at::Tensor& x);
at::Tensor sign_ste_backward(const at::Tensor& grad, const at::Tensor& x);

// sign_ste(x + bias) with a per-channel bias (dim 1), in one pass: ReActNet's "move" bias before
// each binary activation. Backward gives the gradients of x and bias in one pass too.
at::Tensor sign_ste_biased(const at::Tensor& x, const at::Tensor& bias);
std::tuple<at::Tensor, at::Tensor> sign_ste_biased_backward(const at::Tensor& grad, const at::Tensor& x,
                                                            const at::Tensor& bias);

// alpha_o * sign(w), alpha_o = mean |w[o]| (a constant for autograd); backward: clipped STE.
at::Tensor binarize_weight(const at::Tensor& w);
at::Tensor binarize_weight_backward(const at::Tensor& grad, const at::Tensor& w);

// Training-time binary convolution: optional binarization of the input (sign_ste, or
// sign_ste_biased with `input_bias`, a per-channel bias added first) and of the weight
// (binarize_weight), then an ordinary zero-padded convolution through libtorch. Saves only x
// (and w, bias) for the backward, which recomputes the binarized operands.
at::Tensor binary_conv2d(const at::Tensor& x, const at::Tensor& w, at::IntArrayRef stride,
                         at::IntArrayRef padding, bool binarize_input, bool binarize_weight,
                         const c10::optional<at::Tensor>& input_bias = {});
std::tuple<at::Tensor, at::Tensor, at::Tensor> binary_conv2d_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w, at::IntArrayRef stride,
    at::IntArrayRef padding, bool binarize_input, bool binarize_weight,
    const c10::optional<at::Tensor>& input_bias, std::array<bool, 3> output_mask);

// RPReLU: prelu(x + bias_in, weight) + bias_out, per channel (dim 1). Parameters hold C values
// in any shape ([C] or [1, C, 1, 1]); their gradients come back in the same shapes.
at::Tensor rprelu(const at::Tensor& x, const at::Tensor& bias_in, const at::Tensor& weight,
                  const at::Tensor& bias_out);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rprelu_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& bias_in,
    const at::Tensor& weight, const at::Tensor& bias_out);

// Guided distribution calibration loss, mean over the batch; gradient to the student only.
at::Tensor distribution_loss(const at::Tensor& student, const at::Tensor& teacher,
                             double temperature);
// The loss and d loss / d student in one pass over the rows (what training's forward calls; the
// backward then only scales the saved gradient).
std::tuple<at::Tensor, at::Tensor> distribution_loss_with_grad(const at::Tensor& student,
                                                               const at::Tensor& teacher,
                                                               double temperature);

// MoCo InfoNCE: logits [q.k, q.queue] / T with the positive at index 0, cross-entropy (mean).
// Returns {loss, logits}; logits carry no gradient.
std::vector<at::Tensor> info_nce(const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& queue, double temperature);
std::tuple<at::Tensor, at::Tensor, at::Tensor> info_nce_backward(
    const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& q, const at::Tensor& k,
    const at::Tensor& queue, double temperature, std::array<bool, 3> output_mask);

// Packed (1-bit) inference ops (packed.cpp, cuda/packed.cu; format in docs/bconv.md). No autograd:
// outputs never require grad.
// x float [N, C, H, W] (any memory format), bias optional with C values -> int64 [N, H, W,
// ceil(C/64)]: bit c%64 of word c/64 is 1 iff x + bias < 0 (0 and NaN pack as +1), bits >= C are 0.
at::Tensor pack_signs(const at::Tensor& x, const c10::optional<at::Tensor>& bias = {});
// w float [O, C, kh, kw] -> int64 [O, kh, kw, ceil(C/64)], bit set iff w < 0, padding bits 0.
at::Tensor pack_weights(const at::Tensor& w);
// The zero-padded convolution of the +-1 tensors: int32 [N, O, Ho, Wo] (channels_last strides),
// or with scale (and shift), float32 acc * scale[o] + shift[o].
at::Tensor bconv2d_packed(const at::Tensor& x, const at::Tensor& w, int64_t channels, int64_t stride,
                          int64_t padding, const c10::optional<at::Tensor>& scale = {},
                          const c10::optional<at::Tensor>& shift = {});
// bconv2d_packed with a named kernel, for tests and benchmarks: on CPU "avx512", "avx2", "scalar",
// "reference" or "mma-emulation" (the CUDA tensor-core kernel's arithmetic); on CUDA "popc" or "mma".
at::Tensor bconv2d_packed_kernel(const at::Tensor& x, const at::Tensor& w, int64_t channels,
                                 int64_t stride, int64_t padding, const c10::optional<at::Tensor>& scale,
                                 const c10::optional<at::Tensor>& shift, const std::string& kernel);
// A layer's packed weights in the layout its device's default kernel reads (CPU: the tiled
// kernels' weight blocks and +1 tap values; CUDA popc: the weights transposed to [K, O]; empty
// where the kernel reads the packed weights as they are), for a model to make once at load.
std::vector<at::Tensor> bconv_prepare(const at::Tensor& w, int64_t channels);
// bconv2d_packed with the weights' prepared layout: the same result, without re-laying the
// weights out on every call.
at::Tensor bconv2d_prepared(const at::Tensor& x, const at::Tensor& w, const std::vector<at::Tensor>& prepared,
                            int64_t channels, int64_t stride, int64_t padding,
                            const c10::optional<at::Tensor>& scale = {}, const c10::optional<at::Tensor>& shift = {});
// The CPU kernels this machine supports, the default (what bconv2d_packed runs) first.
std::vector<std::string> bconv2d_packed_cpu_kernels();

// The s2bnn CPU allocator (cpu_allocator.cpp): counts tensor bytes and caches freed blocks of
// 256 KiB and more, up to `cache_limit_bytes` (0: count only, cache nothing). Idempotent; a later
// call changes the limit.
void install_cpu_allocator(int64_t cache_limit_bytes);
// {current, peak, allocations, cached, cache limit}; bytes in use by tensors, by size class.
// `reset_peak` restarts the peak at the current level.
std::vector<int64_t> memory_stats(bool reset_peak);
// Frees every cached block.
void empty_cache();

// Reference compositions, called directly (autograd differentiates their plain torch ops).
at::Tensor sign_ste_reference(const at::Tensor& x);
at::Tensor sign_ste_biased_reference(const at::Tensor& x, const at::Tensor& bias);
at::Tensor binarize_weight_reference(const at::Tensor& w);
at::Tensor binary_conv2d_reference(const at::Tensor& x, const at::Tensor& w,
                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                   bool binarize_input, bool binarize_weight,
                                   const c10::optional<at::Tensor>& input_bias = {});
at::Tensor rprelu_reference(const at::Tensor& x, const at::Tensor& bias_in,
                            const at::Tensor& weight, const at::Tensor& bias_out);
at::Tensor distribution_loss_reference(const at::Tensor& student, const at::Tensor& teacher,
                                       double temperature);
std::vector<at::Tensor> info_nce_reference(const at::Tensor& q, const at::Tensor& k,
                                           const at::Tensor& queue, double temperature);

}  // namespace s2bnn::ops
