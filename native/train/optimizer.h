// The optimizers of the S2-BNN recipes with PyTorch 1.13's exact update rules (torch.optim.Adam
// with L2 weight decay added to the gradient; torch.optim.SGD with momentum), and their state in
// torch.optim's layout so checkpoints resume in either framework. On CPU float32 tensors one
// fused pass per parameter replaces the five to seven tensor ops PyTorch runs.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace s2bnn::train {

enum class OptimizerKind { Adam, Sgd };

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::Adam;
  double lr = 3e-4;
  double weight_decay = 0;
  // Adam
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  // SGD
  double momentum = 0.9, dampening = 0;
  bool nesterov = false;
};

// Per parameter, what torch.optim keeps in `state[i]`. Undefined tensors = not created yet.
struct ParamState {
  int64_t step = 0;          // Adam
  at::Tensor exp_avg, exp_avg_sq;  // Adam
  at::Tensor momentum_buffer;      // SGD
};

class Optimizer {
 public:
  Optimizer(std::vector<at::Tensor> params, OptimizerOptions options);

  // One update of every parameter that has a gradient; others are left alone (as PyTorch does).
  void step();
  // zero_grad(set_to_none=True).
  void zero_grad();

  const OptimizerOptions& options() const { return options_; }
  void set_lr(double lr) { options_.lr = lr; }
  const std::vector<at::Tensor>& params() const { return params_; }
  std::vector<ParamState>& state() { return state_; }

  // Validates shapes against the parameters before replacing anything, so a failed load leaves
  // the optimizer as it was.
  void load_state(std::vector<ParamState> state);

 private:
  void adam(size_t index, at::Tensor& param, const at::Tensor& grad);
  void sgd(size_t index, at::Tensor& param, const at::Tensor& grad);

  std::vector<at::Tensor> params_;
  OptimizerOptions options_;
  std::vector<ParamState> state_;
};

}  // namespace s2bnn::train
