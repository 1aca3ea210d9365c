// Training bindings: a TrainerHandle runs whole steps on libuv's thread pool (one at a time), and
// the evaluation passes (accuracy, features, kNN) run there too, so the event loop stays free for
// progress output and signals while the native step works.
#include <atomic>
#include <cmath>

#include "../nn/model.h"
#include "../train/evaluation.h"
#include "../train/trainer.h"
#include "common.h"

namespace s2bnn::binding {
namespace {

double optional_number(Napi::Env env, const Napi::Object& spec, const char* key, double fallback) {
  const Napi::Value v = spec.Get(key);
  return v.IsUndefined() ? fallback : number(env, v, key);
}

train::OptimizerOptions optimizer_options(Napi::Env env, const Napi::Value& value) {
  train::OptimizerOptions options;
  if (value.IsUndefined()) return options;
  if (!value.IsObject()) throw_argument(env, "optimizer must be an object");
  const Napi::Object spec = value.As<Napi::Object>();
  const Napi::Value kind = spec.Get("kind");
  const std::string name = kind.IsUndefined() ? "adam" : string(env, kind, "optimizer.kind");
  if (name == "adam") {
    options.kind = train::OptimizerKind::Adam;
  } else if (name == "sgd") {
    options.kind = train::OptimizerKind::Sgd;
  } else {
    throw_argument(env, "optimizer.kind must be 'adam' or 'sgd', got '" + name + "'");
  }
  options.lr = optional_number(env, spec, "lr", options.kind == train::OptimizerKind::Adam ? 3e-4 : 0.1);
  options.weight_decay = optional_number(env, spec, "weightDecay", 0);
  const Napi::Value betas = spec.Get("betas");
  if (!betas.IsUndefined()) {
    if (!betas.IsArray() || betas.As<Napi::Array>().Length() != 2) throw_argument(env, "optimizer.betas must be [beta1, beta2]");
    options.beta1 = number(env, betas.As<Napi::Array>().Get(0u), "optimizer.betas[0]");
    options.beta2 = number(env, betas.As<Napi::Array>().Get(1u), "optimizer.betas[1]");
  }
  options.eps = optional_number(env, spec, "eps", options.eps);
  options.momentum = optional_number(env, spec, "momentum", options.momentum);
  options.dampening = optional_number(env, spec, "dampening", 0);
  const Napi::Value nesterov = spec.Get("nesterov");
  options.nesterov = nesterov.IsUndefined() ? false : boolean(env, nesterov, "optimizer.nesterov");
  if (!std::isfinite(options.lr) || options.lr < 0) throw_argument(env, "optimizer.lr must be a finite number >= 0");
  return options;
}

Napi::Object step_result(Napi::Env env, const train::StepResult& r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", Napi::Number::New(env, r.loss));
  out.Set("batch", Napi::Number::New(env, static_cast<double>(r.batch)));
  const std::pair<const char*, double> optional[] = {
      {"contrastive", r.contrastive}, {"distill", r.distill}, {"acc1", r.acc1}, {"acc5", r.acc5}};
  for (const auto& [name, value] : optional) {
    if (!std::isnan(value)) out.Set(name, Napi::Number::New(env, value));
  }
  if (!r.phases.empty()) {
    Napi::Object phases = Napi::Object::New(env);
    for (const auto& [name, ms] : r.phases) phases.Set(name, Napi::Number::New(env, ms));
    out.Set("phases", phases);
  }
  return out;
}

std::vector<at::Tensor> tensor_list(Napi::Env env, const Napi::Value& value, const char* name) {
  if (!value.IsArray()) throw_argument(env, std::string(name) + " must be an array of tensors");
  const Napi::Array array = value.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < array.Length(); ++i) out.push_back(unwrap(env, array.Get(i), name));
  return out;
}

class TrainerHandle : public Napi::ObjectWrap<TrainerHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "TrainerHandle",
                       {
                           InstanceMethod<&TrainerHandle::step>("step"),
                           InstanceAccessor<&TrainerHandle::lr>("lr"),
                           InstanceMethod<&TrainerHandle::set_lr>("setLr"),
                           InstanceAccessor<&TrainerHandle::steps>("steps"),
                           InstanceMethod<&TrainerHandle::set_steps>("setSteps"),
                           InstanceMethod<&TrainerHandle::parameter_names>("parameterNames"),
                           InstanceMethod<&TrainerHandle::optimizer_state>("optimizerState"),
                           InstanceMethod<&TrainerHandle::load_optimizer_state>("loadOptimizerState"),
                           InstanceMethod<&TrainerHandle::fold>("fold"),
                           InstanceMethod<&TrainerHandle::teacher_targets>("teacherTargets"),
                       });
  }

  explicit TrainerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerHandle>(info) {}

  std::shared_ptr<train::Trainer> trainer;
  // A step in flight owns the trainer's model and optimizer: nothing else may touch them.
  std::shared_ptr<std::atomic<bool>> busy = std::make_shared<std::atomic<bool>>(false);

 private:
  void ensure_idle(Napi::Env env) {
    if (busy->load()) throw_argument(env, "the trainer is running a step; await it before using the trainer again");
  }

  // step(views, labels | null) -> Promise<StepResult>
  Napi::Value step(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      std::vector<at::Tensor> views = tensor_list(env, info[0], "views");
      at::Tensor labels;
      if (!info[1].IsNull() && !info[1].IsUndefined()) labels = unwrap(env, info[1], "labels");
      if (busy->exchange(true)) throw_argument(env, "a step is already running on this trainer; await it first");
      auto result = std::make_shared<train::StepResult>();
      auto trainer_ref = trainer;
      auto flag = busy;
      return run_async(
          env, kCodeTorch,
          [trainer_ref, flag, views = std::move(views), labels, result] {
            struct Release {
              std::shared_ptr<std::atomic<bool>> flag;
              ~Release() { flag->store(false); }
            } release{flag};
            try {
              *result = trainer_ref->step(views, labels);
            } catch (const train::NonFiniteLoss& error) {
              throw CodedError(error.what(), kCodeNonFinite);
            }
          },
          [result](Napi::Env e) -> Napi::Value { return step_result(e, *result); });
    });
  }

  Napi::Value fold(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      ensure_idle(env);
      trainer->fold();
      return env.Undefined();
    });
  }

  Napi::Value teacher_targets(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const at::Tensor images = unwrap(env, info[0], "images");
      ensure_idle(env);
      return wrap(env, trainer->teacher_targets(images));
    });
  }

  Napi::Value lr(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), trainer->optimizer().options().lr);
  }
  Napi::Value set_lr(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const double value = number(env, info[0], "lr");
      if (!std::isfinite(value) || value < 0) throw_argument(env, "lr must be a finite number >= 0");
      ensure_idle(env);
      trainer->optimizer().set_lr(value);
      return env.Undefined();
    });
  }
  Napi::Value steps(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(trainer->steps()));
  }
  Napi::Value set_steps(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const int64_t value = integer(env, info[0], "steps");
      if (value < 0) throw_argument(env, "steps must be >= 0");
      ensure_idle(env);
      trainer->set_steps(value);
      return env.Undefined();
    });
  }
  Napi::Value parameter_names(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const auto& names = trainer->parameter_names();
    Napi::Array out = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::String::New(env, names[i]));
    return out;
  }

  // optimizerState() -> [{ step, expAvg, expAvgSq } | { momentumBuffer } | {}] per parameter;
  // the tensors share memory with the optimizer (copy or save them before the next step).
  Napi::Value optimizer_state(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      ensure_idle(env);
      const auto& state = trainer->optimizer().state();
      Napi::Array out = Napi::Array::New(env, state.size());
      for (size_t i = 0; i < state.size(); ++i) {
        Napi::Object entry = Napi::Object::New(env);
        const train::ParamState& s = state[i];
        if (s.exp_avg.defined()) {
          entry.Set("step", Napi::Number::New(env, static_cast<double>(s.step)));
          entry.Set("expAvg", wrap(env, s.exp_avg));
          entry.Set("expAvgSq", wrap(env, s.exp_avg_sq));
        }
        if (s.momentum_buffer.defined()) entry.Set("momentumBuffer", wrap(env, s.momentum_buffer));
        out.Set(static_cast<uint32_t>(i), entry);
      }
      return out;
    });
  }

  Napi::Value load_optimizer_state(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      ensure_idle(env);
      if (!info[0].IsArray()) throw_argument(env, "loadOptimizerState needs one entry per parameter");
      const Napi::Array array = info[0].As<Napi::Array>();
      std::vector<train::ParamState> state(array.Length());
      for (uint32_t i = 0; i < array.Length(); ++i) {
        if (!array.Get(i).IsObject()) throw_argument(env, "optimizer state entries must be objects");
        const Napi::Object entry = array.Get(i).As<Napi::Object>();
        const auto tensor_at = [&](const char* key) {
          const Napi::Value v = entry.Get(key);
          return v.IsUndefined() || v.IsNull() ? at::Tensor() : unwrap(env, v, key);
        };
        const Napi::Value step = entry.Get("step");
        state[i].step = step.IsUndefined() ? 0 : integer(env, step, "step");
        state[i].exp_avg = tensor_at("expAvg");
        state[i].exp_avg_sq = tensor_at("expAvgSq");
        state[i].momentum_buffer = tensor_at("momentumBuffer");
      }
      trainer->optimizer().load_state(std::move(state));
      return env.Undefined();
    });
  }
};

