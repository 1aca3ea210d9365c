#include "image_folder.h"

#include <turbojpeg.h>

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

// Decoded size cap: a corrupt or hostile header must not make a worker allocate gigabytes.
constexpr int64_t kMaxPixels = int64_t{1} << 28;

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

// One decompressor per worker thread: tjhandles are not thread-safe, and creating one per image
// costs an allocation of libjpeg's state.
struct Decompressor {
  tjhandle handle = tjInitDecompress();
  ~Decompressor() {
    if (handle) tjDestroy(handle);
  }
};

tjhandle decompressor() {
  thread_local Decompressor d;
  if (!d.handle) throw std::runtime_error("libjpeg-turbo: tjInitDecompress failed");
  return d.handle;
}

// Photoshop (Adobe APP14) CMYK JPEGs store inverted ink values; libjpeg hands back what is stored
// and TurboJPEG does not say whether the marker was there, so look for it before the first scan.
bool has_adobe_marker(const uint8_t* data, size_t size) {
  size_t p = 2;
  while (p + 4 <= size && data[p] == 0xFF) {
    const uint8_t marker = data[p + 1];
    if (marker == 0xDA || marker == 0xD9) break;
    const size_t length = (size_t{data[p + 2]} << 8) | data[p + 3];
    if (marker == 0xEE && length >= 7 && p + 9 <= size && std::memcmp(data + p + 4, "Adobe", 5) == 0) return true;
    p += 2 + length;
  }
  return false;
}

// PIL's convert('RGB') of a CMYK image (Pillow >= 9: R = (255 - K) - C (255 - K) / 255, rounded).
void cmyk_to_rgb(const uint8_t* cmyk, uint8_t* rgb, int64_t pixels, bool inverted) {
  for (int64_t i = 0; i < pixels; ++i) {
    int v[4];
    for (int k = 0; k < 4; ++k) v[k] = inverted ? 255 - cmyk[4 * i + k] : cmyk[4 * i + k];
    const int nk = 255 - v[3];
    for (int k = 0; k < 3; ++k) {
      const int t = v[k] * nk + 128;
      const int product = ((t >> 8) + t) >> 8;
      rgb[3 * i + k] = static_cast<uint8_t>(std::clamp(nk - product, 0, 255));
    }
  }
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

Image decode_jpeg(const uint8_t* data, size_t size, int64_t channels, const std::string& name) {
  if (size == 0) throw BadImage(name, "empty file");
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 8 && std::memcmp(data, kPng, 8) == 0) {
    throw BadImage(name, "PNG image: this version decodes JPEG only");
  }
  if (size < 3 || data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF) throw BadImage(name, "not a JPEG file");
  tjhandle tj = decompressor();
  unsigned char* bytes = const_cast<unsigned char*>(data);  // TurboJPEG 2.x takes non-const input
  const unsigned long length = static_cast<unsigned long>(size);
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, bytes, length, &width, &height, &subsampling, &colorspace) != 0) {
    throw BadImage(name, std::string("bad JPEG header: ") + tjGetErrorStr2(tj));
  }
  if (width < 1 || height < 1 || int64_t{width} * height > kMaxPixels) {
    throw BadImage(name, "JPEG of " + std::to_string(width) + " x " + std::to_string(height) +
                             " pixels is empty or larger than 2^28 pixels");
  }
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  // Color JPEGs stay RGB even for 1 channel: the JPEG's own Y differs from PIL's convert('L') of
  // the upsampled RGB by up to 7 levels; the transforms take luma from RGB as PIL does.
  const bool gray = channels == 1 && colorspace == TJCS_GRAY;
  const int format = cmyk ? TJPF_CMYK : gray ? TJPF_GRAY : TJPF_RGB;
  const int64_t decoded_channels = cmyk ? 4 : gray ? 1 : 3;
  std::vector<uint8_t> pixels(static_cast<size_t>(int64_t{width} * height * decoded_channels));
  // Flags 0: accurate integer DCT and fancy upsampling, libjpeg's defaults, as PIL decodes.
  if (tjDecompress2(tj, bytes, length, pixels.data(), width, 0, height, format, 0) != 0) {
    const std::string message = tjGetErrorStr2(tj);
    // Warnings cover both harmless oddities (extraneous bytes before a marker, which PIL accepts
    // too) and truncation, where libjpeg pads the missing rows with gray: only the latter is a
    // bad sample.
    const bool truncated = message.find("Premature end") != std::string::npos;
    if (tjGetErrorCode(tj) != TJERR_WARNING || truncated) {
      throw BadImage(name, (truncated ? "truncated JPEG: " : "corrupt JPEG: ") + message);
    }
  }
  Image image;
  image.height = height;
  image.width = width;
  if (cmyk) {
    image.channels = 3;
    image.storage.resize(static_cast<size_t>(int64_t{width} * height * 3));
    cmyk_to_rgb(pixels.data(), image.storage.data(), int64_t{width} * height, has_adobe_marker(data, size));
  } else {
    image.channels = decoded_channels;
    image.storage = std::move(pixels);
  }
  image.pixels = image.storage.data();
  return image;
}

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
  return decode_jpeg(bytes.data(), bytes.size(), channels_, file);
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
