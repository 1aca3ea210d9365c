// Operator schemas of the s2bnn library, the typed dispatcher calls behind ops.h, and the
// backend-independent binary_conv2d (binarize through the s2bnn kernels, convolve through
// libtorch so oneDNN / cuDNN do the arithmetic).
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/library.h>

#include "checks.h"
#include "ops.h"
#include "packed_forward.h"

TORCH_LIBRARY(s2bnn, m) {
  m.def("sign_ste(Tensor x) -> Tensor");
  m.def("sign_ste_backward(Tensor grad, Tensor x) -> Tensor");
  m.def("sign_ste_biased(Tensor x, Tensor bias) -> Tensor");
  m.def("sign_ste_biased_backward(Tensor grad, Tensor x, Tensor bias) -> (Tensor, Tensor)");
  m.def("binarize_weight(Tensor w) -> Tensor");
  m.def("binarize_weight_backward(Tensor grad, Tensor w) -> Tensor");
  m.def(
      "binary_conv2d(Tensor x, Tensor w, int[2] stride, int[2] padding, bool binarize_input, "
      "bool binarize_weight, Tensor? input_bias=None) -> Tensor");
  m.def(
      "binary_conv2d_backward(Tensor grad, Tensor x, Tensor w, int[2] stride, int[2] padding, "
      "bool binarize_input, bool binarize_weight, Tensor? input_bias, bool[3] output_mask) "
      "-> (Tensor, Tensor, Tensor)");
  m.def("rprelu(Tensor x, Tensor bias_in, Tensor weight, Tensor bias_out) -> Tensor");
  m.def(
      "rprelu_backward(Tensor grad, Tensor x, Tensor bias_in, Tensor weight, Tensor bias_out) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("distribution_loss(Tensor student, Tensor teacher, float temperature) -> Tensor");
  m.def(
      "distribution_loss_with_grad(Tensor student, Tensor teacher, float temperature) "
      "-> (Tensor, Tensor)");
  m.def("info_nce(Tensor q, Tensor k, Tensor queue, float temperature) -> Tensor[]");
  m.def(
      "info_nce_backward(Tensor grad, Tensor logits, Tensor q, Tensor k, Tensor queue, "
      "float temperature, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
  m.def("pack_signs(Tensor x, Tensor? bias=None) -> Tensor");
  m.def("pack_weights(Tensor w) -> Tensor");
  m.def(
      "bconv2d_packed(Tensor x, Tensor w, int channels, int stride, int padding, Tensor? scale=None, "
      "Tensor? shift=None) -> Tensor");
  m.def(
      "bconv2d_packed_kernel(Tensor x, Tensor w, int channels, int stride, int padding, Tensor? scale, "
      "Tensor? shift, str kernel) -> Tensor");
  m.def("bconv_prepare(Tensor w, int channels) -> Tensor[]");
  m.def(
      "bconv2d_prepared(Tensor x, Tensor w, Tensor[] prepared, int channels, int stride, int padding, "
      "Tensor? scale=None, Tensor? shift=None) -> Tensor");

  m.def("sign_ste_reference(Tensor x) -> Tensor");
  m.def("sign_ste_biased_reference(Tensor x, Tensor bias) -> Tensor");
  m.def("binarize_weight_reference(Tensor w) -> Tensor");
  m.def(
      "binary_conv2d_reference(Tensor x, Tensor w, int[2] stride, int[2] padding, "
      "bool binarize_input, bool binarize_weight, Tensor? input_bias=None) -> Tensor");
  m.def("rprelu_reference(Tensor x, Tensor bias_in, Tensor weight, Tensor bias_out) -> Tensor");
  m.def("distribution_loss_reference(Tensor student, Tensor teacher, float temperature) -> Tensor");
  m.def("info_nce_reference(Tensor q, Tensor k, Tensor queue, float temperature) -> Tensor[]");
}

namespace s2bnn::ops {
namespace {

c10::OperatorHandle find(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
}

void check_conv_args(const at::Tensor& x, const at::Tensor& w, at::IntArrayRef stride,
                     at::IntArrayRef padding, bool binarize_input, const c10::optional<at::Tensor>& input_bias) {
  constexpr const char* op = "binary_conv2d";
  checks::floating(op, "x", x);
  checks::floating(op, "w", w);
  checks::rank(op, "x", x, 4, "[N, C, H, W]");
  checks::rank(op, "w", w, 4, "[out_channels, in_channels, kH, kW]");
  TORCH_CHECK(w.size(1) == x.size(1), op, ": w expects ", w.size(1),
              " input channels but x has ", x.size(1), " (x ", checks::shape_of(x), ", w ",
              checks::shape_of(w), ")");
  checks::same_device_dtype(op, "w", w, "x", x);
  TORCH_CHECK(stride.size() == 2 && stride[0] > 0 && stride[1] > 0, op,
              ": stride must be two positive integers, got ", stride);
  TORCH_CHECK(padding.size() == 2 && padding[0] >= 0 && padding[1] >= 0, op,
              ": padding must be two non-negative integers, got ", padding);
  if (input_bias && input_bias->defined()) {
    TORCH_CHECK(binarize_input, op, ": input_bias is added before binarizing the input, so it needs binarize_input");
    checks::channel_param(op, "input_bias", *input_bias, x);
  }
}

bool has(const c10::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

// The convolution's input: sign(x [+ bias]) when binarizing, else x itself.
at::Tensor conv_input(const at::Tensor& x, bool binarize_input, const c10::optional<at::Tensor>& input_bias) {
  if (!binarize_input) return x;
  return has(input_bias) ? sign_ste_biased(x, *input_bias) : sign_ste(x);
}

at::Tensor binary_conv2d_forward(const at::Tensor& x, const at::Tensor& w,
                                 at::IntArrayRef stride, at::IntArrayRef padding,
                                 bool binarize_input, bool binarize_w, const c10::optional<at::Tensor>& input_bias) {
  check_conv_args(x, w, stride, padding, binarize_input, input_bias);
  if (binarize_input && binarize_w) {
    if (auto packed = packed_binary_conv_forward(x, w, stride, padding, input_bias)) return *packed;
  }
  const at::Tensor input = conv_input(x, binarize_input, input_bias);
  const at::Tensor weight = binarize_w ? binarize_weight(w) : w;
  return at::conv2d(input, weight, {}, stride, padding);
}

// oneDNN 2.6's weight gradient of a 3x3 convolution whose output plane is tiny runs at about
// 30 GFLOP/s on a 2-core AVX-512 CPU (ReActNet-A's 1024-channel 3x3 at 2 x 2, batch 32: 166 ms),
// where two BLAS GEMMs over the im2col matrix take 21 + 30 ms for both gradients. At 4 x 4 oneDNN
// is fast again, and 1x1 kernels are faster in oneDNN (docs/step-benchmark.md).
constexpr int64_t kMaxGemmBackwardPlane = 4;

bool use_gemm_backward(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& weight) {
  return input.device().is_cpu() && input.scalar_type() == at::kFloat && weight.size(2) * weight.size(3) > 1 &&
         grad.size(2) * grad.size(3) <= kMaxGemmBackwardPlane;
}

// The convolution's gradients as GEMMs: one row per output position (n, oh, ow). grad_input =
// col2im(grad_rows x W), grad_weight = grad_rows^T x im2col(input). Same sums as the convolution,
// in another order (float rounding only).
std::tuple<at::Tensor, at::Tensor> conv2d_backward_gemm(const at::Tensor& grad, const at::Tensor& input,
                                                        const at::Tensor& weight, at::IntArrayRef stride,
                                                        at::IntArrayRef padding, bool need_input, bool need_weight) {
  const int64_t batch = input.size(0), out_channels = weight.size(0);
  const int64_t positions = grad.size(2) * grad.size(3);
  const int64_t patch = weight.numel() / out_channels;
  const at::IntArrayRef kernel = weight.sizes().slice(2);
  const int64_t dilation[2] = {1, 1};
  const at::Tensor grad_rows = grad.permute({0, 2, 3, 1}).reshape({batch * positions, out_channels});
  at::Tensor grad_input, grad_weight;
  if (need_input) {
    const at::Tensor columns = at::mm(grad_rows, weight.reshape({out_channels, patch}));
    grad_input = at::col2im(columns.view({batch, positions, patch}).transpose(1, 2), input.sizes().slice(2), kernel,
                            dilation, padding, stride);
  }
  if (need_weight) {
    const at::Tensor columns = at::im2col(input, kernel, dilation, padding, stride);  // [N, patch, positions]
    grad_weight = at::mm(grad_rows.t(), columns.transpose(1, 2).reshape({batch * positions, patch})).view(weight.sizes());
  }
  return {grad_input, grad_weight};
}

// Recomputes the binarized operands from x (and the bias) and w instead of keeping them alive
// between forward and backward: sign(x + b) costs one pass over x, keeping it a whole activation.
std::tuple<at::Tensor, at::Tensor, at::Tensor> binary_conv2d_backward_impl(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w, at::IntArrayRef stride,
    at::IntArrayRef padding, bool binarize_input, bool binarize_w, const c10::optional<at::Tensor>& input_bias,
    std::array<bool, 3> output_mask) {
  check_conv_args(x, w, stride, padding, binarize_input, input_bias);
  const at::Tensor input = conv_input(x, binarize_input, input_bias);
  const at::Tensor weight = binarize_w ? binarize_weight(w) : w;
  const int64_t dilation[2] = {1, 1};
  const int64_t output_padding[2] = {0, 0};
  const bool need_input_grad = output_mask[0] || output_mask[2];
  at::Tensor grad_x, grad_w;
  if (use_gemm_backward(grad, input, weight)) {
    std::tie(grad_x, grad_w) =
        conv2d_backward_gemm(grad, input, weight.contiguous(), stride, padding, need_input_grad, output_mask[1]);
  } else {
    auto grads = at::convolution_backward(grad.contiguous(input.suggest_memory_format()), input, weight,
                                          at::OptionalIntArrayRef(), stride, padding, dilation, false,
                                          output_padding, 1, {need_input_grad, output_mask[1], false});
    grad_x = std::get<0>(grads);
    grad_w = std::get<1>(grads);
  }
  at::Tensor grad_bias;
  if (need_input_grad && binarize_input) {
    if (has(input_bias)) {
      std::tie(grad_x, grad_bias) = sign_ste_biased_backward(grad_x, x, *input_bias);
    } else {
      grad_x = sign_ste_backward(grad_x, x);
    }
  }
  if (output_mask[1] && binarize_w) grad_w = binarize_weight_backward(grad_w, w);
  return {output_mask[0] ? grad_x : at::Tensor(), grad_w, output_mask[2] ? grad_bias : at::Tensor()};
}

}  // namespace

at::Tensor sign_ste(const at::Tensor& x) {
  static auto op = find("s2bnn::sign_ste").typed<at::Tensor(const at::Tensor&)>();
  return op.call(x);
}

at::Tensor sign_ste_backward(const at::Tensor& grad, const at::Tensor& x) {
  static auto op = find("s2bnn::sign_ste_backward")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(grad, x);
}

at::Tensor sign_ste_biased(const at::Tensor& x, const at::Tensor& bias) {
  static auto op = find("s2bnn::sign_ste_biased").typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(x, bias);
}

std::tuple<at::Tensor, at::Tensor> sign_ste_biased_backward(const at::Tensor& grad, const at::Tensor& x,
                                                            const at::Tensor& bias) {
  static auto op = find("s2bnn::sign_ste_biased_backward")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
  return op.call(grad, x, bias);
}

at::Tensor binarize_weight(const at::Tensor& w) {
  static auto op = find("s2bnn::binarize_weight").typed<at::Tensor(const at::Tensor&)>();
  return op.call(w);
}

at::Tensor binarize_weight_backward(const at::Tensor& grad, const at::Tensor& w) {
  static auto op = find("s2bnn::binarize_weight_backward")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(grad, w);
}

at::Tensor binary_conv2d(const at::Tensor& x, const at::Tensor& w, at::IntArrayRef stride,
                         at::IntArrayRef padding, bool binarize_input, bool binarize_w,
                         const c10::optional<at::Tensor>& input_bias) {
  static auto op = find("s2bnn::binary_conv2d")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef,
                                         at::IntArrayRef, bool, bool, const c10::optional<at::Tensor>&)>();
  return op.call(x, w, stride, padding, binarize_input, binarize_w, input_bias);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> binary_conv2d_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w, at::IntArrayRef stride,
    at::IntArrayRef padding, bool binarize_input, bool binarize_w, const c10::optional<at::Tensor>& input_bias,
    std::array<bool, 3> output_mask) {
  static auto op =
      find("s2bnn::binary_conv2d_backward")
          .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
              const at::Tensor&, const at::Tensor&, const at::Tensor&, at::IntArrayRef,
              at::IntArrayRef, bool, bool, const c10::optional<at::Tensor>&, std::array<bool, 3>)>();
  return op.call(grad, x, w, stride, padding, binarize_input, binarize_w, input_bias, output_mask);
}

at::Tensor rprelu(const at::Tensor& x, const at::Tensor& bias_in, const at::Tensor& weight,
                  const at::Tensor& bias_out) {
  static auto op = find("s2bnn::rprelu")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&)>();
  return op.call(x, bias_in, weight, bias_out);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rprelu_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& bias_in,
    const at::Tensor& weight, const at::Tensor& bias_out) {
  static auto op = find("s2bnn::rprelu_backward")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, const at::Tensor&)>();
  return op.call(grad, x, bias_in, weight, bias_out);
}

