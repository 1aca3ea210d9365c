#include "reactnet.h"

#include <cmath>

#include "../ops/ops.h"

namespace s2bnn::nn {

namespace F = torch::nn::functional;

BinaryConvImpl::BinaryConvImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool binarize_weights)
    : in(in), out(out), kernel(kernel), stride(stride), binarize_weights(binarize_weights) {
  weight = register_parameter("weight", torch::empty({out, in, kernel, kernel}));
  torch::NoGradGuard no_grad;
  if (binarize_weights) {
    weight.uniform_(0, 0.001);  // docs/method.md: binary conv weights start uniform in [0, 0.001)
  } else {
    // Step 1 convolutions are ordinary nn.Conv2d: PyTorch's default initialization.
    torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  }
}

at::Tensor BinaryConvImpl::forward(const at::Tensor& x, const at::Tensor& input_bias) {
  const int64_t padding = kernel / 2;
  return ops::binary_conv2d(x, weight, {stride, stride}, {padding, padding}, /*binarize_input=*/true,
                            binarize_weights, input_bias);
}

LearnableBiasImpl::LearnableBiasImpl(int64_t channels) {
  bias = register_parameter("bias", torch::zeros({1, channels, 1, 1}));
}

ReActBlockImpl::ReActBlockImpl(int64_t in, int64_t out, int64_t stride, bool binarize_weights)
    : in_(in), out_(out), stride_(stride) {
  TORCH_CHECK(out == in || out == 2 * in, "ReActNet blocks keep or double the width, got ", in, " -> ", out);
  // The official registration order, both kinds of 1x1 stage included (see the header).
  move11 = register_module("move11", LearnableBias(in));
  binary_3x3 = register_module("binary_3x3", BinaryConv(in, in, 3, stride, binarize_weights));
  bn1 = register_module("bn1", BatchNorm2d(in));
  move12 = register_module("move12", LearnableBias(in));
  prelu1 = register_module("prelu1", torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(in)));
  move13 = register_module("move13", LearnableBias(in));
  move21 = register_module("move21", LearnableBias(in));
  binary_pw = register_module("binary_pw", BinaryConv(in, out, 1, 1, binarize_weights));
  bn2 = register_module("bn2", BatchNorm2d(out));
  move22 = register_module("move22", LearnableBias(out));
  prelu2 = register_module("prelu2", torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(out)));
  move23 = register_module("move23", LearnableBias(out));
  binary_pw_down1 = register_module("binary_pw_down1", BinaryConv(in, in, 1, 1, binarize_weights));
  binary_pw_down2 = register_module("binary_pw_down2", BinaryConv(in, in, 1, 1, binarize_weights));
  bn2_1 = register_module("bn2_1", BatchNorm2d(in));
  bn2_2 = register_module("bn2_2", BatchNorm2d(in));
}

std::vector<std::string> ReActBlockImpl::unused_modules() const {
  if (in_ == out_) return {"binary_pw_down1", "binary_pw_down2", "bn2_1", "bn2_2"};
  return {"binary_pw", "bn2"};
}

at::Tensor ReActBlockImpl::forward(const at::Tensor& x) {
  // 1. sign(x + b11) -> binary 3x3 -> BN; shortcut (avg-pooled when the block strides).
  at::Tensor y = bn1->forward(binary_3x3->forward(x, move11->bias));
  // ceil_mode: for odd sizes (28 px inputs) the pooled shortcut matches the strided conv's
  // ceil(H / 2); for even sizes (every ImageNet stage) it is the reference's AvgPool2d(2, 2).
  const at::Tensor shortcut = stride_ == 2 ? F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2).ceil_mode(true)) : x;
  // 2. RPReLU(y + shortcut): + b12, PReLU, + b13, fused.
  y = ops::rprelu(y + shortcut, move12->bias, prelu1->weight, move13->bias);
  // 3. sign(y + b21) -> binary 1x1 (two of them, concatenated, when the width doubles) -> BN + y.
  //    Each conv binarizes y + b21 itself and keeps only y (shared) for its backward.
  at::Tensor z;
  if (in_ == out_) {
    z = bn2->forward(binary_pw->forward(y, move21->bias)) + y;
  } else {
    z = torch::cat({bn2_1->forward(binary_pw_down1->forward(y, move21->bias)) + y,
                    bn2_2->forward(binary_pw_down2->forward(y, move21->bias)) + y},
                   1);
  }
  // 4. RPReLU: + b22, PReLU, + b23.
  return ops::rprelu(z, move22->bias, prelu2->weight, move23->bias);
}