// createTrainer(spec) -> TrainerHandle
Napi::Value create_trainer(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsObject()) throw_argument(env, "createTrainer needs a spec object");
    const Napi::Object spec = info[0].As<Napi::Object>();
    nn::ModelPtr model = unwrap_model(env, spec.Get("model"), "model");
    const Napi::Value teacher_value = spec.Get("teacher");
    nn::ModelPtr teacher =
        teacher_value.IsUndefined() || teacher_value.IsNull() ? nullptr : unwrap_model(env, teacher_value, "teacher");
    train::TrainerOptions options;
    try {
      options.recipe = train::parse_recipe(string(env, spec.Get("recipe"), "recipe"));
    } catch (const c10::Error& error) {
      throw_argument(env, torch_message(error));
    }
    options.temperature = optional_number(env, spec, "temperature", options.temperature);
    options.distill_temperature = optional_number(env, spec, "distillTemperature", options.distill_temperature);
    options.momentum = optional_number(env, spec, "momentum", options.momentum);
    options.contrastive_weight = optional_number(env, spec, "contrastiveWeight", 1);
    options.distill_weight = optional_number(env, spec, "distillWeight", 1);
    options.key_groups = static_cast<int64_t>(optional_number(env, spec, "keyGroups", 8));
    options.seed = static_cast<uint64_t>(optional_number(env, spec, "seed", 0));
    const auto precision = [&](const char* key) {
      const Napi::Value value = spec.Get(key);
      if (value.IsUndefined() || value.IsNull()) return at::kFloat;
      const std::string name = string(env, value, key);
      if (name != "float32" && name != "bfloat16") throw_argument(env, std::string(key) + " must be float32 or bfloat16, got '" + name + "'");
      return name == "bfloat16" ? at::kBFloat16 : at::kFloat;
    };
    options.teacher_dtype = precision("teacherDtype");
    options.compute_dtype = precision("computeDtype");
    const Napi::Value time_phases = spec.Get("timePhases");
    options.time_phases = !time_phases.IsUndefined() && boolean(env, time_phases, "timePhases");
    const Napi::Value mean = spec.Get("featureMean"), std = spec.Get("featureStd");
    if (!mean.IsUndefined() && !mean.IsNull()) options.feature_mean = unwrap(env, mean, "featureMean");
    if (!std.IsUndefined() && !std.IsNull()) options.feature_std = unwrap(env, std, "featureStd");
    auto trainer = std::make_shared<train::Trainer>(model, teacher, options, optimizer_options(env, spec.Get("optimizer")));
    Napi::Object handle = state(env).trainer_constructor.New({});
    TrainerHandle::Unwrap(handle)->trainer = std::move(trainer);
    return handle;
  });
}

