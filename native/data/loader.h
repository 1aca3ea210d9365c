// The batching thread pool: epoch-seeded shuffle, per-rank sharding, one or two augmented views
// per image, K batches prefetched, resumable at any batch of an epoch. Output is a pure function
// of (source, options, epoch): the worker count and scheduling only change how fast it comes.
#pragma once

#include <ATen/ATen.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "augment.h"
#include "source.h"

namespace s2bnn::data {

struct LoaderOptions {
  int64_t batch_size = 0;
  int64_t views = 1;  // 1 or 2 independently augmented views per image
  Transform transform;
  bool shuffle = true;
  uint64_t seed = 0;
  bool drop_last = false;
  int64_t workers = 0;   // 0: std::thread::hardware_concurrency()
  int64_t prefetch = 2;  // batches assembled ahead of the consumer
  int64_t rank = 0, world_size = 1;
  // A sample whose load() throws BadImage fails its batch (true) or is replaced (false): by the
  // next sample of the epoch order that loads, keeping its own label and index but the replaced
  // sample's random draws, so batch shapes and the rest of the epoch do not change.
  bool strict = false;
  // Crop-aware decoding (sources that support it: ImageFolder JPEGs): decode only the region the
  // transforms read, DCT-reduced while each view's resize stays a downscale (augment.h). False
  // decodes every image whole, at full scale.
  bool crop_decode = true;
  // The views' element type: Float32 (normalized), UInt8 (the pixels before normalization,
  // round(255 x) of the [0, 1] values, for normalizing on the GPU: a quarter of the bytes to
  // copy) or Float16 (normalized).
  enum class DType { Float32, UInt8, Float16 };
  DType dtype = DType::Float32;
  // Batch buffers in page-locked (pinned) memory, for asynchronous copies to a GPU: Auto pins
  // when libtorch sees a CUDA device. Pinning needs CUDA: without a device it is off whatever
  // is asked (pinned() says what was decided).
  enum class Pin { Auto, On, Off };
  Pin pin_memory = Pin::Auto;
};

// A sample the loader skipped, with why.
struct Skipped {
  std::string path, reason;
};

struct Batch {
  int64_t epoch = 0, index = 0;
  std::vector<at::Tensor> views;  // [B, C, S, S] each, of LoaderOptions::dtype
  at::Tensor labels;              // int64 [B]
  at::Tensor indices;             // int64 [B], sample indices in the source
};

// Thrown to waiters when the loader closes or a new epoch supersedes theirs.
class LoaderClosed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Loader {
 public:
  // Validates the options (std::invalid_argument naming the option) and starts the workers,
  // which stay idle until start_epoch().
  Loader(SourcePtr source, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  const LoaderOptions& options() const { return options_; }
  int64_t workers() const { return static_cast<int64_t>(threads_.size()); }
  bool pinned() const { return pinned_; }
  // Samples this rank sees per epoch: ceil(N / world) (padded) or floor(N / world) with drop_last.
  int64_t samples_per_rank() const;
  int64_t batches_per_epoch() const;

  // This rank's sample order for an epoch: a Philox-seeded Fisher-Yates shuffle of 0..N-1 (or
  // the identity without shuffle), padded by repeating its head to a multiple of world_size
  // (DistributedSampler's rule) or, with drop_last, cut to one; rank r takes positions
  // r, r + world, r + 2 world, ...
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // Starts delivering `epoch` from batch `start_batch` (0 <= start_batch <= batches). Ends the
  // previous epoch: its queued work is dropped and its waiters fail with LoaderClosed.
  void start_epoch(int64_t epoch, int64_t start_batch = 0);

  // The next batch of the current epoch, in order; nullopt once the epoch is exhausted. The
  // callback runs on a worker thread (or on the caller's, when the answer is immediate) and must
  // not destroy the loader. Each call claims one batch, so several may be outstanding.
  using Callback = std::function<void(std::optional<Batch>, std::exception_ptr)>;
  void next_async(Callback callback);
  // Blocking form: the batch, nullopt at the end; rethrows workers' errors and LoaderClosed.
  std::optional<Batch> next();

  // Every sample skipped so far (each file once, in the order first met).
  std::vector<Skipped> skipped() const;

  // Stops the workers (waits for chunks in progress) and fails outstanding waiters. Idempotent;
  // must not be called from a callback.
  void close();

 private:
  struct Slot {
    int64_t batch = 0, first = 0, size = 0;  // positions [first, first + size) of the order
    int64_t chunks = 0, next_chunk = 0, done_chunks = 0;
    Batch out;
    std::exception_ptr error;  // written under mutex_: the failure of the lowest failing chunk
    int64_t error_chunk = 0;
    bool unallocated = false;  // set before the slot is published, never changed
  };
  struct Waiter {
    int64_t batch;
    Callback callback;
  };
  struct Ready {
    Callback callback;
    std::optional<Batch> batch;
    std::exception_ptr error;
  };
  struct Task {
    std::shared_ptr<Slot> slot;
    int64_t chunk = 0;
    uint64_t generation = 0;
    int64_t epoch = 0;
    std::shared_ptr<const std::vector<int64_t>> order;
  };

  void work();
  bool take_task(Task& task);  // with mutex_ held
  void run_chunk(const Task& task, Workspace& ws);
  // The images of order position `position` (decoded as `plan` asks), or, when it is bad and not
  // strict, of the next good position (cyclically); `used` receives the sample index actually
  // loaded, `view_region` the plan's view -> image map.
  std::vector<Image> load_or_substitute(const std::vector<int64_t>& order, int64_t position, int64_t& used,
                                        const DecodePlanner& plan, int64_t* view_region);
  void record_skip(int64_t index, const BadImage& bad);
  bool known_bad(int64_t index) const;
  void collect_ready(std::vector<Ready>& ready);  // with mutex_ held
  static void fire(std::vector<Ready>& ready);

  SourcePtr source_;
  LoaderOptions options_;
  int64_t channels_ = 0, chunk_size_ = 1;
  bool pinned_ = false;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool started_ = false;
  uint64_t generation_ = 0;
  int64_t epoch_ = 0, end_batch_ = 0;
  int64_t next_schedule_ = 0, next_claim_ = 0, next_deliver_ = 0;
  std::shared_ptr<const std::vector<int64_t>> order_;
  std::map<int64_t, std::shared_ptr<Slot>> slots_;
  std::deque<Waiter> waiters_;
  std::vector<std::thread> threads_;

  mutable std::mutex skipped_mutex_;
  std::vector<Skipped> skipped_;
  std::set<int64_t> bad_indices_;  // decoding is deterministic: a bad sample stays bad
  std::set<std::string> bad_paths_;  // a subset may list one file at several positions
};

}  // namespace s2bnn::data
