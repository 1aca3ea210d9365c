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

// lib/train/trainer.ts resolves every option (lib/binding/train.ts); the checks here guard the
// native trainer's invariants.
train::OptimizerOptions optimizer_options(const Options& spec) {
  train::OptimizerOptions options;
  const std::string name = spec.string("kind");
  if (name == "adam") {
    options.kind = train::OptimizerKind::Adam;
    std::tie(options.beta1, options.beta2) = spec.range("betas");
    options.eps = spec.number("eps");
  } else if (name == "sgd") {
    options.kind = train::OptimizerKind::Sgd;
    options.momentum = spec.number("momentum");
    options.dampening = spec.number("dampening");
    options.nesterov = spec.boolean("nesterov");
  } else {
    throw_argument(spec.env(), spec.name("kind") + " must be 'adam' or 'sgd', got '" + name + "'");
  }
  options.lr = spec.number("lr");
  options.weight_decay = spec.number("weightDecay");
  if (options.lr < 0) throw_argument(spec.env(), "optimizer.lr must be a finite number >= 0");
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
    const Options spec(env, info[0], "");
    nn::ModelPtr model = unwrap_model(env, spec.value("model"), "model");
    const Napi::Value teacher_value = spec.value("teacher");
    nn::ModelPtr teacher = teacher_value.IsNull() ? nullptr : unwrap_model(env, teacher_value, "teacher");
    train::TrainerOptions options;
    try {
      options.recipe = train::parse_recipe(spec.string("recipe"));
    } catch (const c10::Error& error) {
      throw_argument(env, torch_message(error));
    }
    options.temperature = spec.number("temperature");
    options.distill_temperature = spec.number("distillTemperature");
    options.momentum = spec.number("momentum");
    options.contrastive_weight = spec.number("contrastiveWeight");
    options.distill_weight = spec.number("distillWeight");
    options.key_groups = spec.integer("keyGroups");
    const int64_t seed = spec.integer("seed");
    if (seed < 0) throw_argument(env, "seed must be >= 0");
    options.seed = static_cast<uint64_t>(seed);
    const auto precision = [&](const char* key) {
      const std::string name = spec.string(key);
      if (name != "float32" && name != "bfloat16") throw_argument(env, std::string(key) + " must be float32 or bfloat16, got '" + name + "'");
      return name == "bfloat16" ? at::kBFloat16 : at::kFloat;
    };
    options.teacher_dtype = precision("teacherDtype");
    options.compute_dtype = precision("computeDtype");
    options.time_phases = spec.boolean("timePhases");
    const Napi::Value mean = spec.value("featureMean"), std = spec.value("featureStd");
    if (!mean.IsNull()) options.feature_mean = unwrap(env, mean, "featureMean");
    if (!std.IsNull()) options.feature_std = unwrap(env, std, "featureStd");
    auto trainer = std::make_shared<train::Trainer>(model, teacher, options, optimizer_options(spec.object("optimizer")));
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
    const Options spec(env, info[3], "options");
    train::KnnOptions options;
    options.k = spec.integer("k");
    options.temperature = spec.number("temperature");
    options.classes = spec.integer("classes");
    options.leave_one_out = spec.boolean("leaveOneOut");
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
