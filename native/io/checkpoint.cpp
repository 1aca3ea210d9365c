#include "checkpoint.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "json.h"
#include "pickle.h"
#include "zip.h"

namespace s2bnn::io {
namespace {

// The legacy format opens with this number (torch/serialization.py MAGIC_NUMBER), little-endian.
const std::string kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);
constexpr int64_t kLegacyProtocol = 1001;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

// A read-only view of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat info;
    if (::fstat(fd_, &info) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(info.st_mode)) fail(path, "not a regular file");
    size_ = static_cast<size_t>(info.st_size);
    if (size_ == 0) fail(path, "the file is empty");
    data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (data_ == MAP_FAILED) fail(path, std::string("cannot map: ") + std::strerror(errno));
  }
  ~MappedFile() {
    if (data_ != MAP_FAILED && data_ != nullptr) ::munmap(data_, size_);
    if (fd_ >= 0) ::close(fd_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }

 private:
  int fd_ = -1;
  void* data_ = nullptr;
  size_t size_ = 0;
};

at::Tensor flat_storage(at::ScalarType dtype, int64_t numel, uint64_t available_bytes,
                        const std::string& what) {
  const uint64_t item = c10::elementSize(dtype);
  if (numel < 0 || static_cast<uint64_t>(numel) > available_bytes / item) {
    throw std::runtime_error(what + " claims " + std::to_string(numel) + " elements, more than the file holds");
  }
  return at::empty({numel}, at::TensorOptions().dtype(dtype));
}

Checkpoint load_zip(const std::string& path, std::string_view file) {
  std::vector<ZipEntry> entries;
  try {
    entries = read_zip_directory(file);
  } catch (const std::runtime_error& error) {
    fail(path, error.what());
  }
  std::string prefix;
  const ZipEntry* pickle = nullptr;
  for (const ZipEntry& e : entries) {
    const size_t slash = e.name.find('/');
    if (slash != std::string::npos && e.name.substr(slash) == "/data.pkl") {
      prefix = e.name.substr(0, slash + 1);
      pickle = &e;
      break;
    }
  }
  if (!pickle) fail(path, "a zip without data.pkl is not a PyTorch checkpoint");
  std::unordered_map<std::string, const ZipEntry*> by_name;
  for (const ZipEntry& e : entries) by_name[e.name] = &e;
  if (auto order = by_name.find(prefix + "byteorder"); order != by_name.end()) {
    const std::string_view value = file.substr(order->second->data_offset, order->second->size);
    if (value != "little") fail(path, "big-endian checkpoints are not supported");
  }
  std::unordered_map<std::string, at::Tensor> storages;
  auto load_storage = [&](const PersistentId& id) -> StorageRef {
    auto cached = storages.find(id.key);
    if (cached != storages.end()) return {cached->second, 0};
    auto entry = by_name.find(prefix + "data/" + id.key);
    if (entry == by_name.end()) throw std::runtime_error("storage '" + id.key + "' is missing from the zip");
    const ZipEntry& e = *entry->second;
    const uint64_t expected = static_cast<uint64_t>(id.numel) * c10::elementSize(id.dtype);
    if (e.size != expected) {
      throw std::runtime_error("storage '" + id.key + "' holds " + std::to_string(e.size) + " bytes, expected " +
                               std::to_string(expected));
    }
    at::Tensor root = flat_storage(id.dtype, id.numel, e.size, "storage '" + id.key + "'");
    if (expected > 0) std::memcpy(root.data_ptr(), file.data() + e.data_offset, expected);
    storages.emplace(id.key, root);
    return {root, 0};
  };
  try {
    Unpickler unpickler(file.substr(pickle->data_offset, pickle->size), load_storage);
    return {Format::Zip, unpickler.parse()};
  } catch (const std::runtime_error& error) {
    fail(path, error.what());
  }
}

