// Built instead of decode.cpp where libjpeg-turbo or libpng were not found and the build was told
// to go on without them (S2BNN_IMAGE_CODECS=optional, as the GPU check does on a machine without
// their headers). Decoding is then a fatal error that names the fix, never a skipped image.
#include <stdexcept>

#include "decode.h"

namespace s2bnn::data {
namespace {

[[noreturn]] void unavailable(const std::string& name) {
  throw std::runtime_error(
      "cannot decode " + name + ": this build of s2bnn has no JPEG/PNG decoders (libjpeg-turbo and libpng were not "
      "found when it was built). Install them (Debian/Ubuntu: apt-get install libjpeg62-turbo-dev libpng-dev, or "
      "libjpeg-turbo8-dev on Ubuntu) and rebuild with `npm rebuild s2bnn`");
}

}  // namespace

Image decode_image(const uint8_t*, size_t, int64_t, const std::string& name) { unavailable(name); }

std::vector<Image> decode_image_planned(const uint8_t*, size_t, int64_t, const std::string& name, const DecodePlanner&) {
  unavailable(name);
}

Image decode_jpeg(const uint8_t*, size_t, int64_t, const std::string& name) { unavailable(name); }

Image decode_png(const uint8_t*, size_t, int64_t, const std::string& name) { unavailable(name); }

bool image_codecs_available() { return false; }

}  // namespace s2bnn::data
