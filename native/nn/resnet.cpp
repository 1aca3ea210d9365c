#include "resnet.h"

#include <algorithm>
#include <cmath>

namespace s2bnn::nn {

namespace F = torch::nn::functional;

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  torch::nn::Conv2d c(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
  // torchvision's initialization: He normal, fan-out, for ReLU.
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut, torch::kReLU);
  return c;
}

int64_t out_size(int64_t size, int64_t kernel, int64_t stride) { return (size + 2 * (kernel / 2) - kernel) / stride + 1; }

}  // namespace

ResNetBlockImpl::ResNetBlockImpl(int64_t in, int64_t planes, int64_t stride, bool bottleneck)
    : in_(in), planes_(planes), stride_(stride), bottleneck_(bottleneck) {
  if (bottleneck) {
    conv1 = register_module("conv1", conv(in, planes, 1, 1));
    bn1 = register_module("bn1", BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, stride));
    bn2 = register_module("bn2", BatchNorm2d(planes));
    conv3 = register_module("conv3", conv(planes, planes * 4, 1, 1));
    bn3 = register_module("bn3", BatchNorm2d(planes * 4));
  } else {
    conv1 = register_module("conv1", conv(in, planes, 3, stride));
    bn1 = register_module("bn1", BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, 1));
    bn2 = register_module("bn2", BatchNorm2d(planes));
  }
  if (stride != 1 || in != out_channels()) {
    downsample = register_module(
        "downsample", torch::nn::Sequential(conv(in, out_channels(), 1, stride), BatchNorm2d(out_channels())));
  }
}

at::Tensor ResNetBlockImpl::forward(const at::Tensor& x) {
  at::Tensor y = torch::relu(bn1->forward(conv1->forward(x)));
  y = bn2->forward(conv2->forward(y));
  if (bottleneck_) y = bn3->forward(conv3->forward(torch::relu(y)));
  return torch::relu(y + (downsample ? downsample->forward(x) : x));
}

double ResNetBlockImpl::flops(int64_t& height, int64_t& width) const {
  const int64_t h = out_size(height, 3, stride_), w = out_size(width, 3, stride_);
  double f = 0;
  if (bottleneck_) {
    f += double(in_) * planes_ * height * width;     // 1x1 at the input resolution
    f += double(planes_) * planes_ * 9 * h * w;      // strided 3x3
    f += double(planes_) * planes_ * 4 * h * w;      // 1x1 expansion
  } else {
    f += double(in_) * planes_ * 9 * h * w + double(planes_) * planes_ * 9 * h * w;
  }
  if (downsample) f += double(in_) * out_channels() * h * w;
  height = h;
  width = w;
  return f;
}

ResNet::ResNet(const ResNetOptions& options) : options_(options) {
  std::vector<int> layers;
  bool bottleneck = false;
  switch (options.depth) {
    case 18: layers = {2, 2, 2, 2}; break;
    case 34: layers = {3, 4, 6, 3}; break;
    case 50: layers = {3, 4, 6, 3}, bottleneck = true; break;
    default: TORCH_CHECK(false, "resnet: depth must be 18, 34 or 50, got ", options.depth);
  }
  TORCH_CHECK(options.in_channels > 0, "resnet: inChannels must be > 0, got ", options.in_channels);
  TORCH_CHECK(options.width > 0 && options.width <= 16, "resnet: width must be in (0, 16], got ", options.width);
  base_width_ = std::max<int64_t>(1, std::llround(64 * options.width));
  conv1 = register_module("conv1", conv(options.in_channels, base_width_, options.small_stem ? 3 : 7, options.small_stem ? 1 : 2));
  bn1 = register_module("bn1", BatchNorm2d(base_width_));
  int64_t in = base_width_;
  for (int stage = 0; stage < 4; ++stage) {
    torch::nn::Sequential layer;
    const int64_t planes = base_width_ << stage;
    for (int i = 0; i < layers[stage]; ++i) {
      ResNetBlock block(in, planes, i == 0 && stage > 0 ? 2 : 1, bottleneck);
      in = block->out_channels();
      blocks_.push_back(block);
      layer->push_back(block);
    }
    register_module("layer" + std::to_string(stage + 1), layer);
  }
  feature_dim_ = in;
  head_ = ProjectionHead(*this, in, options.head);
}

at::Tensor ResNet::features(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels, arch(), ": the input must be [N, ",
              options_.in_channels, ", H, W], got ", x.sizes());
  at::Tensor y = torch::relu(bn1->forward(conv1->forward(x)));
  if (!options_.small_stem) y = F::max_pool2d(y, F::MaxPool2dFuncOptions(3).stride(2).padding(1));
  for (auto& block : blocks_) y = block->forward(y);
  return F::adaptive_avg_pool2d(y, F::AdaptiveAvgPool2dFuncOptions(1)).flatten(1);
}

at::Tensor ResNet::forward(const at::Tensor& x) { return head_(features(x)); }

Complexity ResNet::complexity(int64_t height, int64_t width) const {
  Complexity c;
  const int64_t kernel = options_.small_stem ? 3 : 7, stride = options_.small_stem ? 1 : 2;
  int64_t h = out_size(height, kernel, stride), w = out_size(width, kernel, stride);
  c.flops += double(options_.in_channels) * base_width_ * kernel * kernel * h * w;
  if (!options_.small_stem) h = out_size(h, 3, 2), w = out_size(w, 3, 2);
  for (const auto& block : blocks_) c.flops += block->flops(h, w);
  c.flops += head_.flops();
  c.parameters = parameter_count(*this);
  return c;
}

}  // namespace s2bnn::nn
