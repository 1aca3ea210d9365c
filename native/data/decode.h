// Image file decoders: JPEG through libjpeg-turbo's libjpeg API (crop-aware: DCT-domain
// reduction and partial decoding of a region) and PNG through libpng. Thread-safe; each thread
// keeps its own decompressor. Every failure is a BadImage naming the file and why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "source.h"

namespace s2bnn::data {

// Decodes one image file held in memory (JPEG or PNG, recognized by content) whole, at full
// scale: HWC uint8 RGB, or 1 channel when `channels` is 1 and the file is grayscale (the
// transforms take luma from RGB, as PIL's convert('L') does). `name` only labels the BadImage.
Image decode_image(const uint8_t* data, size_t size, int64_t channels, const std::string& name);

// Crop-aware decode: reads the header, calls `plan` with the image's size, and decodes the
// requested regions (JPEG: each at its reduction, only the rows and iMCU columns it covers;
// PNG: the whole image once, which serves every region). Returns what
// ImageSource::load_planned returns.
std::vector<Image> decode_image_planned(const uint8_t* data, size_t size, int64_t channels, const std::string& name,
                                        const DecodePlanner& plan);

// JPEG only (BadImage for anything else); the same as decode_image for a JPEG.
Image decode_jpeg(const uint8_t* data, size_t size, int64_t channels, const std::string& name);

// PNG only: gray, gray + alpha, palette, RGB and RGBA, 1 to 16 bits, interlaced or not. 16-bit
// samples keep their high byte and alpha is dropped, as PIL's convert('RGB') does; gray comes
// out as 1 channel (the transforms replicate or keep it), everything else as RGB.
Image decode_png(const uint8_t* data, size_t size, int64_t channels, const std::string& name);

// False in a build without libjpeg-turbo and libpng (decode_unavailable.cpp), whose decoders throw.
bool image_codecs_available();

}  // namespace s2bnn::data
