// BatchNorm2d with one addition: ghost batches. MoCo's key encoder must normalize each shuffled
// sub-batch with its own statistics (single-device shuffle BN, docs/training.md). Encoding the
// sub-batches one after another runs every convolution on a small batch (about half the key
// encoder's speed on CPU); with ghost batches the whole batch runs at once and only BatchNorm
// sees the sub-batches.
#pragma once

#include <torch/torch.h>

namespace s2bnn::nn {

// While alive, BatchNorm2d layers in training mode on this thread normalize an [N, C, H, W]
// batch as `groups` sub-batches whose samples are interleaved: sample i belongs to sub-batch
// i % groups. That layout makes every sub-batch's channel a channel of the [N / groups,
// groups * C, H, W] view, so one ordinary batch_norm call computes all the statistics without a
// copy. Running statistics are updated as `groups` calls, sub-batch 0 first, would update them.
class GhostBatches {
 public:
  explicit GhostBatches(int64_t groups);
  ~GhostBatches();
  GhostBatches(const GhostBatches&) = delete;
  GhostBatches& operator=(const GhostBatches&) = delete;

 private:
  int64_t previous_;
};

// PyTorch's BatchNorm2d (eps 1e-5, momentum 0.1, affine, running statistics; its parameter and
// buffer names and order), plus ghost batches. Not a subclass of torch::nn::BatchNorm2dImpl:
// libtorch does not export all of that template instance's virtual functions.
class BatchNorm2dImpl : public torch::nn::Module {
 public:
  explicit BatchNorm2dImpl(int64_t features);
  at::Tensor forward(const at::Tensor& input);
  void pretty_print(std::ostream& stream) const override;

  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  static constexpr double kEps = 1e-5, kMomentum = 0.1;

 private:
  at::Tensor forward_ghost(const at::Tensor& input, int64_t groups);
};
TORCH_MODULE(BatchNorm2d);

}  // namespace s2bnn::nn
