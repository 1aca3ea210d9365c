// Autograd kernels: each forward saves only its inputs (never masks or binarized copies) and each
// backward is one fused backward op, so every backend gets the same memory behaviour.
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "ops.h"

namespace s2bnn::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SignSte : public torch::autograd::Function<SignSte> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({x});
    return sign_ste(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {sign_ste_backward(grads[0], saved[0])};
  }
};

class SignSteBiased : public torch::autograd::Function<SignSteBiased> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& bias) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({x, bias});
    return sign_ste_biased(x, bias);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto result = sign_ste_biased_backward(grads[0], saved[0], saved[1]);
    return {std::get<0>(result), std::get<1>(result)};
  }
};

class BinarizeWeight : public torch::autograd::Function<BinarizeWeight> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& w) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({w});
    return binarize_weight(w);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {binarize_weight_backward(grads[0], saved[0])};
  }
};

class BinaryConv2d : public torch::autograd::Function<BinaryConv2d> {
 public:
  // Autograd functions need defined tensors to build their edges: "no bias" travels as an empty
  // tensor (a real bias has one value per input channel, so never zero).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            at::IntArrayRef stride, at::IntArrayRef padding, bool binarize_input,
                            bool binarize_w, const at::Tensor& input_bias) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({x, w, input_bias});
    ctx->saved_data["stride"] = stride.vec();
    ctx->saved_data["padding"] = padding.vec();
    ctx->saved_data["binarize_input"] = binarize_input;
    ctx->saved_data["binarize_weight"] = binarize_w;
    return binary_conv2d(x, w, stride, padding, binarize_input, binarize_w, optional(input_bias));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto stride = ctx->saved_data["stride"].toIntVector();
    const auto padding = ctx->saved_data["padding"].toIntVector();
    const bool biased = saved[2].numel() > 0;
    auto result = binary_conv2d_backward(
        grads[0], saved[0], saved[1], stride, padding, ctx->saved_data["binarize_input"].toBool(),
        ctx->saved_data["binarize_weight"].toBool(), optional(saved[2]),
        {ctx->needs_input_grad(0), ctx->needs_input_grad(1), biased && ctx->needs_input_grad(2)});
    return {std::get<0>(result), std::get<1>(result), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), std::get<2>(result)};
  }

 private:
  static c10::optional<at::Tensor> optional(const at::Tensor& t) {
    return t.numel() > 0 ? c10::optional<at::Tensor>(t) : c10::optional<at::Tensor>();
  }
};

class RPReLU : public torch::autograd::Function<RPReLU> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& bias_in,
                            const at::Tensor& weight, const at::Tensor& bias_out) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({x, bias_in, weight, bias_out});
    return rprelu(x, bias_in, weight, bias_out);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto result = rprelu_backward(grads[0], saved[0], saved[1], saved[2], saved[3]);
    return {std::get<0>(result), std::get<1>(result), std::get<2>(result), std::get<3>(result)};
  }
};

// With a student that needs a gradient, the forward computes the gradient too (one pass over
// each row instead of two) and the backward only scales it by the upstream gradient.
class DistributionLoss : public torch::autograd::Function<DistributionLoss> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& student,
                            const at::Tensor& teacher, double temperature) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    if (!student.requires_grad()) return distribution_loss(student, teacher, temperature);
    auto [loss, grad] = distribution_loss_with_grad(student, teacher, temperature);
    ctx->save_for_backward({grad});
    return loss;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    // The teacher is a fixed target: it never receives a gradient, even if it requires one.
    return {saved.at(0) * grads[0], at::Tensor(), at::Tensor()};
  }
};

class InfoNce : public torch::autograd::Function<InfoNce> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& queue, double temperature) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto outputs = info_nce(q, k, queue, temperature);
    ctx->mark_non_differentiable({outputs[1]});
    ctx->save_for_backward({q, k, queue, outputs[1]});
    ctx->saved_data["temperature"] = temperature;
    return outputs;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto result = info_nce_backward(
        grads[0], saved[3], saved[0], saved[1], saved[2],
        ctx->saved_data["temperature"].toDouble(),
        {ctx->needs_input_grad(0), ctx->needs_input_grad(1), ctx->needs_input_grad(2)});
    return {std::get<0>(result), std::get<1>(result), std::get<2>(result), at::Tensor()};
  }
};

at::Tensor sign_ste_autograd(const at::Tensor& x) { return SignSte::apply(x); }

at::Tensor sign_ste_biased_autograd(const at::Tensor& x, const at::Tensor& bias) {
  return SignSteBiased::apply(x, bias);
}

at::Tensor binarize_weight_autograd(const at::Tensor& w) { return BinarizeWeight::apply(w); }

at::Tensor binary_conv2d_autograd(const at::Tensor& x, const at::Tensor& w,
                                  at::IntArrayRef stride, at::IntArrayRef padding,
                                  bool binarize_input, bool binarize_w,
                                  const c10::optional<at::Tensor>& input_bias) {
  const bool biased = input_bias.has_value() && input_bias->defined();
  return BinaryConv2d::apply(x, w, stride, padding, binarize_input, binarize_w,
                             biased ? *input_bias : at::empty({0}, x.options()));
}

at::Tensor rprelu_autograd(const at::Tensor& x, const at::Tensor& bias_in,
                           const at::Tensor& weight, const at::Tensor& bias_out) {
  return RPReLU::apply(x, bias_in, weight, bias_out);
}

at::Tensor distribution_loss_autograd(const at::Tensor& student, const at::Tensor& teacher,
                                      double temperature) {
  return DistributionLoss::apply(student, teacher, temperature);
}

std::vector<at::Tensor> info_nce_autograd(const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& queue, double temperature) {
  return InfoNce::apply(q, k, queue, temperature);
}

}  // namespace
}  // namespace s2bnn::ops

TORCH_LIBRARY_IMPL(s2bnn, Autograd, m) {
  m.impl("sign_ste", &s2bnn::ops::sign_ste_autograd);
  m.impl("sign_ste_biased", &s2bnn::ops::sign_ste_biased_autograd);
  m.impl("binarize_weight", &s2bnn::ops::binarize_weight_autograd);
  m.impl("binary_conv2d", &s2bnn::ops::binary_conv2d_autograd);
  m.impl("rprelu", &s2bnn::ops::rprelu_autograd);
  m.impl("distribution_loss", &s2bnn::ops::distribution_loss_autograd);
  m.impl("info_nce", &s2bnn::ops::info_nce_autograd);
}
