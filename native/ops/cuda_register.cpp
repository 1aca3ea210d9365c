// CUDA kernels of the s2bnn operators: at::Tensor in and out around the raw launchers in
// cuda/launch.h. Built only against a CUDA libtorch. Scalars that the backward needs (the
// upstream gradient) stay on the device, so no kernel here synchronizes with the host.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdlib>
#include <string>

#include "checks.h"
#include "packed.h"
#include "shared.h"
#include "cuda/launch.h"

namespace s2bnn::cuda_ops {
namespace {

using cuda::DType;

DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::Float32;
    case at::kDouble: return DType::Float64;
    case at::kHalf: return DType::Float16;
    case at::kBFloat16: return DType::BFloat16;
    default: TORCH_CHECK(false, "s2bnn CUDA kernels take float32/64, float16 or bfloat16, got ",
                         t.scalar_type());
  }
}

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// Launch errors surface as std::runtime_error from the launchers; rethrow as c10::Error so
// bindings and Python report them like every other libtorch error.
template <typename Fn>
void launch(Fn&& fn) {
  try {
    fn();
  } catch (const std::runtime_error& error) {
    TORCH_CHECK(false, error.what());
  }
}

at::Tensor upstream_as_float(const at::Tensor& grad, const char* op) {
  TORCH_CHECK(grad.numel() == 1, op, ": grad must be a scalar, got shape ", checks::shape_of(grad));
  return grad.reshape({1}).to(at::kFloat).contiguous();
}

at::Tensor sign_ste(const at::Tensor& x) {
  checks::floating("sign_ste", "x", x);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty_like(input);
  launch([&] { cuda::sign_forward(dtype_of(input), input.data_ptr(), out.data_ptr(), input.numel(), stream()); });
  return out;
}

at::Tensor sign_ste_backward(const at::Tensor& grad, const at::Tensor& x) {
  checks::grad_matches("sign_ste_backward", grad, "x", x);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor g = grad.contiguous(), input = x.contiguous();
  at::Tensor out = at::empty_like(input);
  launch([&] {
    cuda::sign_backward(dtype_of(input), g.data_ptr(), input.data_ptr(), out.data_ptr(), input.numel(), stream());
  });
  return out;
}

