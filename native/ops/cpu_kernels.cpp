// Fused CPU kernels: one pass over memory per direction, no intermediate tensors, the backward
// recomputing from the saved input instead of reading a saved mask. float runs through
// multiversioned loops (AVX-512 / AVX2 / baseline picked at load time); double, half and bfloat16
// through the same arithmetic in generic loops.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <numeric>
#include <vector>

#include "checks.h"
#include "shared.h"
#include "kernels/math.h"
#include "kernels/rows.h"

// Feature-based clones: "arch=<cpu>" clones dispatch on the CPU model's identity and would run
// the baseline loop on any CPU not named (an AMD EPYC with AVX-512, say).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define S2BNN_MULTIVERSION __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define S2BNN_MULTIVERSION
#endif

namespace s2bnn::cpu {
namespace {

using namespace s2bnn::kernels;

// Arithmetic type per storage type: half and bfloat16 compute in float.
template <typename T>
using opmath_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

constexpr int64_t kGrain = 32768;

// ---- loops: a generic template per kernel, and a multiversioned float overload that overload
// resolution picks for float32 ------------------------------------------------------------------

template <typename T>
void sign_forward(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = T(sign_value(opmath_t<T>(x[i])));
}
S2BNN_MULTIVERSION void sign_forward(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = sign_value(x[i]);
}

template <typename T>
void sign_backward(const T* g, const T* x, T* out, int64_t n) {
  using Acc = opmath_t<T>;
  for (int64_t i = 0; i < n; ++i) out[i] = T(Acc(g[i]) * approx_sign_grad(Acc(x[i])));
}
S2BNN_MULTIVERSION void sign_backward(const float* g, const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] * approx_sign_grad(x[i]);
}

template <typename T>
void biased_sign_plane(const T* x, T* y, int64_t n, opmath_t<T> bias) {
  for (int64_t i = 0; i < n; ++i) y[i] = T(sign_value(opmath_t<T>(x[i]) + bias));
}
S2BNN_MULTIVERSION void biased_sign_plane(const float* x, float* y, int64_t n, float bias) {
  for (int64_t i = 0; i < n; ++i) y[i] = sign_value(x[i] + bias);
}

// One plane of one channel: writes grad_x and adds the plane's sum (the bias gradient) to `sum`.
template <typename T>
void biased_sign_plane_backward(const T* g, const T* x, T* gx, int64_t n, opmath_t<T> bias, double* sum) {
  using Acc = opmath_t<T>;
  for (int64_t i = 0; i < n; ++i) {
    const Acc gi = Acc(g[i]) * approx_sign_grad(Acc(x[i]) + bias);
    gx[i] = T(gi);
    *sum += gi;
  }
}
S2BNN_MULTIVERSION void biased_sign_plane_backward(const float* g, const float* x, float* gx, int64_t n,
                                                   float bias, double* sum) {
  float partial = 0;
  S2BNN_SIMD(reduction(+ : partial))
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * approx_sign_grad(x[i] + bias);
    gx[i] = gi;
    partial += gi;
  }
  *sum += partial;
}

template <typename T>
void scaled_sign(const T* w, T* out, int64_t n, opmath_t<T> alpha) {
  for (int64_t i = 0; i < n; ++i) out[i] = T(alpha * sign_value(opmath_t<T>(w[i])));
}
S2BNN_MULTIVERSION void scaled_sign(const float* w, float* out, int64_t n, float alpha) {
  for (int64_t i = 0; i < n; ++i) out[i] = alpha * sign_value(w[i]);
}

template <typename T>
void clipped_backward(const T* g, const T* w, T* out, int64_t n) {
  using Acc = opmath_t<T>;
  for (int64_t i = 0; i < n; ++i) out[i] = T(Acc(g[i]) * clipped_ste_grad(Acc(w[i])));
}
S2BNN_MULTIVERSION void clipped_backward(const float* g, const float* w, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] * clipped_ste_grad(w[i]);
}

