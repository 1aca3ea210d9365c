// The contents of a checkpoint as a tree: the subset of Python objects that torch.save files
// hold (numbers, strings, bytes, containers, tensors). Shared pointers, because a pickle may
// reference one object from several places (its memo), and storages are shared between views.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace s2bnn::io {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  enum class Kind { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, OrderedDict, Tensor };

  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;  // String (UTF-8), Bytes, an Int too wide for int64 (its bytes), "torch.Size" on a Tuple
  std::vector<ValuePtr> items;                         // List, Tuple
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // Dict, OrderedDict, in insertion order
  ValuePtr attributes;  // an OrderedDict's instance attributes (state_dict._metadata), or null
  at::Tensor tensor;
  bool parameter = false;  // saved as torch.nn.Parameter
  int depth = 0;           // nesting depth below this value (bounded while parsing)

  static ValuePtr none() { return std::make_shared<Value>(); }
  static ValuePtr of_bool(bool v) {
    auto out = std::make_shared<Value>();
    out->kind = Kind::Bool;
    out->boolean = v;
    return out;
  }
  static ValuePtr of_int(int64_t v) {
    auto out = std::make_shared<Value>();
    out->kind = Kind::Int;
    out->integer = v;
    return out;
  }
  static ValuePtr of_float(double v) {
    auto out = std::make_shared<Value>();
    out->kind = Kind::Float;
    out->real = v;
    return out;
  }
  static ValuePtr of_string(std::string v, Kind kind = Kind::String) {
    auto out = std::make_shared<Value>();
    out->kind = kind;
    out->text = std::move(v);
    return out;
  }
  static ValuePtr container(Kind kind) {
    auto out = std::make_shared<Value>();
    out->kind = kind;
    return out;
  }
  static ValuePtr of_tensor(at::Tensor t, bool parameter = false) {
    auto out = std::make_shared<Value>();
    out->kind = Kind::Tensor;
    out->tensor = std::move(t);
    out->parameter = parameter;
    return out;
  }

  bool is_dict() const { return kind == Kind::Dict || kind == Kind::OrderedDict; }
  bool is_sequence() const { return kind == Kind::List || kind == Kind::Tuple; }

  // The entry under string key `key` of a dict, or null.
  ValuePtr get(const std::string& key) const {
    if (!is_dict()) return nullptr;
    for (const auto& [k, v] : entries) {
      if (k->kind == Kind::String && k->text == key) return v;
    }
    return nullptr;
  }
};

const char* kind_name(Value::Kind kind);

}  // namespace s2bnn::io
