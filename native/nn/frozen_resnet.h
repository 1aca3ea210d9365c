// A frozen ResNet's forward on CPU in oneDNN's own tensor layout: each BatchNorm folded into its
// convolution and every weight reordered into oneDNN's blocked format once, the activations kept
// in that layout from the stem to the pooling. The trainer's teacher only runs forward with
// fixed weights; as plain modules, oneDNN reorders every weight on every call and BatchNorm takes
// a pass of its own (docs/step-benchmark.md has the timing).
#pragma once

#include <memory>
#include <vector>

#include "resnet.h"

namespace s2bnn::nn {

class FrozenResNet {
 public:
  // For a ResNet in eval mode whose weights are on the CPU, in float32 or bfloat16, with a
  // libtorch built with oneDNN; null for any other model. Reads the weights now: changes made to
  // the model later are not seen.
  static std::unique_ptr<FrozenResNet> of(const ModelPtr& model);
  // What model->forward(x) returns, up to float rounding (the folded BatchNorm), in the model's
  // dtype; x may be float.
  at::Tensor forward(const at::Tensor& x) const;

 private:
  struct Conv {
    at::Tensor weight, bias;  // oneDNN-layout weight, the folded BatchNorm's shift
    int64_t stride = 1, padding = 0;
    at::Tensor operator()(const at::Tensor& x) const;
  };
  struct Block {
    Conv conv1, conv2, conv3, downsample;  // conv3 only in bottlenecks; downsample where it exists
  };
  explicit FrozenResNet(std::shared_ptr<ResNet> model);
  static Conv fold(const torch::nn::Conv2dImpl& conv, const BatchNorm2dImpl& bn, int64_t stride, at::ScalarType dtype);

  std::shared_ptr<ResNet> model_;  // its stem options, input check and head
  at::ScalarType dtype_;
  Conv stem_;
  std::vector<Block> blocks_;
};

}  // namespace s2bnn::nn