template <typename T>
void rprelu_plane(const T* x, T* y, int64_t n, opmath_t<T> bias_in, opmath_t<T> slope,
                  opmath_t<T> bias_out) {
  for (int64_t i = 0; i < n; ++i) y[i] = T(rprelu_value(opmath_t<T>(x[i]), bias_in, slope, bias_out));
}
S2BNN_MULTIVERSION void rprelu_plane(const float* x, float* y, int64_t n, float bias_in,
                                     float slope, float bias_out) {
  for (int64_t i = 0; i < n; ++i) y[i] = rprelu_value(x[i], bias_in, slope, bias_out);
}
// Channels-last: one pixel's channels are contiguous, the parameters vary along the row.
template <typename T>
void rprelu_row(const T* x, T* y, int64_t channels, const T* bias_in, const T* slope, const T* bias_out) {
  using Acc = opmath_t<T>;
  for (int64_t c = 0; c < channels; ++c) y[c] = T(rprelu_value(Acc(x[c]), Acc(bias_in[c]), Acc(slope[c]), Acc(bias_out[c])));
}
S2BNN_MULTIVERSION void rprelu_row(const float* x, float* y, int64_t channels, const float* bias_in,
                                   const float* slope, const float* bias_out) {
  for (int64_t c = 0; c < channels; ++c) y[c] = rprelu_value(x[c], bias_in[c], slope[c], bias_out[c]);
}

// One plane of one channel: writes grad_x and adds the plane's sums for the gradients of
// [bias_in, slope, bias_out] to `sums`.
template <typename T>
void rprelu_plane_backward(const T* g, const T* x, T* gx, int64_t n, opmath_t<T> bias_in,
                           opmath_t<T> slope, double* sums) {
  using Acc = opmath_t<T>;
  for (int64_t i = 0; i < n; ++i) {
    const Acc gi = Acc(g[i]), z = Acc(x[i]) + bias_in;
    const Acc gz = rprelu_input_grad(gi, z, slope);
    gx[i] = T(gz);
    sums[0] += gz;
    sums[1] += rprelu_slope_grad(gi, z);
    sums[2] += gi;
  }
}
S2BNN_MULTIVERSION void rprelu_plane_backward(const float* g, const float* x, float* gx,
                                              int64_t n, float bias_in, float slope,
                                              double* sums) {
  float sum_input = 0, sum_slope = 0, sum_output = 0;
  S2BNN_SIMD(reduction(+ : sum_input, sum_slope, sum_output))
  for (int64_t i = 0; i < n; ++i) {
    const float z = x[i] + bias_in;
    const float gz = rprelu_input_grad(g[i], z, slope);
    gx[i] = gz;
    sum_input += gz;
    sum_slope += rprelu_slope_grad(g[i], z);
    sum_output += g[i];
  }
  sums[0] += sum_input;
  sums[1] += sum_slope;
  sums[2] += sum_output;
}

template <typename T>
void distribution_rows(const T* s, const T* t, double* losses, int64_t rows, int64_t width,
                       opmath_t<T> inv_t) {
  for (int64_t r = 0; r < rows; ++r) {
    losses[r] = distribution_loss_row<T, opmath_t<T>>(s + r * width, t + r * width, width, inv_t);
  }
}
S2BNN_MULTIVERSION void distribution_rows(const float* s, const float* t, double* losses,
                                          int64_t rows, int64_t width, float inv_t) {
  for (int64_t r = 0; r < rows; ++r) {
    losses[r] = distribution_loss_row<float, float>(s + r * width, t + r * width, width, inv_t);
  }
}

template <typename T>
void distribution_rows_with_grad(const T* s, const T* t, T* gs, double* losses, int64_t rows,
                                 int64_t width, opmath_t<T> inv_t, opmath_t<T> scale) {
  for (int64_t r = 0; r < rows; ++r) {
    losses[r] = distribution_loss_row_with_grad<T, opmath_t<T>>(s + r * width, t + r * width,
                                                               gs + r * width, width, inv_t, scale);
  }
}
S2BNN_MULTIVERSION void distribution_rows_with_grad(const float* s, const float* t, float* gs,
                                                    double* losses, int64_t rows, int64_t width,
                                                    float inv_t, float scale) {
  for (int64_t r = 0; r < rows; ++r) {
    losses[r] = distribution_loss_row_with_grad<float, float>(s + r * width, t + r * width,
                                                             gs + r * width, width, inv_t, scale);
  }
}