Checkpoint load_legacy(const std::string& path, std::string_view file) {
  size_t at = 0;
  auto next = [&](const Unpickler::LoadStorage& load) {
    Unpickler unpickler(file.substr(at), load);
    ValuePtr value = unpickler.parse();
    at += unpickler.consumed();
    return value;
  };
  const Unpickler::LoadStorage no_storage = [](const PersistentId&) -> StorageRef {
    throw std::runtime_error("unexpected storage in a legacy header record");
  };
  try {
    const ValuePtr magic = next(no_storage);
    if (magic->kind != Value::Kind::Int || magic->text != kLegacyMagic) {
      fail(path, "not a PyTorch checkpoint (neither a zip file nor a legacy torch.save file)");
    }
    const ValuePtr protocol = next(no_storage);
    if (protocol->kind != Value::Kind::Int || protocol->integer != kLegacyProtocol) {
      fail(path, "unsupported legacy checkpoint protocol");
    }
    const ValuePtr info = next(no_storage);
    const ValuePtr little = info->get("little_endian");
    if (!little || little->kind != Value::Kind::Bool || !little->boolean) {
      fail(path, "big-endian checkpoints are not supported");
    }
    std::unordered_map<std::string, at::Tensor> storages;
    const Unpickler::LoadStorage load = [&](const PersistentId& id) -> StorageRef {
      auto found = storages.find(id.key);
      if (found == storages.end()) {
        found = storages.emplace(id.key, flat_storage(id.dtype, id.numel, file.size(), "storage '" + id.key + "'")).first;
      }
      if (found->second.scalar_type() != id.dtype) throw std::runtime_error("storage '" + id.key + "' used with two dtypes");
      int64_t offset = 0;
      if (id.view_metadata && id.view_metadata->kind != Value::Kind::None) {
        const ValuePtr& view = id.view_metadata;
        if (!view->is_sequence() || view->items.size() != 3 || view->items[1]->kind != Value::Kind::Int) {
          throw std::runtime_error("malformed storage view");
        }
        offset = view->items[1]->integer;
        if (offset < 0 || offset > found->second.numel()) throw std::runtime_error("storage view out of range");
      }
      return {found->second, offset};
    };
    const ValuePtr root = next(load);
    const ValuePtr keys = next(no_storage);
    if (keys->kind != Value::Kind::List) fail(path, "malformed legacy storage list");
    for (const ValuePtr& key : keys->items) {
      if (key->kind != Value::Kind::String) fail(path, "malformed legacy storage key");
      auto found = storages.find(key->text);
      if (found == storages.end()) fail(path, "storage '" + key->text + "' is not used by the checkpoint");
      if (file.size() - at < 8) fail(path, "truncated storage data");
      int64_t numel = 0;
      std::memcpy(&numel, file.data() + at, 8);
      at += 8;
      at::Tensor& storage = found->second;
      if (numel != storage.numel()) fail(path, "storage '" + key->text + "' has an inconsistent size");
      const size_t bytes = static_cast<size_t>(numel) * storage.element_size();
      if (file.size() - at < bytes) fail(path, "truncated storage data (the file ends early)");
      if (bytes > 0) std::memcpy(storage.data_ptr(), file.data() + at, bytes);
      at += bytes;
    }
    if (keys->items.size() != storages.size()) fail(path, "some storages have no data");
    return {Format::Legacy, root};
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    if (message.rfind(path + ":", 0) == 0) throw;
    fail(path, message);
  }
}

// ---- safetensors ------------------------------------------------------------------------------

struct SafetensorsDtype {
  const char* code;
  at::ScalarType type;
};
constexpr SafetensorsDtype kSafetensorsDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16},
    {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
    {"U8", at::kByte},    {"BOOL", at::kBool},
};

