#include "arguments.h"

#include <cmath>
#include <sstream>

namespace s2bnn::binding {

Napi::Error make_error(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

std::string torch_message(const c10::Error& error) {
  std::string message = error.what_without_backtrace();
  // Drop the "Exception raised from ... (most recent call first)" trailer if present.
  const auto trailer = message.find("\nException raised from");
  if (trailer != std::string::npos) message.erase(trailer);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

int64_t integer(Napi::Env env, const Napi::Value& value, const char* name) {
  if (value.IsBigInt()) {
    bool lossless = false;
    const int64_t v = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw_argument(env, std::string(name) + " does not fit in int64");
    return v;
  }
  if (!value.IsNumber()) throw_argument(env, std::string(name) + " must be an integer");
  const double v = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || std::floor(v) != v || std::fabs(v) > 9007199254740991.0) {
    std::ostringstream message;
    message << name << " must be an integer, got " << v;
    throw_argument(env, message.str());
  }
  return static_cast<int64_t>(v);
}

double number(Napi::Env env, const Napi::Value& value, const char* name) {
  if (!value.IsNumber()) throw_argument(env, std::string(name) + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

bool boolean(Napi::Env env, const Napi::Value& value, const char* name) {
  if (!value.IsBoolean()) throw_argument(env, std::string(name) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

std::string string(Napi::Env env, const Napi::Value& value, const char* name) {
  if (!value.IsString()) throw_argument(env, std::string(name) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> int_list(Napi::Env env, const Napi::Value& value, const char* name) {
  if (!value.IsArray()) throw_argument(env, std::string(name) + " must be an array of integers");
  const Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> out(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const std::string element = std::string(name) + "[" + std::to_string(i) + "]";
    out[i] = integer(env, array.Get(i), element.c_str());
  }
  return out;
}

// ---- Options ------------------------------------------------------------------------------------

Options::Options(Napi::Env env, const Napi::Value& value, std::string path) : env_(env), path_(std::move(path)) {
  if (!value.IsObject() || value.IsArray()) throw_argument(env, path_ + " must be an object");
  object_ = value.As<Napi::Object>();
}

bool Options::has(const char* key) const { return !object_.Get(key).IsUndefined(); }

std::string Options::name(const char* key) const { return path_.empty() ? std::string(key) : path_ + "." + key; }

Napi::Value Options::value(const char* key) const {
  const Napi::Value v = object_.Get(key);
  if (v.IsUndefined()) throw_argument(env_, name(key) + " is required");
  return v;
}

int64_t Options::integer(const char* key) const { return binding::integer(env_, value(key), name(key).c_str()); }

double Options::number(const char* key) const {
  const double x = binding::number(env_, value(key), name(key).c_str());
  if (!std::isfinite(x)) throw_argument(env_, name(key) + " must be a finite number");
  return x;
}

bool Options::boolean(const char* key) const { return binding::boolean(env_, value(key), name(key).c_str()); }

std::string Options::string(const char* key) const { return binding::string(env_, value(key), name(key).c_str()); }

std::vector<float> Options::floats(const char* key) const {
  const Napi::Value v = value(key);
  const std::string field = name(key);
  if (!v.IsArray()) throw_argument(env_, field + " must be an array of numbers");
  const Napi::Array array = v.As<Napi::Array>();
  std::vector<float> out(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const std::string element = field + "[" + std::to_string(i) + "]";
    const double x = binding::number(env_, array.Get(i), element.c_str());
    if (!std::isfinite(x)) throw_argument(env_, element + " must be a finite number");
    out[i] = static_cast<float>(x);
  }
  return out;
}

std::pair<double, double> Options::range(const char* key) const {
  const Napi::Value v = value(key);
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 2) throw_argument(env_, name(key) + " must be [min, max]");
  const Napi::Array pair = v.As<Napi::Array>();
  double bounds[2];
  for (uint32_t i = 0; i < 2; ++i) {
    const std::string element = name(key) + "[" + std::to_string(i) + "]";
    bounds[i] = binding::number(env_, pair.Get(i), element.c_str());
    if (!std::isfinite(bounds[i])) throw_argument(env_, element + " must be a finite number");
  }
  return {bounds[0], bounds[1]};
}

Options Options::object(const char* key) const { return Options(env_, value(key), name(key)); }

}  // namespace s2bnn::binding
