// The MoCo wrapper (docs/method.md "Losses"): a query encoder, a momentum key encoder that starts
// as its copy and is never trained by gradients, and the queue of normalized keys. Names follow
// the reference: encoder_q., encoder_k., queue [dim, K], queue_ptr.
#pragma once

#include <functional>

#include "model.h"

namespace s2bnn::nn {

class MoCo : public Model {
 public:
  using Factory = std::function<ModelPtr()>;
  // `make_encoder` builds one encoder (with its MLP head of output `dim`); it is called twice.
  MoCo(const Factory& make_encoder, int64_t dim, int64_t queue_size);

  at::Tensor forward(const at::Tensor& x) override { return encoder_q->forward(x); }
  at::Tensor features(const at::Tensor& x) override { return encoder_q->features(x); }
  Complexity complexity(int64_t height, int64_t width) const override { return encoder_q->complexity(height, width); }
  std::string arch() const override { return "moco-" + encoder_q->arch(); }
  int64_t feature_dim() const override { return encoder_q->feature_dim(); }
  std::vector<std::string> unused_modules() const override;

  // key = m * key + (1 - m) * query, parameters only (buffers follow the key encoder's own BN),
  // skipping the encoders' unused modules: their query side never changes.
  void momentum_update(double momentum);
  // Writes `keys` [B, dim] over the oldest queue entries and advances queue_ptr.
  void enqueue(const at::Tensor& keys);

  ModelPtr encoder_q, encoder_k;
  at::Tensor queue, queue_ptr;

 private:
  // (query, key) parameter pairs the momentum update moves. Handles stay valid across to() and
  // load_state_dict, which change parameters in place.
  std::vector<std::pair<at::Tensor, at::Tensor>> momentum_pairs_;
};

}  // namespace s2bnn::nn
