// torchvision's ResNet-18/34/50 (v1.5: the bottleneck strides in its 3x3 conv) with torchvision's
// parameter names, so the public MoCo v2 ResNet-50 teacher loads as it is. The small stem (3x3,
// stride 1, no max-pool) is the usual CIFAR-scale variant for small-image teachers.
#pragma once

#include "batch_norm.h"
#include "model.h"

namespace s2bnn::nn {

struct ResNetOptions {
  int depth = 50;  // 18, 34 or 50
  HeadOptions head;
  int64_t in_channels = 3;
  bool small_stem = false;
  // Multiplies every width (64, 128, 256, 512 -> rounded, at least 1): slim real-valued teachers
  // for small-scale experiments. 1 is torchvision's network.
  double width = 1.0;
};

class ResNetBlockImpl : public torch::nn::Module {
 public:
  ResNetBlockImpl(int64_t in, int64_t planes, int64_t stride, bool bottleneck);
  at::Tensor forward(const at::Tensor& x);
  double flops(int64_t& height, int64_t& width) const;
  int64_t out_channels() const { return planes_ * (bottleneck_ ? 4 : 1); }

 private:
  int64_t in_, planes_, stride_;
  bool bottleneck_;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
  friend class FrozenResNet;
};
TORCH_MODULE(ResNetBlock);

class ResNet : public Model {
 public:
  explicit ResNet(const ResNetOptions& options);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor features(const at::Tensor& x) override;
  Complexity complexity(int64_t height, int64_t width) const override;
  std::string arch() const override { return "resnet" + std::to_string(options_.depth); }
  int64_t feature_dim() const override { return feature_dim_; }

 private:
  ResNetOptions options_;
  int64_t feature_dim_ = 0;
  int64_t base_width_ = 64;
  torch::nn::Conv2d conv1{nullptr};
  BatchNorm2d bn1{nullptr};
  std::vector<ResNetBlock> blocks_;
  ProjectionHead head_;
  friend class FrozenResNet;
};

}  // namespace s2bnn::nn
