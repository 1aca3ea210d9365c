// Backend-independent pieces that the CPU and CUDA kernels both wrap around their own loops.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <tuple>

namespace s2bnn::shared {

// x viewed as [batch, channels, plane]; plane is the product of the trailing dims (1 for 2-D).
struct ChannelLayout {
  int64_t batch, channels, plane;
};

inline ChannelLayout layout_of(const at::Tensor& x) {
  return {x.size(0), x.size(1), x.dim() > 2 ? x.numel() / (x.size(0) * x.size(1)) : 1};
}

// Raw (unscaled) MoCo logits in one [B, 1 + K] buffer: column 0 = rowwise q.k, the rest q @ queue
// written straight in by the GEMM (ldc = 1 + K), so no cat and no second copy.
inline at::Tensor info_nce_raw_logits(const at::Tensor& q, const at::Tensor& k,
                                      const at::Tensor& queue) {
  const int64_t negatives = queue.size(1);
  at::Tensor logits = at::empty({q.size(0), negatives + 1}, q.options());
  at::Tensor negative = logits.narrow(1, 1, negatives);
  at::Tensor positive = logits.select(1, 0);
  at::mm_out(negative, q, queue);
  at::sum_out(positive, q * k, {1});
  return logits;
}

// Input gradients from d loss / d raw logits (softmax - onehot, already scaled by 1 / (B T)).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> info_nce_input_grads(
    const at::Tensor& grad_logits, const at::Tensor& q, const at::Tensor& k,
    const at::Tensor& queue, std::array<bool, 3> output_mask) {
  const at::Tensor grad_pos = grad_logits.narrow(1, 0, 1);
  const at::Tensor grad_neg = grad_logits.narrow(1, 1, queue.size(1));
  at::Tensor grad_q, grad_k, grad_queue;
  if (output_mask[0]) grad_q = at::addmm(grad_pos * k, grad_neg, queue.t());
  if (output_mask[1]) grad_k = grad_pos * q;
  if (output_mask[2]) grad_queue = at::mm(q.t(), grad_neg);
  return {grad_q, grad_k, grad_queue};
}

inline void check_logits(const at::Tensor& logits, const at::Tensor& q, const at::Tensor& queue) {
  const int64_t rows = q.size(0), width = queue.size(1) + 1;
  TORCH_CHECK(logits.dim() == 2 && logits.size(0) == rows && logits.size(1) == width,
              "info_nce_backward: logits must be [", rows, ", ", width, "], got ",
              logits.sizes());
}

}  // namespace s2bnn::shared
