// TensorHandle: a JS object owning one at::Tensor. Zero-copy views of TypedArrays in, external
// ArrayBuffers out; native bytes reported to V8 so garbage collection feels real memory pressure;
// dispose() frees eagerly and the finalizer is the safety net.
#include <cstring>
#include <functional>
#include <sstream>
#include <unordered_set>
#include <unordered_map>

#include "common.h"

namespace s2bnn::binding {
namespace {
class TensorHandle;
}  // namespace

// Every handle that holds a tensor. Node runs finalizers from the event loop, not from the
// garbage collection that found their objects, so a synchronous loop that forgets tensors would
// hold every one of them until it yields (400,000 64x64 tensors: 13.8 GB). The collection does
// clear the handles' weak references at once, though: after every `kSweepBytes` of new tensors
// the registry releases the tensors of handles whose JS object is already gone, and their
// finalizers later find them empty.
class TensorRegistry {
 public:
  static constexpr int64_t kSweepBytes = int64_t(256) << 20;

  void add(TensorHandle* handle, int64_t bytes) {
    handles_.insert(handle);
    since_sweep_ += bytes;
  }
  void remove(TensorHandle* handle) { handles_.erase(handle); }
  bool due() const { return since_sweep_ >= kSweepBytes; }
  // Releases the tensors of collected handles; returns how many.
  int64_t sweep(Napi::Env env);

 private:
  std::unordered_set<TensorHandle*> handles_;
  int64_t since_sweep_ = 0;
};

std::shared_ptr<TensorRegistry> make_tensor_registry() { return std::make_shared<TensorRegistry>(); }

namespace {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function define(Napi::Env env);

  explicit TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {}
  ~TensorHandle() override { release(); }

  void assign(Napi::Env env, at::Tensor tensor, bool report_memory) {
    tensor_ = std::move(tensor);
    disposed_ = false;
    const int64_t bytes = static_cast<int64_t>(tensor_.numel() * tensor_.element_size());
    if (report_memory) {
      reported_bytes_ = bytes;
      if (reported_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, reported_bytes_);
    }
    registry_ = state(env).tensors;
    if (registry_->due()) registry_->sweep(env);
    registry_->add(this, bytes);
  }

  // The JS object is gone (its weak reference cleared) but the finalizer has not run yet.
  bool collected() { return Value().IsEmpty(); }

  at::Tensor& tensor(Napi::Env env) {
    if (disposed_) {
      throw make_error(env, "tensor was used after dispose()", kCodeDisposed);
    }
    return tensor_;
  }

 private:
  friend class binding::TensorRegistry;

  void release() {
    if (disposed_) return;
    tensor_ = at::Tensor();
    disposed_ = true;
    if (registry_) registry_->remove(this);
    if (reported_bytes_ > 0) {
      Napi::MemoryManagement::AdjustExternalMemory(Env(), -reported_bytes_);
      reported_bytes_ = 0;
    }
  }

  Napi::Value dispose(const Napi::CallbackInfo& info) {
    release();
    return info.Env().Undefined();
  }
  Napi::Value is_disposed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), disposed_);
  }
  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), dtype_name(tensor(info.Env()).scalar_type()));
  }
  Napi::Value device(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), device_name(tensor(info.Env()).device()));
  }
  Napi::Value requires_grad(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), tensor(info.Env()).requires_grad());
  }
  Napi::Value set_requires_grad(const Napi::CallbackInfo& info);
  Napi::Value grad(const Napi::CallbackInfo& info);
  Napi::Value backward(const Napi::CallbackInfo& info);
  Napi::Value data(const Napi::CallbackInfo& info);
  Napi::Value to_typed_array(const Napi::CallbackInfo& info);
  Napi::Value item(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value format(const Napi::CallbackInfo& info);
  Napi::Value unary(const Napi::CallbackInfo& info);
  Napi::Value binary(const Napi::CallbackInfo& info);
  Napi::Value reduce(const Napi::CallbackInfo& info);
  Napi::Value shape_op(const Napi::CallbackInfo& info);

  at::Tensor tensor_;
  bool disposed_ = true;
  int64_t reported_bytes_ = 0;
  std::shared_ptr<TensorRegistry> registry_;  // shared: a finalizer may run after the env's state is gone
};

}  // namespace