at::Tensor distribution_loss(const at::Tensor& student, const at::Tensor& teacher,
                             double temperature) {
  static auto op = find("s2bnn::distribution_loss")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double)>();
  return op.call(student, teacher, temperature);
}

std::tuple<at::Tensor, at::Tensor> distribution_loss_with_grad(const at::Tensor& student,
                                                                const at::Tensor& teacher,
                                                                double temperature) {
  static auto op = find("s2bnn::distribution_loss_with_grad")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&,
                                                                 const at::Tensor&, double)>();
  return op.call(student, teacher, temperature);
}

std::vector<at::Tensor> info_nce(const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& queue, double temperature) {
  static auto op = find("s2bnn::info_nce")
                       .typed<std::vector<at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                      const at::Tensor&, double)>();
  return op.call(q, k, queue, temperature);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> info_nce_backward(
    const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& q, const at::Tensor& k,
    const at::Tensor& queue, double temperature, std::array<bool, 3> output_mask) {
  static auto op = find("s2bnn::info_nce_backward")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, const at::Tensor&, double, std::array<bool, 3>)>();
  return op.call(grad, logits, q, k, queue, temperature, output_mask);
}

at::Tensor pack_signs(const at::Tensor& x, const c10::optional<at::Tensor>& bias) {
  static auto op = find("s2bnn::pack_signs")
                       .typed<at::Tensor(const at::Tensor&, const c10::optional<at::Tensor>&)>();
  return op.call(x, bias);
}

