#include "backends.h"

#if defined(S2BNN_WITH_CUDA)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace s2bnn::distributed {

std::string nccl_version() {
#if defined(S2BNN_WITH_CUDA)
  return c10d::getNcclVersion();
#else
  return "";
#endif
}

}  // namespace s2bnn::distributed
