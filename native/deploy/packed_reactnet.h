// A trained step-2 ReActNet-A as it runs on bits (docs/deployment.md): every binary convolution
// keeps only the signs of its weights, packed 64 channels to a word, and runs as an xnor-popcount
// convolution (s2bnn::bconv2d_packed) whose integer accumulator is scaled by one per-channel
// transform that folds the weight scale alpha and the following BatchNorm. The stem (its
// BatchNorm folded into the convolution), the biases, PReLUs, shortcuts and the head stay float.
//
// File format: a safetensors file (any safetensors reader opens it) whose metadata says
// format = "s2bnn-packed", version = "1" and holds the network's shape as JSON under "config".
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace s2bnn::deploy {

inline constexpr const char* kPackedFormat = "s2bnn-packed";
inline constexpr int kPackedVersion = 1;

struct PackedBlock {
  int64_t in = 0, out = 0, stride = 1;
  // Per-channel float parameters, each [C] (C = in, or out for move22/prelu2/move23).
  at::Tensor move11, move12, prelu1, move13, move21, move22, prelu2, move23;
  // Binary 3x3 (in -> in) and the 1x1 stage (in -> out: binary_pw, or binary_pw_down1 and
  // binary_pw_down2 stacked along the output channels): bits from s2bnn::pack_weights and the
  // epilogue out = acc * scale + shift.
  at::Tensor conv3x3_bits, conv3x3_scale, conv3x3_shift;
  at::Tensor conv1x1_bits, conv1x1_scale, conv1x1_shift;
  // The bits in the layout the device's kernel reads (ops::bconv_prepare), made at load and after
  // to(): not part of the file.
  std::vector<at::Tensor> conv3x3_prepared, conv1x1_prepared;
};

struct PackedConfig {
  int64_t in_channels = 3;
  int64_t stem_stride = 2;  // 2 for the ImageNet stem, 1 for the small (28-64 px) stem
  std::string head = "linear";  // "linear": logits; "mlp": L2-normalized embeddings
  int64_t outputs = 0;          // classes, or the embedding size
  // How the file stores the head's weight matrices: "float32" (exact), or "float16" (half the
  // head's bytes; the head then computes with the rounded weights).
  std::string head_dtype = "float32";
};

// What an export did beyond the exact transformation: weights that are exactly 0 binarize to 0
// in training (torch.sign) but pack as +1, the one place the packed network can differ.
struct ExportReport {
  int64_t binary_weights = 0;
  int64_t zero_weights = 0;
};

class PackedReActNet {
 public:
  // From a ReActNet-A state dict under its plain names (feature.*, fc.*; running statistics
  // included). Throws std::invalid_argument naming the missing or mis-shaped entry.
  static PackedReActNet from_state(const std::vector<std::pair<std::string, at::Tensor>>& state, bool small_stem,
                                   bool half_head = false, ExportReport* report = nullptr);
  // Reads and validates a packed file; throws std::runtime_error naming the file and the problem.
  static PackedReActNet load(const std::string& path);
  // Atomic write (temporary file + rename).
  void save(const std::string& path) const;

  // x: float [N, in_channels, H, W]. Logits (linear head) or L2-normalized embeddings (MLP head).
  at::Tensor forward(const at::Tensor& x) const;
  // Globally pooled backbone features [N, feature_dim].
  at::Tensor features(const at::Tensor& x) const;

  // Every tensor under its file name, in file order.
  std::vector<std::pair<std::string, at::Tensor>> tensors() const;
  const PackedConfig& config() const { return config_; }
  const std::vector<PackedBlock>& blocks() const { return blocks_; }
  int64_t feature_dim() const { return blocks_.empty() ? stem_weight_.size(0) : blocks_.back().out; }
  std::string config_json() const;
  void to(const at::Device& device);
  at::Device device() const { return stem_weight_.device(); }

 private:
  static PackedReActNet from_tensors(const PackedConfig& config, const std::vector<int64_t>& strides,
                                     const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                     const std::string& where);
  at::Tensor block_forward(const PackedBlock& block, const at::Tensor& x) const;
  void prepare();

  PackedConfig config_;
  at::Tensor stem_weight_, stem_bias_;  // BatchNorm folded in
  std::vector<PackedBlock> blocks_;
  at::Tensor fc_weight_, fc_bias_;      // linear head, or the MLP's first layer
  at::Tensor fc2_weight_, fc2_bias_;    // the MLP's second layer
};

}  // namespace s2bnn::deploy
