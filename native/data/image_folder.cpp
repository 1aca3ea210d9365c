#include "image_folder.h"

#include "decode.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <chrono>
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

int64_t mtime_ns(const fs::path& path) {
  return static_cast<int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(fs::last_write_time(path).time_since_epoch()).count());
}

// torchvision follows symlinked folders too; a cycle ends in filesystem_error, reported as such.
// Appends every folder visited (for the index's validation key) to `folders`.
std::vector<std::string> list_images(const fs::path& folder, std::vector<std::pair<std::string, int64_t>>& folders) {
  std::vector<std::string> out;
  folders.emplace_back(folder.string(), mtime_ns(folder));  // stamped before listing
  const auto options = fs::directory_options::follow_directory_symlink;
  for (auto it = fs::recursive_directory_iterator(folder, options); it != fs::recursive_directory_iterator(); ++it) {
    if (hidden(it->path())) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory()) {
      folders.emplace_back(it->path().string(), mtime_ns(it->path()));
    } else if (image_name(it->path())) {
      out.push_back(it->path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- the index file -------------------------------------------------------------------------
//
// Little-endian binary: "S2BNNIDX", u32 version, the root's canonical path, when the scan started
// (ns since the epoch, the file-time clock), the folders' stamps
// (path relative to the root and modification time in ns: the root, every class folder and every
// folder below), the classes (name, image count, each image's path relative to its class
// folder), then the FNV-1a 64 hash of everything before it. Strings are u32 length + bytes.
// A folder's mtime changes whenever an entry is added, removed or renamed in it, so equal stamps
// mean an equal listing without listing anything, with one exception: file times are coarse
// (a jiffy on Linux, up to 2 s on some filesystems), so a folder changed within that granularity
// of being listed could keep its stamp. As git does with its index ("racy" entries), a folder
// stamped less than kRacyNs before the scan started is not trusted: such an index is rebuilt,
// until the tree has been quiet for that long.
constexpr int64_t kRacyNs = int64_t{2'000'000'000};

int64_t now_ns() {
  return static_cast<int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  fs::file_time_type::clock::now().time_since_epoch())
                                  .count());
}

constexpr char kIndexMagic[8] = {'S', '2', 'B', 'N', 'N', 'I', 'D', 'X'};
constexpr uint32_t kIndexVersion = 1;

uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (const char c : bytes) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

struct Writer {
  std::string out;
  void u32(uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
  void i64(int64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    out += s;
  }
};

struct Reader {
  const std::string& in;
  size_t at = 0;
  bool ok = true;
  explicit Reader(const std::string& data) : in(data) {}
  bool take(void* dst, size_t n) {
    if (!ok || n > in.size() - at) return ok = false;
    std::memcpy(dst, in.data() + at, n);
    at += n;
    return true;
  }
  uint32_t u32() {
    uint32_t v = 0;
    take(&v, 4);
    return v;
  }
  int64_t i64() {
    int64_t v = 0;
    take(&v, 8);
    return v;
  }
  std::string str() {
    const uint32_t n = u32();
    if (!ok || n > in.size() - at) {
      ok = false;
      return {};
    }
    std::string s = in.substr(at, n);
    at += n;
    return s;
  }
};

std::string relative_to(const std::string& path, const std::string& base) {
  // Scanned paths are base / rest, so the prefix is exact.
  if (path.size() > base.size() && path.compare(0, base.size(), base) == 0) {
    size_t start = base.size();
    while (start < path.size() && path[start] == '/') ++start;
    return path.substr(start);
  }
  return path;
}

}  // namespace

void ImageFolderSource::scan(Listing& listing, std::vector<std::pair<std::string, int64_t>>& folders) {
  std::vector<fs::path> classes;
  for (const fs::directory_entry& entry : fs::directory_iterator(listing.root)) {
    if (entry.is_directory() && !hidden(entry.path())) classes.push_back(entry.path());
  }
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) {
    throw std::runtime_error("ImageFolder root '" + listing.root +
                             "' has no class folders (expected root/<class>/<image>.jpg)");
  }
  for (const fs::path& folder : classes) {
    const int64_t label = static_cast<int64_t>(listing.classes.size());
    std::vector<std::string> files = list_images(folder, folders);
    if (files.empty()) {
      throw std::runtime_error("ImageFolder class folder '" + folder.string() + "' holds no .jpg, .jpeg or .png file");
    }
    listing.classes.push_back(folder.filename().string());
    for (std::string& path : files) listing.samples.push_back({std::move(path), label});
  }
}

bool ImageFolderSource::read_index(const std::string& file, Listing& listing, std::string& why) {
  std::string data;
  {
    std::FILE* f = std::fopen(file.c_str(), "rb");
    if (!f) {
      why = errno == ENOENT ? "no index yet" : std::string("cannot open the index: ") + std::strerror(errno);
      return false;
    }
    char buffer[1 << 16];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) data.append(buffer, n);
    std::fclose(f);
  }
  if (data.size() < sizeof kIndexMagic + 12 || std::memcmp(data.data(), kIndexMagic, sizeof kIndexMagic) != 0) {
    why = "not an s2bnn index file";
    return false;
  }
  uint64_t stored = 0;
  std::memcpy(&stored, data.data() + data.size() - 8, 8);
  const std::string body = data.substr(0, data.size() - 8);
  if (fnv1a(body) != stored) {
    why = "corrupt index (checksum mismatch)";
    return false;
  }
  Reader r(body);
  r.at = sizeof kIndexMagic;
  if (r.u32() != kIndexVersion) {
    why = "index of another format version";
    return false;
  }
  std::error_code error;
  const fs::path canonical = fs::weakly_canonical(listing.root, error);
  if (error || r.str() != canonical.string()) {
    why = "index written for another root";
    return false;
  }
  const int64_t scanned = r.i64();
  const uint32_t folders = r.u32();
  for (uint32_t k = 0; r.ok && k < folders; ++k) {
    const std::string rel = r.str();
    const int64_t stamp = r.i64();
    const fs::path folder = rel.empty() ? fs::path(listing.root) : fs::path(listing.root) / rel;
    const auto now = fs::last_write_time(folder, error);
    if (error || std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() != stamp) {
      why = "stale index: '" + folder.string() + "' changed";
      return false;
    }
    if (r.ok && stamp > scanned - kRacyNs) {
      why = "index not trusted: '" + folder.string() + "' had changed within 2 s of the scan";
      return false;
    }
  }
  const uint32_t classes = r.u32();
  for (uint32_t c = 0; r.ok && c < classes; ++c) {
    const std::string name = r.str();
    const uint32_t count = r.u32();
    if (!r.ok || count > body.size() - r.at) break;  // each path takes at least 4 bytes
    const std::string folder = (fs::path(listing.root) / name).string();
    listing.classes.push_back(name);
    for (uint32_t i = 0; r.ok && i < count; ++i) {
      listing.samples.push_back({(fs::path(folder) / r.str()).string(), static_cast<int64_t>(c)});
    }
  }
  if (!r.ok || r.at != body.size() || listing.classes.empty()) {
    listing.classes.clear();
    listing.samples.clear();
    why = "corrupt index (truncated or malformed)";
    return false;
  }
  return true;
}