// evaluateBatch(model, images, labels, keepLogits) -> Promise<{lossSum, correct1, correct5, count, logits?}>
Napi::Value evaluate_batch(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    nn::ModelPtr model = unwrap_model(env, info[0], "model");
    at::Tensor images = unwrap(env, info[1], "images"), labels = unwrap(env, info[2], "labels");
    const bool keep = boolean(env, info[3], "keepLogits");
    auto result = std::make_shared<train::EvalResult>();
    return run_async(
        env, kCodeTorch, [model, images, labels, keep, result] { *result = train::evaluate_batch(*model, images, labels, keep); },
        [result](Napi::Env e) -> Napi::Value {
          Napi::Object out = Napi::Object::New(e);
          out.Set("lossSum", Napi::Number::New(e, result->loss_sum));
          out.Set("correct1", Napi::Number::New(e, static_cast<double>(result->correct1)));
          out.Set("correct5", Napi::Number::New(e, static_cast<double>(result->correct5)));
          out.Set("count", Napi::Number::New(e, static_cast<double>(result->count)));
          if (result->logits.defined()) out.Set("logits", wrap(e, result->logits));
          return out;
        });
  });
}

// extractFeatures(model, images, normalize, head) -> Promise<TensorHandle [N, D] on CPU>
Napi::Value extract_features(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    nn::ModelPtr model = unwrap_model(env, info[0], "model");
    at::Tensor images = unwrap(env, info[1], "images");
    const bool normalize = boolean(env, info[2], "normalize");
    const bool head = info[3].IsUndefined() ? false : boolean(env, info[3], "head");
    auto out = std::make_shared<at::Tensor>();
    return run_async(
        env, kCodeTorch,
        [model, images, normalize, head, out] { *out = train::extract_features(*model, images, normalize, head); },
        [out](Napi::Env e) -> Napi::Value { return wrap(e, *out); });
  });
}

