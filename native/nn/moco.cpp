#include "moco.h"

namespace s2bnn::nn {

MoCo::MoCo(const Factory& make_encoder, int64_t dim, int64_t queue_size) {
  TORCH_CHECK(queue_size > 0, "moco: the queue size K must be > 0, got ", queue_size);
  encoder_q = register_module("encoder_q", make_encoder());
  encoder_k = register_module("encoder_k", make_encoder());
  torch::NoGradGuard no_grad;
  const auto q = encoder_q->named_parameters(), k = encoder_k->named_parameters();
  for (const auto& p : q) {
    at::Tensor key = k[p.key()];
    key.copy_(p.value());
    key.set_requires_grad(false);
  }
  for (const auto& [name, query] : active_parameters(*encoder_q)) momentum_pairs_.emplace_back(query, k[name]);
  queue = register_buffer("queue", torch::nn::functional::normalize(
                                       torch::randn({dim, queue_size}),
                                       torch::nn::functional::NormalizeFuncOptions().dim(0)));
  queue_ptr = register_buffer("queue_ptr", torch::zeros({1}, torch::kLong));
}

std::vector<std::string> MoCo::unused_modules() const {
  std::vector<std::string> names;
  for (const auto& name : encoder_q->unused_modules()) {
    names.push_back("encoder_q." + name);
    names.push_back("encoder_k." + name);
  }
  return names;
}

void MoCo::momentum_update(double momentum) {
  torch::NoGradGuard no_grad;
  for (auto& [query, key] : momentum_pairs_) key.mul_(momentum).add_(query.detach(), 1 - momentum);
}

void MoCo::enqueue(const at::Tensor& keys) {
  TORCH_CHECK(keys.dim() == 2 && keys.size(1) == queue.size(0), "moco: keys must be [B, ", queue.size(0),
              "], got ", keys.sizes());
  const int64_t batch = keys.size(0), size = queue.size(1);
  TORCH_CHECK(size % batch == 0, "moco: the queue size K (", size, ") must be a multiple of the batch (", batch, ")");
  torch::NoGradGuard no_grad;
  // The write position stays on the queue's device: reading it back would make every step wait
  // for the GPU to finish before the next one can be queued.
  const at::Tensor columns = (queue_ptr + at::arange(batch, queue_ptr.options())) % size;  // queue_ptr: [1] int64
  queue.index_copy_(1, columns, keys.detach().t());
  queue_ptr.add_(batch).remainder_(size);
}

}  // namespace s2bnn::nn
