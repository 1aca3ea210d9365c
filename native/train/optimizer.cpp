#include "optimizer.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <type_traits>

namespace s2bnn::train {
namespace {

constexpr int64_t kGrain = 1 << 15;

bool fusable(const at::Tensor& param, const at::Tensor& grad, std::initializer_list<const at::Tensor*> state) {
  if (!param.device().is_cpu() || param.scalar_type() != at::kFloat || !param.is_contiguous()) return false;
  if (grad.scalar_type() != at::kFloat || !grad.is_contiguous() || grad.sizes() != param.sizes()) return false;
  for (const at::Tensor* t : state) {
    if (!t->is_contiguous() || t->scalar_type() != at::kFloat) return false;
  }
  return true;
}

}  // namespace

Optimizer::Optimizer(std::vector<at::Tensor> params, OptimizerOptions options)
    : params_(std::move(params)), options_(options), state_(params_.size()) {
  TORCH_CHECK(!params_.empty(), "optimizer: no trainable parameters (is every parameter frozen?)");
  TORCH_CHECK(options_.lr >= 0, "optimizer: lr must be >= 0, got ", options_.lr);
  TORCH_CHECK(options_.weight_decay >= 0, "optimizer: weight decay must be >= 0, got ", options_.weight_decay);
  if (options_.kind == OptimizerKind::Adam) {
    TORCH_CHECK(options_.beta1 >= 0 && options_.beta1 < 1 && options_.beta2 >= 0 && options_.beta2 < 1,
                "optimizer: Adam betas must be in [0, 1), got (", options_.beta1, ", ", options_.beta2, ")");
    TORCH_CHECK(options_.eps >= 0, "optimizer: eps must be >= 0");
  } else {
    TORCH_CHECK(options_.momentum >= 0, "optimizer: SGD momentum must be >= 0");
    TORCH_CHECK(!options_.nesterov || (options_.momentum > 0 && options_.dampening == 0),
                "optimizer: Nesterov momentum needs momentum > 0 and zero dampening");
  }
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.mutable_grad() = at::Tensor();
}

void Optimizer::step() {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& param = params_[i];
    const at::Tensor& grad = param.grad();
    if (!grad.defined()) continue;
    TORCH_CHECK(!grad.is_sparse(), "optimizer: sparse gradients are not supported");
    if (options_.kind == OptimizerKind::Adam) {
      adam(i, param, grad);
    } else {
      sgd(i, param, grad);
    }
  }
}

void Optimizer::adam(size_t index, at::Tensor& param, const at::Tensor& grad) {
  ParamState& s = state_[index];
  if (!s.exp_avg.defined()) {
    s.exp_avg = at::zeros_like(param, at::MemoryFormat::Preserve);
    s.exp_avg_sq = at::zeros_like(param, at::MemoryFormat::Preserve);
  }
  s.step += 1;
  const double beta1 = options_.beta1, beta2 = options_.beta2, wd = options_.weight_decay;
  const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(s.step));
  const double bias_correction2_sqrt = std::sqrt(1 - std::pow(beta2, static_cast<double>(s.step)));
  const double step_size = options_.lr / bias_correction1;

  if (fusable(param, grad, {&s.exp_avg, &s.exp_avg_sq})) {
    float* __restrict p = param.data_ptr<float>();
    const float* __restrict g = grad.data_ptr<float>();
    float* __restrict m = s.exp_avg.data_ptr<float>();
    float* __restrict v = s.exp_avg_sq.data_ptr<float>();
    // The constants are rounded to float as ATen's CPU kernels round scalar arguments.
    const float b1 = beta1, one_minus_b1 = 1 - beta1, b2 = beta2, one_minus_b2 = 1 - beta2;
    const float decay = wd, bc2 = bias_correction2_sqrt, eps = options_.eps, neg_step = -step_size;
    // Memory-bound only once vectorized: the four tensors never alias (the moments are this
    // optimizer's own, the gradient autograd's), and the decay branch is out of the loop so the
    // compiler emits one SIMD loop per case (vsqrtps/vdivps round exactly like scalar sqrt and /).
    auto update = [&](auto with_decay, int64_t begin, int64_t end) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) {
        const float gi = with_decay ? g[i] + decay * p[i] : g[i];
        const float mi = m[i] * b1 + one_minus_b1 * gi;
        const float vi = v[i] * b2 + one_minus_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] += neg_step * (mi / (std::sqrt(vi) / bc2 + eps));
      }
    };
    at::parallel_for(0, param.numel(), kGrain, [&](int64_t begin, int64_t end) {
      if (decay != 0) {
        update(std::true_type{}, begin, end);
      } else {
        update(std::false_type{}, begin, end);
      }
    });
    return;
  }
  const at::Tensor g = wd != 0 ? grad.add(param, wd) : grad;
  s.exp_avg.mul_(beta1).add_(g, 1 - beta1);
  s.exp_avg_sq.mul_(beta2).addcmul_(g, g, 1 - beta2);
  const at::Tensor denom = (s.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(options_.eps);
  param.addcdiv_(s.exp_avg, denom, -step_size);
}