Checkpoint load_safetensors(const std::string& path, std::string_view file) {
  if (file.size() < 8) fail(path, "truncated safetensors header");
  uint64_t header_size = 0;
  std::memcpy(&header_size, file.data(), 8);
  if (header_size > file.size() - 8 || header_size > (100u << 20)) fail(path, "bad safetensors header size");
  const std::string_view data = file.substr(8 + header_size);
  json::Value header;
  try {
    header = json::parse(file.substr(8, header_size));
  } catch (const std::runtime_error& error) {
    fail(path, std::string("bad safetensors header: ") + error.what());
  }
  if (header.type != json::Type::Object) fail(path, "the safetensors header is not an object");
  auto tensors = Value::container(Value::Kind::OrderedDict);
  auto root = Value::container(Value::Kind::Dict);
  for (const auto& [name, spec] : header.object) {
    if (name == "__metadata__") {
      if (spec.type != json::Type::Object) fail(path, "__metadata__ is not an object");
      for (const auto& [key, value] : spec.object) {
        if (value.type != json::Type::String) fail(path, "metadata '" + key + "' is not a string");
        root->entries.emplace_back(Value::of_string(key), Value::of_string(value.string));
      }
      continue;
    }
    const json::Value* dtype = spec.field("dtype");
    const json::Value* shape = spec.field("shape");
    const json::Value* offsets = spec.field("data_offsets");
    if (!dtype || dtype->type != json::Type::String || !shape || shape->type != json::Type::Array || !offsets ||
        offsets->type != json::Type::Array || offsets->array.size() != 2) {
      fail(path, "malformed entry for tensor '" + name + "'");
    }
    const SafetensorsDtype* type = nullptr;
    for (const auto& d : kSafetensorsDtypes) {
      if (dtype->string == d.code) type = &d;
    }
    if (!type) fail(path, "tensor '" + name + "' has unsupported dtype " + dtype->string);
    std::vector<int64_t> sizes;
    uint64_t numel = 1;
    for (const json::Value& d : shape->array) {
      if (d.type != json::Type::Number || d.number < 0 || d.number != std::floor(d.number) || d.number > 1e15) {
        fail(path, "tensor '" + name + "' has a bad shape");
      }
      sizes.push_back(static_cast<int64_t>(d.number));
      numel *= static_cast<uint64_t>(d.number);
      if (numel > data.size()) fail(path, "tensor '" + name + "' is larger than the file");
    }
    const double begin = offsets->array[0].number, end = offsets->array[1].number;
    const uint64_t bytes = numel * c10::elementSize(type->type);
    if (offsets->array[0].type != json::Type::Number || offsets->array[1].type != json::Type::Number ||
        begin < 0 || end < begin || end > static_cast<double>(data.size()) || end - begin != static_cast<double>(bytes)) {
      fail(path, "tensor '" + name + "' has data offsets outside the file or of the wrong size");
    }
    at::Tensor t = at::empty(sizes, at::TensorOptions().dtype(type->type));
    if (bytes > 0) std::memcpy(t.data_ptr(), data.data() + static_cast<uint64_t>(begin), bytes);
    tensors->entries.emplace_back(Value::of_string(name), Value::of_tensor(t));
  }
  if (root->entries.empty()) return {Format::Safetensors, tensors};
  root->entries.emplace_back(Value::of_string("state_dict"), tensors);
  return {Format::Safetensors, root};
}

// ---- writing ----------------------------------------------------------------------------------

// Writes to a temporary file beside `path` and renames it over `path` once complete and synced,
// so readers never see a partial checkpoint and a failed write leaves the old file intact.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path) : path_(path) {
    const size_t slash = path.find_last_of('/');
    dir_ = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    std::random_device random;
    temp_ = dir_ + "/." + path.substr(slash == std::string::npos ? 0 : slash + 1) + ".tmp-" +
            std::to_string(::getpid()) + "-" + std::to_string(random());
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(path, std::string("cannot create a file in ") + dir_ + ": " + std::strerror(errno));
  }
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }
  void write(const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t n = ::write(fd_, p, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail(path_, std::string("write failed: ") + std::strerror(errno));
      }
      p += n;
      size -= static_cast<size_t>(n);
    }
  }
  static void sink(void* self, const void* data, size_t size) {
    static_cast<AtomicFile*>(self)->write(data, size);
  }
  void commit() {
    if (::fsync(fd_) != 0) fail(path_, std::string("fsync failed: ") + std::strerror(errno));
    if (::close(fd_) != 0) fail(path_, std::string("close failed: ") + std::strerror(errno));
    fd_ = -1;
    if (::rename(temp_.c_str(), path_.c_str()) != 0) fail(path_, std::string("rename failed: ") + std::strerror(errno));
    committed_ = true;
    const int dir = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      ::fsync(dir);  // makes the rename itself durable
      ::close(dir);
    }
  }

 private:
  std::string path_, dir_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Storages of the tensors being written, in first-use order, each with its key.
class StorageTable {
 public:
  std::string add(const at::Tensor& flat) {
    const void* id = flat.storage().unsafeGetStorageImpl();
    for (size_t i = 0; i < ids_.size(); ++i) {
      if (ids_[i] == id) return std::to_string(i);
    }
    ids_.push_back(id);
    storages_.push_back(flat.contiguous());
    return std::to_string(storages_.size() - 1);
  }
  const std::vector<at::Tensor>& storages() const { return storages_; }

 private:
  std::vector<const void*> ids_;
  std::vector<at::Tensor> storages_;
};

void save_zip(AtomicFile& file, const Value& root) {
  StorageTable table;
  Pickler pickler([&](const at::Tensor& flat) { return table.add(flat); });
  const std::string pickle = pickler.dump(root);
  ZipWriter zip(&AtomicFile::sink, &file);
  zip.add("archive/data.pkl", pickle.data(), pickle.size());
  zip.add("archive/byteorder", "little", 6);
  for (size_t i = 0; i < table.storages().size(); ++i) {
    const at::Tensor& s = table.storages()[i];
    zip.add("archive/data/" + std::to_string(i), s.data_ptr(), s.numel() * s.element_size());
  }
  zip.add("archive/version", "3\n", 2);
  zip.finish();
}

