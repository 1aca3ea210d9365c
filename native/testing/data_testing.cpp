// The test addon (s2bnn_testing.node): the data layer's single ops with given parameters, for the
// parity tests against torchvision, and the parameters the loader draws. Built beside the
// production addon in every source build and never shipped in a package: nothing here is API.
// Images cross as typed arrays (pixels in, floats out), so this addon needs no tensor handles.
#include <napi.h>

#include <cmath>
#include <vector>

#include "../binding/arguments.h"
#include "../binding/data_options.h"
#include "../data/augment.h"
#include "../data/rng.h"

namespace s2bnn::testing {
namespace {

using binding::Options;
using binding::argument_errors;
using binding::guarded;
using binding::throw_argument;

data::CropBox box_or(const Options& o, const char* key, const data::CropBox& fallback) {
  if (!o.has(key)) return fallback;
  const std::vector<int64_t> b = binding::int_list(o.env(), o.value(key), o.name(key).c_str());
  if (b.size() != 4) throw_argument(o.env(), o.name(key) + " must be [top, left, height, width]");
  data::CropBox box;
  box.top = b[0];
  box.left = b[1];
  box.height = b[2];
  box.width = b[3];
  return box;
}

data::AugmentParams parse_params(const Options& o) {
  data::AugmentParams p;
  p.crop = box_or(o, "crop", p.crop);
  p.jitter = o.boolean_or("jitter", false);
  if (o.has("order")) {
    const std::vector<int64_t> list = binding::int_list(o.env(), o.value("order"), o.name("order").c_str());
    if (list.size() != 4) throw_argument(o.env(), o.name("order") + " must list the 4 jitter ops");
    for (size_t i = 0; i < 4; ++i) {
      if (list[i] < 0 || list[i] > 3) throw_argument(o.env(), o.name("order") + " entries must be 0..3");
      p.order[i] = static_cast<int>(list[i]);
    }
  }
  p.brightness = o.number_or("brightness", 1.0);
  p.contrast = o.number_or("contrast", 1.0);
  p.saturation = o.number_or("saturation", 1.0);
  p.hue = o.number_or("hue", 0.0);
  p.grayscale = o.boolean_or("grayscale", false);
  p.blur = o.boolean_or("blur", false);
  p.sigma = o.number_or("sigma", 0.0);
  p.flip = o.boolean_or("flip", false);
  return p;
}

// {pixels: Uint8Array, shape: [H, W, C]} -> an Image viewing the JS memory (valid for this call).
data::Image image_of(Napi::Env env, const Napi::Value& value) {
  const Options o(env, value, "image");
  const Napi::Value pixels = o.value("pixels");
  if (!pixels.IsTypedArray() || pixels.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw_argument(env, "image.pixels must be a Uint8Array");
  }
  const std::vector<int64_t> shape = binding::int_list(env, o.value("shape"), "image.shape");
  if (shape.size() != 3) throw_argument(env, "image.shape must be [H, W, C]");
  if (shape[2] != 1 && shape[2] != 3 && shape[2] != 4) throw_argument(env, "image must have 1, 3 or 4 channels");
  if (shape[0] < 1 || shape[1] < 1) throw_argument(env, "image must not be empty");
  const Napi::Uint8Array bytes = pixels.As<Napi::Uint8Array>();
  if (static_cast<int64_t>(bytes.ElementLength()) != shape[0] * shape[1] * shape[2]) {
    throw_argument(env, "image.pixels must hold H * W * C bytes");
  }
  data::Image image;
  image.height = shape[0];
  image.width = shape[1];
  image.channels = shape[2];
  image.pixels = bytes.Data();
  return image;
}

Napi::Object planes(Napi::Env env, const std::vector<float>& values, int64_t c, int64_t h, int64_t w) {
  Napi::Float32Array data = Napi::Float32Array::New(env, values.size());
  std::copy(values.begin(), values.end(), data.Data());
  Napi::Array shape = Napi::Array::New(env, 3);
  shape.Set(0u, Napi::Number::New(env, static_cast<double>(c)));
  shape.Set(1u, Napi::Number::New(env, static_cast<double>(h)));
  shape.Set(2u, Napi::Number::New(env, static_cast<double>(w)));
  Napi::Object out = Napi::Object::New(env);
  out.Set("data", data);
  out.Set("shape", shape);
  return out;
}

// applyTransform(image, spec) -> {data: Float32Array, shape: [C', H', W']}. Color ops, blur and
// normalize run on the image converted to float [0, 1] CHW, as torchvision's tensor ops do.
Napi::Value apply_transform(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const data::Image image = image_of(env, info[0]);
    const Options spec(env, info[1], "spec");
    const std::string op = spec.string("op");
    const int64_t c = spec.integer_or("channels", image.channels == 1 ? 1 : 3);
    if (c != 1 && c != 3) throw_argument(env, "spec.channels must be 1 or 3");
    const int64_t h = image.height, w = image.width;
    data::Workspace ws;
    data::CropBox whole;
    whole.height = h;
    whole.width = w;
    return argument_errors(env, [&]() -> Napi::Value {
      if (op == "resample") {
        const data::CropBox box = box_or(spec, "box", whole);
        const std::vector<int64_t> size = binding::int_list(env, spec.value("size"), "spec.size");
        if (size.size() != 2 || size[0] < 1 || size[1] < 1) throw_argument(env, "spec.size must be [height, width]");
        data::CropBox window;
        window.height = size[0];
        window.width = size[1];
        window = box_or(spec, "window", window);
        if (window.top < 0 || window.left < 0 || window.height < 1 || window.width < 1 ||
            window.top + window.height > size[0] || window.left + window.width > size[1]) {
          throw_argument(env, "spec.window must lie inside spec.size");
        }
        std::vector<float> out(static_cast<size_t>(c * window.height * window.width));
        data::resample(image, c, box, size[0], size[1], window.top, window.left, window.height, window.width,
                       spec.boolean_or("flip", false), out.data(), ws);
        return planes(env, out, c, window.height, window.width);
      }
      if (op == "augment") {
        data::Transform t;
        t.augment = binding::parse_augment(spec.object("options"));
        t.validate(c);
        const data::AugmentParams params = parse_params(spec.object("params"));
        const int64_t s = t.augment.size;
        std::vector<float> out(static_cast<size_t>(c * s * s));
        data::apply_augment(image, c, t.augment, params, out.data(), ws);
        return planes(env, out, c, s, s);
      }
      if (op == "eval") {
        data::Transform t = binding::parse_transform(spec.object("transform"));
        if (t.kind != data::Transform::Kind::Eval) throw_argument(env, "spec.transform must be of kind 'eval'");
        t.validate(c);
        const int64_t s = t.eval.crop;
        std::vector<float> out(static_cast<size_t>(c * s * s));
        data::apply_eval(image, c, t.eval, out.data(), ws);
        return planes(env, out, c, s, s);
      }
      std::vector<float> out(static_cast<size_t>(c * h * w));
      data::resample(image, c, whole, h, w, 0, 0, h, w, false, out.data(), ws);
      float* x = out.data();
      if (op == "toFloat") {
      } else if (op == "brightness" || op == "contrast" || op == "saturation" || op == "hue") {
        const double factor = binding::number(env, spec.value("factor"), "spec.factor");
        if (op == "hue" ? !(factor >= -0.5 && factor <= 0.5) : !(factor >= 0 && std::isfinite(factor))) {
          throw_argument(env, "spec.factor out of range for " + op);
        }
        if (op == "brightness") data::adjust_brightness(x, c, h, w, factor);
        if (op == "contrast") data::adjust_contrast(x, c, h, w, factor);
        if (op == "saturation") data::adjust_saturation(x, c, h, w, factor);
        if (op == "hue") data::adjust_hue(x, c, h, w, factor);
      } else if (op == "grayscale") {
        data::to_grayscale(x, c, h, w);
      } else if (op == "blur") {
        const int64_t k = spec.integer("kernelSize");
        const double sigma = binding::number(env, spec.value("sigma"), "spec.sigma");
        if (k < 1 || k % 2 == 0) throw_argument(env, "spec.kernelSize must be odd and >= 1");
        if (!(sigma > 0)) throw_argument(env, "spec.sigma must be > 0");
        data::gaussian_blur(x, c, h, w, k, sigma, ws);
      } else if (op == "normalize") {
        const std::vector<float> mean = spec.floats("mean"), std = spec.floats("std");
        if (static_cast<int64_t>(mean.size()) != c || static_cast<int64_t>(std.size()) != c) {
          throw_argument(env, "spec.mean and spec.std need one value per channel");
        }
        data::normalize(x, c, h, w, mean, std);
      } else {
        throw_argument(env, "unknown spec.op '" + op +
                                "' (expected resample, augment, eval, toFloat, brightness, contrast, saturation, hue, "
                                "grayscale, blur or normalize)");
      }
      return planes(env, out, c, h, w);
    });
  });
}