at::Tensor pack_weights(const at::Tensor& w) {
  static auto op = find("s2bnn::pack_weights").typed<at::Tensor(const at::Tensor&)>();
  return op.call(w);
}

at::Tensor bconv2d_packed(const at::Tensor& x, const at::Tensor& w, int64_t channels, int64_t stride,
                          int64_t padding, const c10::optional<at::Tensor>& scale,
                          const c10::optional<at::Tensor>& shift) {
  static auto op = find("s2bnn::bconv2d_packed")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t,
                                         const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&)>();
  return op.call(x, w, channels, stride, padding, scale, shift);
}

at::Tensor bconv2d_packed_kernel(const at::Tensor& x, const at::Tensor& w, int64_t channels,
                                 int64_t stride, int64_t padding, const c10::optional<at::Tensor>& scale,
                                 const c10::optional<at::Tensor>& shift, const std::string& kernel) {
  static auto op = find("s2bnn::bconv2d_packed_kernel")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t,
                                         const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&,
                                         c10::string_view)>();
  return op.call(x, w, channels, stride, padding, scale, shift, kernel);
}

std::vector<at::Tensor> bconv_prepare(const at::Tensor& w, int64_t channels) {
  static auto op = find("s2bnn::bconv_prepare").typed<std::vector<at::Tensor>(const at::Tensor&, int64_t)>();
  return op.call(w, channels);
}

