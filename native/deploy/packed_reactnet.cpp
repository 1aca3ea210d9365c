#include "packed_reactnet.h"

#include <c10/core/InferenceMode.h>

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "../io/checkpoint.h"
#include "../io/json.h"
#include "../nn/reactnet.h"
#include "../ops/ops.h"

namespace s2bnn::deploy {
namespace {

constexpr double kBatchNormEps = 1e-5;  // docs/method.md: standard BatchNorm
constexpr int64_t kWordBits = 64;

int64_t words_for(int64_t channels) { return (channels + kWordBits - 1) / kWordBits; }

using Named = std::vector<std::pair<std::string, at::Tensor>>;

class StateView {
 public:
  explicit StateView(const Named& state) {
    for (const auto& [name, tensor] : state) map_.emplace(name, tensor);
  }
  bool has(const std::string& name) const { return map_.count(name) > 0; }
  at::Tensor get(const std::string& name, std::initializer_list<int64_t> shape) const {
    auto it = map_.find(name);
    if (it == map_.end()) {
      throw std::invalid_argument("the state dict has no '" + name + "' (export needs a ReActNet-A state dict)");
    }
    const at::Tensor& t = it->second;
    if (!t.is_floating_point()) throw std::invalid_argument("'" + name + "' is not a floating-point tensor");
    if (shape.size() != 0 && t.sizes() != at::IntArrayRef(shape)) {
      std::ostringstream message;
      message << "'" << name << "' has shape " << t.sizes() << ", expected " << at::IntArrayRef(shape);
      throw std::invalid_argument(message.str());
    }
    return t.detach().to(at::kCPU, at::kDouble);
  }
  // A [1, C, 1, 1] learnable bias or a [C] vector, as a [C] float tensor.
  at::Tensor vector(const std::string& name, int64_t channels) const {
    auto it = map_.find(name);
    if (it == map_.end()) throw std::invalid_argument("the state dict has no '" + name + "'");
    if (it->second.numel() != channels) {
      throw std::invalid_argument("'" + name + "' holds " + std::to_string(it->second.numel()) + " values, expected " +
                                  std::to_string(channels));
    }
    return get(name, {}).reshape({channels}).to(at::kFloat);
  }

