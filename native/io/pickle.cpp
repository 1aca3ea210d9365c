#include "pickle.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

namespace s2bnn::io {

const char* kind_name(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::Bytes: return "bytes";
    case Value::Kind::List: return "list";
    case Value::Kind::Tuple: return "tuple";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::OrderedDict: return "OrderedDict";
    case Value::Kind::Tensor: return "Tensor";
  }
  return "?";
}

namespace {

constexpr int kMaxDepth = 200;
// Marks a tuple that was a torch.Size, so it is written back as one.
constexpr const char* kTorchSize = "torch.Size";
constexpr size_t kMaxStack = 1u << 24;

// Storage class names and torch dtype names -> dtypes.
struct DtypeName {
  const char* storage;
  const char* dtype;
  at::ScalarType type;
};
constexpr DtypeName kDtypes[] = {
    {"FloatStorage", "float32", at::kFloat},     {"DoubleStorage", "float64", at::kDouble},
    {"HalfStorage", "float16", at::kHalf},       {"BFloat16Storage", "bfloat16", at::kBFloat16},
    {"LongStorage", "int64", at::kLong},         {"IntStorage", "int32", at::kInt},
    {"ShortStorage", "int16", at::kShort},       {"CharStorage", "int8", at::kChar},
    {"ByteStorage", "uint8", at::kByte},         {"BoolStorage", "bool", at::kBool},
    {"UntypedStorage", "", at::kByte},
};

const DtypeName* storage_class(const std::string& module, const std::string& name) {
  if (module != "torch") return nullptr;
  for (const auto& d : kDtypes) {
    if (name == d.storage) return &d;
  }
  return nullptr;
}

const DtypeName* dtype_global(const std::string& module, const std::string& name) {
  if (module != "torch") return nullptr;
  for (const auto& d : kDtypes) {
    if (*d.dtype && name == d.dtype) return &d;
  }
  if (name == "float") return &kDtypes[0];
  if (name == "double") return &kDtypes[1];
  if (name == "half") return &kDtypes[2];
  if (name == "long") return &kDtypes[4];
  if (name == "int") return &kDtypes[5];
  return nullptr;
}

const char* storage_class_name(at::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type && *d.dtype) return d.storage;
  }
  throw std::runtime_error(std::string("cannot save tensors of dtype ") + c10::toString(type));
}

// One slot of the pickle machine's stack: a value, or one of the transient objects that only
// live on the stack (classes, storages, tuples holding them, numpy dtypes, marks).
struct Item {
  enum class Type { Value, Tuple, Global, Storage, NumpyDtype, Mark };
  Type type = Type::Value;
  ValuePtr value;
  std::vector<Item> tuple;
  std::string module, name;  // Global; NumpyDtype keeps its code in `name`
  StorageRef storage;

  static Item of(ValuePtr v) {
    Item item;
    item.value = std::move(v);
    return item;
  }
};

class Machine {
 public:
  Machine(std::string_view data, size_t& position, const Unpickler::LoadStorage& load_storage)
      : data_(data), at_(position), load_storage_(load_storage) {}

