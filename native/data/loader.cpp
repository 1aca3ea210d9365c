#include "loader.h"

#include <algorithm>
#include <cmath>
#include <future>
#include <numeric>
#include <stdexcept>
#include <string>

#include "rng.h"

#include <c10/util/Half.h>
#include <torch/cuda.h>

namespace s2bnn::data {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

// The decode plan of one sample: the augment views' parameters are drawn here, from the image's
// size alone (the same draws, in the same order, as without crop-aware decoding).
DecodeRequest plan_sample(const LoaderOptions& o, int64_t epoch, int64_t index, int64_t height, int64_t width,
                          AugmentParams* params) {
  const Transform& t = o.transform;
  if (t.kind == Transform::Kind::Eval) {
    return o.crop_decode ? plan_eval_decode(t.eval, height, width) : DecodeRequest{};
  }
  for (int64_t v = 0; v < o.views; ++v) {
    Philox rng = sample_stream(o.seed, epoch, index, v);
    params[v] = sample_augment(t.augment, rng, height, width);
  }
  return o.crop_decode ? plan_augment_decode(params, o.views, t.augment.size, height, width) : DecodeRequest{};
}

}  // namespace

Loader::Loader(SourcePtr source, LoaderOptions options) : source_(std::move(source)), options_(std::move(options)) {
  require(source_ != nullptr && source_->size() >= 1, "the dataset is empty");
  LoaderOptions& o = options_;
  require(o.batch_size >= 1 && o.batch_size <= (1 << 24), "batchSize must be between 1 and 2^24");
  require(o.views == 1 || o.views == 2, "views must be 1 or 2");
  require(o.workers >= 0 && o.workers <= 1024, "workers must be between 1 and 1024");
  require(o.prefetch >= 1 && o.prefetch <= 1024, "prefetch must be between 1 and 1024");
  require(o.world_size >= 1 && o.world_size <= 65536, "worldSize must be between 1 and 65536");
  require(o.rank >= 0 && o.rank < o.world_size,
          "rank must be in [0, worldSize) = [0, " + std::to_string(o.world_size) + ")");
  channels_ = source_->channels();
  o.transform.validate(channels_);
  require(samples_per_rank() >= 1, "with dropLast, the dataset (" + std::to_string(source_->size()) +
                                       " samples) must have at least worldSize (" + std::to_string(o.world_size) +
                                       ") samples");
  require(batches_per_epoch() >= 1, "with dropLast, batchSize (" + std::to_string(o.batch_size) +
                                        ") must not exceed the samples per rank (" +
                                        std::to_string(samples_per_rank()) + ")");
  if (o.workers == 0) o.workers = std::max<int64_t>(1, std::thread::hardware_concurrency());
  pinned_ = o.pin_memory != LoaderOptions::Pin::Off && torch::cuda::is_available();
  // Chunks of about half a batch per worker: a lone batch still spreads over every worker, and
  // each task is long enough that the queue's lock is cheap.
  chunk_size_ = std::max<int64_t>(1, (o.batch_size + 2 * o.workers - 1) / (2 * o.workers));
  threads_.reserve(static_cast<size_t>(o.workers));
  try {
    for (int64_t i = 0; i < o.workers; ++i) threads_.emplace_back([this] { work(); });
  } catch (...) {
    close();  // the destructor does not run for a constructor that throws
    throw;
  }
}

Loader::~Loader() { close(); }

int64_t Loader::samples_per_rank() const {
  const int64_t n = source_->size(), w = options_.world_size;
  return options_.drop_last ? n / w : (n + w - 1) / w;
}

int64_t Loader::batches_per_epoch() const {
  const int64_t s = samples_per_rank(), b = options_.batch_size;
  return options_.drop_last ? s / b : (s + b - 1) / b;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  const int64_t n = source_->size(), w = options_.world_size;
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  if (options_.shuffle) {
    Philox rng = shuffle_stream(options_.seed, epoch);
    for (int64_t i = n - 1; i > 0; --i) {
      std::swap(perm[static_cast<size_t>(i)], perm[rng.below(static_cast<uint64_t>(i + 1))]);
    }
  }
  const int64_t per_rank = samples_per_rank();
  std::vector<int64_t> out(static_cast<size_t>(per_rank));
  for (int64_t k = 0; k < per_rank; ++k) {
    // Positions past N wrap to the head of the permutation (the padding).
    out[static_cast<size_t>(k)] = perm[static_cast<size_t>((options_.rank + k * w) % n)];
  }
  return out;
}