void Optimizer::sgd(size_t index, at::Tensor& param, const at::Tensor& grad) {
  ParamState& s = state_[index];
  const double wd = options_.weight_decay, momentum = options_.momentum, lr = options_.lr;
  const bool first = !s.momentum_buffer.defined();
  if (momentum != 0 && first) s.momentum_buffer = at::empty_like(param, at::MemoryFormat::Preserve);

  if (fusable(param, grad, momentum != 0 ? std::initializer_list<const at::Tensor*>{&s.momentum_buffer}
                                         : std::initializer_list<const at::Tensor*>{})) {
    float* __restrict p = param.data_ptr<float>();
    const float* __restrict g = grad.data_ptr<float>();
    float* __restrict buf = momentum != 0 ? s.momentum_buffer.data_ptr<float>() : nullptr;
    const float decay = wd, mu = momentum, keep = 1 - options_.dampening, neg_lr = -lr;
    // As in Adam: no aliasing, and every branch decided outside the loop, so each case is one
    // SIMD loop (with the branches inside, it ran slower than the Adam loop).
    auto update = [&](auto with_decay, auto with_momentum, auto first_step, auto nesterov, int64_t begin, int64_t end) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) {
        float d = with_decay ? g[i] + decay * p[i] : g[i];
        if constexpr (decltype(with_momentum)::value) {
          // PyTorch starts the buffer as a copy of the first gradient (no dampening).
          const float b = first_step ? d : buf[i] * mu + keep * d;
          buf[i] = b;
          d = nesterov ? d + mu * b : b;
        }
        p[i] += neg_lr * d;
      }
    };
    const auto choose = [](bool flag, auto&& next) {
      return flag ? next(std::true_type{}) : next(std::false_type{});
    };
    at::parallel_for(0, param.numel(), kGrain, [&](int64_t begin, int64_t end) {
      choose(decay != 0, [&](auto with_decay) {
        choose(buf != nullptr, [&](auto with_momentum) {
          choose(first, [&](auto first_step) {
            choose(options_.nesterov, [&](auto nesterov) { update(with_decay, with_momentum, first_step, nesterov, begin, end); });
          });
        });
      });
    });
    return;
  }
  at::Tensor d = wd != 0 ? grad.add(param, wd) : grad;
  if (momentum != 0) {
    if (first) {
      s.momentum_buffer.copy_(d);
    } else {
      s.momentum_buffer.mul_(momentum).add_(d, 1 - options_.dampening);
    }
    d = options_.nesterov ? d.add(s.momentum_buffer, momentum) : s.momentum_buffer;
  }
  param.add_(d, -lr);
}

void Optimizer::load_state(std::vector<ParamState> state) {
  TORCH_CHECK(state.size() == params_.size(), "optimizer state: ", state.size(), " parameter entries for ",
              params_.size(), " parameters (was the checkpoint written for another model or freeze?)");
  for (size_t i = 0; i < state.size(); ++i) {
    ParamState& s = state[i];
    const at::Tensor& p = params_[i];
    for (at::Tensor* t : {&s.exp_avg, &s.exp_avg_sq, &s.momentum_buffer}) {
      if (!t->defined()) continue;
      TORCH_CHECK(t->sizes() == p.sizes(), "optimizer state of parameter ", i, ": shape ", t->sizes(),
                  " does not match the parameter's ", p.sizes());
      // A copy: the source usually belongs to a loaded checkpoint that must not change under it.
      *t = t->to(p.device(), p.scalar_type(), /*non_blocking=*/false, /*copy=*/true).contiguous();
    }
    TORCH_CHECK(s.exp_avg.defined() == s.exp_avg_sq.defined(),
                "optimizer state of parameter ", i, ": exp_avg and exp_avg_sq must come together");
    TORCH_CHECK(s.step >= 0, "optimizer state of parameter ", i, ": negative step");
  }
  state_ = std::move(state);
}

}  // namespace s2bnn::train
