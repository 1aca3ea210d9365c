// ReActNet-A (docs/checkpoints.md) in the official S2-BNN code's module layout: feature.0.{conv1,bn1}
// for the stem, then blocks feature.1..13, each registering move11, binary_3x3, bn1, move12,
// prelu1, move13, move21, binary_pw, bn2, move22, prelu2, move23, binary_pw_down1,
// binary_pw_down2, bn2_1, bn2_2 in that order whether it runs them or not; head fc.
#pragma once

#include "batch_norm.h"
#include "model.h"

namespace s2bnn::nn {

struct ReActNetOptions {
  // Step 2 of two-step training binarizes weights and activations; step 1 only activations
  // (its convolutions are ordinary ones with real weights, as in the reference).
  bool binarize_weights = true;
  HeadOptions head;
  int64_t in_channels = 3;
  // The ImageNet stem downsamples by 2; the small stem keeps the resolution (28-64 px inputs).
  bool small_stem = false;
  // Multiplies every stage width (1 = the paper).
  double width = 1.0;
};

// The block's binary convolution: sign(x + input_bias) convolved with binarized (step 2) or real
// (step 1) weights, in one op that keeps only x for its backward. Parameter `weight`.
class BinaryConvImpl : public torch::nn::Module {
 public:
  BinaryConvImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool binarize_weights);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& input_bias);
  at::Tensor weight;
  int64_t in, out, kernel, stride;
  bool binarize_weights;
};
TORCH_MODULE(BinaryConv);

// The reference's LearnableBias: parameter `bias` [1, C, 1, 1], zeros.
class LearnableBiasImpl : public torch::nn::Module {
 public:
  explicit LearnableBiasImpl(int64_t channels);
  at::Tensor bias;
};
TORCH_MODULE(LearnableBias);

// The official block registers the modules of both kinds of block, so that its state dicts,
// parameter order (torch.optim's state indices) and checkpoints are those of every released
// model; a same-width block runs binary_pw / bn2, a doubling one binary_pw_down1/2 / bn2_1/2.
// The others keep their initial values and never see a gradient.
class ReActBlockImpl : public torch::nn::Module {
 public:
  ReActBlockImpl(int64_t in, int64_t out, int64_t stride, bool binarize_weights);
  at::Tensor forward(const at::Tensor& x);
  void add_complexity(Complexity& c, int64_t& height, int64_t& width) const;
  // The names of the registered modules this block never runs.
  std::vector<std::string> unused_modules() const;

 private:
  int64_t in_, out_, stride_;
  LearnableBias move11{nullptr}, move12{nullptr}, move13{nullptr};
  LearnableBias move21{nullptr}, move22{nullptr}, move23{nullptr};
  BinaryConv binary_3x3{nullptr}, binary_pw{nullptr}, binary_pw_down1{nullptr}, binary_pw_down2{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn2_1{nullptr}, bn2_2{nullptr};
  torch::nn::PReLU prelu1{nullptr}, prelu2{nullptr};
};
TORCH_MODULE(ReActBlock);

class ReActNetA : public Model {
 public:
  explicit ReActNetA(const ReActNetOptions& options);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor features(const at::Tensor& x) override;
  Complexity complexity(int64_t height, int64_t width) const override;
  std::string arch() const override { return "reactnet-a"; }
  int64_t feature_dim() const override { return widths_.back(); }
  std::vector<std::string> unused_modules() const override;

  // The paper's stage widths; entry 0 is the stem.
  static const std::vector<int64_t>& base_widths();

 private:
  ReActNetOptions options_;
  std::vector<int64_t> widths_;
  torch::nn::ModuleList feature_{nullptr};
  torch::nn::Conv2d stem_conv_{nullptr};
  BatchNorm2d stem_bn_{nullptr};
  std::vector<ReActBlock> blocks_;
  ProjectionHead head_;
};

}  // namespace s2bnn::nn
