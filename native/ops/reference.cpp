// The reference formulations: each operator written as a composition of plain torch ops, the
// way the public S2-BNN / ReActNet / MoCo code writes it (masks, detach tricks, cat + cross
// entropy). Autograd differentiates them, so they are both the parity oracle for the fused
// kernels and the baseline the benchmarks measure against.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops.h"

namespace s2bnn::ops {

at::Tensor sign_ste_reference(const at::Tensor& x) {
  const at::Tensor out_forward = at::sign(x);
  const at::Tensor mask1 = (x < -1).to(x.scalar_type());
  const at::Tensor mask2 = (x < 0).to(x.scalar_type());
  const at::Tensor mask3 = (x < 1).to(x.scalar_type());
  const at::Tensor out1 = -1 * mask1 + (x * x + 2 * x) * (1 - mask1);
  const at::Tensor out2 = out1 * mask2 + (-x * x + 2 * x) * (1 - mask2);
  const at::Tensor out3 = out2 * mask3 + 1 * (1 - mask3);
  return out_forward.detach() - out3.detach() + out3;
}

at::Tensor sign_ste_biased_reference(const at::Tensor& x, const at::Tensor& bias) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = x.size(1);
  return sign_ste_reference(x + bias.reshape(shape));
}

at::Tensor binarize_weight_reference(const at::Tensor& w) {
  std::vector<int64_t> reduce_dims;
  for (int64_t d = 1; d < w.dim(); ++d) reduce_dims.push_back(d);
  const at::Tensor alpha =
      reduce_dims.empty() ? w.abs() : at::mean(w.abs(), reduce_dims, /*keepdim=*/true);
  const at::Tensor binary_no_grad = alpha.detach() * at::sign(w);
  const at::Tensor clipped = at::clamp(w, -1.0, 1.0);
  return binary_no_grad.detach() - clipped.detach() + clipped;
}

at::Tensor binary_conv2d_reference(const at::Tensor& x, const at::Tensor& w,
                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                   bool binarize_input, bool binarize_w,
                                   const c10::optional<at::Tensor>& input_bias) {
  const bool biased = input_bias.has_value() && input_bias->defined();
  const at::Tensor input = !binarize_input ? x : biased ? sign_ste_biased_reference(x, *input_bias) : sign_ste_reference(x);
  const at::Tensor weight = binarize_w ? binarize_weight_reference(w) : w;
  return at::conv2d(input, weight, {}, stride, padding);
}

at::Tensor rprelu_reference(const at::Tensor& x, const at::Tensor& bias_in,
                            const at::Tensor& weight, const at::Tensor& bias_out) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = x.size(1);
  const at::Tensor z = x + bias_in.reshape(shape);
  return at::prelu(z, weight.reshape({x.size(1)})) + bias_out.reshape(shape);
}

at::Tensor distribution_loss_reference(const at::Tensor& student, const at::Tensor& teacher,
                                       double temperature) {
  const at::Tensor target = at::softmax(teacher.detach() / temperature, 1);
  const at::Tensor log_probs = at::log_softmax(student / temperature, 1);
  return -(target * log_probs).sum(1).mean();
}

std::vector<at::Tensor> info_nce_reference(const at::Tensor& q, const at::Tensor& k,
                                           const at::Tensor& queue, double temperature) {
  const at::Tensor positive = (q * k).sum(1, /*keepdim=*/true);
  const at::Tensor negative = at::mm(q, queue);
  const at::Tensor logits = at::cat({positive, negative}, 1) / temperature;
  const at::Tensor labels = at::zeros({q.size(0)}, q.options().dtype(at::kLong));
  return {at::cross_entropy_loss(logits, labels), logits.detach()};
}

}  // namespace s2bnn::ops

TORCH_LIBRARY_IMPL(s2bnn, CompositeImplicitAutograd, m) {
  m.impl("sign_ste_reference", &s2bnn::ops::sign_ste_reference);
  m.impl("sign_ste_biased_reference", &s2bnn::ops::sign_ste_biased_reference);
  m.impl("binarize_weight_reference", &s2bnn::ops::binarize_weight_reference);
  m.impl("binary_conv2d_reference", &s2bnn::ops::binary_conv2d_reference);
  m.impl("rprelu_reference", &s2bnn::ops::rprelu_reference);
  m.impl("distribution_loss_reference", &s2bnn::ops::distribution_loss_reference);
  m.impl("info_nce_reference", &s2bnn::ops::info_nce_reference);
}
