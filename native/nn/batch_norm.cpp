#include "batch_norm.h"

#include <cmath>

namespace s2bnn::nn {

namespace {
thread_local int64_t ghost_groups = 1;
}

GhostBatches::GhostBatches(int64_t groups) : previous_(ghost_groups) {
  TORCH_CHECK(groups >= 1, "ghost batches: groups must be >= 1, got ", groups);
  ghost_groups = groups;
}

GhostBatches::~GhostBatches() { ghost_groups = previous_; }

BatchNorm2dImpl::BatchNorm2dImpl(int64_t features) {
  weight = register_parameter("weight", torch::ones({features}));
  bias = register_parameter("bias", torch::zeros({features}));
  running_mean = register_buffer("running_mean", torch::zeros({features}));
  running_var = register_buffer("running_var", torch::ones({features}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
}

at::Tensor BatchNorm2dImpl::forward(const at::Tensor& input) {
  TORCH_CHECK(input.dim() == 4, "BatchNorm2d: expected a 4-d input [N, C, H, W], got ", input.sizes());
  TORCH_CHECK(input.size(1) == weight.size(0), "BatchNorm2d: expected ", weight.size(0), " channels, got ",
              input.size(1));
  if (!is_training()) {
    return at::batch_norm(input, weight, bias, running_mean, running_var, false, kMomentum, kEps,
                          at::globalContext().userEnabledCuDNN());
  }
  if (ghost_groups > 1) return forward_ghost(input, ghost_groups);
  {
    at::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
  }
  return at::batch_norm(input, weight, bias, running_mean, running_var, true, kMomentum, kEps,
                        at::globalContext().userEnabledCuDNN());
}

at::Tensor BatchNorm2dImpl::forward_ghost(const at::Tensor& input, int64_t groups) {
  const int64_t batch = input.size(0), channels = input.size(1);
  TORCH_CHECK(batch % groups == 0 && batch / groups >= 2, "BatchNorm2d: a batch of ", batch, " does not split into ",
              groups, " ghost batches of at least 2 samples");
  const at::Tensor grouped = input.contiguous().view({batch / groups, groups * channels, input.size(2), input.size(3)});
  // With momentum 1 the running buffers receive each sub-batch's own mean and unbiased variance.
  at::Tensor group_mean = at::zeros({groups * channels}, running_mean.options());
  at::Tensor group_var = at::zeros({groups * channels}, running_var.options());
  const at::Tensor output = at::batch_norm(grouped, weight.repeat(groups), bias.repeat(groups), group_mean, group_var,
                                           true, /*momentum=*/1.0, kEps, at::globalContext().userEnabledCuDNN());
  at::NoGradGuard no_grad;
  // `groups` sequential updates r <- (1 - m) r + m x_g, sub-batch 0 first, in closed form (a few
  // kernels per layer instead of 2 per sub-batch): r <- (1 - m)^G r + sum_g m (1 - m)^(G-1-g) x_g.
  const at::Tensor weights =
      at::pow(1 - kMomentum, at::arange(groups - 1, -1, -1, running_mean.options())).mul_(kMomentum);
  const double decay = std::pow(1 - kMomentum, static_cast<double>(groups));
  running_mean.mul_(decay).add_(at::matmul(weights, group_mean.view({groups, channels})));
  running_var.mul_(decay).add_(at::matmul(weights, group_var.view({groups, channels})));
  num_batches_tracked.add_(groups);
  return output.view(input.sizes());
}

void BatchNorm2dImpl::pretty_print(std::ostream& stream) const {
  stream << "BatchNorm2d(" << weight.size(0) << ", eps=" << kEps << ", momentum=" << kMomentum << ")";
}

}  // namespace s2bnn::nn
