// A restricted pickle reader and a pickle writer for torch.save files.
//
// The reader runs the pickle opcodes PyTorch checkpoints use and allows only the globals that
// rebuild tensors, ordered dicts, sets, bytes and numpy scalars (what
// torch.load(weights_only=True) allows): nothing from the file is ever executed. Malformed input
// raises std::runtime_error with the byte offset and the problem.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "value.h"

namespace s2bnn::io {

// A storage as referenced by a persistent id: a flat tensor of its dtype (its "root"), plus an
// element offset for the legacy format's storage views.
struct StorageRef {
  at::Tensor root;
  int64_t offset = 0;
};

// Persistent ids are tuples such as ('storage', <dtype>, key, location, numel[, view]); the
// storage class in position 1 arrives already resolved to its dtype.
struct PersistentId {
  at::ScalarType dtype;
  std::string key;
  std::string location;
  int64_t numel;
  ValuePtr view_metadata;  // legacy views: (view_key, offset, size), else null/None
};

class Unpickler {
 public:
  using LoadStorage = std::function<StorageRef(const PersistentId&)>;

  Unpickler(std::string_view data, LoadStorage load_storage)
      : data_(data), load_storage_(std::move(load_storage)) {}

  // Runs until STOP and returns the result. `consumed()` then says where the pickle ended
  // (legacy files hold several pickles back to back).
  ValuePtr parse();
  size_t consumed() const { return position_; }

 private:
  std::string_view data_;
  LoadStorage load_storage_;
  size_t position_ = 0;
};

// Serializes `root` as a protocol-2 pickle the way torch.save does. Each distinct storage among
// the tensors is written once: `add_storage(root_tensor) -> key` is called for it, and the
// pickle refers to it by that key (views of one storage stay views).
class Pickler {
 public:
  using AddStorage = std::function<std::string(const at::Tensor& storage_as_flat_tensor)>;
  // `legacy` writes 6-element persistent ids (with the view slot) as the pre-1.6 format does.
  Pickler(AddStorage add_storage, bool legacy = false)
      : add_storage_(std::move(add_storage)), legacy_(legacy) {}
  std::string dump(const Value& root);

  // Standalone pickles of simple values (the legacy format's header records).
  static std::string dump_plain(const Value& root);

 private:
  AddStorage add_storage_;
  bool legacy_;
};

}  // namespace s2bnn::io
