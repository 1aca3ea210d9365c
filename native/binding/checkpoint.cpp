// Checkpoint bindings: a CheckpointHandle owns a loaded checkpoint's tree (native/io) so that
// inspecting, renaming keys and converting never round-trip through JS (which cannot tell 1
// from 1.0). File work runs on libuv's thread pool; the promise settles on the JS thread.
#include <cmath>
#include <functional>

#include "../io/checkpoint.h"
#include "common.h"

namespace s2bnn::binding {
namespace {

using io::Value;
using io::ValuePtr;

constexpr int kMaxDepth = 200;

// ---- Value <-> JS ------------------------------------------------------------------------------

Napi::Value big_int(Napi::Env env, const std::string& bytes) {
  // Two's-complement little-endian bytes -> sign and magnitude words.
  const bool negative = !bytes.empty() && (static_cast<uint8_t>(bytes.back()) & 0x80);
  std::string magnitude = bytes;
  if (negative) {
    int carry = 1;
    for (char& c : magnitude) {
      const int v = (static_cast<uint8_t>(~static_cast<uint8_t>(c))) + carry;
      c = static_cast<char>(v & 0xff);
      carry = v >> 8;
    }
  }
  std::vector<uint64_t> words((magnitude.size() + 7) / 8, 0);
  for (size_t i = 0; i < magnitude.size(); ++i) words[i / 8] |= uint64_t(uint8_t(magnitude[i])) << (8 * (i % 8));
  return Napi::BigInt::New(env, negative ? 1 : 0, words.size(), words.data());
}

// Dicts are built by `make_dict(ordered, entries)`, a function of the caller's realm: a Map made
// here would belong to the main context, and `instanceof Map` fails in other contexts (jest, vm).
Napi::Value to_js(Napi::Env env, const Value& v, const Napi::Function& make_dict) {
  switch (v.kind) {
    case Value::Kind::None: return env.Null();
    case Value::Kind::Bool: return Napi::Boolean::New(env, v.boolean);
    case Value::Kind::Int:
      if (!v.text.empty()) return big_int(env, v.text);
      if (v.integer > 9007199254740991LL || v.integer < -9007199254740991LL) return Napi::BigInt::New(env, v.integer);
      return Napi::Number::New(env, static_cast<double>(v.integer));
    case Value::Kind::Float: return Napi::Number::New(env, v.real);
    case Value::Kind::String: return Napi::String::New(env, v.text);
    case Value::Kind::Bytes: return Napi::Buffer<char>::Copy(env, v.text.data(), v.text.size());
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      Napi::Array out = Napi::Array::New(env, v.items.size());
      for (size_t i = 0; i < v.items.size(); ++i) out.Set(i, to_js(env, *v.items[i], make_dict));
      if (v.kind == Value::Kind::Tuple) {
        env.Global().Get("Object").As<Napi::Object>().Get("freeze").As<Napi::Function>().Call({out});
      }
      return out;
    }
    case Value::Kind::Dict:
    case Value::Kind::OrderedDict: {
      Napi::Array entries = Napi::Array::New(env, v.entries.size());
      for (size_t i = 0; i < v.entries.size(); ++i) {
        Napi::Array pair = Napi::Array::New(env, 2);
        pair.Set(0u, to_js(env, *v.entries[i].first, make_dict));
        pair.Set(1u, to_js(env, *v.entries[i].second, make_dict));
        entries.Set(static_cast<uint32_t>(i), pair);
      }
      return make_dict.Call({Napi::Boolean::New(env, v.kind == Value::Kind::OrderedDict), entries});
    }
    case Value::Kind::Tensor: return wrap(env, v.tensor);
  }
  return env.Undefined();
}

// JS -> Value. Dicts arrive as instances of `dict_node` (a class of the caller's realm, with
// `ordered` and `entries`); arrays frozen with Object.freeze are tuples.
ValuePtr from_js(Napi::Env env, const Napi::Value& js, const Napi::Function& dict_node, int depth,
                 const std::string& where) {
  if (depth > kMaxDepth) throw_argument(env, "checkpoint data is nested too deeply (a cycle?) at " + where);
  if (js.IsNull() || js.IsUndefined()) return Value::none();
  if (js.IsBoolean()) return Value::of_bool(js.As<Napi::Boolean>().Value());
  if (js.IsNumber()) {
    const double n = js.As<Napi::Number>().DoubleValue();
    if (std::isfinite(n) && n == std::floor(n) && std::fabs(n) < 9.2e18) return Value::of_int(static_cast<int64_t>(n));
    return Value::of_float(n);
  }
  if (js.IsBigInt()) {
    bool lossless = false;
    const int64_t n = js.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw_argument(env, where + " is an integer outside int64");
    return Value::of_int(n);
  }
  if (js.IsString()) return Value::of_string(js.As<Napi::String>().Utf8Value());
  if (js.IsTypedArray() && js.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    const Napi::Uint8Array bytes = js.As<Napi::Uint8Array>();
    return Value::of_string(std::string(reinterpret_cast<const char*>(bytes.Data()), bytes.ByteLength()),
                            Value::Kind::Bytes);
  }
  if (js.IsArray()) {
    const Napi::Array array = js.As<Napi::Array>();
    const bool frozen = env.Global().Get("Object").As<Napi::Object>().Get("isFrozen").As<Napi::Function>()
                            .Call({array}).As<Napi::Boolean>().Value();
    auto out = Value::container(frozen ? Value::Kind::Tuple : Value::Kind::List);
    for (uint32_t i = 0; i < array.Length(); ++i) {
      ValuePtr item = from_js(env, array.Get(i), dict_node, depth + 1, where + "[" + std::to_string(i) + "]");
      out->depth = std::max(out->depth, item->depth + 1);
      out->items.push_back(std::move(item));
    }
    return out;
  }
  if (!js.IsObject()) throw_argument(env, where + " cannot be stored in a checkpoint");
  const Napi::Object object = js.As<Napi::Object>();
  if (object.InstanceOf(state(env).tensor_constructor.Value())) return Value::of_tensor(unwrap(env, js, where.c_str()));
  if (!object.InstanceOf(dict_node)) throw_argument(env, where + " cannot be stored in a checkpoint");
  auto out = Value::container(boolean(env, object.Get("ordered"), "ordered") ? Value::Kind::OrderedDict : Value::Kind::Dict);
  const Napi::Array entries = object.Get("entries").As<Napi::Array>();
  for (uint32_t i = 0; i < entries.Length(); ++i) {
    const Napi::Array pair = entries.Get(i).As<Napi::Array>();
    const Napi::Value key = pair.Get(0u);
    const std::string name = key.IsString() ? key.As<Napi::String>().Utf8Value() : std::to_string(i);
    ValuePtr k = from_js(env, key, dict_node, depth + 1, where + " key");
    ValuePtr v = from_js(env, pair.Get(1u), dict_node, depth + 1, where + "." + name);
    out->depth = std::max({out->depth, k->depth + 1, v->depth + 1});
    out->entries.emplace_back(std::move(k), std::move(v));
  }
  return out;
}

// ---- the handle --------------------------------------------------------------------------------

class CheckpointHandle : public Napi::ObjectWrap<CheckpointHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "CheckpointHandle",
                       {
                           InstanceAccessor<&CheckpointHandle::format>("format"),
                           InstanceMethod<&CheckpointHandle::to_js_method>("toJS"),
                           InstanceMethod<&CheckpointHandle::summary>("summary"),
                           InstanceMethod<&CheckpointHandle::transform>("transform"),
                           InstanceMethod<&CheckpointHandle::save>("save"),
                       });
  }

  static Napi::Object create(Napi::Env env, io::Checkpoint checkpoint, const char* format) {
    Napi::Object object = state(env).checkpoint_constructor.New({});
    CheckpointHandle* self = Unwrap(object);
    self->checkpoint_ = std::move(checkpoint);
    self->format_ = format;
    return object;
  }

  explicit CheckpointHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CheckpointHandle>(info) {}

 private:
  Napi::Value format(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), format_); }

  Napi::Value to_js_method(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      if (!info[0].IsFunction()) throw_argument(env, "toJS needs a dict factory");
      return to_js(env, *checkpoint_.root, info[0].As<Napi::Function>());
    });
  }

  // summary(makeDict) -> { fields: [[name, value]] (top-level scalars), tensors: [[path, shape, dtype]] }
  Napi::Value summary(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      if (!info[0].IsFunction()) throw_argument(env, "summary needs a dict factory");
      Napi::Object out = Napi::Object::New(env);
      Napi::Array fields = Napi::Array::New(env);
      const io::Value& root = *checkpoint_.root;
      if (root.is_dict()) {
        for (const auto& [key, value] : root.entries) {
          const bool scalar = value->kind != io::Value::Kind::Tensor && !value->is_dict() && !value->is_sequence();
          if (!scalar) continue;
          Napi::Array pair = Napi::Array::New(env, 2);
          pair.Set(0u, Napi::String::New(env, key->kind == io::Value::Kind::String ? key->text : std::to_string(key->integer)));
          pair.Set(1u, to_js(env, *value, info[0].As<Napi::Function>()));
          fields.Set(fields.Length(), pair);
        }
      }
      Napi::Array tensors = Napi::Array::New(env);
      collect_tensors(env, root, "", tensors, 0);
      out.Set("fields", fields);
      out.Set("tensors", tensors);
      return out;
    });
  }

  static void collect_tensors(Napi::Env env, const io::Value& v, const std::string& path, Napi::Array& out, int depth) {
    if (depth > kMaxDepth) return;
    auto child_path = [&](const std::string& name) { return path.empty() ? name : path + "." + name; };
    if (v.kind == io::Value::Kind::Tensor) {
      Napi::Array row = Napi::Array::New(env, 3);
      row.Set(0u, Napi::String::New(env, path));
      Napi::Array shape = Napi::Array::New(env, v.tensor.dim());
      for (int64_t d = 0; d < v.tensor.dim(); ++d) shape.Set(static_cast<uint32_t>(d), Napi::Number::New(env, double(v.tensor.size(d))));
      row.Set(1u, shape);
      row.Set(2u, Napi::String::New(env, dtype_name(v.tensor.scalar_type())));
      out.Set(out.Length(), row);
    } else if (v.is_dict()) {
      for (const auto& [key, value] : v.entries) {
        const std::string name = key->kind == io::Value::Kind::String ? key->text : std::to_string(key->integer);
        collect_tensors(env, *value, child_path(name), out, depth + 1);
      }
    } else if (v.is_sequence()) {
      for (size_t i = 0; i < v.items.size(); ++i) collect_tensors(env, *v.items[i], child_path(std::to_string(i)), out, depth + 1);
    }
  }

  // transform(selectPrefix, stripPrefix, addPrefix, encoderQOnly) -> a new handle; tensors shared.
  Napi::Value transform(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      io::KeyTransform t;
      t.select_prefix = string(env, info[0], "selectPrefix");
      t.strip_prefix = string(env, info[1], "stripPrefix");
      t.add_prefix = string(env, info[2], "addPrefix");
      t.encoder_q_only = boolean(env, info[3], "encoderQOnly");
      io::Checkpoint out{checkpoint_.format, io::transform_state_dict(checkpoint_.root, t)};
      return create(env, std::move(out), format_);
    });
  }

  Napi::Value save(const Napi::CallbackInfo& info);

  io::Checkpoint checkpoint_{io::Format::Zip, nullptr};
  const char* format_ = "memory";
};