template <typename T>
void info_nce_rows(T* logits, double* losses, int64_t rows, int64_t width, opmath_t<T> inv_t) {
  for (int64_t r = 0; r < rows; ++r) {
    losses[r] = info_nce_row<T, opmath_t<T>>(logits + r * width, width, inv_t);
  }
}
S2BNN_MULTIVERSION void info_nce_rows(float* logits, double* losses, int64_t rows, int64_t width,
                                      float inv_t) {
  for (int64_t r = 0; r < rows; ++r) {
    losses[r] = info_nce_row<float, float>(logits + r * width, width, inv_t);
  }
}

template <typename T>
void info_nce_rows_grad(const T* logits, T* grad, int64_t rows, int64_t width,
                        opmath_t<T> scale) {
  for (int64_t r = 0; r < rows; ++r) {
    info_nce_row_grad<T, opmath_t<T>>(logits + r * width, grad + r * width, width, scale);
  }
}
S2BNN_MULTIVERSION void info_nce_rows_grad(const float* logits, float* grad, int64_t rows,
                                           int64_t width, float scale) {
  for (int64_t r = 0; r < rows; ++r) {
    info_nce_row_grad<float, float>(logits + r * width, grad + r * width, width, scale);
  }
}

// ---- the operators ---------------------------------------------------------------------------

#define S2BNN_DISPATCH_FLOATING(tensor, name, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, (tensor).scalar_type(), name, __VA_ARGS__)

// body(plane index, channel) for every [N, C, plane] plane, planes in parallel.
template <typename Body>
void for_each_plane(int64_t batch, int64_t channels, int64_t plane, Body&& body) {
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(plane, 1));
  at::parallel_for(0, batch * channels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) body(p, p % channels);
  });
}

// body(channel, offset of one of its planes) for every plane, channels in parallel and each
// channel's planes in batch order on one thread: per-channel sums are deterministic, no atomics.
template <typename Body>
void for_each_channel_plane(int64_t batch, int64_t channels, int64_t plane, Body&& body) {
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(batch * plane, 1));
  at::parallel_for(0, channels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      for (int64_t n = 0; n < batch; ++n) body(c, (n * channels + c) * plane);
    }
  });
}

// out[i] = f(in...[i]) over the flat, contiguous index space, in parallel chunks.
template <typename Body>
void parallel_elements(int64_t n, Body&& body) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) { body(begin, end - begin); });
}

// Rows per task: threads only pay off from about 16K elements per task.
int64_t row_grain(int64_t width) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(width, 1)); }

double mean_of(const std::vector<double>& values) {
  double total = 0;
  for (double v : values) total += v;  // fixed order: deterministic for any thread count
  return total / static_cast<double>(values.size());
}

at::Tensor sign_ste(const at::Tensor& x) {
  checks::floating("sign_ste", "x", x);
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty_like(input);
  S2BNN_DISPATCH_FLOATING(input, "sign_ste", [&] {
    const scalar_t* src = input.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    parallel_elements(input.numel(), [&](int64_t at, int64_t n) { sign_forward(src + at, dst + at, n); });
  });
  return out;
}

at::Tensor sign_ste_backward(const at::Tensor& grad, const at::Tensor& x) {
  checks::floating("sign_ste_backward", "x", x);
  checks::grad_matches("sign_ste_backward", grad, "x", x);
  const at::Tensor g = grad.contiguous(), input = x.contiguous();
  at::Tensor out = at::empty_like(input);
  S2BNN_DISPATCH_FLOATING(input, "sign_ste_backward", [&] {
    const scalar_t *gp = g.data_ptr<scalar_t>(), *xp = input.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    parallel_elements(input.numel(), [&](int64_t at, int64_t n) { sign_backward(gp + at, xp + at, dst + at, n); });
  });
  return out;
}

