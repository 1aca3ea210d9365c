// Deployment bindings: a PackedModelHandle owns one packed ReActNet-A (native/deploy). Export,
// load, save and forward run on libuv's thread pool; forwards may overlap (the packed model is
// read-only while it runs), moving it to another device may not.
#include <atomic>

#include "../deploy/packed_reactnet.h"
#include "common.h"

namespace s2bnn::binding {
namespace {

using deploy::PackedReActNet;

class PackedModelHandle : public Napi::ObjectWrap<PackedModelHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "PackedModelHandle",
                       {
                           InstanceAccessor<&PackedModelHandle::config>("config"),
                           InstanceAccessor<&PackedModelHandle::feature_dim>("featureDim"),
                           InstanceAccessor<&PackedModelHandle::device>("device"),
                           InstanceMethod<&PackedModelHandle::forward>("forward"),
                           InstanceMethod<&PackedModelHandle::features>("features"),
                           InstanceMethod<&PackedModelHandle::save>("save"),
                           InstanceMethod<&PackedModelHandle::tensors>("tensors"),
                           InstanceMethod<&PackedModelHandle::to>("to"),
                       });
  }

  explicit PackedModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PackedModelHandle>(info) {}

  std::shared_ptr<PackedReActNet> model;
  std::shared_ptr<std::atomic<int>> in_flight = std::make_shared<std::atomic<int>>(0);

 private:
  Napi::Value config(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), model->config_json()); }
  Napi::Value feature_dim(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(model->feature_dim()));
  }
  Napi::Value device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_name(model->device())); }

  Napi::Value run(const Napi::CallbackInfo& info, bool head) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      at::Tensor x = unwrap(env, info[0], "x");
      auto out = std::make_shared<at::Tensor>();
      auto packed = model;
      auto counter = in_flight;
      counter->fetch_add(1);
      return run_async(
          env, kCodeTorch,
          [packed, counter, x, head, out] {
            struct Release {
              std::shared_ptr<std::atomic<int>> counter;
              ~Release() { counter->fetch_sub(1); }
            } release{counter};
            *out = head ? packed->forward(x) : packed->features(x);
          },
          [out](Napi::Env e) -> Napi::Value { return wrap(e, *out); });
    });
  }
  Napi::Value forward(const Napi::CallbackInfo& info) { return run(info, true); }
  Napi::Value features(const Napi::CallbackInfo& info) { return run(info, false); }

  Napi::Value save(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const std::string path = string(env, info[0], "path");
      auto packed = model;
      return run_async(env, kCodeCheckpoint, [packed, path] { packed->save(path); },
                       [](Napi::Env e) -> Napi::Value { return e.Undefined(); });
    });
  }

  Napi::Value tensors(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value { return pairs(info.Env(), model->tensors()); });
  }

  Napi::Value to(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const at::Device target = parse_device(env, string(env, info[0], "device"));
      if (target.is_cuda() && !at::hasCUDA()) {
        throw_argument(env, "device '" + target.str() + "' requested, but this s2bnn build has no CUDA or sees no device");
      }
      if (in_flight->load() != 0) throw_argument(env, "the packed model cannot move while a forward is running");
      model->to(target);
      return env.Undefined();
    });
  }
};

Napi::Object wrap_packed(Napi::Env env, std::shared_ptr<PackedReActNet> model) {
  Napi::Object handle = state(env).packed_model_constructor.New({});
  PackedModelHandle::Unwrap(handle)->model = std::move(model);
  return handle;
}

// packReActNet([[name, tensor], ...], stem, halfHead) -> Promise<{ model, binaryWeights, zeroWeights }>
Napi::Value pack_reactnet(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto state_dict = named_tensors(env, info[0], "packReActNet");
    const std::string stem = string(env, info[1], "stem");
    if (stem != "imagenet" && stem != "small") throw_argument(env, "stem must be 'imagenet' or 'small', got '" + stem + "'");
    const bool half_head = boolean(env, info[2], "halfHead");
    auto result = std::make_shared<PackedReActNet>();
    auto report = std::make_shared<deploy::ExportReport>();
    return run_async(
        env, kCodeArgument,
        [state_dict = std::move(state_dict), small = stem == "small", half_head, result, report] {
          try {
            *result = PackedReActNet::from_state(state_dict, small, half_head, report.get());
          } catch (const std::invalid_argument& error) {
            throw CodedError(error.what(), kCodeArgument);
          }
        },
        [result, report](Napi::Env e) -> Napi::Value {
          Napi::Object out = Napi::Object::New(e);
          out.Set("model", wrap_packed(e, result));
          out.Set("binaryWeights", Napi::Number::New(e, static_cast<double>(report->binary_weights)));
          out.Set("zeroWeights", Napi::Number::New(e, static_cast<double>(report->zero_weights)));
          return out;
        });
  });
}

// loadPackedModel(path) -> Promise<PackedModelHandle>
Napi::Value load_packed_model(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string path = string(env, info[0], "path");
    auto result = std::make_shared<PackedReActNet>();
    return run_async(
        env, kCodeCheckpoint, [path, result] { *result = PackedReActNet::load(path); },
        [result](Napi::Env e) -> Napi::Value { return wrap_packed(e, result); });
  });
}

}  // namespace

void init_deploy(Napi::Env env, Napi::Object exports) {
  state(env).packed_model_constructor = Napi::Persistent(PackedModelHandle::define(env));
  exports.Set("packReActNet", Napi::Function::New(env, pack_reactnet));
  exports.Set("loadPackedModel", Napi::Function::New(env, load_packed_model));
}

}  // namespace s2bnn::binding