int64_t TensorRegistry::sweep(Napi::Env env) {
  since_sweep_ = 0;
  Napi::HandleScope scope(env);
  std::vector<TensorHandle*> gone;
  for (TensorHandle* handle : handles_) {
    if (handle->collected()) gone.push_back(handle);
  }
  for (TensorHandle* handle : gone) handle->release();
  return static_cast<int64_t>(gone.size());
}

namespace {

TensorHandle* handle_of(Napi::Env env, const Napi::Value& value, const char* name) {
  if (!value.IsObject()) throw_argument(env, std::string(name) + " must be a Tensor");
  const Napi::Object object = value.As<Napi::Object>();
  const Napi::Function constructor = state(env).tensor_constructor.Value();
  if (!object.InstanceOf(constructor)) throw_argument(env, std::string(name) + " must be a Tensor");
  return TensorHandle::Unwrap(object);
}

Napi::Value TensorHandle::shape(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const auto sizes = tensor(env).sizes();
  Napi::Array out = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) out.Set(i, Napi::Number::New(env, double(sizes[i])));
  return out;
}

Napi::Value TensorHandle::set_requires_grad(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    tensor(env).set_requires_grad(boolean(env, info[0], "requiresGrad"));
    return env.Undefined();
  });
}

Napi::Value TensorHandle::grad(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const at::Tensor& g = tensor(env).grad();
    if (!g.defined()) return env.Null();
    return wrap(env, g);
  });
}

Napi::Value TensorHandle::backward(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    at::Tensor& self = tensor(env);
    if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) {
      self.backward(unwrap(env, info[0], "gradient"));
    } else {
      if (self.numel() != 1) {
        throw_argument(env, "backward() without a gradient needs a scalar tensor; this one has " +
                                std::to_string(self.numel()) + " elements");
      }
      self.backward();
    }
    return env.Undefined();
  });
}

// Zero-copy view of a CPU tensor's memory. The ArrayBuffer owns a reference to the tensor, so
// the memory stays valid as long as JS can reach the view, even after dispose().
Napi::Value TensorHandle::data(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    at::Tensor source = tensor(env);
    if (!source.device().is_cpu() || !source.is_contiguous() || source.storage_offset() != 0 ||
        source.is_neg() || source.is_conj()) {
      source = source.detach().to(at::kCPU).contiguous().clone();
    }
    auto* owner = new at::Tensor(source.detach());
    const size_t bytes = owner->numel() * owner->element_size();
    Napi::ArrayBuffer buffer;
    if (bytes == 0) {
      delete owner;
      buffer = Napi::ArrayBuffer::New(env, 0);
    } else {
      buffer = Napi::ArrayBuffer::New(env, owner->data_ptr(), bytes,
                                      [](Napi::Env, void*, at::Tensor* t) { delete t; }, owner);
    }
    const size_t n = source.numel();
    switch (source.scalar_type()) {
      case at::kFloat: return Napi::Float32Array::New(env, n, buffer, 0);
      case at::kDouble: return Napi::Float64Array::New(env, n, buffer, 0);
      case at::kInt: return Napi::Int32Array::New(env, n, buffer, 0);
      case at::kLong: return Napi::BigInt64Array::New(env, n, buffer, 0);
      case at::kShort: return Napi::Int16Array::New(env, n, buffer, 0);
      case at::kChar: return Napi::Int8Array::New(env, n, buffer, 0);
      case at::kByte:
      case at::kBool: return Napi::Uint8Array::New(env, n, buffer, 0);
      case at::kHalf:
      case at::kBFloat16: return Napi::Uint16Array::New(env, n, buffer, 0);
      default:
        throw_argument(env, std::string("no TypedArray for dtype ") + c10::toString(source.scalar_type()));
    }
  });
}

