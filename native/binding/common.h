// The boundary between Node and libtorch: error translation, argument parsing, and the per-env
// state every binding file shares. This folder is the only place that includes napi.h.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <stdexcept>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace s2bnn::nn {
class Model;
}

namespace s2bnn::binding {

// Error codes on the JS Error's `code` property.
inline constexpr const char* kCodeTorch = "S2BNN_TORCH";        // libtorch rejected the call
inline constexpr const char* kCodeArgument = "S2BNN_ARGUMENT";  // bad argument at the boundary
inline constexpr const char* kCodeDisposed = "S2BNN_DISPOSED";  // tensor used after dispose()
inline constexpr const char* kCodeInternal = "S2BNN_INTERNAL";  // any other C++ exception
inline constexpr const char* kCodeCheckpoint = "S2BNN_CHECKPOINT";  // unreadable/unwritable file
inline constexpr const char* kCodeNonFinite = "S2BNN_NONFINITE_LOSS";  // a training step's loss was NaN/Inf
inline constexpr const char* kCodeDataset = "S2BNN_DATASET";  // a dataset that cannot be opened
inline constexpr const char* kCodeBadImage = "S2BNN_BAD_IMAGE";  // a sample that cannot be decoded

Napi::Error make_error(Napi::Env env, const std::string& message, const char* code);

[[noreturn]] inline void throw_argument(Napi::Env env, const std::string& message) {
  throw make_error(env, message, kCodeArgument);
}

// libtorch messages carry a C++ backtrace and source location after the first lines; users get
// the message itself.
std::string torch_message(const c10::Error& error);

// Runs `body` and turns every C++ exception into a JS Error: nothing escapes as a crash.
template <typename Body>
Napi::Value guarded(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& error) {
    throw make_error(env, torch_message(error), kCodeTorch);
  } catch (const std::exception& error) {
    throw make_error(env, error.what(), kCodeInternal);
  }
}

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
};

AddonState& state(Napi::Env env);

// Argument helpers: each names the argument in its error.
std::vector<int64_t> int_list(Napi::Env env, const Napi::Value& value, const char* name);
int64_t integer(Napi::Env env, const Napi::Value& value, const char* name);
double number(Napi::Env env, const Napi::Value& value, const char* name);
bool boolean(Napi::Env env, const Napi::Value& value, const char* name);
std::string string(Napi::Env env, const Napi::Value& value, const char* name);

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
void init_tensor(Napi::Env env, Napi::Object exports);
void init_ops(Napi::Env env, Napi::Object exports);
void init_runtime(Napi::Env env, Napi::Object exports);
void init_checkpoint(Napi::Env env, Napi::Object exports);
void init_model(Napi::Env env, Napi::Object exports);
void init_train(Napi::Env env, Napi::Object exports);

// Model handles (model.cpp): the native model behind a ModelHandle, or an argument error.
std::shared_ptr<nn::Model> unwrap_model(Napi::Env env, const Napi::Value& value, const char* name);
void init_data(Napi::Env env, Napi::Object exports);
void init_deploy(Napi::Env env, Napi::Object exports);

}  // namespace s2bnn::binding