  ValuePtr run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("invalid pickle at byte " + std::to_string(opcode_at_) + ": " + what);
  }

  // ---- input
  uint8_t byte() {
    if (at_ >= data_.size()) fail("unexpected end of data (truncated file?)");
    return static_cast<uint8_t>(data_[at_++]);
  }
  std::string_view take(uint64_t n) {
    if (n > data_.size() - at_) fail("unexpected end of data (truncated file?)");
    std::string_view out = data_.substr(at_, n);
    at_ += n;
    return out;
  }
  template <typename T>
  T little() {
    const std::string_view raw = take(sizeof(T));
    T value = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      value |= static_cast<T>(static_cast<uint8_t>(raw[i])) << (8 * i);
    }
    return value;
  }
  uint64_t memo_key(const std::string& text) {
    if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) {
      fail("bad memo key '" + text + "'");
    }
    return std::stoull(text);
  }
  std::string line() {
    const size_t end = data_.find('\n', at_);
    if (end == std::string_view::npos) fail("unterminated text line");
    std::string out(data_.substr(at_, end - at_));
    at_ = end + 1;
    return out;
  }

  // ---- stack
  void push(Item item) {
    if (stack_.size() >= kMaxStack) fail("stack too deep");
    stack_.push_back(std::move(item));
  }
  void push(ValuePtr value) { push(Item::of(std::move(value))); }
  Item pop() {
    if (stack_.empty() || stack_.back().type == Item::Type::Mark) fail("stack underflow");
    Item out = std::move(stack_.back());
    stack_.pop_back();
    return out;
  }
  Item& top() {
    if (stack_.empty() || stack_.back().type == Item::Type::Mark) fail("stack underflow");
    return stack_.back();
  }
  std::vector<Item> pop_to_mark() {
    auto mark = std::find_if(stack_.rbegin(), stack_.rend(),
                             [](const Item& i) { return i.type == Item::Type::Mark; });
    if (mark == stack_.rend()) fail("no MARK on the stack");
    const size_t start = stack_.size() - (mark - stack_.rbegin());
    std::vector<Item> items(std::make_move_iterator(stack_.begin() + start),
                            std::make_move_iterator(stack_.end()));
    stack_.resize(start - 1);
    return items;
  }

  // ---- values
  ValuePtr to_value(const Item& item) {
    switch (item.type) {
      case Item::Type::Value: return item.value;
      case Item::Type::Tuple: {
        auto out = Value::container(Value::Kind::Tuple);
        for (const Item& element : item.tuple) add_child(*out, to_value(element));
        return out;
      }
      case Item::Type::Global:
        fail("the class or function '" + item.module + "." + item.name +
             "' appears as data; only tensors, containers and numbers are read");
      default: fail("a storage or dtype object appears as data");
    }
  }
  void add_child(Value& parent, const ValuePtr& child) {
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > kMaxDepth) fail("containers nested too deeply");
    parent.items.push_back(child);
  }
  void set_item(Value& dict, ValuePtr key, ValuePtr value) {
    if (!dict.is_dict()) fail(std::string("SETITEM on a ") + kind_name(dict.kind));
    dict.depth = std::max({dict.depth, key->depth + 1, value->depth + 1});
    if (dict.depth > kMaxDepth) fail("containers nested too deeply");
    for (auto& entry : dict.entries) {
      if (same_key(*entry.first, *key)) {
        entry.second = std::move(value);
        return;
      }
    }
    dict.entries.emplace_back(std::move(key), std::move(value));
  }
  static bool same_key(const Value& a, const Value& b) {
    if (a.kind != b.kind) return false;
    switch (a.kind) {
      case Value::Kind::String:
      case Value::Kind::Bytes: return a.text == b.text;
      case Value::Kind::Int: return a.integer == b.integer && a.text == b.text;
      case Value::Kind::Bool: return a.boolean == b.boolean;
      case Value::Kind::Float: return a.real == b.real;
      default: return &a == &b;
    }
  }
  Value& value_of(Item& item, const char* what) {
    if (item.type != Item::Type::Value) fail(std::string(what) + " needs a container");
    return *item.value;
  }
  int64_t int_arg(const Item& item, const char* what) {
    if (item.type != Item::Type::Value || item.value->kind != Value::Kind::Int || !item.value->text.empty()) {
      fail(std::string(what) + " must be an integer");
    }
    return item.value->integer;
  }
  std::vector<int64_t> int_tuple(const Item& item, const char* what) {
    std::vector<int64_t> out;
    if (item.type == Item::Type::Tuple) {
      for (const Item& e : item.tuple) out.push_back(int_arg(e, what));
      return out;
    }
    const ValuePtr v = to_value(item);
    if (!v->is_sequence()) fail(std::string(what) + " must be a tuple of integers");
    for (const ValuePtr& e : v->items) out.push_back(int_arg(Item::of(e), what));
    return out;
  }
  std::string string_arg(const Item& item, const char* what) {
    if (item.type != Item::Type::Value || item.value->kind != Value::Kind::String) {
      fail(std::string(what) + " must be a string");
    }
    return item.value->text;
  }
  static std::vector<Item> tuple_items(Item item) {
    if (item.type == Item::Type::Tuple) return std::move(item.tuple);
    std::vector<Item> out;
    if (item.type == Item::Type::Value && item.value->kind == Value::Kind::Tuple) {
      for (const ValuePtr& v : item.value->items) out.push_back(Item::of(v));
    }
    return out;
  }

  ValuePtr decode_long(std::string_view raw) {
    if (raw.empty()) return Value::of_int(0);
    if (raw.size() <= 8) {
      uint64_t bits = 0;
      for (size_t i = 0; i < raw.size(); ++i) bits |= uint64_t(uint8_t(raw[i])) << (8 * i);
      if (raw.size() < 8 && (uint8_t(raw.back()) & 0x80)) bits |= ~uint64_t(0) << (8 * raw.size());
      return Value::of_int(static_cast<int64_t>(bits));
    }
    // Too wide for int64 (the legacy format's magic number): keep the two's-complement bytes.
    auto out = Value::of_int(0);
    out->text = std::string(raw);
    return out;
  }

  Item build_tuple(std::vector<Item> items) {
    Item out;
    out.type = Item::Type::Tuple;
    out.tuple = std::move(items);
    return out;
  }

  // ---- tensors
  at::Tensor rebuild_tensor(const Item& storage_item, const Item& offset_item, const Item& size_item,
                            const Item& stride_item) {
    if (storage_item.type != Item::Type::Storage) fail("a tensor's storage is not a storage");
    const StorageRef& storage = storage_item.storage;
    const int64_t offset = int_arg(offset_item, "storage offset") + storage.offset;
    const std::vector<int64_t> sizes = int_tuple(size_item, "tensor size");
    const std::vector<int64_t> strides = int_tuple(stride_item, "tensor stride");
    if (sizes.size() != strides.size()) fail("tensor size and stride differ in length");
    // Every product below stays under 2^48 elements, so nothing overflows int64.
    constexpr int64_t kLimit = int64_t(1) << 48;
    int64_t numel = 1, last = offset;
    for (size_t d = 0; d < sizes.size(); ++d) {
      if (sizes[d] < 0 || strides[d] < 0) fail("negative tensor size or stride");
      if (sizes[d] == 0) {
        numel = 0;
        continue;
      }
      if (strides[d] > kLimit / sizes[d] || numel > kLimit / sizes[d]) fail("tensor too large");
      numel *= sizes[d];
      last += (sizes[d] - 1) * strides[d];
      if (last > kLimit) fail("tensor too large");
    }
    if (offset < 0 || (numel > 0 && last >= storage.root.numel())) {
      fail("tensor of size " + std::to_string(numel) + " at offset " + std::to_string(offset) +
           " reaches past its storage of " + std::to_string(storage.root.numel()) + " elements");
    }
    return at::empty({0}, storage.root.options())
        .set_(storage.root.storage(), storage.root.storage_offset() + offset, sizes, strides);
  }

  Item call(const Item& callable, Item args_item) {
    if (callable.type != Item::Type::Global) fail("REDUCE on something that is not a class");
    const std::string& m = callable.module;
    const std::string& n = callable.name;
    std::vector<Item> args = tuple_items(std::move(args_item));
    auto need = [&](size_t count) {
      if (args.size() < count) fail(m + "." + n + " called with too few arguments");
    };
    if (m == "collections" && n == "OrderedDict") {
      auto dict = Value::container(Value::Kind::OrderedDict);
      if (!args.empty()) {
        for (const ValuePtr& pair : to_value(args[0])->items) {
          if (!pair->is_sequence() || pair->items.size() != 2) fail("OrderedDict item is not a pair");
          set_item(*dict, pair->items[0], pair->items[1]);
        }
      }
      return Item::of(dict);
    }
    if (m == "torch._utils" && (n == "_rebuild_tensor_v2" || n == "_rebuild_tensor")) {
      need(4);
      at::Tensor t = rebuild_tensor(args[0], args[1], args[2], args[3]);
      return Item::of(Value::of_tensor(t));
    }
    if (m == "torch._utils" && n == "_rebuild_tensor_v3") {
      need(7);
      if (args[6].type != Item::Type::Global) fail("_rebuild_tensor_v3 without a dtype");
      const DtypeName* dtype = dtype_global(args[6].module, args[6].name);
      if (!dtype) fail("unsupported dtype torch." + args[6].name);
      Item storage = args[0];
      if (storage.type != Item::Type::Storage) fail("a tensor's storage is not a storage");
      const int64_t item_size = static_cast<int64_t>(c10::elementSize(dtype->type));
      at::Tensor root = storage.storage.root;
      if (root.scalar_type() != dtype->type) {
        if (root.scalar_type() != at::kByte || root.numel() % item_size != 0) fail("storage does not hold whole elements");
        root = root.view(dtype->type);
      }
      storage.storage.root = root;
      return Item::of(Value::of_tensor(rebuild_tensor(storage, args[1], args[2], args[3])));
    }
    if (m == "torch._utils" && (n == "_rebuild_parameter" || n == "_rebuild_parameter_with_state")) {
      need(2);
      const ValuePtr data = to_value(args[0]);
      if (data->kind != Value::Kind::Tensor) fail("a parameter without a tensor");
      return Item::of(Value::of_tensor(data->tensor, /*parameter=*/true));
    }
    if (m == "torch._tensor" && n == "_rebuild_from_type_v2") {
      need(3);
      if (args[1].type != Item::Type::Global ||
          !((args[1].module == "torch" && args[1].name == "Tensor") ||
            (args[1].module == "torch.nn.parameter" && args[1].name == "Parameter"))) {
        fail("tensor subclasses are not supported");
      }
      const bool parameter = args[1].name == "Parameter";
      Item rebuilt = call(args[0], args[2]);
      if (parameter && rebuilt.type == Item::Type::Value) rebuilt.value->parameter = true;
      return rebuilt;
    }
    if (m == "torch" && n == "Size") {
      need(1);
      auto out = Value::container(Value::Kind::Tuple);
      out->text = kTorchSize;
      for (int64_t d : int_tuple(args[0], "torch.Size")) add_child(*out, Value::of_int(d));
      return Item::of(out);
    }
    if ((m == "builtins" || m == "__builtin__") && (n == "set" || n == "frozenset")) {
      auto out = Value::container(Value::Kind::List);
      if (!args.empty()) {
        for (const ValuePtr& v : to_value(args[0])->items) add_child(*out, v);
      }
      return Item::of(out);
    }
    if (m == "_codecs" && n == "encode") {
      need(1);
      return Item::of(Value::of_string(latin1(string_arg(args[0], "_codecs.encode text")), Value::Kind::Bytes));
    }
    if (m == "torch" && n == "device") {
      need(1);
      std::string device = string_arg(args[0], "torch.device type");
      if (args.size() > 1) device += ":" + std::to_string(int_arg(args[1], "torch.device index"));
      return Item::of(Value::of_string(device));
    }
    if (m == "numpy" && n == "dtype") {
      need(1);
      Item dtype;
      dtype.type = Item::Type::NumpyDtype;
      dtype.name = string_arg(args[0], "numpy dtype");
      return dtype;
    }
    if ((m == "numpy.core.multiarray" || m == "numpy._core.multiarray") && n == "scalar") {
      need(2);
      if (args[0].type != Item::Type::NumpyDtype) fail("numpy scalar without a dtype");
      const ValuePtr raw = to_value(args[1]);
      if (raw->kind != Value::Kind::Bytes && raw->kind != Value::Kind::String) fail("numpy scalar without bytes");
      return Item::of(numpy_scalar(args[0].name, raw->text));
    }
    fail("the checkpoint calls '" + m + "." + n +
         "', which is not allowed: only tensors, containers and numbers are read");
  }

  ValuePtr numpy_scalar(const std::string& code, const std::string& raw) {
    auto read = [&](auto sample) {
      using T = decltype(sample);
      if (raw.size() != sizeof(T)) fail("numpy scalar of the wrong size");
      T v;
      std::memcpy(&v, raw.data(), sizeof(T));
      return v;
    };
    if (code == "f8") return Value::of_float(read(double{}));
    if (code == "f4") return Value::of_float(read(float{}));
    if (code == "i8") return Value::of_int(read(int64_t{}));
    if (code == "i4") return Value::of_int(read(int32_t{}));
    if (code == "b1") return Value::of_bool(read(uint8_t{}) != 0);
    fail("unsupported numpy scalar type '" + code + "'");
  }

  std::string latin1(const std::string& utf8) {
    std::string out;
    for (size_t i = 0; i < utf8.size(); ++i) {
      const uint8_t c = uint8_t(utf8[i]);
      if (c < 0x80) {
        out.push_back(char(c));
      } else if ((c & 0xe0) == 0xc0 && i + 1 < utf8.size() && c <= 0xc3) {
        out.push_back(char(((c & 0x1f) << 6) | (uint8_t(utf8[++i]) & 0x3f)));
      } else {
        fail("_codecs.encode of text outside latin-1");
      }
    }
    return out;
  }

  Item persistent(Item pid) {
    std::vector<Item> parts = tuple_items(std::move(pid));
    if (parts.size() < 5 || string_arg(parts[0], "persistent id tag") != "storage") {
      fail("unsupported persistent id (expected a ('storage', ...) tuple)");
    }
    if (parts[1].type != Item::Type::Global) fail("persistent id without a storage class");
    const DtypeName* dtype = storage_class(parts[1].module, parts[1].name);
    if (!dtype) fail("unsupported storage class '" + parts[1].module + "." + parts[1].name + "'");
    PersistentId id{dtype->type, "", "", 0, nullptr};
    const ValuePtr key = to_value(parts[2]);
    id.key = key->kind == Value::Kind::Int ? std::to_string(key->integer) : string_arg(parts[2], "storage key");
    id.location = string_arg(parts[3], "storage location");
    id.numel = int_arg(parts[4], "storage size");
    if (id.numel < 0) fail("negative storage size");
    if (parts.size() > 5) id.view_metadata = to_value(parts[5]);
    Item out;
    out.type = Item::Type::Storage;
    try {
      out.storage = load_storage_(id);
    } catch (const std::runtime_error& error) {
      fail(error.what());
    }
    return out;
  }

  std::string_view data_;
  size_t& at_;
  size_t opcode_at_ = 0;
  const Unpickler::LoadStorage& load_storage_;
  std::vector<Item> stack_;
  std::unordered_map<uint64_t, Item> memo_;
};

