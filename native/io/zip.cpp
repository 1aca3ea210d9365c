#include "zip.h"

#include <array>
#include <cstring>
#include <stdexcept>

namespace s2bnn::io {
namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfDirectory = 0x06054b50;
constexpr uint32_t kZip64EndOfDirectory = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kPaddingExtraId = 0x4246;  // "FB", what PyTorch uses for alignment padding
constexpr uint64_t kAlignment = 64;

[[noreturn]] void malformed(const std::string& what) {
  throw std::runtime_error("not a valid checkpoint zip: " + what);
}

// Bounds-checked little-endian reads from the file image.
class Cursor {
 public:
  Cursor(std::string_view file, uint64_t at, const char* what) : file_(file), at_(at), what_(what) {
    if (at > file.size()) malformed(std::string(what) + " lies beyond the end of the file");
  }
  template <typename T>
  T read() {
    need(sizeof(T));
    T value = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      value |= static_cast<T>(static_cast<uint8_t>(file_[at_ + i])) << (8 * i);
    }
    at_ += sizeof(T);
    return value;
  }
  std::string_view bytes(uint64_t n) {
    need(n);
    std::string_view out = file_.substr(at_, n);
    at_ += n;
    return out;
  }
  void skip(uint64_t n) { need(n), at_ += n; }
  uint64_t position() const { return at_; }

 private:
  void need(uint64_t n) const {
    if (n > file_.size() - at_) malformed(std::string(what_) + " is truncated");
  }
  std::string_view file_;
  uint64_t at_;
  const char* what_;
};

struct Directory {
  uint64_t entries, size, offset;
};

Directory find_directory(std::string_view file) {
  if (file.size() < 22) malformed("the file is too short to be a zip");
  // The end-of-directory record sits in the last 22 + 65535 (max comment) bytes.
  const uint64_t lowest = file.size() > 22 + 65535 ? file.size() - 22 - 65535 : 0;
  for (uint64_t at = file.size() - 22 + 1; at-- > lowest;) {
    Cursor c(file, at, "end of central directory");
    if (c.read<uint32_t>() != kEndOfDirectory) continue;
    c.skip(4);
    const uint16_t entries_here = c.read<uint16_t>();
    const uint16_t entries = c.read<uint16_t>();
    const uint32_t size = c.read<uint32_t>();
    const uint32_t offset = c.read<uint32_t>();
    Directory dir{entries, size, offset};
    if (entries_here != entries) malformed("multi-disk archives are not supported");
    if (at >= 20) {
      Cursor locator(file, at - 20, "zip64 locator");
      if (locator.read<uint32_t>() == kZip64Locator) {
        locator.skip(4);
        Cursor record(file, locator.read<uint64_t>(), "zip64 end of central directory");
        if (record.read<uint32_t>() != kZip64EndOfDirectory) malformed("bad zip64 end of central directory");
        record.skip(8 + 2 + 2 + 4 + 4 + 8);
        dir.entries = record.read<uint64_t>();
        dir.size = record.read<uint64_t>();
        dir.offset = record.read<uint64_t>();
      }
    }
    if (dir.offset > file.size() || dir.size > file.size() - dir.offset) {
      malformed("the central directory lies outside the file");
    }
    return dir;
  }
  malformed("no end of central directory record (truncated or not a zip)");
}

}  // namespace

