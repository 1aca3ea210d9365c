// Every difference between the libtorch versions we build against (Debian's 1.13 in CI, PyTorch
// 2.x wheels on GPU machines) lives here, so the rest of the code is written once.
#pragma once

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
