#include "model.h"

#include <sstream>
#include <unordered_map>

namespace s2bnn::nn {

ProjectionHead::ProjectionHead(torch::nn::Module& owner, int64_t in_features, const HeadOptions& options)
    : options_(options), in_features_(in_features) {
  if (options.kind == Head::Linear) {
    linear_ = owner.register_module("fc", torch::nn::Linear(in_features, options.classes));
  } else {
    mlp_ = owner.register_module(
        "fc", torch::nn::Sequential(torch::nn::Linear(in_features, in_features), torch::nn::ReLU(),
                                    torch::nn::Linear(in_features, options.dim)));
  }
}

at::Tensor ProjectionHead::operator()(const at::Tensor& features) {
  if (options_.kind == Head::Linear) return linear_->forward(features);
  return torch::nn::functional::normalize(mlp_->forward(features),
                                          torch::nn::functional::NormalizeFuncOptions().dim(1));
}

double ProjectionHead::flops() const {
  if (options_.kind == Head::Linear) return double(in_features_) * double(options_.classes);
  return double(in_features_) * double(in_features_) + double(in_features_) * double(options_.dim);
}

namespace {

void collect(const torch::nn::Module& module, const std::string& prefix,
             std::vector<std::pair<std::string, at::Tensor>>& out) {
  for (const auto& p : module.named_parameters(/*recurse=*/false)) out.emplace_back(prefix + p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/false)) out.emplace_back(prefix + b.key(), b.value());
  for (const auto& child : module.named_children()) collect(*child.value(), prefix + child.key() + ".", out);
}

std::string shape_text(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out;
}

}  // namespace

bool under_any(const std::string& name, const std::vector<std::string>& modules) {
  for (const auto& module : modules) {
    if (name.size() > module.size() && name.compare(0, module.size(), module) == 0 && name[module.size()] == '.') return true;
  }
  return false;
}

std::vector<std::pair<std::string, at::Tensor>> active_parameters(const Model& model) {
  const auto unused = model.unused_modules();
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : model.named_parameters()) {
    if (!under_any(p.key(), unused)) out.emplace_back(p.key(), p.value());
  }
  return out;
}

int64_t parameter_count(const Model& model) {
  int64_t count = 0;
  for (const auto& [name, p] : active_parameters(model)) count += p.numel();
  return count;
}

std::vector<std::pair<std::string, at::Tensor>> state_dict(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  collect(module, "", out);
  return out;
}

LoadResult load_state_dict(Model& model, const std::vector<std::pair<std::string, at::Tensor>>& entries, bool strict) {
  const auto own = state_dict(model);
  const auto unused = model.unused_modules();
  std::unordered_map<std::string, const at::Tensor*> given;
  for (const auto& [name, tensor] : entries) given[name] = &tensor;
  LoadResult result;
  // Check everything before copying anything, so a failed load leaves the model untouched.
  for (const auto& [name, target] : own) {
    auto found = given.find(name);
    if (found == given.end()) {
      const bool tracked_counter = name.size() >= 19 && name.compare(name.size() - 19, 19, "num_batches_tracked") == 0;
      if (!tracked_counter && !under_any(name, unused)) result.missing.push_back(name);
      continue;
    }
    if (found->second->sizes() != target.sizes()) {
      TORCH_CHECK(false, "size mismatch for ", name, ": the checkpoint has shape ", shape_text(*found->second),
                  ", the model has shape ", shape_text(target));
    }
  }
  std::unordered_map<std::string, bool> known;
  for (const auto& [name, target] : own) known[name] = true;
  for (const auto& [name, tensor] : entries) {
    if (!known.count(name)) result.unexpected.push_back(name);
  }
  if (strict && (!result.missing.empty() || !result.unexpected.empty())) {
    std::ostringstream message;
    message << "the state dict does not match the model";
    if (!result.missing.empty()) message << "; missing keys: " << join(result.missing);
    if (!result.unexpected.empty()) message << "; unexpected keys: " << join(result.unexpected);
    TORCH_CHECK(false, message.str());
  }
  torch::NoGradGuard no_grad;
  for (auto [name, target] : own) {  // a copy of the handle: copy_ writes the shared storage
    auto found = given.find(name);
    if (found != given.end()) target.copy_(*found->second);
  }
  return result;
}

}  // namespace s2bnn::nn