void save_legacy(AtomicFile& file, const Value& root) {
  auto write_pickle = [&](const std::string& p) { file.write(p.data(), p.size()); };
  auto magic = Value::of_int(0);
  magic->text = kLegacyMagic;
  write_pickle(Pickler::dump_plain(*magic));
  write_pickle(Pickler::dump_plain(*Value::of_int(kLegacyProtocol)));
  auto sizes = Value::container(Value::Kind::Dict);
  sizes->entries = {{Value::of_string("short"), Value::of_int(2)},
                    {Value::of_string("int"), Value::of_int(4)},
                    {Value::of_string("long"), Value::of_int(4)}};
  auto info = Value::container(Value::Kind::Dict);
  info->entries = {{Value::of_string("protocol_version"), Value::of_int(kLegacyProtocol)},
                   {Value::of_string("little_endian"), Value::of_bool(true)},
                   {Value::of_string("type_sizes"), sizes}};
  write_pickle(Pickler::dump_plain(*info));
  StorageTable table;
  write_pickle(Pickler([&](const at::Tensor& flat) { return table.add(flat); }, /*legacy=*/true).dump(root));
  auto keys = Value::container(Value::Kind::List);
  for (size_t i = 0; i < table.storages().size(); ++i) keys->items.push_back(Value::of_string(std::to_string(i)));
  write_pickle(Pickler::dump_plain(*keys));
  for (const at::Tensor& s : table.storages()) {
    const int64_t numel = s.numel();
    file.write(&numel, 8);
    file.write(s.data_ptr(), s.numel() * s.element_size());
  }
}

// How Python's str() shows a scalar (the shortest text that reads back as the same double).
std::string scalar_text(const Value& v) {
  switch (v.kind) {
    case Value::Kind::String: return v.text;
    case Value::Kind::Int: return std::to_string(v.integer);
    case Value::Kind::Bool: return v.boolean ? "True" : "False";
    case Value::Kind::Float: {
      char buffer[32];
      for (int precision = 15; precision <= 17; ++precision) {
        std::snprintf(buffer, sizeof buffer, "%.*g", precision, v.real);
        if (std::strtod(buffer, nullptr) == v.real) break;
      }
      return buffer;
    }
    default: return "";
  }
}

std::vector<std::string> save_safetensors(AtomicFile& file, const ValuePtr& root) {
  std::vector<std::string> dropped;
  const ValuePtr state = find_state_dict(root);
  json::Value header;
  header.type = json::Type::Object;
  json::Value metadata;
  metadata.type = json::Type::Object;
  if (state != root) {
    // Top-level scalars (epoch, arch, ...) travel as string metadata, as safetensors allows.
    for (const auto& [key, value] : root->entries) {
      if (value == state) continue;
      const std::string name = key->kind == Value::Kind::String ? key->text : scalar_text(*key);
      const bool scalar = value->kind == Value::Kind::String || (value->kind == Value::Kind::Int && value->text.empty()) ||
                          value->kind == Value::Kind::Float || value->kind == Value::Kind::Bool;
      if (scalar && key->kind == Value::Kind::String) {
        metadata.object.emplace_back(key->text, json::Value::of_string(scalar_text(*value)));
      } else {
        dropped.push_back(name + " (" + kind_name(value->kind) + ")");
      }
    }
  }
  if (!metadata.object.empty()) header.object.emplace_back("__metadata__", metadata);
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [key, value] : state->entries) {
    if (key->kind != Value::Kind::String) throw std::runtime_error("safetensors needs string keys");
    if (value->kind != Value::Kind::Tensor) {
      throw std::runtime_error("safetensors holds only tensors; '" + key->text + "' is a " + kind_name(value->kind));
    }
    const at::Tensor t = value->tensor.detach().cpu().contiguous();
    const char* code = nullptr;
    for (const auto& d : kSafetensorsDtypes) {
      if (d.type == t.scalar_type()) code = d.code;
    }
    if (!code) throw std::runtime_error(std::string("safetensors cannot hold dtype ") + c10::toString(t.scalar_type()));
    const uint64_t bytes = t.numel() * t.element_size();
    json::Value spec;
    spec.type = json::Type::Object;
    spec.object.emplace_back("dtype", json::Value::of_string(code));
    json::Value shape;
    shape.type = json::Type::Array;
    for (int64_t d : t.sizes()) shape.array.push_back(json::Value::of_number(static_cast<double>(d)));
    spec.object.emplace_back("shape", shape);
    json::Value offsets;
    offsets.type = json::Type::Array;
    offsets.array = {json::Value::of_number(static_cast<double>(offset)),
                     json::Value::of_number(static_cast<double>(offset + bytes))};
    spec.object.emplace_back("data_offsets", offsets);
    header.object.emplace_back(key->text, spec);
    offset += bytes;
    data.push_back(t);
  }
  std::string text = json::dump(header);
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const uint64_t header_size = text.size();
  file.write(&header_size, 8);
  file.write(text.data(), text.size());
  for (const at::Tensor& t : data) file.write(t.data_ptr(), t.numel() * t.element_size());
  return dropped;
}

