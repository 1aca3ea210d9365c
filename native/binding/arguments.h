// The argument side of the boundary: coded JS errors, the scalar readers, and `Options`, the one
// reader of JS option objects. It needs no addon state, so the test addon (native/testing)
// parses its arguments with the same code as the production addon.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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

// Turns a native layer's std::invalid_argument (whose messages name the JS option) into a coded
// argument error.
template <typename Body>
auto argument_errors(Napi::Env env, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::invalid_argument& error) {
    throw_argument(env, error.what());
  }
}

// Scalar arguments: each names the argument in its error.
std::vector<int64_t> int_list(Napi::Env env, const Napi::Value& value, const char* name);
int64_t integer(Napi::Env env, const Napi::Value& value, const char* name);
double number(Napi::Env env, const Napi::Value& value, const char* name);
bool boolean(Napi::Env env, const Napi::Value& value, const char* name);
std::string string(Napi::Env env, const Napi::Value& value, const char* name);

// One JS options object. lib/binding declares which fields TypeScript always resolves (read
// them with the plain getters: a missing one is a contract error naming it) and which it may
// leave out (the `_or` getters, with the native layer's own default). Every message names the
// field by its path ("transform.options.size").
class Options {
 public:
  Options(Napi::Env env, const Napi::Value& value, std::string path);

  bool has(const char* key) const;
  std::string name(const char* key) const;
  Napi::Value value(const char* key) const;

  int64_t integer(const char* key) const;
  double number(const char* key) const;  // finite
  bool boolean(const char* key) const;
  std::string string(const char* key) const;
  std::vector<float> floats(const char* key) const;  // finite numbers
  std::pair<double, double> range(const char* key) const;  // [min, max]
  Options object(const char* key) const;

  int64_t integer_or(const char* key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }
  double number_or(const char* key, double fallback) const { return has(key) ? number(key) : fallback; }
  bool boolean_or(const char* key, bool fallback) const { return has(key) ? boolean(key) : fallback; }
  std::string string_or(const char* key, const std::string& fallback) const { return has(key) ? string(key) : fallback; }
  std::pair<double, double> range_or(const char* key, std::pair<double, double> fallback) const {
    return has(key) ? range(key) : fallback;
  }

  Napi::Env env() const { return env_; }

 private:
  Napi::Env env_;
  Napi::Object object_;
  std::string path_;
};

}  // namespace s2bnn::binding
