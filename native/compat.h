// Every difference between the libtorch versions we build against (Debian's 1.13 in CI, PyTorch
// 2.x wheels on GPU machines) lives here, so the rest of the code is written once.
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/Allocator.h>
#include <torch/version.h>

#define S2BNN_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||        \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// PyTorch 2.3 made Allocator::allocate non-const and added the pure virtual copy_data.
#if S2BNN_TORCH_AT_LEAST(2, 3)
#define S2BNN_ALLOCATE_QUALIFIER
#define S2BNN_ALLOCATOR_COPY_DATA                                              \
  void copy_data(void* dest, const void* src, std::size_t count) const override { \
    default_copy_data(dest, src, count);                                       \
  }
#else
#define S2BNN_ALLOCATE_QUALIFIER const
#define S2BNN_ALLOCATOR_COPY_DATA
#endif

namespace s2bnn::compat {

// PyTorch 2.4 replaced the per-device autocast switches (CPU, CUDA) with one taking the device.
inline bool autocast_enabled(c10::DeviceType device) {
#if S2BNN_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline at::ScalarType autocast_dtype(c10::DeviceType device) {
#if S2BNN_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void set_autocast(c10::DeviceType device, bool enabled, at::ScalarType dtype) {
#if S2BNN_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

}  // namespace s2bnn::compat
