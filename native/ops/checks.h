// Argument checks shared by every backend's kernels. Messages name the operator, the argument
// and what was expected, because they reach users verbatim (as JS Errors or Python exceptions).
#pragma once

#include <ATen/ATen.h>

#include <sstream>
#include <string>

namespace s2bnn::checks {

inline std::string shape_of(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

inline void floating(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK(t.defined(), op, ": ", arg, " is undefined");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", arg,
              " must be a floating-point tensor (float32, float64, float16 or bfloat16), got ",
              t.scalar_type());
}

inline void rank(const char* op, const char* arg, const at::Tensor& t, int64_t expected,
                 const char* layout) {
  TORCH_CHECK(t.dim() == expected, op, ": ", arg, " must be ", expected, "-D ", layout,
              ", got shape ", shape_of(t));
}

inline void same_shape(const char* op, const char* arg, const at::Tensor& t, const char* other_arg,
                       const at::Tensor& other) {
  TORCH_CHECK(t.sizes() == other.sizes(), op, ": ", arg, " must have the shape of ", other_arg,
              " ", shape_of(other), ", got ", shape_of(t));
}

inline void same_device_dtype(const char* op, const char* arg, const at::Tensor& t,
                              const char* other_arg, const at::Tensor& other) {
  TORCH_CHECK(t.device() == other.device(), op, ": ", arg, " is on ", t.device(), " but ",
              other_arg, " is on ", other.device());
  TORCH_CHECK(t.scalar_type() == other.scalar_type(), op, ": ", arg, " has dtype ",
              t.scalar_type(), " but ", other_arg, " has dtype ", other.scalar_type());
}

// A backward op's incoming gradient must match the saved input it is paired with.
inline void grad_matches(const char* op, const at::Tensor& grad, const char* arg, const at::Tensor& input) {
  same_shape(op, "grad", grad, arg, input);
  same_device_dtype(op, "grad", grad, arg, input);
}

inline void temperature(const char* op, double value) {
  TORCH_CHECK(value > 0 && std::isfinite(value), op, ": temperature must be a finite number > 0, got ",
              value);
}

inline void channel_param(const char* op, const char* arg, const at::Tensor& param,
                          const at::Tensor& x) {
  floating(op, arg, param);
  same_device_dtype(op, arg, param, "x", x);
  TORCH_CHECK(param.numel() == x.size(1), op, ": ", arg, " must hold one value per channel (",
              x.size(1), " for x of shape ", shape_of(x), "), got shape ", shape_of(param));
}

inline void rprelu_args(const at::Tensor& x, const at::Tensor& bias_in, const at::Tensor& weight,
                        const at::Tensor& bias_out) {
  floating("rprelu", "x", x);
  TORCH_CHECK(x.dim() >= 2, "rprelu: x must be at least 2-D [N, C, ...], got shape ",
              shape_of(x));
  channel_param("rprelu", "bias_in", bias_in, x);
  channel_param("rprelu", "weight", weight, x);
  channel_param("rprelu", "bias_out", bias_out, x);
}

inline void sign_ste_biased_args(const at::Tensor& x, const at::Tensor& bias) {
  floating("sign_ste_biased", "x", x);
  TORCH_CHECK(x.dim() >= 2, "sign_ste_biased: x must be at least 2-D [N, C, ...], got shape ", shape_of(x));
  channel_param("sign_ste_biased", "bias", bias, x);
}

inline void distribution_loss_args(const at::Tensor& student, const at::Tensor& teacher,
                                   double temperature_value) {
  constexpr const char* op = "distribution_loss";
  floating(op, "student", student);
  floating(op, "teacher", teacher);
  rank(op, "student", student, 2, "[batch, dim]");
  same_shape(op, "teacher", teacher, "student", student);
  same_device_dtype(op, "teacher", teacher, "student", student);
  TORCH_CHECK(student.size(0) > 0 && student.size(1) > 0, op,
              ": student must have a non-empty batch and dim, got shape ", shape_of(student));
  temperature(op, temperature_value);
}

inline void info_nce_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& queue,
                          double temperature_value) {
  constexpr const char* op = "info_nce";
  floating(op, "q", q);
  floating(op, "k", k);
  floating(op, "queue", queue);
  rank(op, "q", q, 2, "[batch, dim]");
  same_shape(op, "k", k, "q", q);
  rank(op, "queue", queue, 2, "[dim, K]");
  TORCH_CHECK(queue.size(0) == q.size(1), op, ": queue must be [dim, K] with dim = ", q.size(1),
              " (from q ", shape_of(q), "), got shape ", shape_of(queue));
  TORCH_CHECK(q.size(0) > 0, op, ": q must hold at least one row, got shape ", shape_of(q));
  same_device_dtype(op, "k", k, "q", q);
  same_device_dtype(op, "queue", queue, "q", q);
  temperature(op, temperature_value);
}

inline void binarize_weight_args(const at::Tensor& w) {
  floating("binarize_weight", "w", w);
  TORCH_CHECK(w.dim() >= 1 && w.numel() > 0,
              "binarize_weight: w must be a non-empty tensor [out_channels, ...], got shape ",
              shape_of(w));
}

}  // namespace s2bnn::checks
