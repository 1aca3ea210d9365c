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
