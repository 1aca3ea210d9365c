#include "decode.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <stdexcept>

extern "C" {
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
}

namespace s2bnn::data {
namespace {

// Decoded size cap: a corrupt or hostile header must not make a worker allocate gigabytes.
constexpr int64_t kMaxPixels = int64_t{1} << 28;

const uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

bool is_png(const uint8_t* data, size_t size) { return size >= 8 && std::memcmp(data, kPngSignature, 8) == 0; }
bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

// PIL's convert('RGB') of a CMYK image (Pillow >= 9: R = (255 - K) - C (255 - K) / 255, rounded).
// Photoshop (Adobe APP14) CMYK JPEGs store inverted ink values.
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

// ---- JPEG ---------------------------------------------------------------------------------------

// libjpeg reports fatal errors through error_exit, which must not return: it longjmps back into
// the function that called setjmp (only C frames and trivially destructible locals in between).
// Warnings are counted; a premature end of the data (a truncated file, which libjpeg pads with
// gray) is remembered, the other warnings (extraneous bytes before a marker, which PIL accepts
// too) are not errors.
struct JpegError {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  bool truncated = false;
  char message[JMSG_LENGTH_MAX] = {0};
  char warning[JMSG_LENGTH_MAX] = {0};
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  cinfo->err->num_warnings++;
  if (cinfo->err->msg_code == JWRN_JPEG_EOF && !e->truncated) {
    e->truncated = true;
    (*cinfo->err->format_message)(cinfo, e->warning);
  }
}

// One decompressor per worker thread, reused (jpeg_abort_decompress resets it between images).
struct Jpeg {
  jpeg_decompress_struct cinfo;
  JpegError error;
  bool created = false;
  Jpeg() {
    std::memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&error.pub);
    error.pub.error_exit = jpeg_on_error;
    error.pub.emit_message = jpeg_on_message;
    if (setjmp(error.jump)) return;
    jpeg_create_decompress(&cinfo);
    created = true;
  }
  ~Jpeg() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

Jpeg& jpeg_decompressor() {
  thread_local Jpeg jpeg;
  if (!jpeg.created) throw std::runtime_error("libjpeg: cannot create a decompressor");
  return jpeg;
}

struct JpegHeader {
  int64_t height = 0, width = 0;
  J_COLOR_SPACE space = JCS_UNKNOWN;
  bool adobe = false;
  size_t scan_offset = 0;  // where the first scan's data starts
};

// Returns false with jpeg.error.message set when the header cannot be read.
bool jpeg_read_header_only(Jpeg& jpeg, const uint8_t* data, size_t size, JpegHeader& header) {
  jpeg_decompress_struct* cinfo = &jpeg.cinfo;
  jpeg.error.truncated = false;
  if (setjmp(jpeg.error.jump)) {
    jpeg_abort_decompress(cinfo);
    return false;
  }
  jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(cinfo, TRUE);
  header.height = cinfo->image_height;
  header.width = cinfo->image_width;
  header.space = cinfo->jpeg_color_space;
  header.adobe = cinfo->saw_Adobe_marker;
  header.scan_offset = static_cast<size_t>(cinfo->src->next_input_byte - data);
  jpeg_abort_decompress(cinfo);
  return true;
}

constexpr int64_t kMargin = 2;

// A region to decode, in the pixels of the image reduced by `scale`.
struct JpegRegion {
  int scale = 1;
  int64_t top = 0, left = 0, bottom = 0, right = 0;
};

struct JpegOutput {
  int64_t height = 0, width = 0, channels = 0, origin_y = 0, origin_x = 0;
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> scratch;
};

// Whether the data ends with an EOI marker after the scans (possibly followed by a few bytes of
// trailer). A file that has one is complete, so decoding may stop after the last row needed; one
// without is decoded to its end so that truncation is found whatever the crop.
bool ends_with_eoi(const uint8_t* data, size_t size, size_t scan_offset) {
  const size_t from = std::max(scan_offset, size > 4096 ? size - 4096 : size_t{0});
  for (size_t p = size; p >= from + 2; --p) {
    if (data[p - 2] == 0xFF && data[p - 1] == 0xD9) return true;
  }
  return false;
}

// Decodes `region` (clamped to the reduced image). Returns false with jpeg.error.message set on
// a fatal error; jpeg.error.truncated tells about truncation.
bool jpeg_decode_region(Jpeg& jpeg, const uint8_t* data, size_t size, J_COLOR_SPACE space, bool complete,
                        const JpegRegion& region, JpegOutput& out) {
  jpeg_decompress_struct* cinfo = &jpeg.cinfo;
  jpeg.error.truncated = false;
  if (setjmp(jpeg.error.jump)) {
    jpeg_abort_decompress(cinfo);
    return false;
  }
  jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(cinfo, TRUE);
  cinfo->out_color_space = space;
  cinfo->scale_num = 1;
  cinfo->scale_denom = static_cast<unsigned int>(region.scale);
  // libjpeg's defaults, as PIL decodes (and TurboJPEG's tjDecompress2 without flags).
  cinfo->dct_method = JDCT_ISLOW;
  cinfo->do_fancy_upsampling = TRUE;
  jpeg_start_decompress(cinfo);
  const int64_t full_w = cinfo->output_width, full_h = cinfo->output_height;
  const int64_t top = std::clamp<int64_t>(region.top, 0, full_h - 1);
  const int64_t bottom = std::clamp<int64_t>(region.bottom, top + 1, full_h);
  const int64_t left = std::clamp<int64_t>(region.left, 0, full_w - 1);
  const int64_t right = std::clamp<int64_t>(region.right, left + 1, full_w);
  JDIMENSION x = static_cast<JDIMENSION>(left), w = static_cast<JDIMENSION>(right - left);
  // Rounds x down and w up to whole iMCU columns.
  if (w < cinfo->output_width) jpeg_crop_scanline(cinfo, &x, &w);
  out.origin_x = x;
  out.width = cinfo->output_width;
  out.channels = cinfo->output_components;
  out.origin_y = top;
  out.height = bottom - top;
  if (top > 0) jpeg_skip_scanlines(cinfo, static_cast<JDIMENSION>(top));
  const size_t stride = static_cast<size_t>(out.width * out.channels);
  out.pixels.resize(stride * static_cast<size_t>(out.height));
  JSAMPROW rows[16];
  while (cinfo->output_scanline < bottom) {
    const int64_t at = cinfo->output_scanline - top;
    const int64_t n = std::min<int64_t>(16, bottom - cinfo->output_scanline);
    for (int64_t r = 0; r < n; ++r) rows[r] = out.pixels.data() + static_cast<size_t>(at + r) * stride;
    jpeg_read_scanlines(cinfo, rows, static_cast<JDIMENSION>(n));
  }
  if (cinfo->output_scanline < cinfo->output_height && complete) {
    jpeg_abort_decompress(cinfo);
    return true;
  }
  if (cinfo->output_scanline < cinfo->output_height) {
    // Skipping to the very end only sets libjpeg's end-of-image flag without reading: skip all but
    // the last row (whole iMCU rows are still entropy-decoded) and read that one, so the data is
    // consumed to its end and a truncation is reported.
    const JDIMENSION rest = cinfo->output_height - cinfo->output_scanline;
    if (rest > 1) jpeg_skip_scanlines(cinfo, rest - 1);
    out.scratch.resize(stride);
    JSAMPROW row = out.scratch.data();
    while (cinfo->output_scanline < cinfo->output_height) jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

struct JpegPlan {
  J_COLOR_SPACE space;
  bool cmyk = false, complete = false;
};

JpegPlan jpeg_prepare(Jpeg& jpeg, const uint8_t* data, size_t size, int64_t channels, const std::string& name,
                      JpegHeader& header) {
  if (!jpeg_read_header_only(jpeg, data, size, header)) {
    throw BadImage(name, std::string("bad JPEG header: ") + jpeg.error.message);
  }
  if (header.width < 1 || header.height < 1 || header.width * header.height > kMaxPixels) {
    throw BadImage(name, "JPEG of " + std::to_string(header.width) + " x " + std::to_string(header.height) +
                             " pixels is empty or larger than 2^28 pixels");
  }
  JpegPlan plan;
  plan.cmyk = header.space == JCS_CMYK || header.space == JCS_YCCK;
  // Color JPEGs stay RGB even for 1 channel: the JPEG's own Y differs from PIL's convert('L') of
  // the upsampled RGB by up to 7 levels; the transforms take luma from RGB as PIL does.
  const bool gray = channels == 1 && header.space == JCS_GRAYSCALE;
  plan.space = plan.cmyk ? JCS_CMYK : gray ? JCS_GRAYSCALE : JCS_RGB;
  plan.complete = ends_with_eoi(data, size, header.scan_offset);
  return plan;
}

Image jpeg_decode(Jpeg& jpeg, const uint8_t* data, size_t size, const JpegHeader& header, const JpegPlan& plan,
                  const DecodeRegion* request, const std::string& name) {
  JpegRegion region;
  if (request) {
    const int64_t d = request->scale;
    if (d != 1 && d != 2 && d != 4 && d != 8) throw std::invalid_argument("decode scale must be 1, 2, 4 or 8");
    region.scale = static_cast<int>(d);
    // Two pixels of margin: libjpeg's fancy upsampling replicates the chroma at a cropped
    // region's edges where the whole image has a neighbor, so the edge pixels of a crop would
    // differ from the whole decode's.
    region.top = request->box.top / d - kMargin;
    region.left = request->box.left / d - kMargin;
    region.bottom = (request->box.top + request->box.height + d - 1) / d + kMargin;
    region.right = (request->box.left + request->box.width + d - 1) / d + kMargin;
  } else {
    region.bottom = header.height;
    region.right = header.width;
  }
  JpegOutput out;
  bool ok = false;
  try {
    ok = jpeg_decode_region(jpeg, data, size, plan.space, plan.complete, region, out);
  } catch (...) {  // out of memory for the pixels
    jpeg_abort_decompress(&jpeg.cinfo);
    throw;
  }
  if (!ok) throw BadImage(name, std::string("corrupt JPEG: ") + jpeg.error.message);
  if (jpeg.error.truncated) throw BadImage(name, std::string("truncated JPEG: ") + jpeg.error.warning);
  Image image;
  image.height = out.height;
  image.width = out.width;
  image.scale = region.scale;
  image.origin_y = out.origin_y;
  image.origin_x = out.origin_x;
  image.full_height = header.height;
  image.full_width = header.width;
  if (plan.cmyk) {
    image.channels = 3;
    image.storage.resize(static_cast<size_t>(out.height * out.width * 3));
    cmyk_to_rgb(out.pixels.data(), image.storage.data(), out.height * out.width, header.adobe);
  } else {
    image.channels = out.channels;
    image.storage = std::move(out.pixels);
  }
  image.pixels = image.storage.data();
  return image;
}

// ---- PNG ----------------------------------------------------------------------------------------

struct PngContext {
  const uint8_t* data = nullptr;
  size_t size = 0, position = 0;
  char message[256] = {0};
  std::vector<uint8_t> pixels;
  std::vector<png_bytep> rows;
  int64_t height = 0, width = 0, channels = 0;
};

void png_on_error(png_structp png, png_const_charp message) {
  auto* context = static_cast<PngContext*>(png_get_error_ptr(png));
  std::snprintf(context->message, sizeof context->message, "%s", message);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}  // benign (e.g. a bad ancillary chunk)

void png_read_memory(png_structp png, png_bytep out, png_size_t n) {
  auto* context = static_cast<PngContext*>(png_get_io_ptr(png));
  if (n > context->size - context->position) png_error(png, "truncated PNG file");
  std::memcpy(out, context->data + context->position, n);
  context->position += n;
}

// Returns false with context.message set on an error.
bool png_decode_into(PngContext& context, int64_t channels) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, png_on_error, png_on_warning);
  if (!png) {
    std::snprintf(context.message, sizeof context.message, "libpng: cannot create a reader");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    if (!context.message[0]) std::snprintf(context.message, sizeof context.message, "libpng: out of memory");
    return false;
  }
  try {
    png_set_read_fn(png, &context, png_read_memory);
    png_read_info(png, info);
    const png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if (width < 1 || height < 1 || int64_t{width} * height > kMaxPixels) {
      png_error(png, "PNG is empty or larger than 2^28 pixels");
    }
    const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);  // the high byte
    png_set_strip_alpha(png);                // alpha and tRNS ignored, as convert('RGB')
    const bool gray = (color & PNG_COLOR_MASK_COLOR) == 0;
    if (gray && channels == 3) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    context.height = height;
    context.width = width;
    context.channels = png_get_channels(png, info);
    const size_t stride = png_get_rowbytes(png, info);
    if (stride != static_cast<size_t>(width * context.channels) || (context.channels != 1 && context.channels != 3)) {
      png_error(png, "unexpected PNG row layout");
    }
    context.pixels.resize(stride * height);
    context.rows.resize(height);
    for (png_uint_32 y = 0; y < height; ++y) context.rows[y] = context.pixels.data() + stride * y;
    png_read_image(png, context.rows.data());
    png_read_end(png, nullptr);
  } catch (...) {  // out of memory for the pixels
    png_destroy_read_struct(&png, &info, nullptr);
    throw;
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

void check_nonempty(size_t size, const std::string& name) {
  if (size == 0) throw BadImage(name, "empty file");
}

}  // namespace

Image decode_png(const uint8_t* data, size_t size, int64_t channels, const std::string& name) {
  check_nonempty(size, name);
  if (!is_png(data, size)) throw BadImage(name, "not a PNG file");
  PngContext context;
  context.data = data;
  context.size = size;
  if (!png_decode_into(context, channels)) throw BadImage(name, std::string("corrupt PNG: ") + context.message);
  Image image;
  image.height = context.height;
  image.width = context.width;
  image.channels = context.channels;
  image.storage = std::move(context.pixels);
  image.pixels = image.storage.data();
  return image;
}

Image decode_jpeg(const uint8_t* data, size_t size, int64_t channels, const std::string& name) {
  check_nonempty(size, name);
  if (!is_jpeg(data, size)) throw BadImage(name, "not a JPEG file");
  Jpeg& jpeg = jpeg_decompressor();
  JpegHeader header;
  const JpegPlan plan = jpeg_prepare(jpeg, data, size, channels, name, header);
  return jpeg_decode(jpeg, data, size, header, plan, nullptr, name);
}

Image decode_image(const uint8_t* data, size_t size, int64_t channels, const std::string& name) {
  check_nonempty(size, name);
  if (is_png(data, size)) return decode_png(data, size, channels, name);
  if (!is_jpeg(data, size)) throw BadImage(name, "not a JPEG or PNG file");
  return decode_jpeg(data, size, channels, name);
}

std::vector<Image> decode_image_planned(const uint8_t* data, size_t size, int64_t channels, const std::string& name,
                                        const DecodePlanner& plan) {
  check_nonempty(size, name);
  std::vector<Image> out;
  if (is_png(data, size)) {
    out.push_back(decode_png(data, size, channels, name));
    plan(out[0].height, out[0].width);
    return out;
  }
  if (!is_jpeg(data, size)) throw BadImage(name, "not a JPEG or PNG file");
  Jpeg& jpeg = jpeg_decompressor();
  JpegHeader header;
  const JpegPlan jpeg_plan = jpeg_prepare(jpeg, data, size, channels, name, header);
  const DecodeRequest request = plan(header.height, header.width);
  if (request.regions.empty()) {
    out.push_back(jpeg_decode(jpeg, data, size, header, jpeg_plan, nullptr, name));
    return out;
  }
  for (const DecodeRegion& region : request.regions) {
    out.push_back(jpeg_decode(jpeg, data, size, header, jpeg_plan, &region, name));
  }
  return out;
}

bool image_codecs_available() { return true; }

}  // namespace s2bnn::data