bool ImageFolderSource::write_index(const std::string& file, const Listing& listing,
                                    const std::vector<std::pair<std::string, int64_t>>& folders, int64_t scanned,
                                    std::string& why) {
  std::error_code error;
  Writer w;
  w.out.append(kIndexMagic, sizeof kIndexMagic);
  w.u32(kIndexVersion);
  w.str(fs::weakly_canonical(listing.root, error).string());
  if (error) {
    why = "cannot resolve the root: " + error.message();
    return false;
  }
  w.i64(scanned);
  w.u32(static_cast<uint32_t>(folders.size()));
  for (const auto& [folder, stamp] : folders) {
    w.str(folder == listing.root ? std::string() : relative_to(folder, listing.root));
    w.i64(stamp);
  }
  w.u32(static_cast<uint32_t>(listing.classes.size()));
  size_t at = 0;
  for (size_t c = 0; c < listing.classes.size(); ++c) {
    size_t end = at;
    while (end < listing.samples.size() && listing.samples[end].label == static_cast<int64_t>(c)) ++end;
    w.str(listing.classes[c]);
    w.u32(static_cast<uint32_t>(end - at));
    const std::string folder = (fs::path(listing.root) / listing.classes[c]).string();
    for (; at < end; ++at) w.str(relative_to(listing.samples[at].path, folder));
  }
  const uint64_t hash = fnv1a(w.out);
  w.out.append(reinterpret_cast<const char*>(&hash), 8);
  // Written beside the target and renamed over it: readers never see a partial file.
  const fs::path target(file);
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), error);
  static std::atomic<uint64_t> counter{0};
  const std::string temp = file + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  std::FILE* f = std::fopen(temp.c_str(), "wb");
  if (!f) {
    why = std::string("cannot write the index: ") + std::strerror(errno);
    return false;
  }
  const bool written = std::fwrite(w.out.data(), 1, w.out.size(), f) == w.out.size();
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed || std::rename(temp.c_str(), file.c_str()) != 0) {
    why = std::string("cannot write the index: ") + std::strerror(errno);
    std::remove(temp.c_str());
    return false;
  }
  return true;
}

namespace {

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

ImageFolderSource::ImageFolderSource(const std::string& root, int64_t channels, const std::string& index)
    : channels_(channels) {
  if (channels != 1 && channels != 3) {
    throw std::invalid_argument("channels must be 1 or 3, got " + std::to_string(channels));
  }
  auto listing = std::make_shared<Listing>();
  listing->root = root;
  std::error_code error;
  if (!fs::is_directory(root, error)) throw std::runtime_error("ImageFolder root '" + root + "' is not a folder");
  index_path_ = index;
  if (index.empty()) {
    index_status_ = "off";
  } else if (read_index(index, *listing, index_reason_)) {
    index_status_ = "loaded";
  } else {
    index_status_ = index_reason_ == "no index yet" ? "created" : "rebuilt";
  }
  if (index_status_ != "loaded") {
    std::vector<std::pair<std::string, int64_t>> folders;
    const int64_t scanned = now_ns();
    try {
      folders.emplace_back(root, mtime_ns(root));
      scan(*listing, folders);
    } catch (const fs::filesystem_error& e) {
      throw std::runtime_error(std::string("cannot list ImageFolder '") + root + "': " + e.what());
    }
    std::string why;
    if (!index.empty() && !write_index(index, *listing, folders, scanned, why)) {
      index_status_ = "unwritten";
      index_reason_ = why;
    }
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
  out->index_path_ = index_path_;
  out->index_status_ = index_status_;
  out->index_reason_ = index_reason_;
  return out;
}

}  // namespace s2bnn::data