// A promise settled by a function run on the thread pool; errors reject with a coded Error.
Napi::Value CheckpointHandle::save(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string path = string(env, info[0], "path");
    io::Format format;
    try {
      format = io::parse_format(string(env, info[1], "format"));
    } catch (const std::runtime_error& error) {
      throw_argument(env, error.what());
    }
    const ValuePtr root = checkpoint_.root;
    auto dropped = std::make_shared<std::vector<std::string>>();
    return run_async(
        env, kCodeCheckpoint, [path, root, format, dropped] { *dropped = io::save_checkpoint(path, root, format); },
        [dropped](Napi::Env e) -> Napi::Value {
          Napi::Object out = Napi::Object::New(e);
          Napi::Array list = Napi::Array::New(e, dropped->size());
          for (size_t i = 0; i < dropped->size(); ++i) list.Set(static_cast<uint32_t>(i), Napi::String::New(e, (*dropped)[i]));
          out.Set("dropped", list);
          return out;
        });
  });
}

Napi::Value checkpoint_load(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string path = string(env, info[0], "path");
    auto loaded = std::make_shared<io::Checkpoint>();
    return run_async(
        env, kCodeCheckpoint, [path, loaded] { *loaded = io::load_checkpoint(path); },
        [loaded](Napi::Env e) -> Napi::Value {
          return CheckpointHandle::create(e, *loaded, io::format_name(loaded->format));
        });
  });
}

// checkpointFromJS(value, DictNode) -> a handle over a tree built from JS values.
Napi::Value checkpoint_from_js(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!info[1].IsFunction()) throw_argument(env, "checkpointFromJS needs the DictNode class");
    ValuePtr root = from_js(env, info[0], info[1].As<Napi::Function>(), 0, "checkpoint");
    return CheckpointHandle::create(env, io::Checkpoint{io::Format::Zip, root}, "memory");
  });
}

}  // namespace

void init_checkpoint(Napi::Env env, Napi::Object exports) {
  state(env).checkpoint_constructor = Napi::Persistent(CheckpointHandle::define(env));
  exports.Set("checkpointLoad", Napi::Function::New(env, checkpoint_load));
  exports.Set("checkpointFromJS", Napi::Function::New(env, checkpoint_from_js));
}

}  // namespace s2bnn::binding
