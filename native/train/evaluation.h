// Evaluation passes: accuracy of a classifier on a batch, pooled features for kNN and feature
// caches, and the weighted kNN classifier the SSL libraries use as a fast second protocol.
#pragma once

#include <ATen/ATen.h>

#include "../nn/model.h"

namespace s2bnn::train {

struct EvalResult {
  double loss_sum = 0;  // cross-entropy summed over the batch
  int64_t correct1 = 0, correct5 = 0, count = 0;
  at::Tensor logits;  // [N, C] on CPU, when asked for
};

// Forward in eval mode without gradients (the caller sets the mode; evaluation never changes it).
EvalResult evaluate_batch(nn::Model& model, const at::Tensor& images, const at::Tensor& labels, bool keep_logits);

// Pooled backbone features [N, D] (or, with `head`, the whole network's output) on CPU,
// optionally L2-normalized.
at::Tensor extract_features(nn::Model& model, const at::Tensor& images, bool normalize, bool head = false);

struct KnnOptions {
  int64_t k = 200;
  double temperature = 0.07;
  int64_t classes = 0;
  int64_t chunk = 256;  // test rows per similarity block (memory: chunk x N floats)
  // The test features are the bank itself (a dataset with only a val split): row i is never its
  // own neighbour, so each sample is classified by the others.
  bool leave_one_out = false;
};

// Weighted kNN (Wu et al. 2018, as in the MoCo/SimSiam/lightly monitors): cosine similarity of
// L2-normalized features, the k nearest training samples vote for their label with weight
// exp(sim / T). Returns the class scores [M, classes].
at::Tensor knn_scores(const at::Tensor& train_features, const at::Tensor& train_labels,
                      const at::Tensor& test_features, const KnnOptions& options);

}  // namespace s2bnn::train
