#include "source.h"

#include <stdexcept>

namespace s2bnn::data {

InMemorySource::InMemorySource(at::Tensor images, at::Tensor labels, int64_t num_classes) {
  if (!images.defined() || images.scalar_type() != at::kByte || images.dim() != 4) {
    throw std::invalid_argument("images must be a uint8 tensor [N, H, W, C]");
  }
  if (images.size(3) != 1 && images.size(3) != 3) {
    throw std::invalid_argument("images must have 1 or 3 channels (the last dimension), got " +
                                std::to_string(images.size(3)));
  }
  if (images.size(0) < 1 || images.size(1) < 1 || images.size(2) < 1) {
    throw std::invalid_argument("images must hold at least one image of at least 1 x 1 pixels");
  }
  // Philox streams carry the sample index in 32 bits.
  if (images.size(0) > 0xFFFFFFFFll) throw std::invalid_argument("images holds more than 2^32 samples");
  if (!images.device().is_cpu()) throw std::invalid_argument("images must be on the CPU");
  if (!labels.defined() || labels.scalar_type() != at::kLong || labels.dim() != 1) {
    throw std::invalid_argument("labels must be an int64 tensor [N]");
  }
  if (labels.size(0) != images.size(0)) {
    throw std::invalid_argument("labels has " + std::to_string(labels.size(0)) + " entries but images has " +
                                std::to_string(images.size(0)));
  }
  if (num_classes < 1) throw std::invalid_argument("numClasses must be >= 1");
  images_ = images.contiguous();
  const at::Tensor l = labels.to(at::kCPU).contiguous();
  const int64_t* data = l.data_ptr<int64_t>();
  auto copy = std::make_shared<std::vector<int64_t>>(data, data + l.numel());
  for (size_t i = 0; i < copy->size(); ++i) {
    if ((*copy)[i] < 0 || (*copy)[i] >= num_classes) {
      throw std::invalid_argument("labels[" + std::to_string(i) + "] = " + std::to_string((*copy)[i]) +
                                  " is outside [0, " + std::to_string(num_classes) + ")");
    }
  }
  labels_ = std::move(copy);
  base_size_ = images_.size(0);
  num_classes_ = num_classes;
}

Image InMemorySource::load(int64_t i) const {
  if (i < 0 || i >= size()) throw std::out_of_range("sample index " + std::to_string(i) + " out of range");
  Image image;
  image.height = images_.size(1);
  image.width = images_.size(2);
  image.channels = images_.size(3);
  image.pixels = images_.data_ptr<uint8_t>() + base_index(i) * image.height * image.width * image.channels;
  return image;
}

std::shared_ptr<const std::vector<int64_t>> subset_map(const std::vector<int64_t>& indices, int64_t size,
                                                       const std::function<int64_t(int64_t)>& base) {
  auto map = std::make_shared<std::vector<int64_t>>();
  map->reserve(indices.size());
  for (size_t k = 0; k < indices.size(); ++k) {
    const int64_t i = indices[k];
    if (i < 0 || i >= size) {
      throw std::invalid_argument("indices[" + std::to_string(k) + "] = " + std::to_string(i) + " is outside [0, " +
                                  std::to_string(size) + ")");
    }
    map->push_back(base(i));
  }
  if (map->empty()) throw std::invalid_argument("indices must select at least one sample");
  return map;
}

std::shared_ptr<InMemorySource> InMemorySource::subset(const std::vector<int64_t>& indices) const {
  auto map = subset_map(indices, size(), [this](int64_t i) { return base_index(i); });
  std::shared_ptr<InMemorySource> out(new InMemorySource());
  out->images_ = images_;
  out->labels_ = labels_;
  out->map_ = std::move(map);
  out->base_size_ = base_size_;
  out->num_classes_ = num_classes_;
  return out;
}

at::Tensor InMemorySource::images() const {
  if (!map_) return images_;
  return images_.index_select(0, at::tensor(*map_, at::kLong));
}

at::Tensor InMemorySource::labels() const {
  at::Tensor out = at::empty({size()}, at::kLong);
  int64_t* data = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < size(); ++i) data[i] = label(i);
  return out;
}

}  // namespace s2bnn::data
