#include "data_options.h"

namespace s2bnn::binding {

data::AugmentOptions parse_augment(const Options& o) {
  data::AugmentOptions out;
  out.size = o.integer("size");
  std::tie(out.scale_min, out.scale_max) = o.range_or("scale", {out.scale_min, out.scale_max});
  std::tie(out.ratio_min, out.ratio_max) = o.range_or("ratio", {out.ratio_min, out.ratio_max});
  out.hflip = o.number_or("hflip", 0.0);
  out.grayscale = o.number_or("grayscale", 0.0);
  if (o.has("colorJitter")) {
    const Options j = o.object("colorJitter");
    out.jitter.p = j.number_or("p", 1.0);
    out.jitter.brightness = j.number_or("brightness", 0.0);
    out.jitter.contrast = j.number_or("contrast", 0.0);
    out.jitter.saturation = j.number_or("saturation", 0.0);
    out.jitter.hue = j.number_or("hue", 0.0);
  }
  if (o.has("blur")) {
    const Options b = o.object("blur");
    out.blur.p = b.number_or("p", 1.0);
    std::tie(out.blur.sigma_min, out.blur.sigma_max) = b.range_or("sigma", {out.blur.sigma_min, out.blur.sigma_max});
    out.blur.kernel_size = b.integer_or("kernelSize", 0);
    if (b.has("kernelSize") && out.blur.kernel_size < 1) throw_argument(o.env(), b.name("kernelSize") + " must be odd and >= 1");
  }
  out.mean = o.floats("mean");
  out.std = o.floats("std");
  return out;
}

data::Transform parse_transform(const Options& o) {
  const std::string kind = o.string("kind");
  data::Transform t;
  if (kind == "augment") {
    t.kind = data::Transform::Kind::Augment;
    t.augment = parse_augment(o.object("options"));
  } else if (kind == "eval") {
    t.kind = data::Transform::Kind::Eval;
    t.eval.resize = o.integer("resize");
    t.eval.crop = o.integer("crop");
    t.eval.mean = o.floats("mean");
    t.eval.std = o.floats("std");
  } else {
    throw_argument(o.env(), o.name("kind") + " must be 'augment' or 'eval', got '" + kind + "'");
  }
  return t;
}

}  // namespace s2bnn::binding
