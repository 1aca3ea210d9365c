// Peak-memory accounting for CPU tensors. libtorch keeps no statistics for its CPU allocator, so
// benchmarks install this wrapper: it forwards to the allocator it replaces and counts live and
// peak bytes. Off by default (it costs one small heap record per allocation). Registered as ops so
// the Python reference benchmark measures with the very same counter.
#include <c10/core/CPUAllocator.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <mutex>

#include "../compat.h"
#include "ops.h"

namespace s2bnn {
namespace {

std::atomic<int64_t> current_bytes{0};
std::atomic<int64_t> peak_bytes{0};
std::atomic<int64_t> allocations{0};

struct Allocation {
  c10::DataPtr inner;
  size_t bytes;
};

void release(void* context) {
  auto* allocation = static_cast<Allocation*>(context);
  current_bytes -= static_cast<int64_t>(allocation->bytes);
  delete allocation;  // frees through the wrapped allocator's own deleter
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t bytes) S2BNN_ALLOCATE_QUALIFIER override {
    c10::DataPtr data = compat::allocate(inner_, bytes);
    void* raw = data.get();
    const c10::Device device = data.device();
    auto* record = new Allocation{std::move(data), bytes};
    const int64_t now = current_bytes += static_cast<int64_t>(bytes);
    ++allocations;
    int64_t seen = peak_bytes.load();
    while (now > seen && !peak_bytes.compare_exchange_weak(seen, now)) {
    }
    return {raw, record, &release, device};
  }

  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }

  S2BNN_ALLOCATOR_COPY_DATA

  c10::Allocator* inner() const { return inner_; }

 private:
  c10::Allocator* inner_;
};

std::mutex install_mutex;
CountingAllocator* installed = nullptr;

}  // namespace

namespace ops {

void memory_stats_enable(bool enable) {
  std::lock_guard<std::mutex> lock(install_mutex);
  if (enable && installed == nullptr) {
    // Kept for the life of the process: tensors allocated through it may outlive a disable.
    static CountingAllocator* counting = new CountingAllocator(c10::GetCPUAllocator());
    installed = counting;
    c10::SetCPUAllocator(installed, /*priority=*/100);
  } else if (!enable && installed != nullptr) {
    c10::SetCPUAllocator(installed->inner(), /*priority=*/100);
    installed = nullptr;
  }
}

std::vector<int64_t> memory_stats(bool reset_peak) {
  const int64_t now = current_bytes.load();
  const std::vector<int64_t> stats = {now, std::max(peak_bytes.load(), now), allocations.load()};
  if (reset_peak) peak_bytes = now;
  return stats;
}

}  // namespace ops
}  // namespace s2bnn

// Bytes held by libtorch's CPU allocator while counting is on: [current, peak, allocations].
TORCH_LIBRARY_FRAGMENT(s2bnn, m) {
  m.def("memory_stats(bool reset_peak) -> int[]", &s2bnn::ops::memory_stats);
  m.def("memory_stats_enable(bool enable) -> ()", &s2bnn::ops::memory_stats_enable);
}