// A copy in JS-owned memory; half precision comes back as Float32Array values.
Napi::Value TensorHandle::to_typed_array(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    at::Tensor source = tensor(env).detach();
    if (source.scalar_type() == at::kHalf || source.scalar_type() == at::kBFloat16) {
      source = source.to(at::kFloat);
    }
    source = source.to(at::kCPU).contiguous();
    const size_t n = source.numel();
    const size_t bytes = n * source.element_size();
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, bytes);
    if (bytes > 0) std::memcpy(buffer.Data(), source.data_ptr(), bytes);
    switch (source.scalar_type()) {
      case at::kFloat: return Napi::Float32Array::New(env, n, buffer, 0);
      case at::kDouble: return Napi::Float64Array::New(env, n, buffer, 0);
      case at::kInt: return Napi::Int32Array::New(env, n, buffer, 0);
      case at::kLong: return Napi::BigInt64Array::New(env, n, buffer, 0);
      case at::kShort: return Napi::Int16Array::New(env, n, buffer, 0);
      case at::kChar: return Napi::Int8Array::New(env, n, buffer, 0);
      case at::kByte:
      case at::kBool: return Napi::Uint8Array::New(env, n, buffer, 0);
      default:
        throw_argument(env, std::string("no TypedArray for dtype ") + c10::toString(source.scalar_type()));
    }
  });
}

Napi::Value TensorHandle::item(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = tensor(env);
    if (self.numel() != 1) {
      throw_argument(env, "item() needs a tensor with exactly one element, got " +
                              std::to_string(self.numel()));
    }
    switch (self.scalar_type()) {
      case at::kBool: return Napi::Boolean::New(env, self.item<bool>());
      case at::kLong: return Napi::BigInt::New(env, self.item<int64_t>());
      default: return Napi::Number::New(env, self.item<double>());
    }
  });
}

// to(device | null, dtype | null)
Napi::Value TensorHandle::to(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    at::Tensor result = tensor(env);
    if (info.Length() > 1 && info[1].IsString()) {
      result = result.to(parse_dtype(env, string(env, info[1], "dtype")));
    }
    if (info.Length() > 0 && info[0].IsString()) {
      const at::Device device = parse_device(env, string(env, info[0], "device"));
      if (device.is_cuda() && !at::hasCUDA()) {
        throw make_error(env,
                         "device '" + device.str() +
                             "' requested, but this s2bnn build has no CUDA (built against a "
                             "CPU-only libtorch) or no CUDA device is visible",
                         kCodeArgument);
      }
      result = result.to(device);
    }
    return wrap(env, result);
  });
}

Napi::Value TensorHandle::format(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::ostringstream out;
    out << tensor(env);
    return Napi::String::New(env, out.str());
  });
}

using Unary = std::function<at::Tensor(const at::Tensor&)>;

const std::unordered_map<std::string, Unary>& unary_ops() {
  static const std::unordered_map<std::string, Unary> table = {
      {"neg", [](const at::Tensor& t) { return at::neg(t); }},
      {"abs", [](const at::Tensor& t) { return at::abs(t); }},
      {"exp", [](const at::Tensor& t) { return at::exp(t); }},
      {"log", [](const at::Tensor& t) { return at::log(t); }},
      {"sqrt", [](const at::Tensor& t) { return at::sqrt(t); }},
      {"rsqrt", [](const at::Tensor& t) { return at::rsqrt(t); }},
      {"square", [](const at::Tensor& t) { return at::square(t); }},
      {"reciprocal", [](const at::Tensor& t) { return at::reciprocal(t); }},
      {"relu", [](const at::Tensor& t) { return at::relu(t); }},
      {"sigmoid", [](const at::Tensor& t) { return at::sigmoid(t); }},
      {"tanh", [](const at::Tensor& t) { return at::tanh(t); }},
      {"sign", [](const at::Tensor& t) { return at::sign(t); }},
      {"floor", [](const at::Tensor& t) { return at::floor(t); }},
      {"ceil", [](const at::Tensor& t) { return at::ceil(t); }},
      {"round", [](const at::Tensor& t) { return at::round(t); }},
      {"logicalNot", [](const at::Tensor& t) { return at::logical_not(t); }},
      {"isnan", [](const at::Tensor& t) { return at::isnan(t); }},
      {"isfinite", [](const at::Tensor& t) { return at::isfinite(t); }},
      {"contiguous", [](const at::Tensor& t) { return t.contiguous(); }},
      {"clone", [](const at::Tensor& t) { return t.clone(); }},
      {"detach", [](const at::Tensor& t) { return t.detach(); }},
      {"t", [](const at::Tensor& t) { return t.t(); }},
  };
  return table;
}

