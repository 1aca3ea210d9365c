// Checkpoint files: PyTorch's zip format (torch.save, PyTorch >= 1.6), the legacy pre-1.6 format
// (the public MoCo v2 teacher), and safetensors. Reads are bounds-checked and never execute
// anything from the file; writes are atomic (temporary file in the same folder, fsync, rename).
#pragma once

#include <string>
#include <vector>

#include "value.h"

namespace s2bnn::io {

enum class Format { Zip, Legacy, Safetensors };

const char* format_name(Format format);
Format parse_format(const std::string& name);  // "zip" | "legacy" | "safetensors"

struct Checkpoint {
  Format format;
  ValuePtr root;
};

// Throws std::runtime_error naming the file and the problem.
Checkpoint load_checkpoint(const std::string& path);
// Returns what the format could not hold and was left out: safetensors keeps the state dict and
// top-level scalars (as string metadata) only, so e.g. an optimizer state is reported here.
std::vector<std::string> save_checkpoint(const std::string& path, const ValuePtr& root, Format format);

// The state dict inside a checkpoint: root['state_dict'], root['model'], or the root itself when
// it is a dict of tensors. Throws when there is none.
ValuePtr find_state_dict(const ValuePtr& root);

// Renames the state dict's keys, in this order: keep only keys under `select_prefix` and drop it
// (e.g. "module.encoder_q." for a MoCo teacher with its head); strip `strip_prefix` where
// present; with `encoder_q_only`, keep only `[module.]encoder_q.*` outside the projection head
// (`fc.*`) and drop that prefix (what linear evaluation does with a MoCo checkpoint); then
// prepend `add_prefix`. Returns a new root; the input is not modified. Tensors are shared.
struct KeyTransform {
  std::string select_prefix;
  std::string strip_prefix;
  std::string add_prefix;
  bool encoder_q_only = false;
};
ValuePtr transform_state_dict(const ValuePtr& root, const KeyTransform& transform);

}  // namespace s2bnn::io
