#include "frozen_resnet.h"

#include <ATen/Context.h>

namespace s2bnn::nn {

std::unique_ptr<FrozenResNet> FrozenResNet::of(const ModelPtr& model) {
  auto resnet = std::dynamic_pointer_cast<ResNet>(model);
  if (!resnet || resnet->is_training() || !at::hasMKLDNN()) return nullptr;
  const auto parameters = resnet->parameters();
  if (parameters.empty()) return nullptr;
  const at::Tensor& first = parameters.front();
  if (!first.device().is_cpu() || (first.scalar_type() != at::kFloat && first.scalar_type() != at::kBFloat16)) {
    return nullptr;
  }
  return std::unique_ptr<FrozenResNet>(new FrozenResNet(std::move(resnet)));
}

FrozenResNet::Conv FrozenResNet::fold(const torch::nn::Conv2dImpl& conv, const BatchNorm2dImpl& bn, int64_t stride,
                                      at::ScalarType dtype) {
  at::NoGradGuard no_grad;
  const at::Tensor scale = bn.weight.to(at::kFloat) / at::sqrt(bn.running_var.to(at::kFloat) + BatchNorm2dImpl::kEps);
  const at::Tensor weight = (conv.weight.to(at::kFloat) * scale.view({-1, 1, 1, 1})).to(dtype).contiguous();
  Conv folded;
  folded.stride = stride;
  folded.padding = weight.size(2) / 2;
  folded.weight = at::mkldnn_reorder_conv2d_weight(weight.to_mkldnn(dtype), {folded.padding, folded.padding},
                                                   {stride, stride}, {1, 1}, 1);
  // oneDNN adds a float bias to bfloat16 convolutions too.
  folded.bias = (bn.bias.to(at::kFloat) - bn.running_mean.to(at::kFloat) * scale).to_mkldnn();
  return folded;
}

at::Tensor FrozenResNet::Conv::operator()(const at::Tensor& x) const {
  return at::mkldnn_convolution(x, weight, bias, {padding, padding}, {stride, stride}, {1, 1}, 1);
}

FrozenResNet::FrozenResNet(std::shared_ptr<ResNet> model) : model_(std::move(model)) {
  dtype_ = model_->parameters().front().scalar_type();
  stem_ = fold(*model_->conv1, *model_->bn1, model_->options_.small_stem ? 1 : 2, dtype_);
  for (ResNetBlock& module : model_->blocks_) {
    ResNetBlockImpl& b = *module;
    Block block;
    // torchvision v1.5: a bottleneck strides in its 3x3, a basic block in its first conv.
    block.conv1 = fold(*b.conv1, *b.bn1, b.bottleneck_ ? 1 : b.stride_, dtype_);
    block.conv2 = fold(*b.conv2, *b.bn2, b.bottleneck_ ? b.stride_ : 1, dtype_);
    if (b.bottleneck_) block.conv3 = fold(*b.conv3, *b.bn3, 1, dtype_);
    if (b.downsample) {
      block.downsample = fold(*b.downsample->ptr(0)->as<torch::nn::Conv2dImpl>(),
                              *b.downsample->ptr(1)->as<BatchNorm2dImpl>(), b.stride_, dtype_);
    }
    blocks_.push_back(std::move(block));
  }
}

at::Tensor FrozenResNet::forward(const at::Tensor& x) const {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == model_->options_.in_channels, model_->arch(), ": the input must be [N, ",
              model_->options_.in_channels, ", H, W], got ", x.sizes());
  at::NoGradGuard no_grad;
  at::Tensor y = stem_(x.contiguous().to_mkldnn(dtype_)).relu_();
  if (!model_->options_.small_stem) y = at::mkldnn_max_pool2d(y, {3, 3}, {2, 2}, {1, 1});
  for (const Block& block : blocks_) {
    const at::Tensor identity = block.downsample.weight.defined() ? block.downsample(y) : y;
    at::Tensor z = block.conv1(y).relu_();
    z = block.conv2(z);
    if (block.conv3.weight.defined()) z = block.conv3(z.relu_());
    y = z.add_(identity).relu_();
  }
  const at::Tensor features = at::mkldnn_adaptive_avg_pool2d(y, {1, 1}).to_dense().flatten(1);
  return model_->head_(features);
}

}  // namespace s2bnn::nn