Napi::Value TensorHandle::unary(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string name = string(env, info[0], "op");
    const auto& table = unary_ops();
    const auto found = table.find(name);
    if (found == table.end()) throw_argument(env, "unknown unary op '" + name + "'");
    return wrap(env, found->second(tensor(env)));
  });
}

using BinaryTensor = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;
using BinaryScalar = std::function<at::Tensor(const at::Tensor&, const at::Scalar&)>;

struct BinaryOp {
  BinaryTensor with_tensor;
  BinaryScalar with_scalar;  // empty when the op needs a tensor
};

const std::unordered_map<std::string, BinaryOp>& binary_ops() {
  using T = const at::Tensor&;
  using S = const at::Scalar&;
  static const std::unordered_map<std::string, BinaryOp> table = {
      {"add", {[](T a, T b) { return at::add(a, b); }, [](T a, S b) { return at::add(a, b); }}},
      {"sub", {[](T a, T b) { return at::sub(a, b); }, [](T a, S b) { return at::sub(a, b); }}},
      {"mul", {[](T a, T b) { return at::mul(a, b); }, [](T a, S b) { return at::mul(a, b); }}},
      {"div", {[](T a, T b) { return at::div(a, b); }, [](T a, S b) { return at::div(a, b); }}},
      {"pow", {[](T a, T b) { return at::pow(a, b); }, [](T a, S b) { return at::pow(a, b); }}},
      {"maximum", {[](T a, T b) { return at::maximum(a, b); }, [](T a, S b) { return at::clamp_min(a, b); }}},
      {"minimum", {[](T a, T b) { return at::minimum(a, b); }, [](T a, S b) { return at::clamp_max(a, b); }}},
      {"eq", {[](T a, T b) { return at::eq(a, b); }, [](T a, S b) { return at::eq(a, b); }}},
      {"ne", {[](T a, T b) { return at::ne(a, b); }, [](T a, S b) { return at::ne(a, b); }}},
      {"lt", {[](T a, T b) { return at::lt(a, b); }, [](T a, S b) { return at::lt(a, b); }}},
      {"le", {[](T a, T b) { return at::le(a, b); }, [](T a, S b) { return at::le(a, b); }}},
      {"gt", {[](T a, T b) { return at::gt(a, b); }, [](T a, S b) { return at::gt(a, b); }}},
      {"ge", {[](T a, T b) { return at::ge(a, b); }, [](T a, S b) { return at::ge(a, b); }}},
      {"logicalAnd", {[](T a, T b) { return at::logical_and(a, b); }, nullptr}},
      {"logicalOr", {[](T a, T b) { return at::logical_or(a, b); }, nullptr}},
      {"matmul", {[](T a, T b) { return at::matmul(a, b); }, nullptr}},
  };
  return table;
}

// binary(op, other: Tensor | number | boolean)
Napi::Value TensorHandle::binary(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string name = string(env, info[0], "op");
    const auto& table = binary_ops();
    const auto found = table.find(name);
    if (found == table.end()) throw_argument(env, "unknown binary op '" + name + "'");
    const at::Tensor& self = tensor(env);
    if (info[1].IsNumber() || info[1].IsBoolean()) {
      if (!found->second.with_scalar) throw_argument(env, name + " needs a Tensor operand");
      const at::Scalar scalar = info[1].IsBoolean()
                                    ? at::Scalar(info[1].As<Napi::Boolean>().Value())
                                    : at::Scalar(info[1].As<Napi::Number>().DoubleValue());
      return wrap(env, found->second.with_scalar(self, scalar));
    }
    return wrap(env, found->second.with_tensor(self, unwrap(env, info[1], "other")));
  });
}

