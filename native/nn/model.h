// The models s2bnn trains: torch::nn modules whose parameter names are the reference
// implementations' (docs/method.md), so state dicts move between s2bnn and PyTorch unchanged.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace s2bnn::nn {

// Inference cost at one input size, counted as the ReActNet paper does: FLOPs are the
// multiply-accumulates of real-valued convolutions and linear layers; binary OPs those of
// convolutions whose weights and activations are both binary; OPs = binary OPs / 64 + FLOPs.
struct Complexity {
  double flops = 0;
  double binary_ops = 0;
  int64_t parameters = 0;  // of the modules that run
  double ops() const { return binary_ops / 64 + flops; }
};

enum class Head { Linear, Mlp };

// The projection head of self-supervised training: Linear(d, d) -> ReLU -> Linear(d, dim), its
// output L2-normalized; or a plain Linear(d, classes) classifier. Registered as `fc` (the MLP's
// Linears are `fc.0` and `fc.2`, as in MoCo).
struct HeadOptions {
  Head kind = Head::Linear;
  int64_t classes = 1000;  // Linear head
  int64_t dim = 128;       // MLP head output
};

class Model : public torch::nn::Module {
 public:
  // The full network: logits (linear head) or L2-normalized embeddings (MLP head).
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  // Globally pooled backbone features [N, feature_dim] (what linear evaluation trains on).
  virtual at::Tensor features(const at::Tensor& x) = 0;
  virtual Complexity complexity(int64_t height, int64_t width) const = 0;
  virtual std::string arch() const = 0;
  virtual int64_t feature_dim() const = 0;
  // Modules the network registers but never runs, as dotted paths from the model (ReActNet-A's
  // blocks register both kinds of 1x1 stage, as the official code does). They get no gradient,
  // cost nothing per step, and loading does not require them (s2bnn's lean checkpoints lack them).
  virtual std::vector<std::string> unused_modules() const { return {}; }
};

using ModelPtr = std::shared_ptr<Model>;

// Builds and registers the head as `fc` on `owner`; returns a function applying it.
class ProjectionHead {
 public:
  ProjectionHead() = default;
  ProjectionHead(torch::nn::Module& owner, int64_t in_features, const HeadOptions& options);
  at::Tensor operator()(const at::Tensor& features);
  double flops() const;

 private:
  HeadOptions options_;
  int64_t in_features_ = 0;
  torch::nn::Linear linear_{nullptr};
  torch::nn::Sequential mlp_{nullptr};
};

// Whether `name` (a parameter or buffer key) lies under one of `modules`.
bool under_any(const std::string& name, const std::vector<std::string>& modules);

// The parameters of `model` outside its unused modules, in model order.
std::vector<std::pair<std::string, at::Tensor>> active_parameters(const Model& model);
int64_t parameter_count(const Model& model);  // their elements

// The state dict in PyTorch's order (per module: parameters, then buffers, then children).
std::vector<std::pair<std::string, at::Tensor>> state_dict(const torch::nn::Module& module);

struct LoadResult {
  std::vector<std::string> missing, unexpected;
};

// Copies matching entries into the model (dtype converted as PyTorch does). A shape mismatch
// is an error naming the key and both shapes; with `strict`, missing or unexpected keys are an
// error listing them. Never reported missing: `num_batches_tracked` (checkpoints older than
// PyTorch 0.4.1 lack it, and PyTorch's BatchNorm accepts them too) and the keys of the model's
// unused modules (s2bnn's lean checkpoints lack them; they keep their values).
LoadResult load_state_dict(Model& model, const std::vector<std::pair<std::string, at::Tensor>>& entries, bool strict);

}  // namespace s2bnn::nn