at::Tensor sign_ste_biased(const at::Tensor& x, const at::Tensor& bias) {
  checks::sign_ste_biased_args(x, bias);
  const at::Tensor input = x.contiguous(), b = bias.contiguous();
  at::Tensor out = at::empty_like(input);
  const auto [batch, channels, plane] = shared::layout_of(input);
  S2BNN_DISPATCH_FLOATING(input, "sign_ste_biased", [&] {
    const scalar_t *src = input.data_ptr<scalar_t>(), *bp = b.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    for_each_plane(batch, channels, plane, [&](int64_t p, int64_t c) {
      biased_sign_plane(src + p * plane, dst + p * plane, plane, opmath_t<scalar_t>(bp[c]));
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> sign_ste_biased_backward(const at::Tensor& grad, const at::Tensor& x,
                                                            const at::Tensor& bias) {
  checks::sign_ste_biased_args(x, bias);
  checks::grad_matches("sign_ste_biased_backward", grad, "x", x);
  const at::Tensor g = grad.contiguous(), input = x.contiguous(), b = bias.contiguous();
  at::Tensor grad_x = at::empty_like(input);
  const auto [batch, channels, plane] = shared::layout_of(input);
  at::Tensor sums = at::zeros({channels}, input.options().dtype(at::kDouble));
  S2BNN_DISPATCH_FLOATING(input, "sign_ste_biased_backward", [&] {
    const scalar_t *gp = g.data_ptr<scalar_t>(), *xp = input.data_ptr<scalar_t>(), *bp = b.data_ptr<scalar_t>();
    scalar_t* gxp = grad_x.data_ptr<scalar_t>();
    double* sp = sums.data_ptr<double>();
    for_each_channel_plane(batch, channels, plane, [&](int64_t c, int64_t offset) {
      biased_sign_plane_backward(gp + offset, xp + offset, gxp + offset, plane, opmath_t<scalar_t>(bp[c]), sp + c);
    });
  });
  return {grad_x, sums.to(bias.scalar_type()).reshape(bias.sizes())};
}

at::Tensor binarize_weight(const at::Tensor& w) {
  checks::binarize_weight_args(w);
  const at::Tensor weight = w.contiguous();
  at::Tensor out = at::empty_like(weight);
  const int64_t channels = weight.size(0);
  const int64_t per_channel = weight.numel() / channels;
  // alpha through libtorch's own mean: bit-identical to torch.mean(|w|, dims) in the reference,
  // so both sides binarize every downstream activation the same way (a last-bit difference in
  // alpha can flip a sign deep in the network). The weights are small; this costs nothing.
  std::vector<int64_t> dims(weight.dim() - 1);
  std::iota(dims.begin(), dims.end(), 1);
  const at::Tensor alpha = dims.empty() ? weight.abs() : at::mean(weight.abs(), dims).contiguous();
  S2BNN_DISPATCH_FLOATING(weight, "binarize_weight", [&] {
    const scalar_t* src = weight.data_ptr<scalar_t>();
    const scalar_t* scale = alpha.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(per_channel, 1));
    at::parallel_for(0, channels, grain, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) {
        scaled_sign(src + o * per_channel, dst + o * per_channel, per_channel, opmath_t<scalar_t>(scale[o]));
      }
    });
  });
  return out;
}

at::Tensor binarize_weight_backward(const at::Tensor& grad, const at::Tensor& w) {
  checks::binarize_weight_args(w);
  checks::grad_matches("binarize_weight_backward", grad, "w", w);
  const at::Tensor g = grad.contiguous(), weight = w.contiguous();
  at::Tensor out = at::empty_like(weight);
  S2BNN_DISPATCH_FLOATING(weight, "binarize_weight_backward", [&] {
    const scalar_t *gp = g.data_ptr<scalar_t>(), *wp = weight.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    parallel_elements(weight.numel(), [&](int64_t at, int64_t n) { clipped_backward(gp + at, wp + at, dst + at, n); });
  });
  return out;
}

at::Tensor rprelu(const at::Tensor& x, const at::Tensor& bias_in, const at::Tensor& weight,
                  const at::Tensor& bias_out) {
  checks::rprelu_args(x, bias_in, weight, bias_out);
  const at::Tensor b1 = bias_in.contiguous(), a = weight.contiguous(), b2 = bias_out.contiguous();
  if (x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    // Channels-last activations (the packed inference path) stay channels-last: no transpose.
    at::Tensor out = at::empty_like(x);
    const int64_t channels = x.size(1), pixels = x.numel() / std::max<int64_t>(channels, 1);
    S2BNN_DISPATCH_FLOATING(x, "rprelu", [&] {
      const scalar_t* src = x.data_ptr<scalar_t>();
      scalar_t* dst = out.data_ptr<scalar_t>();
      const scalar_t *b1p = b1.data_ptr<scalar_t>(), *ap = a.data_ptr<scalar_t>(), *b2p = b2.data_ptr<scalar_t>();
      at::parallel_for(0, pixels, row_grain(channels), [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) rprelu_row(src + p * channels, dst + p * channels, channels, b1p, ap, b2p);
      });
    });
    return out;
  }
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty_like(input);
  const auto [batch, channels, plane] = shared::layout_of(input);
  S2BNN_DISPATCH_FLOATING(input, "rprelu", [&] {
    using Acc = opmath_t<scalar_t>;
    const scalar_t* src = input.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const scalar_t *b1p = b1.data_ptr<scalar_t>(), *ap = a.data_ptr<scalar_t>(),
                   *b2p = b2.data_ptr<scalar_t>();
    for_each_plane(batch, channels, plane, [&](int64_t p, int64_t c) {
      rprelu_plane(src + p * plane, dst + p * plane, plane, Acc(b1p[c]), Acc(ap[c]), Acc(b2p[c]));
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rprelu_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& bias_in,
    const at::Tensor& weight, const at::Tensor& bias_out) {
  checks::rprelu_args(x, bias_in, weight, bias_out);
  checks::grad_matches("rprelu_backward", grad, "x", x);
  const at::Tensor g = grad.contiguous(), input = x.contiguous();
  const at::Tensor b1 = bias_in.contiguous(), a = weight.contiguous();
  at::Tensor grad_x = at::empty_like(input);
  const auto [batch, channels, plane] = shared::layout_of(input);
  at::Tensor sums = at::zeros({channels, 3}, input.options().dtype(at::kDouble));
  S2BNN_DISPATCH_FLOATING(input, "rprelu_backward", [&] {
    using Acc = opmath_t<scalar_t>;
    const scalar_t *gp = g.data_ptr<scalar_t>(), *xp = input.data_ptr<scalar_t>();
    scalar_t* gxp = grad_x.data_ptr<scalar_t>();
    const scalar_t *b1p = b1.data_ptr<scalar_t>(), *ap = a.data_ptr<scalar_t>();
    double* sp = sums.data_ptr<double>();
    for_each_channel_plane(batch, channels, plane, [&](int64_t c, int64_t offset) {
      rprelu_plane_backward(gp + offset, xp + offset, gxp + offset, plane, Acc(b1p[c]), Acc(ap[c]), sp + c * 3);
    });
  });
  auto column = [&](int64_t k, const at::Tensor& like) {
    return sums.select(1, k).to(like.scalar_type()).reshape(like.sizes());
  };
  return {grad_x, column(0, bias_in), column(1, weight), column(2, bias_out)};
}

at::Tensor distribution_loss(const at::Tensor& student, const at::Tensor& teacher,
                             double temperature) {
  checks::distribution_loss_args(student, teacher, temperature);
  const at::Tensor s = student.contiguous(), t = teacher.contiguous();
  const int64_t rows = s.size(0), width = s.size(1);
  std::vector<double> losses(rows);
  S2BNN_DISPATCH_FLOATING(s, "distribution_loss", [&] {
    const scalar_t *sp = s.data_ptr<scalar_t>(), *tp = t.data_ptr<scalar_t>();
    const auto inv_t = opmath_t<scalar_t>(1.0 / temperature);
    at::parallel_for(0, rows, row_grain(width), [&](int64_t begin, int64_t end) {
      distribution_rows(sp + begin * width, tp + begin * width, losses.data() + begin, end - begin,
                        width, inv_t);
    });
  });
  return at::scalar_tensor(mean_of(losses), s.options());
}

std::tuple<at::Tensor, at::Tensor> distribution_loss_with_grad(const at::Tensor& student,
                                                                const at::Tensor& teacher,
                                                                double temperature) {
  checks::distribution_loss_args(student, teacher, temperature);
  const at::Tensor s = student.contiguous(), t = teacher.contiguous();
  const int64_t rows = s.size(0), width = s.size(1);
  at::Tensor grad_s = at::empty_like(s);
  std::vector<double> losses(rows);
  S2BNN_DISPATCH_FLOATING(s, "distribution_loss_with_grad", [&] {
    using Acc = opmath_t<scalar_t>;
    const scalar_t *sp = s.data_ptr<scalar_t>(), *tp = t.data_ptr<scalar_t>();
    scalar_t* gp = grad_s.data_ptr<scalar_t>();
    const Acc scale = Acc(1.0 / (static_cast<double>(rows) * temperature));
    at::parallel_for(0, rows, row_grain(width), [&](int64_t begin, int64_t end) {
      distribution_rows_with_grad(sp + begin * width, tp + begin * width, gp + begin * width,
                                  losses.data() + begin, end - begin, width,
                                  Acc(1.0 / temperature), scale);
    });
  });
  return {at::scalar_tensor(mean_of(losses), s.options()), grad_s};
}

std::vector<at::Tensor> info_nce(const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& queue, double temperature) {
  checks::info_nce_args(q, k, queue, temperature);
  const int64_t rows = q.size(0), width = queue.size(1) + 1;
  at::Tensor logits = shared::info_nce_raw_logits(q, k, queue);
  std::vector<double> losses(rows);
  S2BNN_DISPATCH_FLOATING(q, "info_nce", [&] {
    scalar_t* lp = logits.data_ptr<scalar_t>();
    const auto inv_t = opmath_t<scalar_t>(1.0 / temperature);
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      info_nce_rows(lp + begin * width, losses.data() + begin, end - begin, width, inv_t);
    });
  });
  return {at::scalar_tensor(mean_of(losses), q.options()), logits};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> info_nce_backward(
    const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& q, const at::Tensor& k,
    const at::Tensor& queue, double temperature, std::array<bool, 3> output_mask) {
  checks::info_nce_args(q, k, queue, temperature);
  shared::check_logits(logits, q, queue);
  const int64_t rows = q.size(0), width = queue.size(1) + 1;
  const at::Tensor scaled = logits.contiguous();
  at::Tensor grad_logits = at::empty_like(scaled);
  // d loss / d raw dot product = (softmax - onehot) * upstream / (B * T).
  const double scale = grad.item<double>() / (static_cast<double>(rows) * temperature);
  S2BNN_DISPATCH_FLOATING(q, "info_nce_backward", [&] {
    const scalar_t* lp = scaled.data_ptr<scalar_t>();
    scalar_t* gp = grad_logits.data_ptr<scalar_t>();
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      info_nce_rows_grad(lp + begin * width, gp + begin * width, end - begin, width,
                         opmath_t<scalar_t>(scale));
    });
  });
  return shared::info_nce_input_grads(grad_logits, q, k, queue, output_mask);
}

}  // namespace
}  // namespace s2bnn::cpu

TORCH_LIBRARY_IMPL(s2bnn, CPU, m) {
  m.impl("sign_ste", &s2bnn::cpu::sign_ste);
  m.impl("sign_ste_backward", &s2bnn::cpu::sign_ste_backward);
  m.impl("sign_ste_biased", &s2bnn::cpu::sign_ste_biased);
  m.impl("sign_ste_biased_backward", &s2bnn::cpu::sign_ste_biased_backward);
  m.impl("binarize_weight", &s2bnn::cpu::binarize_weight);
  m.impl("binarize_weight_backward", &s2bnn::cpu::binarize_weight_backward);
  m.impl("rprelu", &s2bnn::cpu::rprelu);
  m.impl("rprelu_backward", &s2bnn::cpu::rprelu_backward);
  m.impl("distribution_loss", &s2bnn::cpu::distribution_loss);
  m.impl("distribution_loss_with_grad", &s2bnn::cpu::distribution_loss_with_grad);
  m.impl("info_nce", &s2bnn::cpu::info_nce);
  m.impl("info_nce_backward", &s2bnn::cpu::info_nce_backward);
}