// knnScores(trainFeatures, trainLabels, testFeatures, {k, temperature, classes, leaveOneOut?}) -> Promise<TensorHandle [M, classes]>
Napi::Value knn_scores(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    at::Tensor train_features = unwrap(env, info[0], "trainFeatures"), train_labels = unwrap(env, info[1], "trainLabels");
    at::Tensor test_features = unwrap(env, info[2], "testFeatures");
    if (!info[3].IsObject()) throw_argument(env, "knnScores needs options {k, temperature, classes}");
    const Napi::Object spec = info[3].As<Napi::Object>();
    train::KnnOptions options;
    options.k = integer(env, spec.Get("k"), "k");
    options.temperature = number(env, spec.Get("temperature"), "temperature");
    options.classes = integer(env, spec.Get("classes"), "classes");
    const Napi::Value leave_one_out = spec.Get("leaveOneOut");
    options.leave_one_out = !leave_one_out.IsUndefined() && boolean(env, leave_one_out, "leaveOneOut");
    auto out = std::make_shared<at::Tensor>();
    return run_async(
        env, kCodeTorch,
        [train_features, train_labels, test_features, options, out] {
          *out = train::knn_scores(train_features, train_labels, test_features, options);
        },
        [out](Napi::Env e) -> Napi::Value { return wrap(e, *out); });
  });
}

// topkCorrect(scores [N, C], target [N]) -> {correct1, correct5}
Napi::Value topk_correct(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const auto [c1, c5] = train::topk_correct(unwrap(env, info[0], "scores"), unwrap(env, info[1], "target"));
    Napi::Object out = Napi::Object::New(env);
    out.Set("correct1", Napi::Number::New(env, static_cast<double>(c1)));
    out.Set("correct5", Napi::Number::New(env, static_cast<double>(c5)));
    return out;
  });
}

}  // namespace

void init_train(Napi::Env env, Napi::Object exports) {
  state(env).trainer_constructor = Napi::Persistent(TrainerHandle::define(env));
  exports.Set("createTrainer", Napi::Function::New(env, create_trainer));
  exports.Set("evaluateBatch", Napi::Function::New(env, evaluate_batch));
  exports.Set("extractFeatures", Napi::Function::New(env, extract_features));
  exports.Set("knnScores", Napi::Function::New(env, knn_scores));
  exports.Set("topkCorrect", Napi::Function::New(env, topk_correct));
}

}  // namespace s2bnn::binding