ValuePtr Machine::run() {
  for (;;) {
    opcode_at_ = at_;
    const uint8_t op = byte();
    switch (op) {
      case 0x80: byte(); break;                     // PROTO
      case 0x95: take(8); break;                    // FRAME
      case '.': {                                   // STOP
        Item result = pop();
        return to_value(result);
      }
      case '(': {                                   // MARK
        Item mark;
        mark.type = Item::Type::Mark;
        push(std::move(mark));
        break;
      }
      case '0': pop(); break;                       // POP
      case '1': pop_to_mark(); break;               // POP_MARK
      case '2': push(Item(top())); break;           // DUP
      case 'N': push(Value::none()); break;
      case 0x88: push(Value::of_bool(true)); break;
      case 0x89: push(Value::of_bool(false)); break;
      case 'J': push(Value::of_int(static_cast<int32_t>(little<uint32_t>()))); break;
      case 'K': push(Value::of_int(byte())); break;
      case 'M': push(Value::of_int(little<uint16_t>())); break;
      case 0x8a: push(decode_long(take(byte()))); break;  // LONG1
      case 0x8b: {                                          // LONG4
        const int32_t n = static_cast<int32_t>(little<uint32_t>());
        if (n < 0 || n > 1024) fail("LONG4 of unsupported width");
        push(decode_long(take(static_cast<uint32_t>(n))));
        break;
      }
      case 'I': {                                   // INT (text; 00/01 are booleans)
        const std::string text = line();
        if (text == "00" || text == "01") {
          push(Value::of_bool(text == "01"));
        } else {
          try {
            push(Value::of_int(std::stoll(text)));
          } catch (const std::exception&) {
            fail("bad INT '" + text + "'");
          }
        }
        break;
      }
      case 'L': {                                   // LONG (text)
        std::string text = line();
        if (!text.empty() && text.back() == 'L') text.pop_back();
        try {
          push(Value::of_int(std::stoll(text)));
        } catch (const std::exception&) {
          fail("bad LONG '" + text + "'");
        }
        break;
      }
      case 'G': {                                   // BINFLOAT, big-endian
        const std::string_view raw = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | uint8_t(raw[i]);
        double v;
        std::memcpy(&v, &bits, 8);
        push(Value::of_float(v));
        break;
      }
      case 'F': {                                   // FLOAT (text)
        const std::string text = line();
        try {
          push(Value::of_float(std::stod(text)));
        } catch (const std::exception&) {
          fail("bad FLOAT '" + text + "'");
        }
        break;
      }
      case 'X': push(Value::of_string(std::string(take(little<uint32_t>())))); break;
      case 0x8c: push(Value::of_string(std::string(take(byte())))); break;
      case 0x8d: push(Value::of_string(std::string(take(little<uint64_t>())))); break;
      case 'T': {                                   // BINSTRING (Python 2 str)
        const int32_t n = static_cast<int32_t>(little<uint32_t>());
        if (n < 0) fail("negative string length");
        push(Value::of_string(std::string(take(static_cast<uint32_t>(n)))));
        break;
      }
      case 'U': push(Value::of_string(std::string(take(byte())))); break;
      case 'B': push(Value::of_string(std::string(take(little<uint32_t>())), Value::Kind::Bytes)); break;
      case 'C': push(Value::of_string(std::string(take(byte())), Value::Kind::Bytes)); break;
      case 0x8e:
      case 0x96: push(Value::of_string(std::string(take(little<uint64_t>())), Value::Kind::Bytes)); break;
      case ']': push(Value::container(Value::Kind::List)); break;
      case ')': push(Value::container(Value::Kind::Tuple)); break;
      case '}': push(Value::container(Value::Kind::Dict)); break;
      case 0x8f: push(Value::container(Value::Kind::List)); break;  // EMPTY_SET
      case 'l': {                                   // LIST
        auto list = Value::container(Value::Kind::List);
        for (const Item& item : pop_to_mark()) add_child(*list, to_value(item));
        push(list);
        break;
      }
      case 't': push(build_tuple(pop_to_mark())); break;
      case 0x85:
      case 0x86:
      case 0x87: {                                  // TUPLE1..3
        const size_t n = op - 0x84;
        if (stack_.size() < n) fail("stack underflow");
        std::vector<Item> items;
        for (size_t i = 0; i < n; ++i) items.push_back(pop());
        std::reverse(items.begin(), items.end());
        push(build_tuple(std::move(items)));
        break;
      }
      case 'd': {                                   // DICT
        std::vector<Item> items = pop_to_mark();
        if (items.size() % 2) fail("DICT with an odd number of items");
        auto dict = Value::container(Value::Kind::Dict);
        for (size_t i = 0; i < items.size(); i += 2) set_item(*dict, to_value(items[i]), to_value(items[i + 1]));
        push(dict);
        break;
      }
      case 'a': {                                   // APPEND
        const ValuePtr v = to_value(pop());
        Value& list = value_of(top(), "APPEND");
        if (list.kind != Value::Kind::List) fail("APPEND to a non-list");
        add_child(list, v);
        break;
      }
      case 'e':
      case 0x90: {                                  // APPENDS, ADDITEMS
        std::vector<Item> items = pop_to_mark();
        Value& list = value_of(top(), "APPENDS");
        if (list.kind != Value::Kind::List) fail("APPENDS to a non-list");
        for (const Item& item : items) add_child(list, to_value(item));
        break;
      }
      case 0x91: {                                  // FROZENSET
        auto list = Value::container(Value::Kind::List);
        for (const Item& item : pop_to_mark()) add_child(*list, to_value(item));
        push(list);
        break;
      }
      case 's': {                                   // SETITEM
        const ValuePtr value = to_value(pop());
        const ValuePtr key = to_value(pop());
        set_item(value_of(top(), "SETITEM"), key, value);
        break;
      }
      case 'u': {                                   // SETITEMS
        std::vector<Item> items = pop_to_mark();
        if (items.size() % 2) fail("SETITEMS with an odd number of items");
        Value& dict = value_of(top(), "SETITEMS");
        for (size_t i = 0; i < items.size(); i += 2) set_item(dict, to_value(items[i]), to_value(items[i + 1]));
        break;
      }
      case 'p': memo_[memo_key(line())] = top(); break;  // PUT
      case 'q': memo_[byte()] = top(); break;
      case 'r': memo_[little<uint32_t>()] = top(); break;
      case 0x94: {                                  // MEMOIZE
        const uint64_t key = memo_.size();
        memo_[key] = top();
        break;
      }
      case 'g':
      case 'h':
      case 'j': {                                   // GET, BINGET, LONG_BINGET
        const uint64_t key = op == 'g' ? memo_key(line()) : op == 'h' ? byte() : little<uint32_t>();
        auto found = memo_.find(key);
        if (found == memo_.end()) fail("memo key " + std::to_string(key) + " is not defined");
        push(Item(found->second));
        break;
      }
      case 'c': {                                   // GLOBAL
        Item global;
        global.type = Item::Type::Global;
        global.module = line();
        global.name = line();
        push(std::move(global));
        break;
      }
      case 0x93: {                                  // STACK_GLOBAL
        Item name = pop();
        Item module = pop();
        Item global;
        global.type = Item::Type::Global;
        global.module = string_arg(module, "STACK_GLOBAL module");
        global.name = string_arg(name, "STACK_GLOBAL name");
        push(std::move(global));
        break;
      }
      case 'R':
      case 0x81: {                                  // REDUCE, NEWOBJ
        Item args = pop();
        Item callable = pop();
        push(call(callable, std::move(args)));
        break;
      }
      case 'b': {                                   // BUILD
        Item state = pop();
        Item& target = top();
        if (target.type == Item::Type::NumpyDtype) break;  // byte order etc.: little-endian only below
        const ValuePtr state_value = to_value(state);
        if (target.type == Item::Type::Value && target.value->kind == Value::Kind::OrderedDict &&
            state_value->is_dict()) {
          target.value->attributes = state_value;
          break;
        }
        const bool empty_state = state_value->kind == Value::Kind::None ||
                                 (state_value->is_dict() && state_value->entries.empty());
        if (!empty_state) fail("object state (BUILD) that a checkpoint reader cannot apply");
        break;
      }
      case 'Q': push(persistent(pop())); break;     // BINPERSID
      case 'P': {                                   // PERSID (text): not used by torch
        fail("text persistent ids are not supported");
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("unsupported pickle opcode ") + hex);
      }
    }
  }
}