 private:
  std::unordered_map<std::string, at::Tensor> map_;
};

// BatchNorm in eval mode as y = x * factor + offset, per channel (double precision).
std::pair<at::Tensor, at::Tensor> batch_norm_affine(const StateView& state, const std::string& prefix, int64_t channels) {
  const at::Tensor gamma = state.get(prefix + ".weight", {channels});
  const at::Tensor beta = state.get(prefix + ".bias", {channels});
  const at::Tensor mean = state.get(prefix + ".running_mean", {channels});
  const at::Tensor var = state.get(prefix + ".running_var", {channels});
  const at::Tensor factor = gamma / at::sqrt(var + kBatchNormEps);
  return {factor, beta - mean * factor};
}

struct FoldedConv {
  at::Tensor bits, scale, shift;
};

// alpha_o * sign(W) convolved, then BatchNorm: acc * (alpha * factor) + offset. alpha is computed
// in float32 from float32 weights, the way training computes it.
FoldedConv fold_binary_conv(const StateView& state, const std::string& conv, const std::string& bn, int64_t in,
                            int64_t out, int64_t kernel, ExportReport* report) {
  const at::Tensor weight = state.get(conv + ".weight", {out, in, kernel, kernel}).to(at::kFloat);
  const at::Tensor alpha = weight.abs().mean({1, 2, 3}).to(at::kDouble);
  const auto [factor, offset] = batch_norm_affine(state, bn, out);
  if (report) {
    report->binary_weights += weight.numel();
    report->zero_weights += weight.eq(0).sum().item<int64_t>();
  }
  return {ops::pack_weights(weight), (alpha * factor).to(at::kFloat), offset.to(at::kFloat)};
}

std::string block_name(size_t index, const char* part) { return "feature." + std::to_string(index) + "." + part; }

// The per-block float vectors in file order, with their channel counts.
std::vector<std::pair<const char*, at::Tensor PackedBlock::*>> block_vectors() {
  return {{"move11", &PackedBlock::move11}, {"move12", &PackedBlock::move12}, {"prelu1", &PackedBlock::prelu1},
          {"move13", &PackedBlock::move13}, {"move21", &PackedBlock::move21}, {"move22", &PackedBlock::move22},
          {"prelu2", &PackedBlock::prelu2}, {"move23", &PackedBlock::move23}};
}

int64_t vector_channels(const PackedBlock& block, const std::string& name) {
  return name == "move22" || name == "prelu2" || name == "move23" ? block.out : block.in;
}

io::json::Value json_int(int64_t v) { return io::json::Value::of_number(static_cast<double>(v)); }

int64_t json_integer(const io::json::Value& object, const std::string& key, const std::string& where) {
  const io::json::Value* v = object.field(key);
  if (!v || v->type != io::json::Type::Number || v->number != std::floor(v->number) || v->number < 0 || v->number > 1e9) {
    throw std::runtime_error(where + ": config." + key + " is missing or not a non-negative integer");
  }
  return static_cast<int64_t>(v->number);
}

std::string json_text(const io::json::Value& object, const std::string& key, const std::string& where) {
  const io::json::Value* v = object.field(key);
  if (!v || v->type != io::json::Type::String) throw std::runtime_error(where + ": config." + key + " is missing or not a string");
  return v->string;
}

bool is_head_matrix(const std::string& name) { return name == "fc.weight" || name == "fc.0.weight" || name == "fc.2.weight"; }

}  // namespace

PackedReActNet PackedReActNet::from_state(const Named& named, bool small_stem, bool half_head, ExportReport* report) {
  const StateView state(named);
  ExportReport local;
  if (!report) report = &local;
  Named tensors;
  PackedConfig config;
  config.stem_stride = small_stem ? 1 : 2;

  const at::Tensor stem = state.get("feature.0.conv1.weight", {});
  if (stem.dim() != 4 || stem.size(2) != 3 || stem.size(3) != 3) {
    throw std::invalid_argument("'feature.0.conv1.weight' must be a 3x3 convolution [C, in, 3, 3]");
  }
  const int64_t stem_channels = stem.size(0);
  config.in_channels = stem.size(1);
  const auto [stem_factor, stem_offset] = batch_norm_affine(state, "feature.0.bn1", stem_channels);
  tensors.emplace_back("feature.0.conv.weight", (stem * stem_factor.view({-1, 1, 1, 1})).to(at::kFloat));
  tensors.emplace_back("feature.0.conv.bias", stem_offset.to(at::kFloat));

  // Stride 2 where the paper's width changes, except into 64 (ReActNetA's rule, on base widths).
  const auto& base = nn::ReActNetA::base_widths();
  std::vector<int64_t> strides;
  int64_t channels = stem_channels;
  for (size_t i = 1; state.has(block_name(i, "move11.bias")); ++i) {
    if (i >= base.size()) throw std::invalid_argument("the state dict has more blocks than ReActNet-A's 13");
    PackedBlock block;
    block.in = channels;
    // A block keeps or doubles its width; move22 has the output's. Official state dicts hold both
    // kinds of 1x1 stage in every block, so which one is present says nothing.
    const at::Tensor move22 = state.get(block_name(i, "move22.bias"), {});
    block.out = move22.numel();
    if (block.out != channels && block.out != 2 * channels) {
      throw std::invalid_argument("'" + block_name(i, "move22.bias") + "' holds " + std::to_string(block.out) +
                                  " values: a block from " + std::to_string(channels) + " channels keeps or doubles them");
    }
    block.stride = base[i] != base[i - 1] && base[i] != 64 ? 2 : 1;
    strides.push_back(block.stride);
    for (const auto& [name, member] : block_vectors()) {
      const std::string prefix = block_name(i, name);
      const bool bias = name[0] == 'm';
      tensors.emplace_back(prefix, state.vector(prefix + (bias ? ".bias" : ".weight"), vector_channels(block, name)));
    }
    const FoldedConv c3 = fold_binary_conv(state, block_name(i, "binary_3x3"), block_name(i, "bn1"), block.in, block.in, 3, report);
    FoldedConv c1;
    if (block.out == block.in) {
      c1 = fold_binary_conv(state, block_name(i, "binary_pw"), block_name(i, "bn2"), block.in, block.in, 1, report);
    } else {
      // Both halves read the same packed input: one convolution with the two weights stacked.
      const FoldedConv a = fold_binary_conv(state, block_name(i, "binary_pw_down1"), block_name(i, "bn2_1"), block.in, block.in, 1, report);
      const FoldedConv b = fold_binary_conv(state, block_name(i, "binary_pw_down2"), block_name(i, "bn2_2"), block.in, block.in, 1, report);
      c1 = {at::cat({a.bits, b.bits}), at::cat({a.scale, b.scale}), at::cat({a.shift, b.shift})};
    }
    for (const auto& [part, conv] : {std::pair<const char*, const FoldedConv*>{"binary_3x3", &c3}, {"binary_1x1", &c1}}) {
      tensors.emplace_back(block_name(i, part) + std::string(".bits"), conv->bits);
      tensors.emplace_back(block_name(i, part) + std::string(".scale"), conv->scale);
      tensors.emplace_back(block_name(i, part) + std::string(".shift"), conv->shift);
    }
    channels = block.out;
  }
  if (strides.empty()) throw std::invalid_argument("the state dict has no ReActNet-A blocks (feature.1.move11.bias)");

  if (state.has("fc.weight")) {
    const at::Tensor w = state.get("fc.weight", {});
    if (w.dim() != 2 || w.size(1) != channels) throw std::invalid_argument("'fc.weight' must be [classes, " + std::to_string(channels) + "]");
    config.head = "linear";
    config.outputs = w.size(0);
    tensors.emplace_back("fc.weight", w.to(at::kFloat));
    tensors.emplace_back("fc.bias", state.get("fc.bias", {config.outputs}).to(at::kFloat));
  } else if (state.has("fc.0.weight")) {
    const at::Tensor w0 = state.get("fc.0.weight", {channels, channels});
    const at::Tensor w2 = state.get("fc.2.weight", {});
    if (w2.dim() != 2 || w2.size(1) != channels) throw std::invalid_argument("'fc.2.weight' must be [dim, " + std::to_string(channels) + "]");
    config.head = "mlp";
    config.outputs = w2.size(0);
    tensors.emplace_back("fc.0.weight", w0.to(at::kFloat));
    tensors.emplace_back("fc.0.bias", state.get("fc.0.bias", {channels}).to(at::kFloat));
    tensors.emplace_back("fc.2.weight", w2.to(at::kFloat));
    tensors.emplace_back("fc.2.bias", state.get("fc.2.bias", {config.outputs}).to(at::kFloat));
  } else {
    throw std::invalid_argument("the state dict has no head ('fc.weight' or 'fc.0.weight')");
  }
  if (half_head) {
    // Rounded here, so the model in memory is the one the file holds.
    config.head_dtype = "float16";
    for (auto& [name, tensor] : tensors) {
      if (is_head_matrix(name)) tensor = tensor.to(at::kHalf).to(at::kFloat);
    }
  }
  return from_tensors(config, strides, tensors, "export");
}

PackedReActNet PackedReActNet::from_tensors(const PackedConfig& config, const std::vector<int64_t>& strides,
                                            const Named& tensors, const std::string& where) {
  std::unordered_map<std::string, at::Tensor> map;
  for (const auto& [name, tensor] : tensors) {
    if (!map.emplace(name, tensor).second) throw std::runtime_error(where + ": tensor '" + name + "' appears twice");
  }
  std::unordered_set<std::string> taken;
  auto take = [&](const std::string& name, at::ScalarType dtype, std::vector<int64_t> shape) {
    if (is_head_matrix(name) && config.head_dtype == "float16" && map.count(name) && map.at(name).scalar_type() == at::kHalf) {
      map[name] = map.at(name).to(at::kFloat);
    }
    auto it = map.find(name);
    if (it == map.end()) throw std::runtime_error(where + ": missing tensor '" + name + "'");
    const at::Tensor& t = it->second;
    if (t.scalar_type() != dtype || t.sizes() != at::IntArrayRef(shape)) {
      std::ostringstream message;
      message << where << ": tensor '" << name << "' is " << t.scalar_type() << " " << t.sizes() << ", expected "
              << dtype << " " << at::IntArrayRef(shape);
      throw std::runtime_error(message.str());
    }
    if (dtype == at::kFloat && !at::isfinite(t).all().item<bool>()) {
      throw std::runtime_error(where + ": tensor '" + name + "' holds NaN or Inf values");
    }
    taken.insert(name);
    return t.contiguous();
  };

  if (config.in_channels < 1) throw std::runtime_error(where + ": config.in_channels must be >= 1");
  if (config.stem_stride != 1 && config.stem_stride != 2) throw std::runtime_error(where + ": config.stem_stride must be 1 or 2");
  if (config.head != "linear" && config.head != "mlp") throw std::runtime_error(where + ": config.head must be 'linear' or 'mlp'");
  if (config.outputs < 1) throw std::runtime_error(where + ": config.outputs must be >= 1");
  if (config.head_dtype != "float32" && config.head_dtype != "float16") {
    throw std::runtime_error(where + ": config.head_dtype must be 'float32' or 'float16'");
  }

  PackedReActNet model;
  model.config_ = config;
  const at::Tensor stem = map.count("feature.0.conv.weight") ? map.at("feature.0.conv.weight") : at::Tensor();
  if (!stem.defined() || stem.dim() != 4) throw std::runtime_error(where + ": missing or malformed tensor 'feature.0.conv.weight'");
  int64_t channels = stem.size(0);
  model.stem_weight_ = take("feature.0.conv.weight", at::kFloat, {channels, config.in_channels, 3, 3})
                           .contiguous(at::MemoryFormat::ChannelsLast);
  model.stem_bias_ = take("feature.0.conv.bias", at::kFloat, {channels});
  for (size_t b = 0; b < strides.size(); ++b) {
    const size_t i = b + 1;
    if (strides[b] != 1 && strides[b] != 2) throw std::runtime_error(where + ": block " + std::to_string(i) + " has stride other than 1 or 2");
    PackedBlock block;
    block.in = channels;
    const std::string bits1 = block_name(i, "binary_1x1.bits");
    if (!map.count(bits1) || map.at(bits1).dim() != 4) throw std::runtime_error(where + ": missing or malformed tensor '" + bits1 + "'");
    block.out = map.at(bits1).size(0);
    if (block.out != block.in && block.out != 2 * block.in) {
      throw std::runtime_error(where + ": block " + std::to_string(i) + " maps " + std::to_string(block.in) + " to " +
                               std::to_string(block.out) + " channels (a ReActNet block keeps or doubles its width)");
    }
    block.stride = strides[b];
    for (const auto& [name, member] : block_vectors()) {
      block.*member = take(block_name(i, name), at::kFloat, {vector_channels(block, name)});
    }
    const int64_t words = words_for(block.in);
    block.conv3x3_bits = take(block_name(i, "binary_3x3.bits"), at::kLong, {block.in, 3, 3, words});
    block.conv3x3_scale = take(block_name(i, "binary_3x3.scale"), at::kFloat, {block.in});
    block.conv3x3_shift = take(block_name(i, "binary_3x3.shift"), at::kFloat, {block.in});
    block.conv1x1_bits = take(bits1, at::kLong, {block.out, 1, 1, words});
    block.conv1x1_scale = take(block_name(i, "binary_1x1.scale"), at::kFloat, {block.out});
    block.conv1x1_shift = take(block_name(i, "binary_1x1.shift"), at::kFloat, {block.out});
    model.blocks_.push_back(std::move(block));
    channels = model.blocks_.back().out;
  }
  if (config.head == "linear") {
    model.fc_weight_ = take("fc.weight", at::kFloat, {config.outputs, channels});
    model.fc_bias_ = take("fc.bias", at::kFloat, {config.outputs});
  } else {
    model.fc_weight_ = take("fc.0.weight", at::kFloat, {channels, channels});
    model.fc_bias_ = take("fc.0.bias", at::kFloat, {channels});
    model.fc2_weight_ = take("fc.2.weight", at::kFloat, {config.outputs, channels});
    model.fc2_bias_ = take("fc.2.bias", at::kFloat, {config.outputs});
  }
  for (const auto& [name, tensor] : tensors) {
    if (!taken.count(name)) throw std::runtime_error(where + ": tensor '" + name + "' is not part of the network its config describes");
  }
  model.prepare();
  return model;
}

void PackedReActNet::prepare() {
  for (auto& block : blocks_) {
    block.conv3x3_prepared = ops::bconv_prepare(block.conv3x3_bits, block.in);
    block.conv1x1_prepared = ops::bconv_prepare(block.conv1x1_bits, block.in);
  }
}

Named PackedReActNet::tensors() const {
  Named out;
  out.emplace_back("feature.0.conv.weight", stem_weight_.contiguous());
  out.emplace_back("feature.0.conv.bias", stem_bias_);
  for (size_t b = 0; b < blocks_.size(); ++b) {
    const PackedBlock& block = blocks_[b];
    for (const auto& [name, member] : block_vectors()) out.emplace_back(block_name(b + 1, name), block.*member);
    out.emplace_back(block_name(b + 1, "binary_3x3.bits"), block.conv3x3_bits);
    out.emplace_back(block_name(b + 1, "binary_3x3.scale"), block.conv3x3_scale);
    out.emplace_back(block_name(b + 1, "binary_3x3.shift"), block.conv3x3_shift);
    out.emplace_back(block_name(b + 1, "binary_1x1.bits"), block.conv1x1_bits);
    out.emplace_back(block_name(b + 1, "binary_1x1.scale"), block.conv1x1_scale);
    out.emplace_back(block_name(b + 1, "binary_1x1.shift"), block.conv1x1_shift);
  }
  if (config_.head == "linear") {
    out.emplace_back("fc.weight", fc_weight_);
    out.emplace_back("fc.bias", fc_bias_);
  } else {
    out.emplace_back("fc.0.weight", fc_weight_);
    out.emplace_back("fc.0.bias", fc_bias_);
    out.emplace_back("fc.2.weight", fc2_weight_);
    out.emplace_back("fc.2.bias", fc2_bias_);
  }
  return out;
}

std::string PackedReActNet::config_json() const {
  using io::json::Value;
  Value root;
  root.type = io::json::Type::Object;
  root.object.emplace_back("arch", Value::of_string("reactnet-a"));
  root.object.emplace_back("in_channels", json_int(config_.in_channels));
  root.object.emplace_back("stem_stride", json_int(config_.stem_stride));
  root.object.emplace_back("head", Value::of_string(config_.head));
  root.object.emplace_back("outputs", json_int(config_.outputs));
  root.object.emplace_back("head_dtype", Value::of_string(config_.head_dtype));
  Value strides;
  strides.type = io::json::Type::Array;
  for (const auto& block : blocks_) strides.array.push_back(json_int(block.stride));
  root.object.emplace_back("block_strides", strides);
  // The packing convention, so a reader can check it instead of assuming it.
  root.object.emplace_back("word_bits", json_int(kWordBits));
  root.object.emplace_back("bit_order", Value::of_string("channel c is bit c % 64 of word c / 64"));
  root.object.emplace_back("bit_set_means", Value::of_string("-1 (x < 0); sign(0) packs as +1"));
  return io::json::dump(root);
}

void PackedReActNet::save(const std::string& path) const {
  auto root = io::Value::container(io::Value::Kind::Dict);
  root->entries.emplace_back(io::Value::of_string("format"), io::Value::of_string(kPackedFormat));
  root->entries.emplace_back(io::Value::of_string("version"), io::Value::of_string(std::to_string(kPackedVersion)));
  root->entries.emplace_back(io::Value::of_string("config"), io::Value::of_string(config_json()));
  auto state = io::Value::container(io::Value::Kind::OrderedDict);
  for (const auto& [name, tensor] : tensors()) {
    const bool half = config_.head_dtype == "float16" && is_head_matrix(name);
    state->entries.emplace_back(io::Value::of_string(name),
                                io::Value::of_tensor((half ? tensor.to(at::kCPU, at::kHalf) : tensor.to(at::kCPU)).contiguous()));
  }
  root->entries.emplace_back(io::Value::of_string("state_dict"), state);
  io::save_checkpoint(path, root, io::Format::Safetensors);
}

PackedReActNet PackedReActNet::load(const std::string& path) {
  const io::Checkpoint checkpoint = io::load_checkpoint(path);
  const std::string where = path;
  auto metadata = [&](const char* key) -> std::string {
    const io::ValuePtr v = checkpoint.root->get(key);
    return v && v->kind == io::Value::Kind::String ? v->text : std::string();
  };
  if (checkpoint.format != io::Format::Safetensors || metadata("format") != kPackedFormat) {
    throw std::runtime_error(where + " is not a packed s2bnn model (expected a safetensors file with format '" +
                             std::string(kPackedFormat) + "'; 's2bnn export' writes one)");
  }
  const std::string version = metadata("version");
  if (version != std::to_string(kPackedVersion)) {
    throw std::runtime_error(where + " has packed-model version '" + version + "'; this s2bnn reads version " +
                             std::to_string(kPackedVersion));
  }
  io::json::Value config_json;
  try {
    config_json = io::json::parse(metadata("config"));
  } catch (const std::runtime_error& error) {
    throw std::runtime_error(where + ": bad config metadata: " + error.what());
  }
  if (config_json.type != io::json::Type::Object) throw std::runtime_error(where + ": the config metadata is not an object");
  if (json_text(config_json, "arch", where) != "reactnet-a") throw std::runtime_error(where + ": config.arch must be 'reactnet-a'");
  if (json_integer(config_json, "word_bits", where) != kWordBits) throw std::runtime_error(where + ": config.word_bits must be 64");
  PackedConfig config;
  config.in_channels = json_integer(config_json, "in_channels", where);
  config.stem_stride = json_integer(config_json, "stem_stride", where);
  config.head = json_text(config_json, "head", where);
  config.outputs = json_integer(config_json, "outputs", where);
  config.head_dtype = json_text(config_json, "head_dtype", where);
  const io::json::Value* strides_json = config_json.field("block_strides");
  if (!strides_json || strides_json->type != io::json::Type::Array || strides_json->array.empty() ||
      strides_json->array.size() > 64) {
    throw std::runtime_error(where + ": config.block_strides must be a non-empty array");
  }
  std::vector<int64_t> strides;
  for (const auto& s : strides_json->array) {
    if (s.type != io::json::Type::Number) throw std::runtime_error(where + ": config.block_strides holds a non-number");
    strides.push_back(static_cast<int64_t>(s.number));
  }
  Named tensors;
  const io::ValuePtr state = io::find_state_dict(checkpoint.root);
  for (const auto& [key, value] : state->entries) {
    if (value->kind != io::Value::Kind::Tensor) throw std::runtime_error(where + ": '" + key->text + "' is not a tensor");
    tensors.emplace_back(key->text, value->tensor);
  }
  return from_tensors(config, strides, tensors, where);
}

void PackedReActNet::to(const at::Device& device) {
  auto move = [&](at::Tensor& t) {
    if (t.defined()) t = t.to(device);
  };
  move(stem_weight_);
  stem_weight_ = stem_weight_.contiguous(at::MemoryFormat::ChannelsLast);
  move(stem_bias_);
  for (auto& block : blocks_) {
    for (const auto& [name, member] : block_vectors()) move(block.*member);
    for (at::Tensor* t : {&block.conv3x3_bits, &block.conv3x3_scale, &block.conv3x3_shift, &block.conv1x1_bits,
                          &block.conv1x1_scale, &block.conv1x1_shift}) {
      move(*t);
    }
  }
  move(fc_weight_);
  move(fc_bias_);
  move(fc2_weight_);
  move(fc2_bias_);
  prepare();
}

at::Tensor PackedReActNet::block_forward(const PackedBlock& block, const at::Tensor& x) const {
  // 1. sign(x + b11) packed, binary 3x3 with alpha and BN1 in its epilogue; shortcut.
  at::Tensor y = ops::bconv2d_prepared(ops::pack_signs(x, block.move11), block.conv3x3_bits, block.conv3x3_prepared,
                                       block.in, block.stride, 1, block.conv3x3_scale, block.conv3x3_shift);
  // Training's ceil_mode pooling (see ReActBlockImpl::forward).
  const at::Tensor shortcut = block.stride == 2 ? at::avg_pool2d(x, {2, 2}, {2, 2}, {0, 0}, /*ceil_mode=*/true) : x;
  y = ops::rprelu(y.add_(shortcut), block.move12, block.prelu1, block.move13);
  // 2. sign(y + b21) packed once for the 1x1 stage (both halves when the width doubles).
  at::Tensor z = ops::bconv2d_prepared(ops::pack_signs(y, block.move21), block.conv1x1_bits, block.conv1x1_prepared,
                                       block.in, 1, 0, block.conv1x1_scale, block.conv1x1_shift);
  if (block.out == block.in) {
    z.add_(y);
  } else {
    z.narrow(1, 0, block.in).add_(y);
    z.narrow(1, block.in, block.in).add_(y);
  }
  return ops::rprelu(z, block.move22, block.prelu2, block.move23);
}

at::Tensor PackedReActNet::features(const at::Tensor& x) const {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == config_.in_channels, "packed reactnet-a: the input must be [N, ",
              config_.in_channels, ", H, W], got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat, "packed reactnet-a: the input must be float32, got ", x.scalar_type());
  TORCH_CHECK(x.device() == device(), "packed reactnet-a: the input is on ", x.device(), ", the model on ", device());
  c10::InferenceMode inference;
  at::Tensor y = at::conv2d(x.contiguous(at::MemoryFormat::ChannelsLast), stem_weight_, stem_bias_,
                            {config_.stem_stride, config_.stem_stride}, {1, 1});
  // oneDNN keeps channels-last; the packing and the epilogues read channels contiguously.
  y = y.contiguous(at::MemoryFormat::ChannelsLast);
  for (const auto& block : blocks_) y = block_forward(block, y);
  return y.mean({2, 3});
}

at::Tensor PackedReActNet::forward(const at::Tensor& x) const {
  at::Tensor f = features(x);
  c10::InferenceMode inference;
  if (config_.head == "linear") return at::linear(f, fc_weight_, fc_bias_);
  at::Tensor e = at::linear(at::relu(at::linear(f, fc_weight_, fc_bias_)), fc2_weight_, fc2_bias_);
  return e / e.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
}

}  // namespace s2bnn::deploy
