// Module entry point, the asynchronous work and reference helpers, and the runtime controls (threads, seeds, grad
// mode, memory statistics, build facts).
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Logging.h>
#include <torch/version.h>

#include <cmath>
#include <sstream>

#include "../compat.h"
#include "../data/decode.h"
#include "../distributed/backends.h"
#include "../ops/ops.h"
#include "../ops/packed_forward.h"
#include "common.h"

#if defined(S2BNN_WITH_CUDA)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace s2bnn::binding {

// ---- PromiseWorker ----------------------------------------------------------------------------

void PromiseWorker::Execute() {
  try {
    work_();
  } catch (const CodedError& error) {
    code_ = error.code;
    SetError(error.what());
  } catch (const c10::Error& error) {
    SetError(torch_message(error));
  } catch (const std::exception& error) {
    SetError(error.what());
  }
}

void PromiseWorker::OnOK() {
  try {
    deferred_.Resolve(done_(Env()));
  } catch (const Napi::Error& error) {
    deferred_.Reject(error.Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& error) {
  deferred_.Reject(make_error(Env(), error.Message(), code_).Value());
}

Napi::Promise run_async(Napi::Env env, const char* code, PromiseWorker::Work work, PromiseWorker::Done done) {
  auto* worker = new PromiseWorker(env, code, std::move(work), std::move(done));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

// ---- ReferenceReleaser ------------------------------------------------------------------------

ReferenceReleaser::ReferenceReleaser(Napi::Env env)
    : env_(env), js_thread_(std::this_thread::get_id()) {
  wake_ = Napi::ThreadSafeFunction::New(
      env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "s2bnn.release", 0, 1);
  wake_.Unref(env);  // never keeps the process alive on its own
}

void ReferenceReleaser::release(napi_ref reference) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!alive_) return;  // the environment is gone; so is the buffer
  if (std::this_thread::get_id() == js_thread_) {
    napi_delete_reference(env_, reference);
    return;
  }
  pending_.push_back(reference);
  auto self = this;
  wake_.NonBlockingCall([self](Napi::Env, Napi::Function) { self->drain(); });
}

void ReferenceReleaser::drain() {
  std::vector<napi_ref> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!alive_) return;
    batch.swap(pending_);
  }
  for (napi_ref reference : batch) napi_delete_reference(env_, reference);
}

void ReferenceReleaser::shutdown() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!alive_) return;
  alive_ = false;
  pending_.clear();
  wake_.Release();
}

AddonState& state(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

struct DtypeName {
  const char* name;
  at::ScalarType type;
};

constexpr DtypeName kDtypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf},
    {"bfloat16", at::kBFloat16}, {"int64", at::kLong}, {"int32", at::kInt},
    {"int16", at::kShort}, {"int8", at::kChar}, {"uint8", at::kByte}, {"bool", at::kBool},
};

at::ScalarType parse_dtype(Napi::Env env, const std::string& name) {
  for (const auto& entry : kDtypes) {
    if (name == entry.name) return entry.type;
  }
  throw_argument(env, "unknown dtype '" + name +
                          "' (expected float32, float64, float16, bfloat16, int64, int32, int16, "
                          "int8, uint8 or bool)");
}

const char* dtype_name(at::ScalarType type) {
  for (const auto& entry : kDtypes) {
    if (type == entry.type) return entry.name;
  }
  return c10::toString(type);
}

at::Device parse_device(Napi::Env env, const std::string& name) {
  try {
    const at::Device device(name);
    if (!device.is_cpu() && !device.is_cuda()) {
      throw_argument(env, "device must be 'cpu' or 'cuda[:index]', got '" + name + "'");
    }
    return device;
  } catch (const c10::Error&) {
    throw_argument(env, "device must be 'cpu' or 'cuda[:index]', got '" + name + "'");
  }
}

std::string device_name(const at::Device& device) { return device.str(); }

// ---- runtime controls -------------------------------------------------------------------------

namespace {

Napi::Value set_num_threads(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t n = integer(env, info[0], "threads");
    if (n < 1 || n > 1024) throw_argument(env, "threads must be between 1 and 1024");
    at::set_num_threads(static_cast<int>(n));
    return env.Undefined();
  });
}

// setPackedTrainingForward(on) -> the previous setting
Napi::Value set_packed_training_forward(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const bool previous = ops::packed_training_forward();
    ops::set_packed_training_forward(boolean(env, info[0], "on"));
    return Napi::Boolean::New(env, previous);
  });
}

Napi::Value get_num_threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value manual_seed(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t seed = integer(env, info[0], "seed");
    at::manual_seed(static_cast<uint64_t>(seed));
    return env.Undefined();
  });
}

Napi::Value set_grad_enabled(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const bool previous = at::GradMode::is_enabled();
    at::GradMode::set_enabled(boolean(env, info[0], "enabled"));
    return Napi::Boolean::New(env, previous);
  });
}

Napi::Value is_grad_enabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}

Napi::Value memory_stats(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const bool reset = info.Length() > 0 && boolean(env, info[0], "resetPeak");
    const auto stats = ops::memory_stats(reset);
    Napi::Object out = Napi::Object::New(env);
    const char* names[] = {"current", "peak", "allocations", "cached", "cacheLimit"};
    for (size_t i = 0; i < stats.size(); ++i) {
      out.Set(names[i], Napi::Number::New(env, static_cast<double>(stats[i])));
    }
    return out;
  });
}

