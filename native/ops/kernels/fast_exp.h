// A branch-free float exp that compilers vectorize (std::exp on floats stays a scalar libm call
// without -ffast-math). Cody-Waite range reduction, then Cephes' degree-6 polynomial on
// |r| <= ln2/2: max relative error about 2 ulp on the range the losses use (x <= 0 after the row
// max is subtracted). Shared with the CUDA kernels.
#pragma once

#include <cstdint>
#include <cstring>

#include "math.h"

namespace s2bnn::kernels {

S2BNN_HD float bits_to_float(int32_t bits) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(bits);
#else
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
#endif
}

S2BNN_HD float exp_fast(float x) {
  // Below -87.3 the result is under FLT_MIN; clamping keeps 2^n a normal float. exp(-inf) thus
  // becomes ~1e-38 instead of 0, which is invisible next to the row's max term (exactly 1).
  x = x < -87.3f ? -87.3f : (x > 88.0f ? 88.0f : x);
  // Round x / ln2 to nearest with the 1.5 * 2^23 trick (vectorizes without SSE4.1's roundps).
  const float shifter = 12582912.0f;
  const float n = (x * 1.44269504088896341f + shifter) - shifter;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * bits_to_float((static_cast<int32_t>(n) + 127) << 23);
}

// exp in the accumulation type: the fast float path, or libm for double (gradient checks).
template <typename Acc>
S2BNN_HD Acc exp_acc(Acc x) {
  return exp(x);
}
template <>
S2BNN_HD float exp_acc<float>(float x) {
  return exp_fast(x);
}

}  // namespace s2bnn::kernels