// reduce(op, dims: number[] | null, keepdim)
Napi::Value TensorHandle::reduce(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string name = string(env, info[0], "op");
    const at::Tensor& self = tensor(env);
    const bool all = info[1].IsNull() || info[1].IsUndefined();
    const std::vector<int64_t> dims = all ? std::vector<int64_t>{} : int_list(env, info[1], "dims");
    const bool keepdim = info.Length() > 2 && boolean(env, info[2], "keepdim");
    if (name == "sum") return wrap(env, all ? self.sum() : self.sum(dims, keepdim));
    if (name == "mean") return wrap(env, all ? self.mean() : self.mean(dims, keepdim));
    if (name == "max") return wrap(env, all ? self.max() : self.amax(dims, keepdim));
    if (name == "min") return wrap(env, all ? self.min() : self.amin(dims, keepdim));
    if (name == "argmax" || name == "argmin") {
      if (!all && dims.size() != 1) throw_argument(env, name + " takes a single dim");
      const c10::optional<int64_t> dim = all ? c10::optional<int64_t>() : c10::optional<int64_t>(dims[0]);
      return wrap(env, name == "argmax" ? self.argmax(dim, keepdim) : self.argmin(dim, keepdim));
    }
    if (name == "softmax" || name == "logSoftmax") {
      if (dims.size() != 1) throw_argument(env, name + " takes a single dim");
      return wrap(env, name == "softmax" ? self.softmax(dims[0]) : self.log_softmax(dims[0]));
    }
    throw_argument(env, "unknown reduction '" + name + "'");
  });
}

// shapeOp(op, ...args): reshape, view, permute, transpose, slice, select, squeeze, unsqueeze,
// flatten, expand.
Napi::Value TensorHandle::shape_op(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string name = string(env, info[0], "op");
    const at::Tensor& self = tensor(env);
    if (name == "reshape") return wrap(env, self.reshape(int_list(env, info[1], "shape")));
    if (name == "view") return wrap(env, self.view(int_list(env, info[1], "shape")));
    if (name == "expand") return wrap(env, self.expand(int_list(env, info[1], "shape")));
    if (name == "permute") return wrap(env, self.permute(int_list(env, info[1], "dims")));
    if (name == "transpose") {
      return wrap(env, self.transpose(integer(env, info[1], "dim0"), integer(env, info[2], "dim1")));
    }
    if (name == "slice") {
      const int64_t dim = integer(env, info[1], "dim");
      const c10::optional<int64_t> start =
          info[2].IsNull() || info[2].IsUndefined() ? c10::optional<int64_t>() : integer(env, info[2], "start");
      const c10::optional<int64_t> end =
          info[3].IsNull() || info[3].IsUndefined() ? c10::optional<int64_t>() : integer(env, info[3], "end");
      const int64_t step = info[4].IsUndefined() ? 1 : integer(env, info[4], "step");
      if (step < 1) throw_argument(env, "slice step must be >= 1");
      return wrap(env, self.slice(dim, start, end, step));
    }
    if (name == "select") {
      return wrap(env, self.select(integer(env, info[1], "dim"), integer(env, info[2], "index")));
    }
    if (name == "squeeze") {
      return wrap(env, info[1].IsUndefined() ? self.squeeze() : self.squeeze(integer(env, info[1], "dim")));
    }
    if (name == "unsqueeze") return wrap(env, self.unsqueeze(integer(env, info[1], "dim")));
    if (name == "flatten") {
      return wrap(env, self.flatten(integer(env, info[1], "startDim"), integer(env, info[2], "endDim")));
    }
    throw_argument(env, "unknown shape op '" + name + "'");
  });
}

