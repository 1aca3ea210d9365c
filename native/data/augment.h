// Augmentations with torchvision 0.14 semantics, from an HWC uint8 source image to a float32 CHW
// output. Sampling follows torchvision's parameter draws (RandomResizedCrop, ColorJitter,
// RandomApply, RandomGrayscale, GaussianBlur, RandomHorizontalFlip); each deterministic op
// follows torchvision's tensor functional (functional_tensor.py) on float images in [0, 1].
//
// One deliberate difference from the classic PIL pipeline: the image stays float from the
// resize on (the PIL pipeline rounds to uint8 after every op). The resize is PIL's antialiased
// bilinear, the same filter as torch's interpolate(antialias=True).
//
// Everything here is plain loops over raw memory: the loader calls it from its own threads and
// must not fan out into libtorch's intra-op pool.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "rng.h"
#include "source.h"

namespace s2bnn::data {

struct ColorJitterOptions {
  double p = 0;  // RandomApply probability of the whole jitter
  double brightness = 0, contrast = 0, saturation = 0, hue = 0;
};

struct BlurOptions {
  double p = 0;
  double sigma_min = 0.1, sigma_max = 2.0;
  int64_t kernel_size = 0;  // 0: the odd size closest to 10 % of the output size, at least 3
};

struct AugmentOptions {
  int64_t size = 0;
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  double hflip = 0;
  ColorJitterOptions jitter;
  double grayscale = 0;
  BlurOptions blur;
  std::vector<float> mean, std;
};

struct EvalOptions {
  int64_t resize = 0, crop = 0;
  std::vector<float> mean, std;
};

struct Transform {
  enum class Kind { Augment, Eval };
  Kind kind = Kind::Augment;
  AugmentOptions augment;
  EvalOptions eval;

  int64_t output_size() const { return kind == Kind::Augment ? augment.size : eval.crop; }
  // Throws std::invalid_argument naming the offending option. Fills blur.kernel_size's default.
  void validate(int64_t channels);
};

int64_t default_blur_kernel_size(int64_t output_size);

enum JitterOp : int { kBrightness = 0, kContrast = 1, kSaturation = 2, kHue = 3 };

// One sample's drawn parameters. Identity values (factor 1, hue 0, flags false) mean "not
// applied".
struct AugmentParams {
  CropBox crop;
  bool jitter = false;
  std::array<int, 4> order{kBrightness, kContrast, kSaturation, kHue};
  double brightness = 1, contrast = 1, saturation = 1, hue = 0;
  bool grayscale = false;
  bool blur = false;
  double sigma = 0;
  bool flip = false;
};

// torchvision RandomResizedCrop.get_params: 10 attempts of (area scale, log-uniform ratio),
// Python rounding (half to even), then a uniform position; else the center-crop fallback.
CropBox sample_crop(Philox& rng, int64_t height, int64_t width, double scale_min, double scale_max, double ratio_min,
                    double ratio_max);

// Draw order: crop; jitter gate, then (if applied) the op order (a random permutation) and the
// brightness, contrast, saturation and hue factors; grayscale gate; blur gate, then sigma;
// flip gate. Gates are u < p.
AugmentParams sample_augment(const AugmentOptions& options, Philox& rng, int64_t height, int64_t width);

// Per-thread scratch memory, reused across samples.
struct Workspace {
  std::vector<float> temp;
  std::vector<uint8_t> converted;
  std::vector<int64_t> x_start, x_count, y_start, y_count;
  std::vector<float> x_weights, y_weights;
  std::vector<float> kernel;
  std::vector<float> view;  // one view before conversion to the batch's dtype
  std::vector<float> row;   // one source row converted to float
};

// The whole augmentation of one view: `out` receives channels x size x size floats, normalized,
// or in [0, 1] when `normalize` is false.
void apply_augment(const Image& image, int64_t channels, const AugmentOptions& options, const AugmentParams& params,
                   float* out, Workspace& ws, bool normalize = true);
// Resize of the shorter side to `resize` (aspect kept, torchvision's int() rounding of the
// longer side), center crop to `crop`, normalize (unless `normalize` is false).
void apply_eval(const Image& image, int64_t channels, const EvalOptions& options, float* out, Workspace& ws,
                bool normalize = true);

// ---- crop-aware decoding ---------------------------------------------------------------------

// The largest reduction d in {1, 2, 4, 8} at which a crop_h x crop_w region still downscales to
// out_h x out_w (crop >= d * out in both dimensions), so the antialiased resize keeps doing the
// filtering and the DCT-domain reduction only removes detail the resize would have removed.
int64_t reduction_for(int64_t crop_h, int64_t crop_w, int64_t out_h, int64_t out_w);
// What the views of one sample read: each view's crop at its reduction, or, with two views, both
// crops' bounding box once at the finer reduction when a cost model of libjpeg-turbo's decode
// (entropy decoding of every row up to the region's bottom, IDCT per decoded pixel) says that is
// cheaper than two decodes. The crops themselves are not changed.
DecodeRequest plan_augment_decode(const AugmentParams* params, int64_t views, int64_t size, int64_t height,
                                  int64_t width);
// What apply_eval reads: the center window's source pixels (with the filter's support), at the
// largest reduction that keeps the resize of the whole image a downscale.
DecodeRequest plan_eval_decode(const EvalOptions& options, int64_t height, int64_t width);

// ---- the single ops (also the parity-test entry points) ---------------------------------------

// Resizes `box` of the image to target_h x target_w (antialiased bilinear) and writes the window
// [out_top, out_top + out_h) x [out_left, out_left + out_w) of the result as float CHW in [0, 1],
// mirrored horizontally when `flip`. Converts the image to `channels` first if needed.
void resample(const Image& image, int64_t channels, const CropBox& box, int64_t target_h, int64_t target_w,
              int64_t out_top, int64_t out_left, int64_t out_h, int64_t out_w, bool flip, float* out, Workspace& ws);

// In place on float CHW images (c = 1 or 3). For one channel, saturation, hue and grayscale
// leave the image unchanged, as torchvision does.
void adjust_brightness(float* img, int64_t c, int64_t h, int64_t w, double factor);
void adjust_contrast(float* img, int64_t c, int64_t h, int64_t w, double factor);
void adjust_saturation(float* img, int64_t c, int64_t h, int64_t w, double factor);
void adjust_hue(float* img, int64_t c, int64_t h, int64_t w, double factor);
void to_grayscale(float* img, int64_t c, int64_t h, int64_t w);
// Separable Gaussian with reflect padding (torchvision.transforms.functional.gaussian_blur with
// kernel [k, k] and sigma [s, s]). Images smaller than the kernel's half-width keep reflecting
// (torchvision raises there).
void gaussian_blur(float* img, int64_t c, int64_t h, int64_t w, int64_t kernel_size, double sigma, Workspace& ws);
void normalize(float* img, int64_t c, int64_t h, int64_t w, const std::vector<float>& mean,
               const std::vector<float>& std);

// Converts an image to `channels` (1 or 3) the way PIL's convert('L') / convert('RGB') does
// (ITU-R 601-2 luma in 16-bit fixed point; gray replicated; alpha dropped).
Image convert_channels(const Image& image, int64_t channels, std::vector<uint8_t>& storage);

}  // namespace s2bnn::data