at::Tensor sign_ste_biased(const at::Tensor& x, const at::Tensor& bias) {
  checks::sign_ste_biased_args(x, bias);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor input = x.contiguous(), b = bias.contiguous();
  at::Tensor out = at::empty_like(input);
  const shared::ChannelLayout l = shared::layout_of(input);
  launch([&] {
    cuda::biased_sign_forward(dtype_of(input), input.data_ptr(), b.data_ptr(), out.data_ptr(), l.batch, l.channels,
                              l.plane, stream());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> sign_ste_biased_backward(const at::Tensor& grad, const at::Tensor& x,
                                                            const at::Tensor& bias) {
  checks::sign_ste_biased_args(x, bias);
  checks::grad_matches("sign_ste_biased_backward", grad, "x", x);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor g = grad.contiguous(), input = x.contiguous(), b = bias.contiguous();
  at::Tensor grad_x = at::empty_like(input);
  const shared::ChannelLayout l = shared::layout_of(input);
  at::Tensor sums = at::empty({l.channels}, input.options().dtype(at::kFloat));
  launch([&] {
    cuda::biased_sign_backward(dtype_of(input), g.data_ptr(), input.data_ptr(), b.data_ptr(), grad_x.data_ptr(),
                               sums.data_ptr<float>(), l.batch, l.channels, l.plane, stream());
  });
  return {grad_x, sums.to(bias.scalar_type()).reshape(bias.sizes())};
}

at::Tensor binarize_weight(const at::Tensor& w) {
  checks::binarize_weight_args(w);
  const c10::cuda::CUDAGuard guard(w.device());
  const at::Tensor weight = w.contiguous();
  at::Tensor out = at::empty_like(weight);
  const int64_t channels = weight.size(0);
  launch([&] {
    cuda::binarize_weight_forward(dtype_of(weight), weight.data_ptr(), out.data_ptr(), channels,
                            weight.numel() / channels, stream());
  });
  return out;
}

at::Tensor binarize_weight_backward(const at::Tensor& grad, const at::Tensor& w) {
  checks::binarize_weight_args(w);
  checks::grad_matches("binarize_weight_backward", grad, "w", w);
  const c10::cuda::CUDAGuard guard(w.device());
  const at::Tensor g = grad.contiguous(), weight = w.contiguous();
  at::Tensor out = at::empty_like(weight);
  launch([&] {
    cuda::clipped_backward(dtype_of(weight), g.data_ptr(), weight.data_ptr(), out.data_ptr(), weight.numel(), stream());
  });
  return out;
}

at::Tensor rprelu(const at::Tensor& x, const at::Tensor& bias_in, const at::Tensor& weight,
                  const at::Tensor& bias_out) {
  checks::rprelu_args(x, bias_in, weight, bias_out);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor input = x.contiguous();
  const at::Tensor b1 = bias_in.contiguous(), a = weight.contiguous(), b2 = bias_out.contiguous();
  at::Tensor out = at::empty_like(input);
  const shared::ChannelLayout l = shared::layout_of(input);
  launch([&] {
    cuda::rprelu_forward(dtype_of(input), input.data_ptr(), b1.data_ptr(), a.data_ptr(), b2.data_ptr(),
                   out.data_ptr(), l.batch, l.channels, l.plane, stream());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rprelu_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& bias_in,
    const at::Tensor& weight, const at::Tensor& bias_out) {
  checks::rprelu_args(x, bias_in, weight, bias_out);
  checks::grad_matches("rprelu_backward", grad, "x", x);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor g = grad.contiguous(), input = x.contiguous();
  const at::Tensor b1 = bias_in.contiguous(), a = weight.contiguous();
  at::Tensor grad_x = at::empty_like(input);
  const shared::ChannelLayout l = shared::layout_of(input);
  at::Tensor sums = at::empty({l.channels, 3}, input.options().dtype(at::kFloat));
  launch([&] {
    cuda::rprelu_backward(dtype_of(input), g.data_ptr(), input.data_ptr(), b1.data_ptr(), a.data_ptr(),
                    grad_x.data_ptr(), sums.data_ptr<float>(), l.batch, l.channels, l.plane, stream());
  });
  auto column = [&](int64_t k, const at::Tensor& like) {
    return sums.select(1, k).to(like.scalar_type()).reshape(like.sizes());
  };
  return {grad_x, column(0, bias_in), column(1, weight), column(2, bias_out)};
}

at::Tensor distribution_loss(const at::Tensor& student, const at::Tensor& teacher,
                             double temperature) {
  checks::distribution_loss_args(student, teacher, temperature);
  const c10::cuda::CUDAGuard guard(student.device());
  const at::Tensor s = student.contiguous(), t = teacher.contiguous();
  at::Tensor losses = at::empty({s.size(0)}, s.options().dtype(at::kFloat));
  launch([&] {
    cuda::distribution_loss_rows(dtype_of(s), s.data_ptr(), t.data_ptr(), losses.data_ptr<float>(),
                           s.size(0), s.size(1), static_cast<float>(1.0 / temperature), stream());
  });
  return losses.mean().to(s.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> distribution_loss_with_grad(const at::Tensor& student,
                                                                const at::Tensor& teacher,
                                                                double temperature) {
  checks::distribution_loss_args(student, teacher, temperature);
  const c10::cuda::CUDAGuard guard(student.device());
  const at::Tensor s = student.contiguous(), t = teacher.contiguous();
  at::Tensor grad_s = at::empty_like(s);
  at::Tensor losses = at::empty({s.size(0)}, s.options().dtype(at::kFloat));
  const float scale = static_cast<float>(1.0 / (static_cast<double>(s.size(0)) * temperature));
  launch([&] {
    cuda::distribution_loss_rows_with_grad(dtype_of(s), s.data_ptr(), t.data_ptr(),
                                           grad_s.data_ptr(), losses.data_ptr<float>(), s.size(0),
                                           s.size(1), static_cast<float>(1.0 / temperature), scale,
                                           stream());
  });
  return {losses.mean().to(s.scalar_type()), grad_s};
}

std::vector<at::Tensor> info_nce(const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& queue, double temperature) {
  checks::info_nce_args(q, k, queue, temperature);
  const c10::cuda::CUDAGuard guard(q.device());
  const int64_t rows = q.size(0), width = queue.size(1) + 1;
  at::Tensor logits = shared::info_nce_raw_logits(q, k, queue);
  at::Tensor losses = at::empty({rows}, q.options().dtype(at::kFloat));
  launch([&] {
    cuda::info_nce_rows(dtype_of(logits), logits.data_ptr(), losses.data_ptr<float>(), rows, width,
                  static_cast<float>(1.0 / temperature), stream());
  });
  return {losses.mean().to(q.scalar_type()), logits};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> info_nce_backward(
    const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& q, const at::Tensor& k,
    const at::Tensor& queue, double temperature, std::array<bool, 3> output_mask) {
  checks::info_nce_args(q, k, queue, temperature);
  const c10::cuda::CUDAGuard guard(q.device());
  const int64_t rows = q.size(0), width = queue.size(1) + 1;
  shared::check_logits(logits, q, queue);
  const at::Tensor scaled = logits.contiguous();
  const at::Tensor upstream = upstream_as_float(grad, "info_nce_backward");
  at::Tensor grad_logits = at::empty_like(scaled);
  const float scale = static_cast<float>(1.0 / (static_cast<double>(rows) * temperature));
  launch([&] {
    cuda::info_nce_rows_grad(dtype_of(scaled), scaled.data_ptr(), grad_logits.data_ptr(), rows, width,
                       upstream.data_ptr<float>(), scale, stream());
  });
  return shared::info_nce_input_grads(grad_logits, q, k, queue, output_mask);
}

const uint64_t* words_of(const at::Tensor& t) {
  return reinterpret_cast<const uint64_t*>(t.data_ptr<int64_t>());
}

at::Tensor pack_signs(const at::Tensor& x, const c10::optional<at::Tensor>& bias) {
  packed::pack_signs_args(x, bias);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const at::Tensor src = x.to(at::kFloat).contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor b;
  if (bias && bias->defined()) b = bias->to(at::kFloat).contiguous();
  const int64_t words = kernels::packed_words(C);
  at::Tensor out = at::empty({N, H, W, words}, x.options().dtype(at::kLong));
  launch([&] {
    cuda::pack_sign_rows(src.data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr, N * H * W, C,
                         words, reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>()), stream());
  });
  return out;
}

at::Tensor pack_weights(const at::Tensor& w) {
  packed::pack_weights_args(w);
  const c10::cuda::CUDAGuard guard(w.device());
  const int64_t O = w.size(0), C = w.size(1), kh = w.size(2), kw = w.size(3);
  const at::Tensor src = w.to(at::kFloat).permute({0, 2, 3, 1}).contiguous();
  const int64_t words = kernels::packed_words(C);
  at::Tensor out = at::empty({O, kh, kw, words}, w.options().dtype(at::kLong));
  launch([&] {
    cuda::pack_sign_rows(src.data_ptr<float>(), nullptr, O * kh * kw, C, words,
                         reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>()), stream());
  });
  return out;
}

// "popc" or "mma" (kernels of cuda/packed.cu); S2BNN_BCONV_CUDA_KERNEL picks the default (popc).
bool use_mma(const std::string& name, const char* where) {
  TORCH_CHECK(name == "popc" || name == "mma", where, ": unknown CUDA kernel '", name, "' (expected popc or mma)");
  return name == "mma";
}

bool default_mma() {
  static const bool mma = [] {
    const char* env = std::getenv("S2BNN_BCONV_CUDA_KERNEL");
    return env && *env ? use_mma(env, "S2BNN_BCONV_CUDA_KERNEL") : false;
  }();
  return mma;
}

// The popc kernel reads the weights as [K, O] (coalesced over a warp's output channels).
at::Tensor popc_weight_layout(const at::Tensor& w) { return w.contiguous().reshape({w.size(0), -1}).t().contiguous(); }

// `w_t`: the popc layout made once (bconv_prepare), or undefined to make it here.
at::Tensor bconv2d_packed_with(const at::Tensor& x, const at::Tensor& w, int64_t channels, int64_t stride,
                               int64_t padding, const c10::optional<at::Tensor>& scale,
                               const c10::optional<at::Tensor>& shift, bool mma, at::Tensor w_t = {}) {
  const kernels::BconvShape s = packed::bconv_shape(x, w, channels, stride, padding, scale, shift);
  const c10::cuda::CUDAGuard guard(x.device());
  const bool affine = scale && scale->defined();
  const at::Tensor xc = x.contiguous(), wc = w.contiguous();
  at::Tensor sc, sh;
  if (affine) sc = scale->contiguous();
  if (shift && shift->defined()) sh = shift->contiguous();
  at::Tensor out = at::empty({s.batch, s.out_channels, s.out_height, s.out_width},
                             x.options().dtype(affine ? at::kFloat : at::kInt), at::MemoryFormat::ChannelsLast);
  const at::Tensor wt = mma ? at::Tensor() : w_t.defined() ? w_t : popc_weight_layout(wc);
  launch([&] {
    cuda::bconv2d_packed(words_of(xc), words_of(wc), mma ? nullptr : words_of(wt), s,
                         affine ? sc.data_ptr<float>() : nullptr,
                         sh.defined() ? sh.data_ptr<float>() : nullptr, out.data_ptr(), mma, stream());
  });
  return out;
}

at::Tensor bconv2d_packed(const at::Tensor& x, const at::Tensor& w, int64_t channels, int64_t stride,
                          int64_t padding, const c10::optional<at::Tensor>& scale,
                          const c10::optional<at::Tensor>& shift) {
  return bconv2d_packed_with(x, w, channels, stride, padding, scale, shift, default_mma());
}

at::Tensor bconv2d_packed_kernel(const at::Tensor& x, const at::Tensor& w, int64_t channels, int64_t stride,
                                 int64_t padding, const c10::optional<at::Tensor>& scale,
                                 const c10::optional<at::Tensor>& shift, c10::string_view kernel) {
  return bconv2d_packed_with(x, w, channels, stride, padding, scale, shift,
                             use_mma(std::string(kernel), "bconv2d_packed_kernel"));
}

std::vector<at::Tensor> bconv_prepare(const at::Tensor& w, int64_t channels) {
  packed::prepared_weights_args(w, channels);
  if (default_mma()) return {};
  const c10::cuda::CUDAGuard guard(w.device());
  return {popc_weight_layout(w)};
}

at::Tensor bconv2d_prepared(const at::Tensor& x, const at::Tensor& w, at::TensorList prepared, int64_t channels,
                            int64_t stride, int64_t padding, const c10::optional<at::Tensor>& scale,
                            const c10::optional<at::Tensor>& shift) {
  const bool mma = default_mma();
  if (prepared.empty() || mma) return bconv2d_packed_with(x, w, channels, stride, padding, scale, shift, mma);
  const at::Tensor& w_t = prepared[0];
  TORCH_CHECK(prepared.size() == 1 && w_t.device() == x.device() && w_t.scalar_type() == at::kLong &&
                  w_t.dim() == 2 && w_t.size(1) == w.size(0) && w_t.size(0) * w_t.size(1) == w.numel() &&
                  w_t.is_contiguous(),
              "bconv2d_prepared: `prepared` was not made by bconv_prepare on this device for these weights");
  return bconv2d_packed_with(x, w, channels, stride, padding, scale, shift, false, w_t);
}

}  // namespace
}  // namespace s2bnn::cuda_ops

TORCH_LIBRARY_IMPL(s2bnn, CUDA, m) {
  m.impl("sign_ste", &s2bnn::cuda_ops::sign_ste);
  m.impl("sign_ste_backward", &s2bnn::cuda_ops::sign_ste_backward);
  m.impl("sign_ste_biased", &s2bnn::cuda_ops::sign_ste_biased);
  m.impl("sign_ste_biased_backward", &s2bnn::cuda_ops::sign_ste_biased_backward);
  m.impl("binarize_weight", &s2bnn::cuda_ops::binarize_weight);
  m.impl("binarize_weight_backward", &s2bnn::cuda_ops::binarize_weight_backward);
  m.impl("rprelu", &s2bnn::cuda_ops::rprelu);
  m.impl("rprelu_backward", &s2bnn::cuda_ops::rprelu_backward);
  m.impl("distribution_loss", &s2bnn::cuda_ops::distribution_loss);
  m.impl("distribution_loss_with_grad", &s2bnn::cuda_ops::distribution_loss_with_grad);
  m.impl("info_nce", &s2bnn::cuda_ops::info_nce);
  m.impl("info_nce_backward", &s2bnn::cuda_ops::info_nce_backward);
  m.impl("pack_signs", &s2bnn::cuda_ops::pack_signs);
  m.impl("pack_weights", &s2bnn::cuda_ops::pack_weights);
  m.impl("bconv2d_packed", &s2bnn::cuda_ops::bconv2d_packed);
  m.impl("bconv2d_packed_kernel", &s2bnn::cuda_ops::bconv2d_packed_kernel);
  m.impl("bconv_prepare", &s2bnn::cuda_ops::bconv_prepare);
  m.impl("bconv2d_prepared", &s2bnn::cuda_ops::bconv2d_prepared);
}
