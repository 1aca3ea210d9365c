// Bindings of the s2bnn operators (native/ops) and their reference compositions.
#include "../ops/ops.h"
#include "common.h"

namespace s2bnn::binding {
namespace {

std::vector<int64_t> pair(Napi::Env env, const Napi::Value& value, const char* name) {
  std::vector<int64_t> out = value.IsNumber() ? std::vector<int64_t>(2, integer(env, value, name))
                                              : int_list(env, value, name);
  if (out.size() != 2) throw_argument(env, std::string(name) + " must be a number or [h, w]");
  return out;
}

Napi::Array tensors_to_array(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  Napi::Array out = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.Set(i, tensors[i].defined() ? Napi::Value(wrap(env, tensors[i])) : env.Null());
  }
  return out;
}

template <at::Tensor (*Op)(const at::Tensor&)>
Napi::Value unary_op(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value { return wrap(env, Op(unwrap(env, info[0], "x"))); });
}

template <at::Tensor (*Op)(const at::Tensor&, const at::Tensor&)>
Napi::Value biased_op(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    return wrap(env, Op(unwrap(env, info[0], "x"), unwrap(env, info[1], "bias")));
  });
}

template <at::Tensor (*Op)(const at::Tensor&, const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                           bool, bool, const c10::optional<at::Tensor>&)>
Napi::Value conv_op(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    c10::optional<at::Tensor> bias;
    if (info.Length() > 6 && !info[6].IsNull() && !info[6].IsUndefined()) bias = unwrap(env, info[6], "inputBias");
    return wrap(env, Op(unwrap(env, info[0], "x"), unwrap(env, info[1], "w"),
                        pair(env, info[2], "stride"), pair(env, info[3], "padding"),
                        boolean(env, info[4], "binarizeInput"),
                        boolean(env, info[5], "binarizeWeight"), bias));
  });
}

template <at::Tensor (*Op)(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&)>
Napi::Value rprelu_op(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    return wrap(env, Op(unwrap(env, info[0], "x"), unwrap(env, info[1], "biasIn"),
                        unwrap(env, info[2], "weight"), unwrap(env, info[3], "biasOut")));
  });
}

template <at::Tensor (*Op)(const at::Tensor&, const at::Tensor&, double)>
Napi::Value distribution_op(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    return wrap(env, Op(unwrap(env, info[0], "student"), unwrap(env, info[1], "teacher"),
                        number(env, info[2], "temperature")));
  });
}

template <std::vector<at::Tensor> (*Op)(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                        double)>
Napi::Value info_nce_op(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    return tensors_to_array(env, Op(unwrap(env, info[0], "q"), unwrap(env, info[1], "k"),
                                    unwrap(env, info[2], "queue"),
                                    number(env, info[3], "temperature")));
  });
}

c10::optional<at::Tensor> optional_tensor(Napi::Env env, const Napi::CallbackInfo& info, size_t index,
                                          const char* name) {
  if (info.Length() <= index || info[index].IsNull() || info[index].IsUndefined()) return {};
  return unwrap(env, info[index], name);
}

Napi::Value pack_signs(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    return wrap(env, ops::pack_signs(unwrap(env, info[0], "x"), optional_tensor(env, info, 1, "bias")));
  });
}

// bconv2dPacked(x, w, channels, stride, padding, scale, shift, kernel): a non-null `kernel`
// names the CPU variant (s2bnn::bconv2d_packed_kernel), null runs the dispatched op.
Napi::Value bconv2d_packed(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const at::Tensor& x = unwrap(env, info[0], "x");
    const at::Tensor& w = unwrap(env, info[1], "w");
    const int64_t channels = integer(env, info[2], "channels");
    const int64_t stride = integer(env, info[3], "stride");
    const int64_t padding = integer(env, info[4], "padding");
    const auto scale = optional_tensor(env, info, 5, "scale");
    const auto shift = optional_tensor(env, info, 6, "shift");
    if (info.Length() > 7 && !info[7].IsNull() && !info[7].IsUndefined()) {
      return wrap(env, ops::bconv2d_packed_kernel(x, w, channels, stride, padding, scale, shift,
                                                  string(env, info[7], "kernel")));
    }
    return wrap(env, ops::bconv2d_packed(x, w, channels, stride, padding, scale, shift));
  });
}

Napi::Value bconv2d_packed_kernels(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::vector<std::string> names = ops::bconv2d_packed_cpu_kernels();
    Napi::Array out = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); ++i) out.Set(i, Napi::String::New(env, names[i]));
    return out;
  });
}

}  // namespace

void init_ops(Napi::Env env, Napi::Object exports) {
  Napi::Object ops = Napi::Object::New(env);
  ops.Set("signSte", Napi::Function::New(env, unary_op<&ops::sign_ste>));
  ops.Set("signSteBiased", Napi::Function::New(env, biased_op<&ops::sign_ste_biased>));
  ops.Set("binarizeWeight", Napi::Function::New(env, unary_op<&ops::binarize_weight>));
  ops.Set("binaryConv2d", Napi::Function::New(env, conv_op<&ops::binary_conv2d>));
  ops.Set("rprelu", Napi::Function::New(env, rprelu_op<&ops::rprelu>));
  ops.Set("distributionLoss", Napi::Function::New(env, distribution_op<&ops::distribution_loss>));
  ops.Set("infoNce", Napi::Function::New(env, info_nce_op<&ops::info_nce>));
  ops.Set("packSigns", Napi::Function::New(env, pack_signs));
  ops.Set("packWeights", Napi::Function::New(env, unary_op<&ops::pack_weights>));
  ops.Set("bconv2dPacked", Napi::Function::New(env, bconv2d_packed));
  ops.Set("bconv2dPackedKernels", Napi::Function::New(env, bconv2d_packed_kernels));

  Napi::Object reference = Napi::Object::New(env);
  reference.Set("signSte", Napi::Function::New(env, unary_op<&ops::sign_ste_reference>));
  reference.Set("signSteBiased", Napi::Function::New(env, biased_op<&ops::sign_ste_biased_reference>));
  reference.Set("binarizeWeight", Napi::Function::New(env, unary_op<&ops::binarize_weight_reference>));
  reference.Set("binaryConv2d", Napi::Function::New(env, conv_op<&ops::binary_conv2d_reference>));
  reference.Set("rprelu", Napi::Function::New(env, rprelu_op<&ops::rprelu_reference>));
  reference.Set("distributionLoss",
                Napi::Function::New(env, distribution_op<&ops::distribution_loss_reference>));
  reference.Set("infoNce", Napi::Function::New(env, info_nce_op<&ops::info_nce_reference>));
  ops.Set("reference", reference);
  exports.Set("ops", ops);
}

}  // namespace s2bnn::binding
