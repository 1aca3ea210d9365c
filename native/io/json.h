// The JSON that safetensors headers need: objects (order kept), arrays, strings, numbers, and
// the literals. Depth and size are bounded; malformed text raises std::runtime_error.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace s2bnn::io::json {

enum class Type { Null, Bool, Number, String, Array, Object };

struct Value {
  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;

  const Value* field(const std::string& key) const {
    for (const auto& [k, v] : object) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  static Value of_string(std::string s) {
    Value v;
    v.type = Type::String;
    v.string = std::move(s);
    return v;
  }
  static Value of_number(double n) {
    Value v;
    v.type = Type::Number;
    v.number = n;
    return v;
  }
};

Value parse(std::string_view text);
std::string dump(const Value& value);

}  // namespace s2bnn::io::json
