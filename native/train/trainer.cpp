#include "trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <cmath>
#include <sstream>
#include <torch/cuda.h>

#include "../compat.h"
#include "../nn/batch_norm.h"
#include "../nn/frozen_resnet.h"
#include "../nn/moco.h"
#include "../nn/resnet.h"
#include "../ops/ops.h"

namespace s2bnn::train {
namespace {

uint64_t mix(uint64_t x) {
  // splitmix64: decorrelates the per-step seeds derived from (seed, step).
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string describe(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// oneDNN's bfloat16 convolutions need AVX-512 (BW, VL, DQ); a trainer that would run them for
// `model` on the CPU says so before any training.
void require_cpu_bfloat16(const nn::Model& model, const char* what) {
  const auto parameters = model.parameters();
  if (!parameters.empty() && !parameters.front().device().is_cpu()) return;
  try {
    at::conv2d(at::ones({1, 1, 3, 3}, at::kBFloat16), at::ones({1, 1, 1, 1}, at::kBFloat16));
  } catch (const c10::Error& error) {
    TORCH_CHECK(false, "trainer: ", what, " needs bfloat16 convolutions, which this CPU's libtorch cannot run (",
                error.what_without_backtrace(), ")");
  }
}

// torch.autocast for one forward. Autocast caches its casts of the weights while any scope is
// open, and the optimizer changes the weights in place: the cache goes when the last scope closes.
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device, at::ScalarType dtype) : on_(dtype != at::kFloat), device_(device) {
    if (!on_) return;
    was_enabled_ = compat::autocast_enabled(device_);
    was_dtype_ = compat::autocast_dtype(device_);
    compat::set_autocast(device_, true, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    compat::set_autocast(device_, was_enabled_, was_dtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
  c10::DeviceType device_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

}  // namespace

const RecipeSpec& recipe_spec(Recipe recipe) {
  static const RecipeSpec kRecipes[] = {
      {Recipe::Supervised, "supervised", false, false, &Trainer::supervised_loss},
      {Recipe::Contrastive, "contrastive", true, false, &Trainer::self_supervised_loss},
      {Recipe::ContrastiveDistill, "contrastive+distill", true, true, &Trainer::self_supervised_loss},
      {Recipe::Distill, "distill", false, true, &Trainer::self_supervised_loss},
  };
  for (const RecipeSpec& spec : kRecipes) {
    if (spec.recipe == recipe) return spec;
  }
  TORCH_CHECK(false, "unknown recipe ", static_cast<int>(recipe));
}

Recipe parse_recipe(const std::string& name) {
  for (Recipe recipe : {Recipe::Supervised, Recipe::Contrastive, Recipe::ContrastiveDistill, Recipe::Distill}) {
    if (name == recipe_spec(recipe).name) return recipe;
  }
  TORCH_CHECK(false, "unknown recipe '", name, "' (expected supervised, contrastive, contrastive+distill or distill)");
}

const char* recipe_name(Recipe recipe) { return recipe_spec(recipe).name; }

at::Tensor topk_hits(const at::Tensor& scores, const at::Tensor& target_score) {
  at::NoGradGuard no_grad;
  // Ties count against the target (minus the target itself): a collapsed encoder, whose keys are
  // all equal, must not score 100 %.
  const at::Tensor rank = scores.ge(target_score).sum(1) - 1;
  return at::stack({rank.eq(0).sum(), rank.lt(5).sum()});
}

std::pair<int64_t, int64_t> topk_correct(const at::Tensor& scores, const at::Tensor& target) {
  TORCH_CHECK(scores.dim() == 2, "scores must be [N, C], got ", scores.sizes());
  TORCH_CHECK(target.dim() == 1 && target.size(0) == scores.size(0), "targets must be [", scores.size(0), "], got ",
              target.sizes());
  at::NoGradGuard no_grad;
  const at::Tensor hits =
      topk_hits(scores, scores.gather(1, target.to(scores.device(), at::kLong).unsqueeze(1))).to(at::kCPU);
  return {hits[0].item<int64_t>(), hits[1].item<int64_t>()};
}

Trainer::Trainer(nn::ModelPtr model, nn::ModelPtr teacher, TrainerOptions options, OptimizerOptions optimizer)
    : model_(std::move(model)), teacher_(std::move(teacher)), options_(options), recipe_(&recipe_spec(options.recipe)) {
  TORCH_CHECK(model_, "trainer: no model");
  auto* moco = dynamic_cast<nn::MoCo*>(model_.get());
  const bool contrastive = recipe_->contrastive;
  const bool distill = recipe_->distill;
  TORCH_CHECK(!contrastive || moco, "trainer: the ", recipe_name(options_.recipe),
              " recipe needs a MoCo model (encoder_q, encoder_k, queue), got ", model_->arch());
  TORCH_CHECK(!distill || teacher_, "trainer: the ", recipe_name(options_.recipe), " recipe needs a teacher");
  TORCH_CHECK(options_.temperature > 0 && options_.distill_temperature > 0, "trainer: temperatures must be > 0");
  TORCH_CHECK(options_.momentum >= 0 && options_.momentum <= 1, "trainer: the key encoder momentum must be in [0, 1]");
  TORCH_CHECK(options_.key_groups >= 1, "trainer: keyGroups must be >= 1");
  student_ = moco && options_.recipe != Recipe::Supervised ? moco->encoder_q.get() : model_.get();

  TORCH_CHECK(options_.teacher_dtype == at::kFloat || options_.teacher_dtype == at::kBFloat16,
              "trainer: the teacher runs in float32 or bfloat16, got ", options_.teacher_dtype);
  TORCH_CHECK(options_.compute_dtype == at::kFloat || options_.compute_dtype == at::kBFloat16,
              "trainer: the network computes in float32 or bfloat16 (mixed precision), got ", options_.compute_dtype);
  if (options_.compute_dtype != at::kFloat) {
    TORCH_CHECK(dynamic_cast<nn::ResNet*>(student_), "trainer: mixed precision trains real-valued ResNets; ",
                student_->arch(), " keeps its binary operators in float32");
    require_cpu_bfloat16(*student_, "mixed precision (bfloat16)");
  }
  if (teacher_) {
    teacher_->eval();
    at::NoGradGuard no_grad;
    if (options_.teacher_dtype != at::kFloat) {
      require_cpu_bfloat16(*teacher_, "a bfloat16 teacher");
      teacher_->to(options_.teacher_dtype);
    }
    frozen_teacher_ = nn::FrozenResNet::of(teacher_);
    for (auto& p : teacher_->parameters()) {
      p.set_requires_grad(false);
      // Teachers the folded path does not take run as modules: oneDNN's channels-last
      // convolutions run a ResNet-50 forward about 20 % faster on CPU (docs/step-benchmark.md);
      // the frozen teacher only ever runs forward, so its weights change layout once here (values
      // and checkpoints are unaffected).
      if (!frozen_teacher_ && p.dim() == 4 && p.device().is_cpu()) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
  // The optimizer's parameters are the reference's, in its order: its state indices are then
  // torch.optim's for the same model.
  std::vector<at::Tensor> params;
  if (options_.feature_mean.defined() || options_.feature_std.defined()) {
    TORCH_CHECK(options_.recipe == Recipe::Supervised, "trainer: feature standardization is for the supervised recipe");
    const int64_t dim = model_->feature_dim();
    TORCH_CHECK(options_.feature_mean.defined() && options_.feature_std.defined() &&
                    options_.feature_mean.numel() == dim && options_.feature_std.numel() == dim,
                "trainer: feature mean and std must both have ", dim, " values (the model's feature size)");
    const auto named = model_->named_parameters();
    const at::Tensor* fc = named.find("fc.weight");
    TORCH_CHECK(fc && fc->dim() == 2 && fc->size(1) == dim, "trainer: a linear probe needs a model with a linear head 'fc'");
    const at::TensorOptions float_on(fc->device());
    options_.feature_mean = options_.feature_mean.to(fc->device(), at::kFloat).reshape({dim});
    // A constant feature would divide by zero; it carries no information, so any scale works.
    options_.feature_std = options_.feature_std.to(fc->device(), at::kFloat).reshape({dim}).clamp_min(1e-6);
    probe_weight_ = (at::randn({fc->size(0), dim}, float_on.dtype(at::kFloat)) * 0.01).set_requires_grad(true);
    probe_bias_ = at::zeros({fc->size(0)}, float_on.dtype(at::kFloat)).set_requires_grad(true);
    params = {probe_weight_, probe_bias_};
    parameter_names_ = {"fc.weight", "fc.bias"};
    optimizer_ = std::make_unique<Optimizer>(std::move(params), optimizer);
    return;
  }
  // Pre-training optimizes model.parameters() as main_moco.py does (MoCo: encoder_q, then
  // encoder_k, which never has a gradient); supervised training only the trainable ones, as
  // main_lincls.py filters them. Parameters without a gradient get no state and cost nothing.
  const bool every_parameter = options_.recipe != Recipe::Supervised;
  for (const auto& p : model_->named_parameters()) {
    if (!every_parameter && !p.value().requires_grad()) continue;
    params.push_back(p.value());
    parameter_names_.push_back(p.key());
  }
  optimizer_ = std::make_unique<Optimizer>(std::move(params), optimizer);
}

at::Tensor Trainer::encode_keys(const at::Tensor& keys) {
  auto& moco = dynamic_cast<nn::MoCo&>(*model_);
  const int64_t batch = keys.size(0);
  // BatchNorm in training mode needs at least two samples per group.
  const int64_t groups = std::max<int64_t>(1, std::min(options_.key_groups, batch / 2));
  AutocastScope autocast(keys.device().type(), options_.compute_dtype);
  if (groups == 1) return moco.encoder_k->forward(keys).to(at::kFloat);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(mix(options_.seed ^ mix(static_cast<uint64_t>(steps_))));
  const at::Tensor order = at::randperm(batch, generator, at::TensorOptions().dtype(at::kLong)).to(keys.device());
  if (batch % groups == 0) {
    // Sub-batch g is order's g-th slice, as below, but interleaved (its j-th key at j * groups +
    // g) so that the whole batch runs through the encoder at once (nn/batch_norm.h).
    const at::Tensor interleaved = order.view({groups, batch / groups}).t().reshape(-1);
    nn::GhostBatches ghost(groups);
    const at::Tensor encoded = moco.encoder_k->forward(keys.index_select(0, interleaved)).to(at::kFloat);
    return at::empty_like(encoded).index_copy_(0, interleaved, encoded);
  }
  std::vector<at::Tensor> encoded;
  for (const at::Tensor& chunk : keys.index_select(0, order).tensor_split(groups)) {
    encoded.push_back(moco.encoder_k->forward(chunk).to(at::kFloat));
  }
  const at::Tensor shuffled = at::cat(encoded);
  return at::empty_like(shuffled).index_copy_(0, order, shuffled);
}

at::Tensor Trainer::student_forward(const at::Tensor& input, bool head) {
  AutocastScope autocast(input.device().type(), options_.compute_dtype);
  return (head ? student_->forward(input) : student_->features(input)).to(at::kFloat);
}

at::Tensor Trainer::teacher_targets(const at::Tensor& images) {
  TORCH_CHECK(teacher_, "trainer: the ", recipe_name(options_.recipe), " recipe has no teacher");
  at::NoGradGuard no_grad;
  const at::Tensor input = images.to(optimizer_->params().front().device(), at::kFloat);
  if (frozen_teacher_) return frozen_teacher_->forward(input).to(at::kFloat);
  // One pass: the teacher's dtype and, on CPU, its channels-last layout together.
  const auto layout = input.device().is_cpu() ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Preserve;
  return teacher_->forward(input.to(options_.teacher_dtype, false, false, layout)).to(at::kFloat);
}

void Trainer::fold() {
  TORCH_CHECK(probe_weight_.defined(), "trainer: fold() is for linear probes (feature standardization)");
  at::NoGradGuard no_grad;
  auto named = model_->named_parameters();
  at::Tensor* weight = named.find("fc.weight");
  at::Tensor* bias = named.find("fc.bias");
  TORCH_CHECK(weight && bias, "trainer: the model has no linear head 'fc'");
  const at::Tensor folded = probe_weight_ / options_.feature_std.unsqueeze(0);
  weight->copy_(folded);
  bias->copy_(probe_bias_ - folded.mv(options_.feature_mean));
}

namespace {

// Wall time between marks, synchronizing a GPU first so that its queued work is counted where it
// was issued.
class PhaseClock {
 public:
  PhaseClock(bool on, const at::Device& device, StepResult& result)
      : on_(on), cuda_(device.is_cuda()), result_(result), last_(std::chrono::steady_clock::now()) {}
  void mark(const char* phase) {
    if (!on_) return;
    if (cuda_) torch::cuda::synchronize();
    const auto now = std::chrono::steady_clock::now();
    result_.phases.emplace_back(phase, std::chrono::duration<double, std::milli>(now - last_).count());
    last_ = now;
  }

 private:
  bool on_, cuda_;
  StepResult& result_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace

StepLoss Trainer::supervised_loss(const std::vector<at::Tensor>& inputs, const at::Tensor& labels, const PhaseMark& mark) {
  const int64_t batch = inputs[0].size(0);
  TORCH_CHECK(labels.defined() && labels.dim() == 1 && labels.size(0) == batch, "step: the supervised recipe needs labels [",
              batch, "]");
  const at::Tensor target = labels.to(inputs[0].device(), at::kLong, /*non_blocking=*/true);
  at::Tensor logits;
  if (probe_weight_.defined()) {
    at::Tensor features;
    {
      at::NoGradGuard no_grad;
      features = (student_forward(inputs[0], /*head=*/false) - options_.feature_mean) / options_.feature_std;
    }
    logits = at::linear(features, probe_weight_, probe_bias_);
  } else {
    logits = student_forward(inputs[0]);
  }
  TORCH_CHECK(logits.dim() == 2, "step: the supervised recipe needs a model with a linear head");
  StepLoss out;
  out.loss = at::cross_entropy_loss(logits, target);
  const at::Tensor scores = logits.detach();
  out.hits = topk_hits(scores, scores.gather(1, target.unsqueeze(1)));
  mark("forward");
  return out;
}

StepLoss Trainer::self_supervised_loss(const std::vector<at::Tensor>& inputs, const at::Tensor&, const PhaseMark& mark) {
  model_->train(true);
  if (teacher_) teacher_->eval();
  const at::Tensor query = student_forward(inputs[0]);
  mark("student");
  nn::MoCo* moco = recipe_->contrastive ? &dynamic_cast<nn::MoCo&>(*model_) : nullptr;
  StepLoss out;
  at::Tensor target;
  if (recipe_->contrastive) {
    at::NoGradGuard no_grad;
    moco->momentum_update(options_.momentum);
    out.keys = encode_keys(inputs[1]);
    mark("keys");
  }
  if (recipe_->distill) {
    at::NoGradGuard no_grad;
    target = teacher_targets(inputs[0]);
    mark("teacher");
    TORCH_CHECK(target.sizes() == query.sizes(), "step: the teacher's output ", target.sizes(),
                " does not match the student's ", query.sizes(), " (both need an MLP head of the same dim)");
  }
  if (recipe_->contrastive) {
    const std::vector<at::Tensor> nce = ops::info_nce(query, out.keys, moco->queue, options_.temperature);
    out.contrastive = nce[0].detach();
    out.loss = nce[0] * options_.contrastive_weight;
    out.hits = topk_hits(nce[1], nce[1].narrow(1, 0, 1));  // the positive is column 0
  }
  if (recipe_->distill) {
    const at::Tensor part = ops::distribution_loss(query, target, options_.distill_temperature);
    out.distill = part.detach();
    out.loss = out.loss.defined() ? out.loss + part * options_.distill_weight : part * options_.distill_weight;
  }
  return out;
}

StepResult Trainer::step(const std::vector<at::Tensor>& views, const at::Tensor& labels) {
  const RecipeSpec& recipe = *recipe_;
  TORCH_CHECK(views.size() == (recipe.contrastive ? 2u : 1u), "step: the ", recipe.name, " recipe takes ",
              recipe.contrastive ? "two views (query and key)" : "one view", " per step, got ", views.size());
  TORCH_CHECK(views[0].dim() == 4, "step: views must be [N, C, H, W], got ", views[0].sizes());
  const int64_t batch = views[0].size(0);
  TORCH_CHECK(batch > 0, "step: empty batch");
  for (const auto& v : views) {
    TORCH_CHECK(v.sizes() == views[0].sizes(), "step: both views must have the same shape, got ", views[0].sizes(),
                " and ", v.sizes());
  }

  at::AutoGradMode grad_mode(true);
  const at::Device device = optimizer_->params().front().device();
  std::vector<at::Tensor> inputs;
  for (const auto& v : views) inputs.push_back(v.to(device, at::kFloat, /*non_blocking=*/true));

  StepResult result;
  result.batch = batch;
  PhaseClock clock(options_.time_phases, device, result);
  const StepLoss parts = (this->*recipe.loss)(inputs, labels, [&clock](const char* phase) { clock.mark(phase); });
  const at::Tensor& loss = parts.loss;
  // Everything the step reports, still on the device: read back in one transfer (one sync on a
  // GPU) before the backward, which needs the loss's value for the non-finite check anyway.
  {
    std::vector<at::Tensor> values = {loss.detach().reshape({1}).to(at::kDouble)};
    for (const at::Tensor* t : {&parts.contrastive, &parts.distill}) {
      if (t->defined()) values.push_back(t->reshape({1}).to(at::kDouble));
    }
    if (parts.hits.defined()) values.push_back(parts.hits.to(at::kDouble) / static_cast<double>(batch));
    const at::Tensor host = at::cat(values).to(at::kCPU);
    const double* v = host.data_ptr<double>();
    size_t next = 0;
    result.loss = v[next++];
    if (parts.contrastive.defined()) result.contrastive = v[next++];
    if (parts.distill.defined()) result.distill = v[next++];
    if (parts.hits.defined()) {
      result.acc1 = v[next++];
      result.acc5 = v[next++];
    }
  }
  if (!std::isfinite(result.loss)) {
    std::string detail;
    if (recipe.contrastive) detail += "; contrastive " + describe(result.contrastive);
    if (recipe.distill) detail += std::string(recipe.contrastive ? "," : ";") + " distill " + describe(result.distill);
    throw NonFiniteLoss("non-finite loss " + describe(result.loss) + " at step " + std::to_string(steps_ + 1) + " (" +
                        recipe.name + detail + "); the trained weights are those of the step before");
  }
  clock.mark("loss");
  optimizer_->zero_grad();
  loss.backward();
  clock.mark("backward");
  optimizer_->step();
  if (parts.keys.defined()) dynamic_cast<nn::MoCo&>(*model_).enqueue(parts.keys);
  clock.mark("optimizer");
  ++steps_;
  return result;
}

}  // namespace s2bnn::train
