// The c10d communication backends this build of libtorch gives s2bnn: the base of data-parallel
// training (ProcessGroupNCCL on CUDA builds).
#pragma once

#include <string>

namespace s2bnn::distributed {

// The NCCL version libtorch's ProcessGroupNCCL was built with ("2.30.7"), or "" in a build
// without CUDA. Calling into libtorch_cuda proves the addon links ProcessGroupNCCL's library.
std::string nccl_version();

}  // namespace s2bnn::distributed
