// Image sources: what the loader reads samples from. The loader only needs size(), label(i) and
// load(i) -> an HWC uint8 image of any size, so in-memory tensors (this file) and decoded files
// (image_folder.h) plug into the same batching and augmentation.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace s2bnn::data {

// A rectangle of an image, in pixels.
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// One decoded image, HWC uint8, rows packed (row stride = width * channels). `pixels` points
// either into `storage` (a decoder's output) or into memory the source keeps alive (`keep`).
// Move-only: a copy would leave `pixels` pointing into the original's storage.
//
// A crop-aware decode (DecodeRequest) may hold only part of the image, at a reduced scale: the
// pixels are then rows [origin_y, origin_y + height) and columns [origin_x, origin_x + width)
// of the image reduced by `scale` (each pixel covering scale x scale pixels of the original),
// and full_height x full_width is the original's size. Transforms take their parameters in the
// original's pixels and map them (augment.h's resample).
struct Image {
  int64_t height = 0, width = 0, channels = 0;
  int64_t scale = 1, origin_y = 0, origin_x = 0;
  int64_t full_height = 0, full_width = 0;  // 0: height / width (a whole image at full scale)
  const uint8_t* pixels = nullptr;
  std::vector<uint8_t> storage;
  std::shared_ptr<const void> keep;

  Image() = default;
  Image(Image&&) = default;
  Image& operator=(Image&&) = default;
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  uint8_t at(int64_t y, int64_t x, int64_t c) const { return pixels[(y * width + x) * channels + c]; }
  int64_t original_height() const { return full_height ? full_height : height; }
  int64_t original_width() const { return full_width ? full_width : width; }
};

// What the loader asks of a crop-aware source once it knows an image's size: the regions its
// transforms read (in the original's pixels) and, per region, the reduction (1, 2, 4 or 8) it
// may be decoded at. `view_region[v]` is the region serving view v.
struct DecodeRegion {
  CropBox box;
  int64_t scale = 1;
};
struct DecodeRequest {
  std::vector<DecodeRegion> regions;  // empty: the whole image at full scale
  std::array<int64_t, 2> view_region{0, 0};
};
// Called with the original's height and width (from the file's header, before decoding).
using DecodePlanner = std::function<DecodeRequest(int64_t height, int64_t width)>;

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
  // Crop-aware load: calls `plan` once with the image's size and returns one image per requested
  // region (in order), or a single image that serves every region (the whole image at full
  // scale: what this default does). Same thread-safety and BadImage contract as load().
  virtual std::vector<Image> load_planned(int64_t i, const DecodePlanner& plan) const {
    std::vector<Image> out;
    out.push_back(load(i));
    plan(out[0].original_height(), out[0].original_width());
    return out;
  }
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