// ---- writer -------------------------------------------------------------------------------------

class Writer {
 public:
  Writer(const Pickler::AddStorage* add_storage, bool legacy) : add_storage_(add_storage), legacy_(legacy) {}

  std::string finish(const Value& root) {
    out_ += "\x80\x02";
    write(root);
    out_ += '.';
    return std::move(out_);
  }

 private:
  void op(char c) { out_.push_back(c); }
  template <typename T>
  void little(T v) {
    for (size_t i = 0; i < sizeof(T); ++i) out_.push_back(char((v >> (8 * i)) & 0xff));
  }
  void global(const char* module, const char* name) {
    op('c');
    out_ += module;
    out_ += '\n';
    out_ += name;
    out_ += '\n';
  }
  void string(const std::string& s) {
    op('X');
    little<uint32_t>(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K');
      out_.push_back(char(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      little<uint32_t>(static_cast<uint32_t>(static_cast<int32_t>(v)));
    } else {
      op('\x8a');
      out_.push_back(8);
      little<uint64_t>(static_cast<uint64_t>(v));
    }
  }
  void int_tuple(at::IntArrayRef values) {
    op('(');
    for (int64_t v : values) integer(v);
    op('t');
  }
  void empty_ordered_dict() {
    global("collections", "OrderedDict");
    op(')');
    op('R');
  }

  void write(const Value& v) {
    switch (v.kind) {
      case Value::Kind::None: op('N'); break;
      case Value::Kind::Bool: op(v.boolean ? '\x88' : '\x89'); break;
      case Value::Kind::Int:
        if (!v.text.empty()) {  // wider than int64: the original bytes
          op('\x8a');
          out_.push_back(char(v.text.size()));
          out_ += v.text;
        } else {
          integer(v.integer);
        }
        break;
      case Value::Kind::Float: {
        op('G');
        uint64_t bits;
        std::memcpy(&bits, &v.real, 8);
        for (int i = 7; i >= 0; --i) out_.push_back(char((bits >> (8 * i)) & 0xff));
        break;
      }
      case Value::Kind::String: string(v.text); break;
      case Value::Kind::Bytes: {
        // As protocol 2 pickles bytes (torch.save's protocol): _codecs.encode(text, 'latin1'),
        // which torch.load's weights_only unpickler (the default from torch 2.6) accepts; BINBYTES
        // is a protocol-3 opcode it refuses, and so is torch.save's own `bytes()` for b''.
        std::string text;
        for (unsigned char c : v.text) {
          if (c < 0x80) {
            text.push_back(char(c));
          } else {
            text.push_back(char(0xc0 | (c >> 6)));
            text.push_back(char(0x80 | (c & 0x3f)));
          }
        }
        global("_codecs", "encode");
        op('(');
        string(text);
        string("latin1");
        op('t');
        op('R');
        break;
      }
      case Value::Kind::List:
        op(']');
        if (!v.items.empty()) {
          op('(');
          for (const ValuePtr& item : v.items) write(*item);
          op('e');
        }
        break;
      case Value::Kind::Tuple:
        if (v.text == kTorchSize) global("torch", "Size"), op('(');
        op('(');
        for (const ValuePtr& item : v.items) write(*item);
        op('t');
        if (v.text == kTorchSize) op('t'), op('R');
        break;
      case Value::Kind::Dict:
      case Value::Kind::OrderedDict:
        if (v.kind == Value::Kind::Dict) {
          op('}');
        } else {
          empty_ordered_dict();
        }
        if (!v.entries.empty()) {
          op('(');
          for (const auto& [key, value] : v.entries) {
            write(*key);
            write(*value);
          }
          op('u');
        }
        if (v.attributes) {
          op('}');
          op('(');
          for (const auto& [key, value] : v.attributes->entries) {
            write(*key);
            write(*value);
          }
          op('u');
          op('b');
        }
        break;
      case Value::Kind::Tensor: tensor(v); break;
    }
  }

  void tensor(const Value& v) {
    if (!add_storage_) throw std::runtime_error("tensors cannot be written in this pickle");
    const at::Tensor t = v.tensor.detach().cpu();
    if (v.parameter) global("torch._utils", "_rebuild_parameter"), op('(');
    global("torch._utils", "_rebuild_tensor_v2");
    op('(');
    // The storage, as a flat tensor over all of it, so views of one storage share one entry.
    const at::Storage& storage = t.storage();
    const int64_t item_size = static_cast<int64_t>(t.element_size());
    const int64_t storage_numel = static_cast<int64_t>(storage.nbytes()) / item_size;
    const at::Tensor flat = at::empty({0}, t.options()).set_(storage, 0, {storage_numel}, {1});
    const std::string key = (*add_storage_)(flat);
    op('(');
    string("storage");
    global("torch", storage_class_name(t.scalar_type()));
    string(key);
    string("cpu");
    integer(storage_numel);
    if (legacy_) op('N');
    op('t');
    op('Q');
    integer(t.storage_offset());
    int_tuple(t.sizes());
    int_tuple(t.strides());
    op(v.parameter ? '\x89' : (t.requires_grad() ? '\x88' : '\x89'));
    empty_ordered_dict();
    op('t');
    op('R');
    if (v.parameter) {
      op('\x88');  // requires_grad: parameters are saved as trainable
      empty_ordered_dict();
      op('t');
      op('R');
    }
  }

  const Pickler::AddStorage* add_storage_;
  bool legacy_;
  std::string out_;
};

// A pickle's memo lets a container hold itself or share children; whatever reads the result
// afterwards (writers, JS conversion) walks it as a tree. So the result must be acyclic, shallow,
// and of bounded size when expanded (shared children nested in pairs double per level). Checked
// with an explicit stack: adversarial nesting cannot overflow the native one.
void check_tree(const ValuePtr& root) {
  constexpr size_t kMaxExpandedNodes = 20'000'000;
  struct Frame {
    const Value* node;
    size_t next;
  };
  std::vector<Frame> path{{root.get(), 0}};
  std::unordered_map<const Value*, bool> on_path{{root.get(), true}};
  size_t visited = 1;
  auto child = [](const Value& v, size_t i) -> const Value* {
    if (v.is_sequence()) return i < v.items.size() ? v.items[i].get() : nullptr;
    if (v.is_dict()) {
      if (i < 2 * v.entries.size()) return (i % 2 ? v.entries[i / 2].second : v.entries[i / 2].first).get();
      if (i == 2 * v.entries.size() && v.attributes) return v.attributes.get();
    }
    return nullptr;
  };
  while (!path.empty()) {
    Frame& frame = path.back();
    const Value* next = child(*frame.node, frame.next++);
    if (!next) {
      on_path.erase(frame.node);
      path.pop_back();
      continue;
    }
    if (on_path.count(next)) throw std::runtime_error("invalid pickle: a container contains itself");
    if (++visited > kMaxExpandedNodes) throw std::runtime_error("invalid pickle: the structure is too large");
    if (path.size() >= static_cast<size_t>(kMaxDepth)) throw std::runtime_error("invalid pickle: containers nested too deeply");
    if (next->is_sequence() || next->is_dict()) {
      on_path[next] = true;
      path.push_back({next, 0});
    }
  }
}

}  // namespace

ValuePtr Unpickler::parse() {
  Machine machine(data_, position_, load_storage_);
  ValuePtr result = machine.run();
  check_tree(result);
  return result;
}

std::string Pickler::dump(const Value& root) { return Writer(&add_storage_, legacy_).finish(root); }

std::string Pickler::dump_plain(const Value& root) { return Writer(nullptr, false).finish(root); }

}  // namespace s2bnn::io