at::Tensor bconv2d_prepared(const at::Tensor& x, const at::Tensor& w, const std::vector<at::Tensor>& prepared,
                            int64_t channels, int64_t stride, int64_t padding,
                            const c10::optional<at::Tensor>& scale, const c10::optional<at::Tensor>& shift) {
  static auto op = find("s2bnn::bconv2d_prepared")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, at::TensorList, int64_t, int64_t,
                                         int64_t, const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&)>();
  return op.call(x, w, prepared, channels, stride, padding, scale, shift);
}

}  // namespace s2bnn::ops

TORCH_LIBRARY_IMPL(s2bnn, CompositeExplicitAutograd, m) {
  m.impl("binary_conv2d", &s2bnn::ops::binary_conv2d_forward);
  m.impl("binary_conv2d_backward", &s2bnn::ops::binary_conv2d_backward_impl);
}

// Backward ops are not differentiable themselves: asking for a double backward through them is a
// clear error instead of a silently missing gradient.
TORCH_LIBRARY_IMPL(s2bnn, Autograd, m) {
  for (const char* name : {"sign_ste_backward", "sign_ste_biased_backward", "binarize_weight_backward",
                           "binary_conv2d_backward", "rprelu_backward",
                           "distribution_loss_with_grad", "info_nce_backward"}) {
    m.impl(name, torch::autograd::autogradNotImplementedFallback());
  }
  // The packed ops are inference only: autograd passes straight through to the backend kernel, so
  // inputs that require grad are accepted and the outputs (packed words, integer accumulators, or
  // the float epilogue) never carry a gradient.
  for (const char* name : {"pack_signs", "pack_weights", "bconv2d_packed", "bconv2d_packed_kernel", "bconv_prepare",
                           "bconv2d_prepared"}) {
    m.impl(name, torch::CppFunction::makeFallthrough());
  }
}
