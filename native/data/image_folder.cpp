#include "image_folder.h"

#include "decode.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace s2bnn::data {
namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool image_name(const fs::path& path) {
  const std::string ext = lower(path.extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

bool hidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

// torchvision follows symlinked folders too; a cycle ends in filesystem_error, reported as such.
std::vector<std::string> list_images(const fs::path& folder) {
  std::vector<std::string> out;
  const auto options = fs::directory_options::follow_directory_symlink;
  for (auto it = fs::recursive_directory_iterator(folder, options); it != fs::recursive_directory_iterator(); ++it) {
    if (hidden(it->path())) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_directory() && image_name(it->path())) out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_file(const std::string& path, std::vector<uint8_t>& out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return std::string("cannot open: ") + std::strerror(errno);
  out.clear();
  uint8_t buffer[1 << 16];
  for (;;) {
    const size_t n = std::fread(buffer, 1, sizeof buffer, f);
    out.insert(out.end(), buffer, buffer + n);
    if (n < sizeof buffer) break;
  }
  const bool failed = std::ferror(f);
  const int error = errno;
  std::fclose(f);
  if (failed) return std::string("cannot read: ") + std::strerror(error);
  return {};
}

}  // namespace

ImageFolderSource::ImageFolderSource(const std::string& root, int64_t channels) : channels_(channels) {
  if (channels != 1 && channels != 3) {
    throw std::invalid_argument("channels must be 1 or 3, got " + std::to_string(channels));
  }
  auto listing = std::make_shared<Listing>();
  listing->root = root;
  std::error_code error;
  if (!fs::is_directory(root, error)) throw std::runtime_error("ImageFolder root '" + root + "' is not a folder");
  try {
    std::vector<fs::path> folders;
    for (const fs::directory_entry& entry : fs::directory_iterator(root)) {
      if (entry.is_directory() && !hidden(entry.path())) folders.push_back(entry.path());
    }
    std::sort(folders.begin(), folders.end());
    if (folders.empty()) {
      throw std::runtime_error("ImageFolder root '" + root +
                               "' has no class folders (expected root/<class>/<image>.jpg)");
    }
    for (const fs::path& folder : folders) {
      const int64_t label = static_cast<int64_t>(listing->classes.size());
      std::vector<std::string> files = list_images(folder);
      if (files.empty()) {
        throw std::runtime_error("ImageFolder class folder '" + folder.string() +
                                 "' holds no .jpg, .jpeg or .png file");
      }
      listing->classes.push_back(folder.filename().string());
      for (std::string& path : files) listing->samples.push_back({std::move(path), label});
    }
  } catch (const fs::filesystem_error& e) {
    throw std::runtime_error(std::string("cannot list ImageFolder '") + root + "': " + e.what());
  }
  // Philox streams carry the sample index in 32 bits.
  if (listing->samples.size() > 0xFFFFFFFFull) throw std::runtime_error("ImageFolder '" + root + "' holds more than 2^32 images");
  base_ = std::move(listing);
}

Image ImageFolderSource::load(int64_t i) const {
  if (i < 0 || i >= size()) throw std::out_of_range("sample index " + std::to_string(i) + " out of range");
  const std::string& file = path(i);
  std::vector<uint8_t> bytes;
  const std::string failure = read_file(file, bytes);
  if (!failure.empty()) throw BadImage(file, failure);
  return decode_image(bytes.data(), bytes.size(), channels_, file);
}

std::vector<Image> ImageFolderSource::load_planned(int64_t i, const DecodePlanner& plan) const {
  if (i < 0 || i >= size()) throw std::out_of_range("sample index " + std::to_string(i) + " out of range");
  const std::string& file = path(i);
  std::vector<uint8_t> bytes;
  const std::string failure = read_file(file, bytes);
  if (!failure.empty()) throw BadImage(file, failure);
  return decode_image_planned(bytes.data(), bytes.size(), channels_, file, plan);
}

std::shared_ptr<ImageFolderSource> ImageFolderSource::subset(const std::vector<int64_t>& indices) const {
  auto map = subset_map(indices, size(), [this](int64_t i) { return base_index(i); });
  std::shared_ptr<ImageFolderSource> out(new ImageFolderSource());
  out->base_ = base_;
  out->map_ = std::move(map);
  out->channels_ = channels_;
  return out;
}

}  // namespace s2bnn::data
