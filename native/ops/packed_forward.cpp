// The training forward of a binary convolution on bits. With both operands binarized, the float
// convolution of sign(x + b) and alpha * sign(W) equals alpha_o times the integer +-1 accumulator
// that bconv2d_packed computes with xnor-popcount, about ten times faster on a CPU. Training
// semantics are kept exactly: sign(0) = 0 in training but +1 in packed form, so an input or
// weight with an exact zero takes the float path. The backward is unchanged (float convolutions
// of the recomputed operands).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "ops.h"
#include "packed_forward.h"

namespace s2bnn::ops {
namespace {

// S2BNN_PACKED_FORWARD=0 switches it off (a comparison, or a suspected packing problem).
bool enabled_by_environment() {
  const char* value = std::getenv("S2BNN_PACKED_FORWARD");
  return value == nullptr || std::string(value) != "0";
}

std::atomic<bool> enabled{enabled_by_environment()};

constexpr int64_t kMinPackedChannels = 64;

// Whether any x[n, c, ...] + bias[c] is exactly 0 (or x itself, without a bias), in one pass
// that stops early; x (activations, or weights [O, C, kH, kW]) contiguous or channels-last.
bool any_zero_sum(const at::Tensor& x, const c10::optional<at::Tensor>& bias) {
  const int64_t channels = x.size(1);
  std::vector<float> b(channels, 0.0f);
  if (bias.has_value() && bias->defined()) {
    const at::Tensor values = bias->detach().reshape({channels}).to(at::kFloat).contiguous();
    std::copy(values.data_ptr<float>(), values.data_ptr<float>() + channels, b.begin());
  }
  const bool channels_last = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor input = channels_last ? x : x.contiguous();
  const float* data = input.data_ptr<float>();
  const int64_t plane = input.numel() / std::max<int64_t>(1, x.size(0) * channels);
  const int64_t rows = x.size(0) * (channels_last ? plane : channels);
  const int64_t row_length = channels_last ? channels : plane;
  std::atomic<bool> found{false};
  at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(row_length, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end && !found.load(std::memory_order_relaxed); ++r) {
      const float* row = data + r * row_length;
      int zeros = 0;
      if (channels_last) {
        for (int64_t c = 0; c < channels; ++c) zeros |= row[c] + b[c] == 0.0f;
      } else {
        const float bc = b[r % channels];
        for (int64_t i = 0; i < plane; ++i) zeros |= row[i] + bc == 0.0f;
      }
      if (zeros) found.store(true, std::memory_order_relaxed);
    }
  });
  return found.load();
}

}  // namespace

void set_packed_training_forward(bool on) { enabled.store(on); }
bool packed_training_forward() { return enabled.load(); }

c10::optional<at::Tensor> packed_binary_conv_forward(const at::Tensor& x, const at::Tensor& w, at::IntArrayRef stride,
                                                     at::IntArrayRef padding, const c10::optional<at::Tensor>& input_bias) {
  if (!enabled.load() || !x.device().is_cpu() || x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat ||
      w.size(2) != w.size(3) || stride[0] != stride[1] || padding[0] != padding[1]) {
    return c10::nullopt;
  }
  // Training activations are NCHW: packing gathers channels across planes, the result is
  // transposed back and the zero check reads x once more. Measured on a 2-core AVX-512 VM at
  // batch 8 (docs/step-benchmark.md), that overhead only pays off for 3x3 kernels from 64
  // input channels on (64 at 112 px, stride 2: 12.9 -> 7.3 ms; 512 at 14 px: 131 -> 36 ms; 32
  // channels: no gain; 1x1 at 128: 24 -> 38 ms, slower).
  if (w.size(2) != 3 || x.size(1) < kMinPackedChannels) return c10::nullopt;
  // Both checks scan in place and stop at the first zero: no mask tensor per call.
  if (any_zero_sum(w, c10::nullopt) || any_zero_sum(x, input_bias)) return c10::nullopt;
  const at::Tensor alpha = w.abs().mean({1, 2, 3});
  const at::Tensor out = bconv2d_packed(pack_signs(x, input_bias), pack_weights(w), x.size(1), stride[0], padding[0],
                                        alpha, c10::nullopt);
  return out.contiguous();
}

}  // namespace s2bnn::ops