// sampleAugment(options, {seed, epoch, view, height, width, first, count}) -> the parameters
// drawn for samples first..first+count-1, exactly as the loader draws them, as columns of typed
// arrays (one JS object per sample would cost more than the draws).
Napi::Value sample_augment(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    data::Transform t;
    t.augment = binding::parse_augment(Options(env, info[0], "options"));
    const Options where(env, info[1], "where");
    const int64_t seed = where.integer_or("seed", 0);
    const int64_t epoch = where.integer_or("epoch", 0);
    const int64_t view = where.integer_or("view", 0);
    const int64_t height = where.integer_or("height", 0);
    const int64_t width = where.integer_or("width", 0);
    const int64_t count = where.integer_or("count", 1);
    const int64_t first = where.integer_or("first", 0);
    if (seed < 0 || epoch < 0 || view < 0 || first < 0 || height < 1 || width < 1 || count < 0 || count > 10000000) {
      throw_argument(env, "where needs seed, epoch, view, first >= 0, height, width >= 1 and 0 <= count <= 1e7");
    }
    argument_errors(env, [&] { t.validate(static_cast<int64_t>(t.augment.mean.size())); });
    const size_t n = static_cast<size_t>(count);
    Napi::Int32Array crop = Napi::Int32Array::New(env, 4 * n), order = Napi::Int32Array::New(env, 4 * n);
    Napi::Uint8Array flags = Napi::Uint8Array::New(env, 4 * n);  // jitter, grayscale, blur, flip
    Napi::Float64Array factors = Napi::Float64Array::New(env, 5 * n);  // b, c, s, h, sigma
    for (size_t i = 0; i < n; ++i) {
      data::Philox rng = data::sample_stream(static_cast<uint64_t>(seed), epoch, first + static_cast<int64_t>(i), view);
      const data::AugmentParams p = data::sample_augment(t.augment, rng, height, width);
      const int64_t box[4] = {p.crop.top, p.crop.left, p.crop.height, p.crop.width};
      for (size_t k = 0; k < 4; ++k) {
        crop[4 * i + k] = static_cast<int32_t>(box[k]);
        order[4 * i + k] = p.order[k];
      }
      flags[4 * i] = p.jitter;
      flags[4 * i + 1] = p.grayscale;
      flags[4 * i + 2] = p.blur;
      flags[4 * i + 3] = p.flip;
      const double f[5] = {p.brightness, p.contrast, p.saturation, p.hue, p.sigma};
      for (size_t k = 0; k < 5; ++k) factors[5 * i + k] = f[k];
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("crop", crop);
    out.Set("order", order);
    out.Set("flags", flags);
    out.Set("factors", factors);
    return out;
  });
}

Napi::Value default_blur_kernel_size(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t size = binding::integer(env, info[0], "size");
    if (size < 1) throw_argument(env, "size must be >= 1");
    return Napi::Number::New(env, static_cast<double>(data::default_blur_kernel_size(size)));
  });
}

}  // namespace
}  // namespace s2bnn::testing

static Napi::Object InitS2bnnTesting(Napi::Env env, Napi::Object exports) {
  exports.Set("applyTransform", Napi::Function::New(env, s2bnn::testing::apply_transform));
  exports.Set("sampleAugment", Napi::Function::New(env, s2bnn::testing::sample_augment));
  exports.Set("defaultBlurKernelSize", Napi::Function::New(env, s2bnn::testing::default_blur_kernel_size));
  return exports;
}

NODE_API_MODULE(s2bnn_testing, InitS2bnnTesting)