Napi::Function TensorHandle::define(Napi::Env env) {
  return DefineClass(
      env, "TensorHandle",
      {
          InstanceMethod<&TensorHandle::dispose>("dispose"),
          InstanceAccessor<&TensorHandle::is_disposed>("isDisposed"),
          InstanceAccessor<&TensorHandle::shape>("shape"),
          InstanceAccessor<&TensorHandle::dtype>("dtype"),
          InstanceAccessor<&TensorHandle::device>("device"),
          InstanceAccessor<&TensorHandle::requires_grad>("requiresGrad"),
          InstanceMethod<&TensorHandle::set_requires_grad>("setRequiresGrad"),
          InstanceMethod<&TensorHandle::grad>("grad"),
          InstanceMethod<&TensorHandle::backward>("backward"),
          InstanceMethod<&TensorHandle::data>("data"),
          InstanceMethod<&TensorHandle::to_typed_array>("toTypedArray"),
          InstanceMethod<&TensorHandle::item>("item"),
          InstanceMethod<&TensorHandle::to>("to"),
          InstanceMethod<&TensorHandle::format>("format"),
          InstanceMethod<&TensorHandle::unary>("unary"),
          InstanceMethod<&TensorHandle::binary>("binary"),
          InstanceMethod<&TensorHandle::reduce>("reduce"),
          InstanceMethod<&TensorHandle::shape_op>("shapeOp"),
      });
}

// ---- creation ---------------------------------------------------------------------------------

struct TypedArrayView {
  void* data;
  size_t length;
  napi_typedarray_type type;
  Napi::ArrayBuffer buffer;
};

TypedArrayView view_of(Napi::Env env, const Napi::Value& value) {
  if (!value.IsTypedArray()) throw_argument(env, "data must be a TypedArray");
  const Napi::TypedArray array = value.As<Napi::TypedArray>();
  Napi::ArrayBuffer buffer = array.ArrayBuffer();
  auto* base = static_cast<uint8_t*>(buffer.Data());
  return {base == nullptr ? nullptr : base + array.ByteOffset(), array.ElementLength(),
          array.TypedArrayType(), buffer};
}

bool storage_matches(napi_typedarray_type array_type, at::ScalarType dtype) {
  switch (array_type) {
    case napi_float32_array: return dtype == at::kFloat;
    case napi_float64_array: return dtype == at::kDouble;
    case napi_int32_array: return dtype == at::kInt;
    case napi_bigint64_array: return dtype == at::kLong;
    case napi_int16_array: return dtype == at::kShort;
    case napi_int8_array: return dtype == at::kChar;
    case napi_uint8_array:
    case napi_uint8_clamped_array: return dtype == at::kByte || dtype == at::kBool;
    case napi_uint16_array: return dtype == at::kHalf || dtype == at::kBFloat16;
    default: return false;
  }
}

// fromTypedArray(data, shape, dtype, copy): zero-copy unless `copy` (or dtype bool, whose bytes
// must be normalized to 0/1).
Napi::Value from_typed_array(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    TypedArrayView view = view_of(env, info[0]);
    const std::vector<int64_t> shape = int_list(env, info[1], "shape");
    const at::ScalarType dtype = parse_dtype(env, string(env, info[2], "dtype"));
    const bool copy = info.Length() > 3 && boolean(env, info[3], "copy");
    int64_t numel = 1;
    for (int64_t d : shape) {
      if (d < 0) throw_argument(env, "shape entries must be >= 0");
      numel *= d;
    }
    if (static_cast<size_t>(numel) != view.length) {
      std::ostringstream message;
      message << "shape " << c10::IntArrayRef(shape) << " holds " << numel
              << " elements but the data has " << view.length;
      throw_argument(env, message.str());
    }
    if (!storage_matches(view.type, dtype)) {
      throw_argument(env, std::string("a TypedArray of this kind cannot hold dtype ") + dtype_name(dtype));
    }
    const at::ScalarType storage_type = dtype == at::kBool ? at::kByte : dtype;
    const auto options = at::TensorOptions().dtype(storage_type);
    if (numel == 0 || view.data == nullptr) return wrap(env, at::empty(shape, at::TensorOptions().dtype(dtype)));
    if (copy || dtype == at::kBool) {
      at::Tensor borrowed = at::from_blob(view.data, shape, options);
      return wrap(env, dtype == at::kBool ? borrowed.ne(0) : borrowed.clone());
    }
    napi_ref reference = nullptr;
    NAPI_THROW_IF_FAILED(env, napi_create_reference(env, view.buffer, 1, &reference), Napi::Value());
    auto releaser = state(env).releaser;
    at::Tensor tensor = at::from_blob(
        view.data, shape, [releaser, reference](void*) { releaser->release(reference); }, options);
    Napi::Object handle = state(env).tensor_constructor.New({});
    // The JS ArrayBuffer already counts these bytes against the heap.
    TensorHandle::Unwrap(handle)->assign(env, std::move(tensor), /*report_memory=*/false);
    return handle;
  });
}

