// ImageFolder trees (torchvision's layout: root/<class>/**/<image>) decoded with libjpeg-turbo and
// libpng (decode.h) on the loader's worker threads. Files that do not decode fail at load() with
// BadImage, so the loader skips and reports them instead of silently dropping them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
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
  //
  // `index`, when not empty, is a cache file of the listing: read when its validation key (the
  // modification times of root and of every folder under it) still matches, else (missing,
  // stale, corrupt, another root) the tree is scanned and the file (re)written atomically. Index
  // problems never fail the constructor: index_status() says what happened.
  ImageFolderSource(const std::string& root, int64_t channels, const std::string& index = "");

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

  // "off" (no index), "loaded", "created" (none before), "rebuilt" (stale or unreadable: see
  // index_reason()), "unwritten" (scanned; the file could not be written: index_reason()).
  const std::string& index_status() const { return index_status_; }
  const std::string& index_reason() const { return index_reason_; }
  const std::string& index_path() const { return index_path_; }

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
  static void scan(Listing& listing, std::vector<std::pair<std::string, int64_t>>& folders);
  static bool read_index(const std::string& file, Listing& listing, std::string& why);
  static bool write_index(const std::string& file, const Listing& listing,
                          const std::vector<std::pair<std::string, int64_t>>& folders, int64_t scanned,
                          std::string& why);
  int64_t base_index(int64_t i) const { return map_ ? (*map_)[static_cast<size_t>(i)] : i; }

  std::shared_ptr<const Listing> base_;
  std::shared_ptr<const std::vector<int64_t>> map_;  // null: identity
  int64_t channels_ = 3;
  std::string index_path_, index_status_ = "off", index_reason_;
};

}  // namespace s2bnn::data