void Loader::start_epoch(int64_t epoch, int64_t start_batch) {
  require(epoch >= 0 && epoch <= 0xFFFFFFFFll, "epoch must be between 0 and 2^32 - 1");
  const int64_t batches = batches_per_epoch();
  require(start_batch >= 0 && start_batch <= batches,
          "startBatch must be in [0, " + std::to_string(batches) + "], got " + std::to_string(start_batch));
  auto order = std::make_shared<const std::vector<int64_t>>(epoch_order(epoch));
  std::vector<Ready> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) throw LoaderClosed("the loader is closed");
    const auto reason = std::make_exception_ptr(
        LoaderClosed("epoch " + std::to_string(epoch_) + " was superseded by epoch " + std::to_string(epoch) +
                     " while a batch was pending"));
    for (Waiter& w : waiters_) ready.push_back({std::move(w.callback), std::nullopt, reason});
    waiters_.clear();
    slots_.clear();
    ++generation_;
    epoch_ = epoch;
    order_ = std::move(order);
    end_batch_ = batches;
    next_schedule_ = next_claim_ = next_deliver_ = start_batch;
    started_ = true;
  }
  wake_.notify_all();
  fire(ready);
}

void Loader::next_async(Callback callback) {
  std::vector<Ready> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) {
      ready.push_back({std::move(callback), std::nullopt, std::make_exception_ptr(LoaderClosed("the loader is closed"))});
    } else if (!started_) {
      ready.push_back({std::move(callback), std::nullopt,
                       std::make_exception_ptr(std::logic_error("no epoch started: call start_epoch() first"))});
    } else if (next_claim_ >= end_batch_) {
      ready.push_back({std::move(callback), std::nullopt, nullptr});
    } else {
      waiters_.push_back({next_claim_++, std::move(callback)});
      collect_ready(ready);
    }
  }
  fire(ready);
}

std::optional<Batch> Loader::next() {
  std::promise<std::optional<Batch>> promise;
  std::future<std::optional<Batch>> future = promise.get_future();
  next_async([&promise](std::optional<Batch> batch, std::exception_ptr error) {
    if (error) {
      promise.set_exception(error);
    } else {
      promise.set_value(std::move(batch));
    }
  });
  return future.get();
}

void Loader::close() {
  std::vector<Ready> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) return;
    stop_ = true;
    ++generation_;
    slots_.clear();
    const auto reason = std::make_exception_ptr(LoaderClosed("the loader was closed while a batch was pending"));
    for (Waiter& w : waiters_) ready.push_back({std::move(w.callback), std::nullopt, reason});
    waiters_.clear();
  }
  wake_.notify_all();
  fire(ready);
  for (std::thread& t : threads_) {
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();  // a callback broke the contract; at least do not self-join
    } else if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
}

bool Loader::take_task(Task& task) {
  if (!started_) return false;
  for (auto& entry : slots_) {
    Slot& slot = *entry.second;
    if (slot.next_chunk < slot.chunks) {
      task = Task{entry.second, slot.next_chunk++, generation_, epoch_, order_};
      return true;
    }
  }
  if (static_cast<int64_t>(slots_.size()) >= options_.prefetch || next_schedule_ >= end_batch_) return false;
  auto slot = std::make_shared<Slot>();
  const int64_t b = next_schedule_++;
  const int64_t per_rank = static_cast<int64_t>(order_->size());
  slot->batch = b;
  slot->first = b * options_.batch_size;
  slot->size = std::min(options_.batch_size, per_rank - slot->first);
  slot->chunks = (slot->size + chunk_size_ - 1) / chunk_size_;
  const int64_t s = options_.transform.output_size();
  slot->out.epoch = epoch_;
  slot->out.index = b;
  try {
    for (int64_t v = 0; v < options_.views; ++v) {
      const at::ScalarType type = options_.dtype == LoaderOptions::DType::UInt8   ? at::kByte
                                  : options_.dtype == LoaderOptions::DType::Float16 ? at::kHalf
                                                                                    : at::kFloat;
      slot->out.views.push_back(
          at::empty({slot->size, channels_, s, s}, at::TensorOptions().dtype(type).pinned_memory(pinned_)));
    }
    slot->out.labels = at::empty({slot->size}, at::kLong);
    slot->out.indices = at::empty({slot->size}, at::kLong);
  } catch (...) {
    // Out of memory, most likely. This runs inside the workers' wait predicate, where an
    // exception would end the process: the batch carries the error to its waiter instead, as
    // one chunk that run_chunk skips.
    slot->error = std::current_exception();
    slot->unallocated = true;
    slot->chunks = 1;
  }
  slots_.emplace(b, slot);
  task = Task{slot, slot->next_chunk++, generation_, epoch_, order_};
  return true;
}

