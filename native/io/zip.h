// Just enough of ZIP for PyTorch checkpoints: PyTorch writes uncompressed ("stored") entries,
// ZIP64 past 4 GiB. The reader bounds-checks every offset against the file (checkpoints are
// untrusted input); the writer aligns entry data to 64 bytes as PyTorch does, so readers can map
// tensors straight from the file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace s2bnn::io {

struct ZipEntry {
  std::string name;
  uint64_t data_offset;  // of the entry's bytes in the file
  uint64_t size;
  uint32_t crc32;
};

// Parses the central directory of `file` (the whole file in memory or mapped). Throws
// std::runtime_error naming the problem on anything malformed, compressed or encrypted.
std::vector<ZipEntry> read_zip_directory(std::string_view file);

uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

// Writes a stored ZIP sequentially through `write` (any byte sink).
class ZipWriter {
 public:
  using Sink = void (*)(void* context, const void* data, size_t size);
  ZipWriter(Sink sink, void* context) : sink_(sink), context_(context) {}
  void add(const std::string& name, const void* data, size_t size);
  void finish();

 private:
  void emit(const void* data, size_t size);
  struct Written {
    std::string name;
    uint64_t header_offset, size;
    uint32_t crc32;
  };
  Sink sink_;
  void* context_;
  uint64_t offset_ = 0;
  std::vector<Written> entries_;
  bool finished_ = false;
};

}  // namespace s2bnn::io