std::vector<ZipEntry> read_zip_directory(std::string_view file) {
  const Directory dir = find_directory(file);
  // Each central header takes at least 46 bytes: a count beyond that is a lie.
  if (dir.entries > dir.size / 46 + 1) malformed("the entry count does not fit the directory");
  std::vector<ZipEntry> entries;
  entries.reserve(dir.entries);
  Cursor c(file, dir.offset, "central directory");
  for (uint64_t i = 0; i < dir.entries; ++i) {
    if (c.read<uint32_t>() != kCentralHeader) malformed("bad central directory header");
    c.skip(4);
    const uint16_t flags = c.read<uint16_t>();
    const uint16_t method = c.read<uint16_t>();
    c.skip(4);
    ZipEntry entry;
    entry.crc32 = c.read<uint32_t>();
    uint64_t compressed = c.read<uint32_t>();
    uint64_t size = c.read<uint32_t>();
    const uint16_t name_length = c.read<uint16_t>();
    const uint16_t extra_length = c.read<uint16_t>();
    const uint16_t comment_length = c.read<uint16_t>();
    c.skip(8);
    uint64_t header_offset = c.read<uint32_t>();
    entry.name = std::string(c.bytes(name_length));
    Cursor extra(c.bytes(extra_length), 0, "zip extra field");
    while (extra.position() + 4 <= extra_length) {
      const uint16_t id = extra.read<uint16_t>();
      const uint16_t length = extra.read<uint16_t>();
      Cursor field(extra.bytes(length), 0, "zip64 extra field");
      if (id != kZip64ExtraId) continue;
      if (size == 0xffffffffu) size = field.read<uint64_t>();
      if (compressed == 0xffffffffu) compressed = field.read<uint64_t>();
      if (header_offset == 0xffffffffu) header_offset = field.read<uint64_t>();
    }
    c.skip(comment_length);
    if (flags & 0x1) malformed("entry '" + entry.name + "' is encrypted");
    if (method != 0 || compressed != size) {
      malformed("entry '" + entry.name + "' is compressed; PyTorch checkpoints store entries uncompressed");
    }
    Cursor local(file, header_offset, "local file header");
    if (local.read<uint32_t>() != kLocalHeader) malformed("bad local header for '" + entry.name + "'");
    local.skip(22);
    const uint16_t local_name = local.read<uint16_t>();
    const uint16_t local_extra = local.read<uint16_t>();
    local.skip(uint64_t(local_name) + local_extra);
    entry.data_offset = local.position();
    entry.size = size;
    if (entry.data_offset > file.size() || size > file.size() - entry.data_offset) {
      malformed("entry '" + entry.name + "' extends past the end of the file (truncated?)");
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  static const std::array<std::array<uint32_t, 256>, 8> tables = [] {
    std::array<std::array<uint32_t, 256>, 8> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
    }
    return t;
  }();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  // Slicing by 8: eight table lookups per 8 bytes.
  while (size >= 8) {
    uint32_t low, high;
    std::memcpy(&low, p, 4);
    std::memcpy(&high, p + 4, 4);
    low ^= crc;
    crc = tables[7][low & 0xff] ^ tables[6][(low >> 8) & 0xff] ^ tables[5][(low >> 16) & 0xff] ^
          tables[4][low >> 24] ^ tables[3][high & 0xff] ^ tables[2][(high >> 8) & 0xff] ^
          tables[1][(high >> 16) & 0xff] ^ tables[0][high >> 24];
    p += 8;
    size -= 8;
  }
  while (size--) crc = tables[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

namespace {

template <typename T>
void put(std::string& out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint32_t clamp32(uint64_t v) { return v >= 0xffffffffu ? 0xffffffffu : static_cast<uint32_t>(v); }

}  // namespace

void ZipWriter::emit(const void* data, size_t size) {
  sink_(context_, data, size);
  offset_ += size;
}

void ZipWriter::add(const std::string& name, const void* data, size_t size) {
  if (finished_) throw std::logic_error("ZipWriter::add after finish");
  const uint32_t crc = crc32(data, size);
  const bool zip64 = size >= 0xffffffffu || offset_ >= 0xffffffffu;
  std::string header;
  put<uint32_t>(header, kLocalHeader);
  put<uint16_t>(header, zip64 ? 45 : 20);
  put<uint16_t>(header, 0);  // flags
  put<uint16_t>(header, 0);  // stored
  put<uint16_t>(header, 0);  // time
  put<uint16_t>(header, 0x21);  // date: 1980-01-01
  put<uint32_t>(header, crc);
  put<uint32_t>(header, zip64 ? 0xffffffffu : static_cast<uint32_t>(size));
  put<uint32_t>(header, zip64 ? 0xffffffffu : static_cast<uint32_t>(size));
  put<uint16_t>(header, static_cast<uint16_t>(name.size()));
  std::string extra;
  if (zip64) {
    put<uint16_t>(extra, kZip64ExtraId);
    put<uint16_t>(extra, 16);
    put<uint64_t>(extra, size);
    put<uint64_t>(extra, size);
  }
  // Pad with an "FB" field so the data starts on a 64-byte boundary.
  const uint64_t unpadded = offset_ + header.size() + 2 + name.size() + extra.size();
  uint64_t padding = (kAlignment - unpadded % kAlignment) % kAlignment;
  if (padding != 0 && padding < 4) padding += kAlignment;
  if (padding != 0) {
    put<uint16_t>(extra, kPaddingExtraId);
    put<uint16_t>(extra, static_cast<uint16_t>(padding - 4));
    extra.append(padding - 4, 'Z');
  }
  put<uint16_t>(header, static_cast<uint16_t>(extra.size()));
  header += name;
  header += extra;
  entries_.push_back({name, offset_, size, crc});
  emit(header.data(), header.size());
  if (size > 0) emit(data, size);
}

void ZipWriter::finish() {
  if (finished_) return;
  finished_ = true;
  const uint64_t directory_offset = offset_;
  for (const Written& e : entries_) {
    const bool zip64 = e.size >= 0xffffffffu || e.header_offset >= 0xffffffffu;
    std::string h;
    put<uint32_t>(h, kCentralHeader);
    put<uint16_t>(h, zip64 ? 45 : 20);  // made by
    put<uint16_t>(h, zip64 ? 45 : 20);  // needed
    put<uint16_t>(h, 0);
    put<uint16_t>(h, 0);
    put<uint16_t>(h, 0);
    put<uint16_t>(h, 0x21);
    put<uint32_t>(h, e.crc32);
    put<uint32_t>(h, clamp32(e.size));
    put<uint32_t>(h, clamp32(e.size));
    put<uint16_t>(h, static_cast<uint16_t>(e.name.size()));
    std::string extra;
    if (zip64) {
      put<uint16_t>(extra, kZip64ExtraId);
      put<uint16_t>(extra, 24);
      put<uint64_t>(extra, e.size);
      put<uint64_t>(extra, e.size);
      put<uint64_t>(extra, e.header_offset);
    }
    put<uint16_t>(h, static_cast<uint16_t>(extra.size()));
    put<uint16_t>(h, 0);  // comment
    put<uint16_t>(h, 0);  // disk
    put<uint16_t>(h, 0);  // internal attributes
    put<uint32_t>(h, 0);  // external attributes
    put<uint32_t>(h, clamp32(e.header_offset));
    h += e.name;
    h += extra;
    emit(h.data(), h.size());
  }
  const uint64_t directory_size = offset_ - directory_offset;
  const bool zip64 = entries_.size() >= 0xffff || directory_offset >= 0xffffffffu ||
                     directory_size >= 0xffffffffu;
  std::string end;
  if (zip64) {
    const uint64_t record_offset = offset_;
    put<uint32_t>(end, kZip64EndOfDirectory);
    put<uint64_t>(end, 44);
    put<uint16_t>(end, 45);
    put<uint16_t>(end, 45);
    put<uint32_t>(end, 0);
    put<uint32_t>(end, 0);
    put<uint64_t>(end, entries_.size());
    put<uint64_t>(end, entries_.size());
    put<uint64_t>(end, directory_size);
    put<uint64_t>(end, directory_offset);
    put<uint32_t>(end, kZip64Locator);
    put<uint32_t>(end, 0);
    put<uint64_t>(end, record_offset);
    put<uint32_t>(end, 1);
  }
  put<uint32_t>(end, kEndOfDirectory);
  put<uint16_t>(end, 0);
  put<uint16_t>(end, 0);
  put<uint16_t>(end, static_cast<uint16_t>(std::min<size_t>(entries_.size(), 0xffff)));
  put<uint16_t>(end, static_cast<uint16_t>(std::min<size_t>(entries_.size(), 0xffff)));
  put<uint32_t>(end, clamp32(directory_size));
  put<uint32_t>(end, clamp32(directory_offset));
  put<uint16_t>(end, 0);
  emit(end.data(), end.size());
}

}  // namespace s2bnn::io