void ReActBlockImpl::add_complexity(Complexity& c, int64_t& height, int64_t& width) const {
  const int64_t h = (height + 2 - 3) / stride_ + 1, w = (width + 2 - 3) / stride_ + 1;
  // Both binary convolutions: in*in*9 per output position, then in*out for the 1x1 stage.
  const double macs = double(in_) * in_ * 9 * h * w + double(in_) * out_ * h * w;
  (binary_3x3->binarize_weights ? c.binary_ops : c.flops) += macs;
  height = h;
  width = w;
}

const std::vector<int64_t>& ReActNetA::base_widths() {
  static const std::vector<int64_t> widths = {32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
  return widths;
}

ReActNetA::ReActNetA(const ReActNetOptions& options) : options_(options) {
  TORCH_CHECK(options.width > 0, "reactnet-a: width must be > 0, got ", options.width);
  TORCH_CHECK(options.in_channels > 0, "reactnet-a: inChannels must be > 0, got ", options.in_channels);
  const auto& base = base_widths();
  for (int64_t w : base) widths_.push_back(std::max<int64_t>(1, std::llround(double(w) * options.width)));
  feature_ = register_module("feature", torch::nn::ModuleList());
  // feature.0: the stem, a real-valued 3x3 conv and BN (the reference's firstconv3x3).
  auto stem = std::make_shared<torch::nn::Module>();
  stem_conv_ = stem->register_module(
      "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels, widths_[0], 3)
                                     .stride(options.small_stem ? 1 : 2)
                                     .padding(1)
                                     .bias(false)));
  stem_bn_ = stem->register_module("bn1", BatchNorm2d(widths_[0]));
  feature_->push_back(stem);
  for (size_t i = 1; i < base.size(); ++i) {
    // Stride 2 where the paper's width changes, except into 64 (32 -> 64 keeps the resolution).
    const int64_t stride = base[i] != base[i - 1] && base[i] != 64 ? 2 : 1;
    blocks_.push_back(ReActBlock(widths_[i - 1], widths_[i], stride, options.binarize_weights));
    feature_->push_back(blocks_.back());
  }
  head_ = ProjectionHead(*this, widths_.back(), options.head);
}

at::Tensor ReActNetA::features(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels, "reactnet-a: the input must be [N, ",
              options_.in_channels, ", H, W], got ", x.sizes());
  at::Tensor y = stem_bn_->forward(stem_conv_->forward(x));
  for (auto& block : blocks_) y = block->forward(y);
  return F::adaptive_avg_pool2d(y, F::AdaptiveAvgPool2dFuncOptions(1)).flatten(1);
}

at::Tensor ReActNetA::forward(const at::Tensor& x) { return head_(features(x)); }

std::vector<std::string> ReActNetA::unused_modules() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    for (const auto& name : blocks_[i]->unused_modules()) names.push_back("feature." + std::to_string(i + 1) + "." + name);
  }
  return names;
}

Complexity ReActNetA::complexity(int64_t height, int64_t width) const {
  Complexity c;
  const int64_t stride = options_.small_stem ? 1 : 2;
  int64_t h = (height + 2 - 3) / stride + 1, w = (width + 2 - 3) / stride + 1;
  c.flops += double(options_.in_channels) * widths_[0] * 9 * h * w;
  for (const auto& block : blocks_) block->add_complexity(c, h, w);
  c.flops += head_.flops();
  c.parameters = parameter_count(*this);
  return c;
}

}  // namespace s2bnn::nn
