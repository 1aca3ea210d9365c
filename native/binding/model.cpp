// Model bindings: a ModelHandle owns one native model (native/nn). Tensors handed out
// (parameters, buffers, outputs) share memory with the model.
#include "../nn/moco.h"
#include "../nn/reactnet.h"
#include "../nn/resnet.h"
#include "common.h"

namespace s2bnn::binding {
namespace {

// lib/models.ts resolves every field of a spec (lib/binding/models.ts); the checks here guard
// the native builders' invariants.
nn::HeadOptions head_options(const Options& spec) {
  nn::HeadOptions head;
  const std::string kind = spec.string("head");
  if (kind == "linear") {
    head.kind = nn::Head::Linear;
  } else if (kind == "mlp") {
    head.kind = nn::Head::Mlp;
  } else {
    throw_argument(spec.env(), spec.name("head") + " must be 'linear' or 'mlp', got '" + kind + "'");
  }
  head.classes = spec.integer("numClasses");
  head.dim = spec.integer("mlpDim");
  if (head.classes < 1 || head.dim < 1) throw_argument(spec.env(), "numClasses and mlpDim must be >= 1");
  return head;
}

bool small_stem(const Options& spec) {
  const std::string stem = spec.string("stem");
  if (stem != "imagenet" && stem != "small") {
    throw_argument(spec.env(), spec.name("stem") + " must be 'imagenet' or 'small', got '" + stem + "'");
  }
  return stem == "small";
}

nn::ModelPtr build(const Options& spec, int depth) {
  const Napi::Env env = spec.env();
  if (depth > 2) throw_argument(env, "model specs nest at most one encoder");
  const std::string arch = spec.string("arch");
  if (arch == "reactnet-a") {
    nn::ReActNetOptions options;
    const std::string binarize = spec.string("binarize");
    if (binarize != "both" && binarize != "activations") {
      throw_argument(env, "binarize must be 'activations' (step 1) or 'both' (step 2), got '" + binarize + "'");
    }
    options.binarize_weights = binarize == "both";
    options.head = head_options(spec);
    options.in_channels = spec.integer("inChannels");
    options.small_stem = small_stem(spec);
    options.width = spec.number("width");
    return std::make_shared<nn::ReActNetA>(options);
  }
  if (arch == "resnet18" || arch == "resnet34" || arch == "resnet50") {
    nn::ResNetOptions options;
    options.depth = std::stoi(arch.substr(6));
    options.head = head_options(spec);
    options.in_channels = spec.integer("inChannels");
    options.small_stem = small_stem(spec);
    options.width = spec.number("width");
    return std::make_shared<nn::ResNet>(options);
  }
  if (arch == "moco") {
    if (!spec.value("encoder").IsObject()) throw_argument(env, "a moco model needs an encoder spec");
    const Options encoder = spec.object("encoder");
    const int64_t dim = spec.integer("dim");
    const int64_t queue = spec.integer("queueSize");
    // Both encoders are built here, on the JS thread, from the same spec.
    nn::ModelPtr q = build(encoder, depth + 1), k = build(encoder, depth + 1);
    std::vector<nn::ModelPtr> made = {q, k};
    size_t next = 0;
    return std::make_shared<nn::MoCo>([&] { return made.at(next++); }, dim, queue);
  }
  throw_argument(env, "unknown arch '" + arch + "' (expected reactnet-a, resnet18, resnet34, resnet50 or moco)");
}

template <typename Item>
std::vector<std::pair<std::string, at::Tensor>> from_dict(const torch::OrderedDict<std::string, Item>& dict) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : dict) out.emplace_back(item.key(), item.value());
  return out;
}

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "ModelHandle",
                       {
                           InstanceAccessor<&ModelHandle::arch>("arch"),
                           InstanceAccessor<&ModelHandle::training>("training"),
                           InstanceAccessor<&ModelHandle::feature_dim>("featureDim"),
                           InstanceMethod<&ModelHandle::forward>("forward"),
                           InstanceMethod<&ModelHandle::features>("features"),
                           InstanceMethod<&ModelHandle::train>("train"),
                           InstanceMethod<&ModelHandle::named_parameters>("namedParameters"),
                           InstanceMethod<&ModelHandle::named_buffers>("namedBuffers"),
                           InstanceMethod<&ModelHandle::state_dict>("stateDict"),
                           InstanceMethod<&ModelHandle::load_state_dict>("loadStateDict"),
                           InstanceMethod<&ModelHandle::to>("to"),
                           InstanceMethod<&ModelHandle::freeze>("freeze"),
                           InstanceMethod<&ModelHandle::zero_grad>("zeroGrad"),
                           InstanceMethod<&ModelHandle::complexity>("complexity"),
                           InstanceMethod<&ModelHandle::momentum_update>("momentumUpdate"),
                           InstanceMethod<&ModelHandle::unused_modules>("unusedModules"),
                           InstanceMethod<&ModelHandle::enqueue>("enqueue"),
                       });
  }

  explicit ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {}

  nn::ModelPtr model;

 private:
  Napi::Value arch(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), model->arch()); }
  Napi::Value training(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), model->is_training()); }
  Napi::Value feature_dim(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(model->feature_dim()));
  }

  Napi::Value forward(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value { return wrap(env, model->forward(unwrap(env, info[0], "x"))); });
  }
  Napi::Value features(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value { return wrap(env, model->features(unwrap(env, info[0], "x"))); });
  }
  Napi::Value train(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      model->train(boolean(env, info[0], "mode"));
      return env.Undefined();
    });
  }
  Napi::Value named_parameters(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value { return pairs(info.Env(), from_dict(model->named_parameters())); });
  }
  Napi::Value named_buffers(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value { return pairs(info.Env(), from_dict(model->named_buffers())); });
  }
  Napi::Value state_dict(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value { return pairs(info.Env(), nn::state_dict(*model)); });
  }

  // loadStateDict([[name, tensor], ...], strict) -> { missing, unexpected }
  Napi::Value load_state_dict(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const auto entries = named_tensors(env, info[0], "loadStateDict");
      const nn::LoadResult result = nn::load_state_dict(*model, entries, boolean(env, info[1], "strict"));
      Napi::Object out = Napi::Object::New(env);
      out.Set("missing", strings(env, result.missing));
      out.Set("unexpected", strings(env, result.unexpected));
      return out;
    });
  }

  Napi::Value to(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const at::Device device = parse_device(env, string(env, info[0], "device"));
      if (device.is_cuda() && !at::hasCUDA()) {
        throw_argument(env, "device '" + device.str() + "' requested, but this s2bnn build has no CUDA or sees no device");
      }
      model->to(device);
      return env.Undefined();
    });
  }

  // freeze(trainable prefixes) -> number of parameters frozen (requires_grad = false).
  Napi::Value freeze(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const Napi::Array prefixes = info[0].As<Napi::Array>();
      std::vector<std::string> keep;
      for (uint32_t i = 0; i < prefixes.Length(); ++i) keep.push_back(string(env, prefixes.Get(i), "prefix"));
      int64_t frozen = 0;
      for (auto& p : model->named_parameters()) {
        bool trainable = false;
        for (const auto& prefix : keep) trainable = trainable || p.key().rfind(prefix, 0) == 0;
        p.value().set_requires_grad(trainable);
        frozen += trainable ? 0 : 1;
      }
      return Napi::Number::New(env, static_cast<double>(frozen));
    });
  }

  // Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)).
  Napi::Value zero_grad(const Napi::CallbackInfo& info) {
    for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
    return info.Env().Undefined();
  }

  Napi::Value complexity(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const int64_t h = integer(env, info[0], "height"), w = integer(env, info[1], "width");
      if (h < 1 || w < 1) throw_argument(env, "the input size must be positive");
      const nn::Complexity c = model->complexity(h, w);
      Napi::Object out = Napi::Object::New(env);
      out.Set("flops", Napi::Number::New(env, c.flops));
      out.Set("binaryOps", Napi::Number::New(env, c.binary_ops));
      out.Set("ops", Napi::Number::New(env, c.ops()));
      out.Set("parameters", Napi::Number::New(env, static_cast<double>(c.parameters)));
      return out;
    });
  }

  Napi::Value unused_modules(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value { return strings(info.Env(), model->unused_modules()); });
  }

  nn::MoCo& moco(Napi::Env env) {
    auto* m = dynamic_cast<nn::MoCo*>(model.get());
    if (!m) throw_argument(env, "only MoCo models have a momentum encoder and a queue");
    return *m;
  }
  Napi::Value momentum_update(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const double m = number(env, info[0], "momentum");
      if (!(m >= 0 && m <= 1)) throw_argument(env, "momentum must be in [0, 1]");
      moco(env).momentum_update(m);
      return env.Undefined();
    });
  }
  Napi::Value enqueue(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      moco(env).enqueue(unwrap(env, info[0], "keys"));
      return env.Undefined();
    });
  }
};

