// Image sources: what the loader reads samples from. The loader only needs size(), label(i) and
// load(i) -> an HWC uint8 image of any size, so in-memory tensors (this file) and decoded files
// (image_folder.h) plug into the same batching and augmentation.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace s2bnn::data {

// One decoded image, HWC uint8, rows packed (row stride = width * channels). `pixels` points
// either into `storage` (a decoder's output) or into memory the source keeps alive (`keep`).
// Move-only: a copy would leave `pixels` pointing into the original's storage.
struct Image {
  int64_t height = 0, width = 0, channels = 0;
  const uint8_t* pixels = nullptr;
  std::vector<uint8_t> storage;
  std::shared_ptr<const void> keep;

  Image() = default;
  Image(Image&&) = default;
  Image& operator=(Image&&) = default;
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  uint8_t at(int64_t y, int64_t x, int64_t c) const { return pixels[(y * width + x) * channels + c]; }
};

// A sample that cannot be decoded (unreadable, empty, truncated or not an image). The loader
// catches exactly this type to skip the sample; any other exception from load() fails the batch.
class BadImage : public std::runtime_error {
 public:
  BadImage(std::string path, std::string reason)
      : std::runtime_error(path + ": " + reason), path(std::move(path)), reason(std::move(reason)) {}
  std::string path, reason;
};

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual int64_t size() const = 0;
  virtual int64_t label(int64_t i) const = 0;
  // Channels of every sample after conversion (1 or 3): load() may return 1, 3 or 4 (RGBA)
  // channels; the transforms convert as PIL's convert('L' / 'RGB') would.
  virtual int64_t channels() const = 0;
  // Called concurrently from the loader's workers: must be thread-safe. Throws BadImage for a
  // sample that cannot be decoded.
  virtual Image load(int64_t i) const = 0;
};

using SourcePtr = std::shared_ptr<const ImageSource>;

// What subset() of any source keeps: the base positions of `indices`, positions in a view of
// `size` samples whose i-th is base(i). Throws std::invalid_argument naming an index outside the
// view, or when nothing is selected.
std::shared_ptr<const std::vector<int64_t>> subset_map(const std::vector<int64_t>& indices, int64_t size,
                                                       const std::function<int64_t(int64_t)>& base);

// Images in one uint8 tensor [N, H, W, C] with int64 labels [N], optionally seen through an
// index map (subset). Shares the tensor's memory; loading is a pointer into it.
class InMemorySource : public ImageSource {
 public:
  // Throws std::invalid_argument naming the argument when shapes, dtypes or labels are wrong.
  InMemorySource(at::Tensor images, at::Tensor labels, int64_t num_classes);

  int64_t size() const override { return static_cast<int64_t>(map_ ? map_->size() : base_size_); }
  int64_t label(int64_t i) const override { return (*labels_)[static_cast<size_t>(base_index(i))]; }
  int64_t channels() const override { return images_.size(3); }
  Image load(int64_t i) const override;

  int64_t height() const { return images_.size(1); }
  int64_t width() const { return images_.size(2); }
  int64_t num_classes() const { return num_classes_; }

  // A view of the samples `indices` (positions in this source, repeats allowed).
  std::shared_ptr<InMemorySource> subset(const std::vector<int64_t>& indices) const;
  // The samples' images [size(), H, W, C] and labels [size()] (copies when this is a subset).
  at::Tensor images() const;
  at::Tensor labels() const;

 private:
  InMemorySource() = default;
  int64_t base_index(int64_t i) const { return map_ ? (*map_)[static_cast<size_t>(i)] : i; }

  at::Tensor images_;
  std::shared_ptr<const std::vector<int64_t>> labels_;
  std::shared_ptr<const std::vector<int64_t>> map_;  // null: identity
  int64_t base_size_ = 0;
  int64_t num_classes_ = 0;
};

}  // namespace s2bnn::data
