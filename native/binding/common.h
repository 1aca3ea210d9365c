// The boundary between Node and libtorch: error translation and argument parsing (arguments.h),
// asynchronous work, and the per-env state every binding file shares. Only this folder and the
// test addon (native/testing) include napi.h.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "arguments.h"

namespace s2bnn::nn {
class Model;
}
namespace s2bnn::data {
class ImageSource;
}

namespace s2bnn::binding {

// Thrown by a PromiseWorker's work to reject with a specific code.
struct CodedError : std::runtime_error {
  CodedError(const std::string& message, const char* error_code) : std::runtime_error(message), code(error_code) {}
  const char* code;
};

// Runs `work` on libuv's thread pool and settles a Promise: resolved with `done(env)` on the JS
// thread, or rejected with an Error whose code is the CodedError's or `code` (libtorch and other
// exceptions alike, with the libtorch message's first lines).
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;
  PromiseWorker(Napi::Env env, const char* code, Work work, Done done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), code_(code), work_(std::move(work)),
        done_(std::move(done)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

 private:
  Napi::Promise::Deferred deferred_;
  const char* code_;  // the rejection's code; a CodedError replaces it
  Work work_;
  Done done_;
};

// Queues a PromiseWorker and returns its Promise.
Napi::Promise run_async(Napi::Env env, const char* code, PromiseWorker::Work work, PromiseWorker::Done done);

// Keeps JS ArrayBuffers alive while zero-copy tensors use their memory. A tensor's storage can
// be freed on any thread (libtorch worker threads, async steps), but references may only be
// deleted on the JS thread: other threads queue them and wake the JS thread.
class ReferenceReleaser {
 public:
  ReferenceReleaser(Napi::Env env);
  void release(napi_ref reference);
  void drain();
  void shutdown();

 private:
  napi_env env_;
  std::thread::id js_thread_;
  std::mutex mutex_;
  std::vector<napi_ref> pending_;
  bool alive_ = true;
  Napi::ThreadSafeFunction wake_;
};

// The tensor handles that hold memory (tensor.cpp).
class TensorRegistry;

struct AddonState {
  Napi::FunctionReference tensor_constructor;
  Napi::FunctionReference checkpoint_constructor;
  Napi::FunctionReference model_constructor;
  Napi::FunctionReference trainer_constructor;
  Napi::FunctionReference dataset_constructor;
  Napi::FunctionReference folder_constructor;
  Napi::FunctionReference loader_constructor;
  Napi::FunctionReference packed_model_constructor;
  std::shared_ptr<ReferenceReleaser> releaser;
  std::shared_ptr<TensorRegistry> tensors;
};

AddonState& state(Napi::Env env);

at::ScalarType parse_dtype(Napi::Env env, const std::string& name);
const char* dtype_name(at::ScalarType type);
at::Device parse_device(Napi::Env env, const std::string& name);
std::string device_name(const at::Device& device);

// [[name, tensor], ...] and string arrays for JS, and [[name, tensor], ...] from JS, where a
// malformed entry is an argument error naming `call` (model.cpp).
Napi::Array pairs(Napi::Env env, const std::vector<std::pair<std::string, at::Tensor>>& entries);
std::vector<std::pair<std::string, at::Tensor>> named_tensors(Napi::Env env, const Napi::Value& value, const char* call);
Napi::Array strings(Napi::Env env, const std::vector<std::string>& values);

// Tensor handles (tensor.cpp).
at::Tensor& unwrap(Napi::Env env, const Napi::Value& value, const char* name);
Napi::Object wrap(Napi::Env env, at::Tensor tensor);
// Creates the per-env tensor registry (before any tensor is wrapped).
std::shared_ptr<TensorRegistry> make_tensor_registry();
void init_tensor(Napi::Env env, Napi::Object exports);
void init_ops(Napi::Env env, Napi::Object exports);
void init_runtime(Napi::Env env, Napi::Object exports);
void init_checkpoint(Napi::Env env, Napi::Object exports);
void init_model(Napi::Env env, Napi::Object exports);
void init_train(Napi::Env env, Napi::Object exports);

// Model handles (model.cpp): the native model behind a ModelHandle, or an argument error.
std::shared_ptr<nn::Model> unwrap_model(Napi::Env env, const Napi::Value& value, const char* name);
// Dataset handles (datasets.cpp): the source behind an InMemoryDataset or ImageFolder handle.
std::shared_ptr<const data::ImageSource> unwrap_source(Napi::Env env, const Napi::Value& value, const char* name);
void init_datasets(Napi::Env env, Napi::Object exports);
void init_loader(Napi::Env env, Napi::Object exports);
void init_deploy(Napi::Env env, Napi::Object exports);

}  // namespace s2bnn::binding
