// The s2bnn CPU allocator: wraps libtorch's default CPU allocator to (1) count live and peak
// tensor bytes, which libtorch does not do on CPU, and (2) keep freed blocks for reuse.
// Training allocates the same tensor sizes every step. Under Node, malloc serves them badly:
// every large tensor became a fresh mmap whose pages fault in again (page faults cost more than
// the arithmetic on them), and mid-sized blocks churned by multi-threaded backward passes grew
// RSS by ~100 KiB per step. Reusing blocks by size class removes both. Installed by the Node
// addon at load; in Python only when asked (cpu_allocator_install), so loading the ops library
// never changes PyTorch's own behaviour.
#include <c10/core/CPUAllocator.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "../compat.h"
#include "ops.h"

namespace s2bnn {
namespace {

// Blocks below a page are left to malloc, which handles them well.
constexpr size_t kMinCachedBytes = 4096;

// Size classes with at most 1/16 (6.25%) rounding waste, so a block serves every request that
// rounds to its class.
size_t size_class(size_t bytes) {
  if (bytes < kMinCachedBytes) return bytes;
  size_t power = 1;
  while (power * 2 <= bytes) power *= 2;
  const size_t granularity = std::max<size_t>(4096, power / 16);
  return (bytes + granularity - 1) / granularity * granularity;
}

struct Live {
  c10::DataPtr block;
  size_t bytes;  // size class
};

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t requested) S2BNN_ALLOCATE_QUALIFIER override {
    const size_t bytes = size_class(requested);
    c10::DataPtr block;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto cached = free_.find(bytes);
      if (cached != free_.end() && !cached->second.empty()) {
        block = std::move(cached->second.back());
        cached->second.pop_back();
        cached_bytes_ -= static_cast<int64_t>(bytes);
      }
    }
    if (!block) block = inner_->allocate(bytes);
    void* data = block.get();
    if (data == nullptr) return block;  // zero bytes: nothing to track
    const c10::Device device = block.device();
    int64_t now;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_[data] = Live{std::move(block), bytes};
      now = current_bytes_ += static_cast<int64_t>(bytes);
      peak_bytes_ = std::max(peak_bytes_, now);
      ++allocations_;
    }
    return {data, data, &release, device};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  S2BNN_ALLOCATOR_COPY_DATA

  void set_cache_limit(int64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    cache_limit_ = std::max<int64_t>(0, bytes);
    evict_locked(cache_limit_);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    evict_locked(0);
  }

  std::vector<int64_t> stats(bool reset_peak) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<int64_t> out = {current_bytes_, peak_bytes_, allocations_, cached_bytes_, cache_limit_};
    if (reset_peak) peak_bytes_ = current_bytes_;
    return out;
  }

  static CachingCpuAllocator* instance;

 private:
  // libtorch's raw_allocate() path (oneDNN scratch memory) requires context == data pointer, so
  // the deleter gets only the pointer and finds the block in `live_`.
  static void release(void* data) { instance->give_back(data); }

  void give_back(void* data) {
    c10::DataPtr to_free;  // declared before the lock: freed after it is released
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = live_.find(data);
    if (found == live_.end()) return;
    const size_t bytes = found->second.bytes;
    current_bytes_ -= static_cast<int64_t>(bytes);
    if (bytes >= kMinCachedBytes && static_cast<int64_t>(bytes) <= cache_limit_) {
      // Recent sizes win: make room by freeing blocks of other sizes, so a run whose shapes
      // change does not pin stale blocks up to the limit.
      evict_locked(cache_limit_ - static_cast<int64_t>(bytes));
      free_[bytes].push_back(std::move(found->second.block));
      cached_bytes_ += static_cast<int64_t>(bytes);
    } else {
      to_free = std::move(found->second.block);
    }
    live_.erase(found);
  }

  // Frees cached blocks (through the wrapped allocator) until at most `limit` bytes stay cached.
  void evict_locked(int64_t limit) const {
    for (auto& [bytes, blocks] : free_) {
      while (cached_bytes_ > limit && !blocks.empty()) {
        blocks.pop_back();
        cached_bytes_ -= static_cast<int64_t>(bytes);
      }
    }
  }

  // mutable: allocate() is const before libtorch 2.3.
  c10::Allocator* inner_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<void*, Live> live_;
  mutable std::unordered_map<size_t, std::vector<c10::DataPtr>> free_;
  mutable int64_t current_bytes_ = 0;
  mutable int64_t peak_bytes_ = 0;
  mutable int64_t allocations_ = 0;
  mutable int64_t cached_bytes_ = 0;
  int64_t cache_limit_ = 0;
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;
std::mutex install_mutex;

}  // namespace

namespace ops {

void install_cpu_allocator(int64_t cache_limit_bytes) {
  std::lock_guard<std::mutex> lock(install_mutex);
  if (CachingCpuAllocator::instance == nullptr) {
    // Lives for the whole process: tensors allocated through it may outlive anything else.
    CachingCpuAllocator::instance = new CachingCpuAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/100);
  }
  CachingCpuAllocator::instance->set_cache_limit(cache_limit_bytes);
}

std::vector<int64_t> memory_stats(bool reset_peak) {
  TORCH_CHECK(CachingCpuAllocator::instance != nullptr,
              "memory_stats: the s2bnn CPU allocator is not installed (call "
              "cpu_allocator_install first)");
  return CachingCpuAllocator::instance->stats(reset_peak);
}

void empty_cache() {
  if (CachingCpuAllocator::instance != nullptr) CachingCpuAllocator::instance->empty_cache();
}

}  // namespace ops
}  // namespace s2bnn

TORCH_LIBRARY_FRAGMENT(s2bnn, m) {
  m.def("cpu_allocator_install(int cache_limit_bytes) -> ()", &s2bnn::ops::install_cpu_allocator);
  m.def("memory_stats(bool reset_peak) -> int[]", &s2bnn::ops::memory_stats);
  m.def("empty_cache() -> ()", &s2bnn::ops::empty_cache);
}
