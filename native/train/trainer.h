// One training step of each S2-BNN recipe as a single native call (docs/method.md "Losses" and
// "Recipe"): forwards, loss, backward, optimizer update and the MoCo momentum/queue updates. The
// TypeScript loop owns epochs, schedules and checkpoints; it calls step() from a worker thread.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../nn/frozen_resnet.h"
#include "../nn/model.h"
#include "optimizer.h"

namespace s2bnn::train {

enum class Recipe {
  Supervised,          // cross-entropy on labels (linear evaluation, fine-tuning)
  Contrastive,         // MoCo v2 InfoNCE
  ContrastiveDistill,  // InfoNCE + distribution loss, weighted
  Distill,             // distribution loss to a frozen teacher only (S2-BNN)
};

Recipe parse_recipe(const std::string& name);
const char* recipe_name(Recipe recipe);

struct TrainerOptions {
  Recipe recipe = Recipe::Distill;
  double temperature = 0.2;          // InfoNCE
  double distill_temperature = 0.2;  // distribution loss
  double momentum = 0.999;           // key encoder EMA
  double contrastive_weight = 1, distill_weight = 1;
  // Single-device stand-in for shuffle BN: the key batch is permuted and encoded in this many
  // sub-batches, each normalized by its own BatchNorm statistics (see docs/training.md).
  int64_t key_groups = 8;
  uint64_t seed = 0;
  // Report the wall time of each phase of a step (StepResult::phases); on a GPU this adds a
  // device sync per phase, so it is for benchmarks (bench-step --phases), not for training.
  bool time_phases = false;
  // The frozen teacher's weights and arithmetic: float, or bfloat16 (about 2.3x faster on a CPU
  // with AVX-512 BF16; the teacher's outputs move by about 2e-3, docs/training.md). The trainer
  // casts the teacher in place; its outputs are float again before the loss.
  at::ScalarType teacher_dtype = at::kFloat;
  // The trained network's convolutions and matrix products: float, or bfloat16 under autocast
  // (mixed precision: parameters, gradients, optimizer state and losses stay float). Real-valued
  // ResNets only; a MoCo epoch of the reproduction's teacher runs about 1.5x faster on a CPU with
  // AVX-512 BF16 (docs/training.md).
  at::ScalarType compute_dtype = at::kFloat;
  // Supervised only: a linear probe on standardized features. The trainer owns a Linear over
  // (features - mean) / std (init normal std 0.01, bias 0) and fold() writes the equivalent
  // Linear over raw features into the model's `fc`; the backbone runs without autograd.
  at::Tensor feature_mean, feature_std;
};

struct StepResult {
  double loss = 0;
  double contrastive = NAN, distill = NAN;  // the parts, where the recipe has them
  double acc1 = NAN, acc5 = NAN;            // InfoNCE positive or label rank, in [0, 1]
  int64_t batch = 0;
  // With TrainerOptions::time_phases: milliseconds per phase, in order (student, keys, teacher,
  // loss, backward, optimizer; the phases a recipe has).
  std::vector<std::pair<const char*, double>> phases;
};

// A loss that is NaN or infinite: the step stops before the backward, so the weights stay those
// of the last good step.
class NonFiniteLoss : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Trainer;

// What a step's loss computed, still on the device: the loss, its parts where the recipe has
// them, the top-1/top-5 hits [2] and the keys to enqueue (contrastive recipes).
struct StepLoss {
  at::Tensor loss, contrastive, distill, hits, keys;
};

// Calls `phase` with each phase's name as it ends (PhaseClock when timing).
using PhaseMark = std::function<void(const char*)>;

// One row per recipe: what it reads per step and the loss it trains with.
struct RecipeSpec {
  Recipe recipe;
  const char* name;
  bool contrastive;  // InfoNCE against the queue: two views (query, key) and a MoCo model
  bool distill;      // the distribution loss against a frozen teacher
  StepLoss (Trainer::*loss)(const std::vector<at::Tensor>& inputs, const at::Tensor& labels, const PhaseMark& mark);
};

const RecipeSpec& recipe_spec(Recipe recipe);

class Trainer {
 public:
  // `model` is an nn::MoCo for the contrastive recipes; for `Distill` it may be a MoCo (its
  // encoder_q is trained) or a plain encoder with an MLP head. `teacher` is required by the
  // distillation recipes and is frozen and kept in eval mode here.
  Trainer(nn::ModelPtr model, nn::ModelPtr teacher, TrainerOptions options, OptimizerOptions optimizer);

  // `views`: one batch (Supervised, Distill) or the query and key batches (contrastive);
  // `labels` for Supervised. Leaves the model in training mode except for Supervised, which uses
  // the mode the caller set (linear evaluation trains a head over a backbone in eval mode).
  StepResult step(const std::vector<at::Tensor>& views, const at::Tensor& labels);

  // Probe mode: writes weight / std and bias - (weight / std) . mean into the model's fc.
  void fold();

  Optimizer& optimizer() { return *optimizer_; }
  // The frozen teacher's outputs for `images`, float, computed as the step computes its targets.
  at::Tensor teacher_targets(const at::Tensor& images);
  const TrainerOptions& options() const { return options_; }
  // Steps taken; seeds each step's key permutation, so a resumed run repeats it exactly.
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  // Names of the optimizer's parameters, in its (PyTorch) order: the model's parameters when
  // pre-training, the trainable ones when supervised (the probe's fc.weight, fc.bias).
  const std::vector<std::string>& parameter_names() const { return parameter_names_; }

 private:
  friend const RecipeSpec& recipe_spec(Recipe recipe);
  // The recipes' losses (RecipeSpec::loss): a labelled cross-entropy (linear probes, fine-tuning),
  // and the self-supervised one, whose parts (InfoNCE, distribution loss) the recipe's row names.
  StepLoss supervised_loss(const std::vector<at::Tensor>& inputs, const at::Tensor& labels, const PhaseMark& mark);
  StepLoss self_supervised_loss(const std::vector<at::Tensor>& inputs, const at::Tensor& labels, const PhaseMark& mark);
  at::Tensor encode_keys(const at::Tensor& keys);
  // The trained encoder's output (features, or the head's with `head`) in float, computed in
  // options().compute_dtype.
  at::Tensor student_forward(const at::Tensor& input, bool head = true);

  nn::ModelPtr model_, teacher_;
  // The teacher's forward in oneDNN's layout with BatchNorm folded (CPU ResNet teachers); it
  // reads the weights when the trainer is built.
  std::unique_ptr<nn::FrozenResNet> frozen_teacher_;
  nn::Model* student_;  // the encoder the gradients train
  TrainerOptions options_;
  const RecipeSpec* recipe_;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<std::string> parameter_names_;
  at::Tensor probe_weight_, probe_bias_;
  int64_t steps_ = 0;
};

// Rows whose target scores first / within the first five, counted: a row's rank is the number of
// other entries at or above its target's score (ties count against it). `target` is a class index
// per row; scores [N, C].
std::pair<int64_t, int64_t> topk_correct(const at::Tensor& scores, const at::Tensor& target);
// The same counts as a tensor [2] on the scores' device (no host sync), given each row's target
// score [N, 1].
at::Tensor topk_hits(const at::Tensor& scores, const at::Tensor& target_score);

}  // namespace s2bnn::train
