#include "evaluation.h"

#include <c10/util/Exception.h>

#include <limits>

#include "trainer.h"

namespace s2bnn::train {
namespace {

// Where and in which floating type the model computes (a trainer may have cast a frozen teacher
// to bfloat16); inputs are converted to it and outputs come back as float.
at::TensorOptions input_options_of(nn::Model& model) {
  const auto params = model.parameters();
  if (params.empty()) return at::TensorOptions().dtype(at::kFloat);
  return at::TensorOptions().device(params.front().device()).dtype(params.front().scalar_type());
}

}  // namespace

EvalResult evaluate_batch(nn::Model& model, const at::Tensor& images, const at::Tensor& labels, bool keep_logits) {
  TORCH_CHECK(images.dim() == 4, "evaluate: images must be [N, C, H, W], got ", images.sizes());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == images.size(0), "evaluate: labels must be [", images.size(0),
              "], got ", labels.sizes());
  at::NoGradGuard no_grad;
  const at::TensorOptions input = input_options_of(model);
  const at::Device device = input.device();
  const at::Tensor logits = model.forward(images.to(input, true)).to(at::kFloat);
  TORCH_CHECK(logits.dim() == 2, "evaluate: the model must end in a linear head (logits [N, C]), got ", logits.sizes());
  const at::Tensor target = labels.to(device, at::kLong, true);
  TORCH_CHECK(target.numel() == 0 || (target.min().item<int64_t>() >= 0 && target.max().item<int64_t>() < logits.size(1)),
              "evaluate: labels must lie in [0, ", logits.size(1), ")");
  EvalResult result;
  result.count = images.size(0);
  result.loss_sum = at::cross_entropy_loss(logits, target, {}, at::Reduction::Sum).item<double>();
  std::tie(result.correct1, result.correct5) = topk_correct(logits, target);
  if (keep_logits) result.logits = logits.to(at::kCPU).contiguous();
  return result;
}

at::Tensor extract_features(nn::Model& model, const at::Tensor& images, bool normalize, bool head) {
  TORCH_CHECK(images.dim() == 4, "features: images must be [N, C, H, W], got ", images.sizes());
  at::NoGradGuard no_grad;
  const at::Tensor input = images.to(input_options_of(model), true);
  at::Tensor features = (head ? model.forward(input) : model.features(input)).to(at::kFloat);
  if (normalize) features = features / features.norm(2, 1, true).clamp_min(1e-12);
  return features.to(at::kCPU).contiguous();
}

at::Tensor knn_scores(const at::Tensor& train_features, const at::Tensor& train_labels,
                      const at::Tensor& test_features, const KnnOptions& options) {
  TORCH_CHECK(train_features.dim() == 2 && test_features.dim() == 2 && train_features.size(1) == test_features.size(1),
              "knn: features must be [N, D] and [M, D], got ", train_features.sizes(), " and ", test_features.sizes());
  TORCH_CHECK(train_labels.dim() == 1 && train_labels.size(0) == train_features.size(0), "knn: train labels must be [",
              train_features.size(0), "], got ", train_labels.sizes());
  TORCH_CHECK(options.classes > 0, "knn: the number of classes must be > 0");
  TORCH_CHECK(options.k >= 1, "knn: k must be >= 1");
  TORCH_CHECK(options.temperature > 0, "knn: the temperature must be > 0");
  TORCH_CHECK(train_features.size(0) > (options.leave_one_out ? 1 : 0), "knn: no training features",
              options.leave_one_out ? " besides the sample itself" : "");
  TORCH_CHECK(!options.leave_one_out || train_features.size(0) == test_features.size(0),
              "knn: leave-one-out needs the bank as the test features, got ", train_features.size(0), " and ",
              test_features.size(0), " rows");
  at::NoGradGuard no_grad;
  const at::Tensor labels = train_labels.to(at::kLong);
  TORCH_CHECK(labels.min().item<int64_t>() >= 0 && labels.max().item<int64_t>() < options.classes,
              "knn: train labels must lie in [0, ", options.classes, ")");
  const int64_t k = std::min(options.k, train_features.size(0) - (options.leave_one_out ? 1 : 0));
  const at::Tensor bank = train_features.to(at::kFloat).t().contiguous();
  const int64_t rows = test_features.size(0);
  at::Tensor scores = at::zeros({rows, options.classes}, at::kFloat);
  for (int64_t begin = 0; begin < rows; begin += options.chunk) {
    const int64_t count = std::min(options.chunk, rows - begin);
    const at::Tensor similarity = test_features.narrow(0, begin, count).to(at::kFloat).mm(bank);
    if (options.leave_one_out) similarity.narrow(1, begin, count).diagonal().fill_(-std::numeric_limits<float>::infinity());
    const auto [values, indices] = similarity.topk(k, 1, true, false);
    const at::Tensor weights = (values / options.temperature).exp_();
    const at::Tensor neighbour_labels = labels.index_select(0, indices.reshape(-1)).view({count, k});
    scores.narrow(0, begin, count).scatter_add_(1, neighbour_labels, weights);
  }
  return scores;
}

}  // namespace s2bnn::train
