// Per-row arithmetic of the two losses, shared by the CPU kernels (rows in parallel) and the CUDA
// distribution-loss kernel (one thread per row). Acc is the accumulation type: float with the
// vectorizable exp for float/half inputs, double for double inputs (finite-difference checks).
// Any NaN or Inf in a row poisons its result (`poison` sums x * 0), so a diverged student
// produces a NaN loss that training can detect instead of a silently clamped number.
#pragma once

#include <cstdint>

#include "fast_exp.h"

namespace s2bnn::kernels {

template <typename Acc>
S2BNN_HD Acc max_acc(Acc a, Acc b) {
  return a > b ? a : b;
}

template <typename Acc>
struct RowMaxima {
  Acc student, teacher, poison;
};

// First pass over a student/teacher row pair: the maxima of s/T and t/T (for stable exps) and
// the poison term (NaN if any value is NaN or Inf).
template <typename T, typename Acc>
S2BNN_HD RowMaxima<Acc> row_maxima(const T* student, const T* teacher, int64_t width,
                                   Acc inv_temperature) {
  Acc max_s = Acc(student[0]) * inv_temperature, max_t = Acc(teacher[0]) * inv_temperature;
  Acc poison = 0;
  S2BNN_SIMD(reduction(max : max_s, max_t) reduction(+ : poison))
  for (int64_t c = 0; c < width; ++c) {
    const Acc s = Acc(student[c]) * inv_temperature, t = Acc(teacher[c]) * inv_temperature;
    max_s = max_acc(max_s, s);
    max_t = max_acc(max_t, t);
    poison += s * Acc(0) + t * Acc(0);
  }
  return {max_s, max_t, poison};
}

// -sum_c softmax(t/T)_c log_softmax(s/T)_c = lse(s/T) - sum_c softmax(t/T)_c s_c / T.
template <typename T, typename Acc>
S2BNN_HD Acc distribution_loss_row(const T* student, const T* teacher, int64_t width,
                                   Acc inv_temperature) {
  const auto [max_s, max_t, poison] = row_maxima(student, teacher, width, inv_temperature);
  Acc sum_s = 0, sum_t = 0, weighted = 0;
  S2BNN_SIMD(reduction(+ : sum_s, sum_t, weighted))
  for (int64_t c = 0; c < width; ++c) {
    const Acc s = Acc(student[c]) * inv_temperature, t = Acc(teacher[c]) * inv_temperature;
    sum_s += exp_acc<Acc>(s - max_s);
    const Acc e = exp_acc<Acc>(t - max_t);
    sum_t += e;
    weighted += e * (s - max_s);
  }
  // lse(s) - E_p[s] with both shifted by max_s, which keeps the difference well conditioned.
  return log(sum_s) - weighted / sum_t + poison;
}

// The row's loss, and its gradient times `scale` (= 1 / (batch * T) for the mean loss) written to
// grad_student: scale * (softmax(s/T) - softmax(t/T)). One call does forward and backward work
// together, so training computes each exponential of the student once; the row buffer holds
// exp(s/T - max) between the passes.
template <typename T, typename Acc>
S2BNN_HD Acc distribution_loss_row_with_grad(const T* student, const T* teacher, T* grad_student,
                                             int64_t width, Acc inv_temperature, Acc scale) {
  const auto [max_s, max_t, poison] = row_maxima(student, teacher, width, inv_temperature);
  Acc sum_s = 0, sum_t = 0, weighted = 0;
  S2BNN_SIMD(reduction(+ : sum_s, sum_t, weighted))
  for (int64_t c = 0; c < width; ++c) {
    const Acc s = Acc(student[c]) * inv_temperature - max_s;
    const Acc es = exp_acc<Acc>(s);
    grad_student[c] = T(es);
    sum_s += es;
    const Acc e = exp_acc<Acc>(Acc(teacher[c]) * inv_temperature - max_t);
    sum_t += e;
    weighted += e * s;
  }
  const Acc norm_s = scale / sum_s, norm_t = scale / sum_t;
  S2BNN_SIMD()
  for (int64_t c = 0; c < width; ++c) {
    const Acc pt = exp_acc<Acc>(Acc(teacher[c]) * inv_temperature - max_t) * norm_t;
    grad_student[c] = T(Acc(grad_student[c]) * norm_s - pt);
  }
  return log(sum_s) - weighted / sum_t + poison;
}

// Cross-entropy of one row of MoCo logits with the positive at index 0. The row arrives as raw
// dot products and is scaled by 1/T in place (the op returns scaled logits) while it is hot.
template <typename T, typename Acc>
S2BNN_HD Acc info_nce_row(T* logits, int64_t width, Acc inv_temperature) {
  Acc max_v = Acc(T(Acc(logits[0]) * inv_temperature)), poison = 0;
  S2BNN_SIMD(reduction(max : max_v) reduction(+ : poison))
  for (int64_t c = 0; c < width; ++c) {
    const T v = T(Acc(logits[c]) * inv_temperature);
    logits[c] = v;
    max_v = max_acc(max_v, Acc(v));
    poison += Acc(v) * Acc(0);
  }
  Acc sum = 0;
  S2BNN_SIMD(reduction(+ : sum))
  for (int64_t c = 0; c < width; ++c) sum += exp_acc<Acc>(Acc(logits[c]) - max_v);
  return max_v + log(sum) - Acc(logits[0]) + poison;
}

// scale * (softmax(row) - onehot(0)) for one row of scaled logits.
template <typename T, typename Acc>
S2BNN_HD void info_nce_row_grad(const T* logits, T* grad_logits, int64_t width, Acc scale) {
  Acc max_v = Acc(logits[0]);
  S2BNN_SIMD(reduction(max : max_v))
  for (int64_t c = 0; c < width; ++c) max_v = max_acc(max_v, Acc(logits[c]));
  Acc sum = 0;
  S2BNN_SIMD(reduction(+ : sum))
  for (int64_t c = 0; c < width; ++c) sum += exp_acc<Acc>(Acc(logits[c]) - max_v);
  const Acc norm = scale / sum;
  for (int64_t c = 0; c < width; ++c) {
    grad_logits[c] = T(exp_acc<Acc>(Acc(logits[c]) - max_v) * norm);
  }
  grad_logits[0] = T(Acc(grad_logits[0]) - scale);
}

}  // namespace s2bnn::kernels