// factory(kind, shape, dtype, device, value?): zeros, ones, full, empty, rand, randn.
Napi::Value factory(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string kind = string(env, info[0], "kind");
    const std::vector<int64_t> shape = int_list(env, info[1], "shape");
    for (int64_t d : shape) {
      if (d < 0) throw_argument(env, "shape entries must be >= 0");
    }
    at::TensorOptions options = at::TensorOptions().dtype(parse_dtype(env, string(env, info[2], "dtype")));
    if (info.Length() > 3 && info[3].IsString()) {
      options = options.device(parse_device(env, string(env, info[3], "device")));
    }
    if (kind == "zeros") return wrap(env, at::zeros(shape, options));
    if (kind == "ones") return wrap(env, at::ones(shape, options));
    if (kind == "empty") return wrap(env, at::empty(shape, options));
    if (kind == "rand") return wrap(env, at::rand(shape, options));
    if (kind == "randn") return wrap(env, at::randn(shape, options));
    if (kind == "full") return wrap(env, at::full(shape, number(env, info[4], "value"), options));
    throw_argument(env, "unknown factory '" + kind + "'");
  });
}

// arange(start, end, step, dtype)
Napi::Value arange(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const double step = number(env, info[2], "step");
    if (step == 0) throw_argument(env, "arange step must not be 0");
    const auto options = at::TensorOptions().dtype(parse_dtype(env, string(env, info[3], "dtype")));
    return wrap(env, at::arange(number(env, info[0], "start"), number(env, info[1], "end"), step, options));
  });
}

std::vector<at::Tensor> tensor_list(Napi::Env env, const Napi::Value& value, const char* name) {
  if (!value.IsArray()) throw_argument(env, std::string(name) + " must be an array of Tensors");
  const Napi::Array array = value.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const std::string element = std::string(name) + "[" + std::to_string(i) + "]";
    out.push_back(unwrap(env, array.Get(i), element.c_str()));
  }
  if (out.empty()) throw_argument(env, std::string(name) + " must not be empty");
  return out;
}

// join(kind, tensors, dim): cat or stack.
Napi::Value join(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string kind = string(env, info[0], "kind");
    const auto tensors = tensor_list(env, info[1], "tensors");
    const int64_t dim = integer(env, info[2], "dim");
    if (kind == "cat") return wrap(env, at::cat(tensors, dim));
    if (kind == "stack") return wrap(env, at::stack(tensors, dim));
    throw_argument(env, "unknown join '" + kind + "'");
  });
}

}  // namespace

at::Tensor& unwrap(Napi::Env env, const Napi::Value& value, const char* name) {
  return handle_of(env, value, name)->tensor(env);
}

Napi::Object wrap(Napi::Env env, at::Tensor tensor) {
  Napi::Object handle = state(env).tensor_constructor.New({});
  TensorHandle::Unwrap(handle)->assign(env, std::move(tensor), /*report_memory=*/true);
  return handle;
}

void init_tensor(Napi::Env env, Napi::Object exports) {
  const Napi::Function constructor = TensorHandle::define(env);
  state(env).tensor_constructor = Napi::Persistent(constructor);
  exports.Set("TensorHandle", constructor);
  exports.Set("fromTypedArray", Napi::Function::New(env, from_typed_array));
  exports.Set("factory", Napi::Function::New(env, factory));
  exports.Set("arange", Napi::Function::New(env, arange));
  exports.Set("join", Napi::Function::New(env, join));
}

}  // namespace s2bnn::binding