bool is_tensor_dict(const ValuePtr& v) {
  if (!v || !v->is_dict() || v->entries.empty()) return false;
  for (const auto& [key, value] : v->entries) {
    if (key->kind != Value::Kind::String || value->kind != Value::Kind::Tensor) return false;
  }
  return true;
}

}  // namespace

const char* format_name(Format format) {
  switch (format) {
    case Format::Zip: return "zip";
    case Format::Legacy: return "legacy";
    case Format::Safetensors: return "safetensors";
  }
  return "?";
}

Format parse_format(const std::string& name) {
  if (name == "zip") return Format::Zip;
  if (name == "legacy") return Format::Legacy;
  if (name == "safetensors") return Format::Safetensors;
  throw std::runtime_error("unknown checkpoint format '" + name + "' (expected zip, legacy or safetensors)");
}

Checkpoint load_checkpoint(const std::string& path) {
  MappedFile mapped(path);
  const std::string_view file = mapped.bytes();
  if (file.substr(0, 4) == std::string_view("PK\x03\x04", 4)) return load_zip(path, file);
  // safetensors opens with its header's length, which may begin with any byte (0x80 included):
  // recognize it by the JSON object that follows.
  if (file.size() >= 9 && file[8] == '{') return load_safetensors(path, file);
  if (static_cast<uint8_t>(file[0]) == 0x80) return load_legacy(path, file);
  fail(path, "not a PyTorch checkpoint (neither a zip file, a legacy torch.save file nor safetensors)");
}

std::vector<std::string> save_checkpoint(const std::string& path, const ValuePtr& root, Format format) {
  AtomicFile file(path);
  std::vector<std::string> dropped;
  switch (format) {
    case Format::Zip: save_zip(file, *root); break;
    case Format::Legacy: save_legacy(file, *root); break;
    case Format::Safetensors: dropped = save_safetensors(file, root); break;
  }
  file.commit();
  return dropped;
}

ValuePtr find_state_dict(const ValuePtr& root) {
  for (const char* key : {"state_dict", "model"}) {
    const ValuePtr candidate = root ? root->get(key) : nullptr;
    if (candidate && candidate->is_dict()) return candidate;
  }
  if (is_tensor_dict(root)) return root;
  throw std::runtime_error(
      "no state dict found: expected a dict of tensors, or a dict with a 'state_dict' (or 'model') entry");
}

ValuePtr transform_state_dict(const ValuePtr& root, const KeyTransform& transform) {
  const ValuePtr state = find_state_dict(root);
  auto renamed = Value::container(Value::Kind::OrderedDict);
  renamed->attributes = state->attributes;
  for (const auto& [key, value] : state->entries) {
    if (key->kind != Value::Kind::String) throw std::runtime_error("state dict keys must be strings");
    std::string name = key->text;
    if (!transform.select_prefix.empty()) {
      if (name.rfind(transform.select_prefix, 0) != 0) continue;
      name = name.substr(transform.select_prefix.size());
    }
    if (!transform.strip_prefix.empty() && name.rfind(transform.strip_prefix, 0) == 0) {
      name = name.substr(transform.strip_prefix.size());
    }
    if (transform.encoder_q_only) {
      std::string inner;
      for (const char* prefix : {"module.encoder_q.", "encoder_q."}) {
        if (name.rfind(prefix, 0) == 0) {
          inner = name.substr(std::strlen(prefix));
          break;
        }
      }
      if (inner.empty() || inner.rfind("fc.", 0) == 0) continue;
      name = inner;
    }
    renamed->entries.emplace_back(Value::of_string(transform.add_prefix + name), value);
  }
  if (state == root) return renamed;
  auto out = std::make_shared<Value>(*root);
  for (auto& entry : out->entries) {
    if (entry.second == state) entry.second = renamed;
  }
  return out;
}

}  // namespace s2bnn::io