void Loader::run_chunk(const Task& task, Workspace& ws) {
  Slot& slot = *task.slot;
  if (slot.unallocated) return;
  const int64_t begin = task.chunk * chunk_size_, end = std::min(begin + chunk_size_, slot.size);
  const int64_t s = options_.transform.output_size();
  const int64_t plane = channels_ * s * s;
  int64_t* labels = slot.out.labels.data_ptr<int64_t>();
  int64_t* indices = slot.out.indices.data_ptr<int64_t>();
  AugmentParams params[2];
  for (int64_t p = begin; p < end; ++p) {
    const int64_t index = (*task.order)[static_cast<size_t>(slot.first + p)];
    int64_t used = index;
    // The replaced position's draws, from the size of the image actually loaded.
    const DecodePlanner planner = [&](int64_t height, int64_t width) {
      return plan_sample(options_, task.epoch, index, height, width, params);
    };
    int64_t view_region[2] = {0, 0};
    const std::vector<Image> images = load_or_substitute(*task.order, slot.first + p, used, planner, view_region);
    labels[p] = source_->label(used);
    indices[p] = used;
    for (int64_t v = 0; v < options_.views; ++v) {
      const Image& image = images.size() == 1 ? images[0] : images.at(static_cast<size_t>(view_region[v]));
      const LoaderOptions::DType dtype = options_.dtype;
      at::Tensor& view = slot.out.views[static_cast<size_t>(v)];
      float* out = nullptr;
      if (dtype == LoaderOptions::DType::Float32) {
        out = view.data_ptr<float>() + p * plane;
      } else {
        ws.view.resize(static_cast<size_t>(plane));
        out = ws.view.data();
      }
      const bool normalize = dtype != LoaderOptions::DType::UInt8;
      if (options_.transform.kind == Transform::Kind::Eval) {
        apply_eval(image, channels_, options_.transform.eval, out, ws, normalize);
      } else {
        apply_augment(image, channels_, options_.transform.augment, params[v], out, ws, normalize);
      }
      if (dtype == LoaderOptions::DType::UInt8) {
        uint8_t* dst = view.data_ptr<uint8_t>() + p * plane;
        for (int64_t k = 0; k < plane; ++k) {
          const float x = out[k] < 0.0f ? 0.0f : (out[k] > 1.0f ? 1.0f : out[k]);
          dst[k] = static_cast<uint8_t>(std::nearbyint(x * 255.0f));
        }
      } else if (dtype == LoaderOptions::DType::Float16) {
        at::Half* dst = view.data_ptr<at::Half>() + p * plane;
        for (int64_t k = 0; k < plane; ++k) dst[k] = static_cast<at::Half>(out[k]);
      }
    }
  }
}

std::vector<Image> Loader::load_or_substitute(const std::vector<int64_t>& order, int64_t position, int64_t& used,
                                              const DecodePlanner& plan, int64_t* view_region) {
  const int64_t n = static_cast<int64_t>(order.size());
  const DecodePlanner planner = [&](int64_t height, int64_t width) {
    DecodeRequest request = plan(height, width);
    view_region[0] = request.view_region[0];
    view_region[1] = request.view_region[1];
    return request;
  };
  for (int64_t k = 0; k < n; ++k) {
    const int64_t index = order[static_cast<size_t>((position + k) % n)];
    if (known_bad(index)) continue;
    try {
      std::vector<Image> images = source_->load_planned(index, planner);
      used = index;
      return images;
    } catch (const BadImage& bad) {
      if (options_.strict) throw;
      record_skip(index, bad);
    }
  }
  throw std::runtime_error("no sample of this rank's epoch could be loaded; loader.skipped() lists why");
}

void Loader::record_skip(int64_t index, const BadImage& bad) {
  std::lock_guard<std::mutex> lock(skipped_mutex_);
  bad_indices_.insert(index);
  if (bad_paths_.insert(bad.path).second) skipped_.push_back({bad.path, bad.reason});
}

bool Loader::known_bad(int64_t index) const {
  std::lock_guard<std::mutex> lock(skipped_mutex_);
  return bad_indices_.count(index) > 0;
}

std::vector<Skipped> Loader::skipped() const {
  std::lock_guard<std::mutex> lock(skipped_mutex_);
  return skipped_;
}

void Loader::collect_ready(std::vector<Ready>& ready) {
  bool freed = false;
  while (!waiters_.empty()) {
    auto it = slots_.find(next_deliver_);
    if (it == slots_.end() || it->second->done_chunks < it->second->chunks) break;
    Slot& slot = *it->second;
    Waiter& waiter = waiters_.front();
    if (slot.error) {
      ready.push_back({std::move(waiter.callback), std::nullopt, slot.error});
    } else {
      ready.push_back({std::move(waiter.callback), std::move(slot.out), nullptr});
    }
    waiters_.pop_front();
    slots_.erase(it);
    ++next_deliver_;
    freed = true;
  }
  if (freed) wake_.notify_all();
}

void Loader::fire(std::vector<Ready>& ready) {
  for (Ready& r : ready) r.callback(std::move(r.batch), r.error);
  ready.clear();
}

void Loader::work() {
  Workspace ws;
  std::vector<Ready> ready;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    Task task;
    wake_.wait(lock, [&] { return stop_ || take_task(task); });
    if (stop_) return;
    lock.unlock();
    std::exception_ptr error;
    try {
      run_chunk(task, ws);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    // Chunks finish in any order; the batch reports the failure that comes first in the data
    // order, so a strict loader names the same bad file on every run.
    if (error && (!task.slot->error || task.chunk < task.slot->error_chunk)) {
      task.slot->error = error;
      task.slot->error_chunk = task.chunk;
    }
    ++task.slot->done_chunks;
    if (task.generation == generation_) collect_ready(ready);
    if (!ready.empty()) {
      lock.unlock();
      fire(ready);
      lock.lock();
    }
  }
}

}  // namespace s2bnn::data