Napi::Value set_cpu_cache_limit(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t bytes = integer(env, info[0], "bytes");
    if (bytes < 0) throw_argument(env, "the CPU cache limit must be >= 0 bytes");
    ops::install_cpu_allocator(bytes);
    return env.Undefined();
  });
}

Napi::Value empty_cache(const Napi::CallbackInfo& info) {
  ops::empty_cache();
  return info.Env().Undefined();
}

int64_t visible_cuda_devices() {
#if defined(S2BNN_WITH_CUDA)
  return at::globalContext().hasCUDA() ? at::cuda::device_count() : 0;
#else
  return 0;
#endif
}

Napi::Value cuda_device_count(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(visible_cuda_devices()));
}

// Waits for the GPU's queued work: a benchmark's clock must not stop at a kernel launch.
Napi::Value cuda_synchronize(const Napi::CallbackInfo& info) {
#if defined(S2BNN_WITH_CUDA)
  if (visible_cuda_devices() > 0) c10::cuda::device_synchronize();
#endif
  return info.Env().Undefined();
}

Napi::Value parallel_info(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), at::get_parallel_info());
}

// Where NNPACK cannot start (CPUs its cpuinfo does not know), libtorch >= 2 logs "Could not
// initialize NNPACK" each time a convolution asks whether it may use it: ask once, with only
// errors logged, and turn NNPACK off so that nothing asks again. (1.13 asks once and has no switch.)
void disable_unusable_nnpack() {
#if S2BNN_TORCH_AT_LEAST(2, 1)
  const int level = FLAGS_caffe2_log_level;
  FLAGS_caffe2_log_level = 2;  // errors
  const bool usable = at::_nnpack_available();
  FLAGS_caffe2_log_level = level;
  if (!usable) at::globalContext().setUserEnabledNNPACK(false);
#endif
}

}  // namespace

void init_runtime(Napi::Env env, Napi::Object exports) {
  disable_unusable_nnpack();
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads));
  exports.Set("getNumThreads", Napi::Function::New(env, get_num_threads));
  exports.Set("setPackedTrainingForward", Napi::Function::New(env, set_packed_training_forward));
  exports.Set("manualSeed", Napi::Function::New(env, manual_seed));
  exports.Set("setGradEnabled", Napi::Function::New(env, set_grad_enabled));
  exports.Set("isGradEnabled", Napi::Function::New(env, is_grad_enabled));
  exports.Set("memoryStats", Napi::Function::New(env, memory_stats));
  exports.Set("setCpuCacheLimit", Napi::Function::New(env, set_cpu_cache_limit));
  exports.Set("emptyCache", Napi::Function::New(env, empty_cache));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, cuda_device_count));
  exports.Set("cudaSynchronize", Napi::Function::New(env, cuda_synchronize));
  exports.Set("parallelInfo", Napi::Function::New(env, parallel_info));
  Napi::Object build = Napi::Object::New(env);
  build.Set("libtorchVersion", Napi::String::New(env, TORCH_VERSION));
  // The libstdc++ string/list ABI the addon was compiled with: libtorch's, which it must match.
  build.Set("cxx11Abi", Napi::Boolean::New(env, _GLIBCXX_USE_CXX11_ABI == 1));
#if defined(S2BNN_WITH_CUDA)
  build.Set("cuda", Napi::Boolean::New(env, true));
  build.Set("cudaVersion", Napi::String::New(env, std::to_string(CUDART_VERSION / 1000) + "." +
                                                     std::to_string(CUDART_VERSION % 1000 / 10)));
#else
  build.Set("cuda", Napi::Boolean::New(env, false));
  build.Set("cudaVersion", env.Null());
#endif
  const std::string nccl = s2bnn::distributed::nccl_version();
  build.Set("nccl", nccl.empty() ? env.Null() : Napi::String::New(env, nccl));
  build.Set("imageCodecs", Napi::Boolean::New(env, s2bnn::data::image_codecs_available()));
  exports.Set("build", build);
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* addon_state = new AddonState();
  addon_state->releaser = std::make_shared<ReferenceReleaser>(env);
  addon_state->tensors = make_tensor_registry();
  env.SetInstanceData<AddonState>(addon_state);
  // Runs before the instance data is freed: afterwards no reference may be touched.
  env.AddCleanupHook([releaser = addon_state->releaser]() { releaser->shutdown(); });
  init_runtime(env, exports);
  init_tensor(env, exports);
  init_ops(env, exports);
  init_checkpoint(env, exports);
  init_model(env, exports);
  init_train(env, exports);
  init_datasets(env, exports);
  init_loader(env, exports);
  init_deploy(env, exports);
  return exports;
}

}  // namespace s2bnn::binding

// NODE_API_MODULE needs an unqualified function name.
static Napi::Object InitS2bnn(Napi::Env env, Napi::Object exports) {
  return s2bnn::binding::init(env, exports);
}

NODE_API_MODULE(s2bnn, InitS2bnn)
