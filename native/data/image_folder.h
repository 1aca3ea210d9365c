// ImageFolder trees (torchvision's layout: root/<class>/**/<image>) decoded with libjpeg-turbo and
// libpng (decode.h) on the loader's worker threads. Files that do not decode fail at load() with
// BadImage, so the loader skips and reports them instead of silently dropping them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "source.h"

namespace s2bnn::data {

class ImageFolderSource : public ImageSource {
 public:
  // Lists root's class folders (sorted by name: label = position) and, under each, every file
  // named *.jpg, *.jpeg or *.png in any letter case, recursively, sorted by path. `channels` 3
  // decodes to RGB (grayscale and CMYK converted), 1 to luma (by the transform). Throws std::invalid_argument for
  // channels, std::runtime_error naming the folder when root is missing, holds no class folder,
  // or a class folder holds no image.
  ImageFolderSource(const std::string& root, int64_t channels);

  int64_t size() const override { return static_cast<int64_t>(map_ ? map_->size() : base_->samples.size()); }
  int64_t label(int64_t i) const override { return base_->samples[static_cast<size_t>(base_index(i))].label; }
  int64_t channels() const override { return channels_; }
  Image load(int64_t i) const override;
  std::vector<Image> load_planned(int64_t i, const DecodePlanner& plan) const override;

  const std::string& root() const { return base_->root; }
  const std::vector<std::string>& classes() const { return base_->classes; }
  const std::string& path(int64_t i) const { return base_->samples[static_cast<size_t>(base_index(i))].path; }

  // A view of the samples `indices` (positions in this source, repeats allowed).
  std::shared_ptr<ImageFolderSource> subset(const std::vector<int64_t>& indices) const;

 private:
  struct Sample {
    std::string path;
    int64_t label;
  };
  struct Listing {
    std::string root;
    std::vector<std::string> classes;
    std::vector<Sample> samples;
  };

  ImageFolderSource() = default;
  int64_t base_index(int64_t i) const { return map_ ? (*map_)[static_cast<size_t>(i)] : i; }

  std::shared_ptr<const Listing> base_;
  std::shared_ptr<const std::vector<int64_t>> map_;  // null: identity
  int64_t channels_ = 3;
};

}  // namespace s2bnn::data