Napi::Value create_model(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsObject()) throw_argument(env, "createModel needs a spec object");
    nn::ModelPtr model = build(Options(env, info[0], ""), 0);
    Napi::Object handle = state(env).model_constructor.New({});
    ModelHandle::Unwrap(handle)->model = std::move(model);
    return handle;
  });
}

}  // namespace

Napi::Array pairs(Napi::Env env, const std::vector<std::pair<std::string, at::Tensor>>& entries) {
  Napi::Array out = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::String::New(env, entries[i].first));
    pair.Set(1u, wrap(env, entries[i].second));
    out.Set(static_cast<uint32_t>(i), pair);
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> named_tensors(Napi::Env env, const Napi::Value& value, const char* call) {
  const std::string usage = std::string(call) + " needs [name, tensor] pairs";
  if (!value.IsArray()) throw_argument(env, usage);
  const Napi::Array array = value.As<Napi::Array>();
  std::vector<std::pair<std::string, at::Tensor>> entries;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const Napi::Value pair = array.Get(i);
    if (!pair.IsArray() || pair.As<Napi::Array>().Length() != 2) throw_argument(env, usage);
    const std::string name = string(env, pair.As<Napi::Array>().Get(0u), "state dict key");
    entries.emplace_back(name, unwrap(env, pair.As<Napi::Array>().Get(1u), name.c_str()));
  }
  return entries;
}

Napi::Array strings(Napi::Env env, const std::vector<std::string>& values) {
  Napi::Array out = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::String::New(env, values[i]));
  return out;
}

nn::ModelPtr unwrap_model(Napi::Env env, const Napi::Value& value, const char* name) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(state(env).model_constructor.Value())) {
    throw_argument(env, std::string(name) + " must be a model");
  }
  return ModelHandle::Unwrap(value.As<Napi::Object>())->model;
}

void init_model(Napi::Env env, Napi::Object exports) {
  state(env).model_constructor = Napi::Persistent(ModelHandle::define(env));
  exports.Set("createModel", Napi::Function::New(env, create_model));
}

}  // namespace s2bnn::binding
