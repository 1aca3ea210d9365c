// The batching loader's binding: next() returns a Promise settled on the JS thread when the native
// workers deliver the batch.
#include <optional>

#include "../data/loader.h"
#include "../data/source.h"
#include "common.h"
#include "data_options.h"

namespace s2bnn::binding {
namespace {

Napi::Error coded_error(Napi::Env env, const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const data::LoaderClosed& e) {
    return make_error(env, e.what(), kCodeDisposed);
  } catch (const data::BadImage& e) {
    Napi::Error out = make_error(env, e.what(), kCodeBadImage);
    out.Set("path", Napi::String::New(env, e.path));
    out.Set("reason", Napi::String::New(env, e.reason));
    return out;
  } catch (const std::invalid_argument& e) {
    return make_error(env, e.what(), kCodeArgument);
  } catch (const c10::Error& e) {
    return make_error(env, torch_message(e), kCodeTorch);
  } catch (const std::exception& e) {
    return make_error(env, e.what(), kCodeInternal);
  } catch (...) {
    return make_error(env, "unknown error in the data loader", kCodeInternal);
  }
}

Napi::Object batch_object(Napi::Env env, data::Batch& batch) {
  Napi::Object out = Napi::Object::New(env);
  Napi::Array views = Napi::Array::New(env, batch.views.size());
  for (size_t v = 0; v < batch.views.size(); ++v) views.Set(static_cast<uint32_t>(v), wrap(env, std::move(batch.views[v])));
  out.Set("views", views);
  out.Set("labels", wrap(env, std::move(batch.labels)));
  out.Set("indices", wrap(env, std::move(batch.indices)));
  out.Set("epoch", Napi::Number::New(env, static_cast<double>(batch.epoch)));
  out.Set("index", Napi::Number::New(env, static_cast<double>(batch.index)));
  return out;
}

struct Delivery {
  Napi::Promise::Deferred deferred;
  std::optional<data::Batch> batch;
  std::exception_ptr error;
};

struct LoaderShared;
void deliver(Napi::Env env, Napi::Function, LoaderShared* shared, Delivery* delivery);
using DeliveryQueue = Napi::TypedThreadSafeFunction<LoaderShared, Delivery, deliver>;

// What the handle, the thread-safe function and the loader's callbacks share. The loader's
// callbacks run on worker threads and only touch `mutex`, `accepting` and `queue`; the rest is
// JS-thread state.
struct LoaderShared {
  std::shared_ptr<data::Loader> loader;
  std::mutex mutex;
  bool accepting = true;
  DeliveryQueue queue;
  int64_t pending = 0;     // promises not yet settled
  bool released = false;   // the queue was released or finalized: no Ref/Unref/Release any more
  // Set when the handle was garbage collected: nothing can await its promises any more, and
  // rejecting them would only raise unhandled rejections, so they resolve to null instead.
  bool collected = false;
};

void deliver(Napi::Env env, Napi::Function, LoaderShared* shared, Delivery* delivery) {
  std::unique_ptr<Delivery> d(delivery);
  if (static_cast<napi_env>(env) == nullptr) return;  // the environment is being torn down
  if (--shared->pending == 0 && !shared->released) shared->queue.Unref(env);
  if (d->error && !shared->collected) {
    d->deferred.Reject(coded_error(env, d->error).Value());
  } else if (d->error) {
    d->deferred.Resolve(env.Null());
  } else if (!d->batch) {
    d->deferred.Resolve(env.Null());
  } else {
    try {
      d->deferred.Resolve(batch_object(env, *d->batch));
    } catch (const Napi::Error& error) {
      d->deferred.Reject(error.Value());
    }
  }
}

class LoaderHandle : public Napi::ObjectWrap<LoaderHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "LoaderHandle",
                       {
                           InstanceAccessor<&LoaderHandle::batches_per_epoch>("batchesPerEpoch"),
                           InstanceAccessor<&LoaderHandle::samples_per_rank>("samplesPerRank"),
                           InstanceAccessor<&LoaderHandle::workers>("workers"),
                           InstanceAccessor<&LoaderHandle::pinned>("pinned"),
                           InstanceAccessor<&LoaderHandle::closed>("closed"),
                           InstanceMethod<&LoaderHandle::start_epoch>("startEpoch"),
                           InstanceMethod<&LoaderHandle::next>("next"),
                           InstanceMethod<&LoaderHandle::epoch_order>("epochOrder"),
                           InstanceMethod<&LoaderHandle::skipped>("skipped"),
                           InstanceMethod<&LoaderHandle::close>("close"),
                       });
  }

  explicit LoaderHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LoaderHandle>(info) {}
  ~LoaderHandle() override {
    if (shared_ && !closed_) shared_->collected = true;
    shutdown();
  }

  void attach(Napi::Env env, std::shared_ptr<data::Loader> loader) {
    shared_ = std::make_shared<LoaderShared>();
    shared_->loader = std::move(loader);
    // The queue's finalizer owns a reference: it may run after this handle is gone, or (at
    // environment teardown) before it, in which case it closes the loader itself so no worker
    // can touch the finalized queue.
    auto* keep = new std::shared_ptr<LoaderShared>(shared_);
    shared_->queue = DeliveryQueue::New(
        env, "s2bnn.DataLoader", 0, 1, shared_.get(),
        [](Napi::Env, std::shared_ptr<LoaderShared>* keep, LoaderShared* shared) {
          {
            std::lock_guard<std::mutex> lock(shared->mutex);
            shared->accepting = false;
          }
          shared->released = true;
          shared->loader->close();
          delete keep;
        },
        keep);
    // Only pending promises keep the process alive.
    shared_->queue.Unref(env);
  }

 private:
  data::Loader& loader(Napi::Env env) {
    if (closed_) throw make_error(env, "the DataLoader is closed", kCodeDisposed);
    return *shared_->loader;
  }

  void shutdown() {
    if (closed_ || !shared_) return;
    closed_ = true;
    // Waiters fail with LoaderClosed; their rejections go through the queue, which drains
    // before it finalizes.
    shared_->loader->close();
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->accepting = false;
    }
    if (!shared_->released) {
      shared_->released = true;
      shared_->queue.Release();
    }
  }

  Napi::Value batches_per_epoch(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(shared_->loader->batches_per_epoch()));
  }
  Napi::Value samples_per_rank(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(shared_->loader->samples_per_rank()));
  }
  Napi::Value pinned(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), shared_->loader->pinned());
  }
  Napi::Value workers(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(shared_->loader->options().workers));
  }
  Napi::Value closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), closed_); }

  Napi::Value start_epoch(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const int64_t epoch = integer(env, info[0], "epoch");
      const int64_t start = info.Length() > 1 && !info[1].IsUndefined() ? integer(env, info[1], "startBatch") : 0;
      data::Loader& l = loader(env);
      argument_errors(env, [&] { l.start_epoch(epoch, start); });
      return env.Undefined();
    });
  }

  Napi::Value next(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      data::Loader& l = loader(env);
      auto* delivery = new Delivery{Napi::Promise::Deferred::New(env), std::nullopt, nullptr};
      Napi::Promise promise = delivery->deferred.Promise();
      if (shared_->pending++ == 0) shared_->queue.Ref(env);
      LoaderShared* shared = shared_.get();
      l.next_async([shared, delivery](std::optional<data::Batch> batch, std::exception_ptr error) {
        delivery->batch = std::move(batch);
        delivery->error = error;
        std::lock_guard<std::mutex> lock(shared->mutex);
        if (!shared->accepting || shared->queue.NonBlockingCall(delivery) != napi_ok) delete delivery;
      });
      return promise;
    });
  }

  Napi::Value epoch_order(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const int64_t epoch = integer(env, info[0], "epoch");
      if (epoch < 0 || epoch > 0xFFFFFFFFll) throw_argument(env, "epoch must be between 0 and 2^32 - 1");
      const std::vector<int64_t> order = shared_->loader->epoch_order(epoch);
      at::Tensor out = at::empty({static_cast<int64_t>(order.size())}, at::kLong);
      std::memcpy(out.data_ptr<int64_t>(), order.data(), order.size() * sizeof(int64_t));
      return wrap(env, out);
    });
  }

  Napi::Value skipped(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const std::vector<data::Skipped> list = shared_->loader->skipped();
    Napi::Array out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("path", list[i].path);
      entry.Set("reason", list[i].reason);
      out.Set(static_cast<uint32_t>(i), entry);
    }
    return out;
  }

  Napi::Value close(const Napi::CallbackInfo& info) {
    shutdown();
    return info.Env().Undefined();
  }

  std::shared_ptr<LoaderShared> shared_;
  bool closed_ = false;
};

Napi::Value create_loader(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto source = unwrap_source(env, info[0], "dataset");
    const Options o(env, info[1], "");
    data::LoaderOptions options;
    options.batch_size = o.integer("batchSize");
    options.views = o.integer("views");
    options.transform = parse_transform(o.object("transform"));
    options.shuffle = o.boolean("shuffle");
    const int64_t seed = o.integer("seed");
    if (seed < 0) throw_argument(env, "seed must be >= 0");
    options.seed = static_cast<uint64_t>(seed);
    options.drop_last = o.boolean("dropLast");
    options.workers = o.integer("workers");
    options.prefetch = o.integer("prefetch");
    options.rank = o.integer("rank");
    options.world_size = o.integer("worldSize");
    options.strict = o.boolean("strict");
    options.crop_decode = o.boolean("cropDecode");
    const Napi::Value dtype = o.value("dtype");
    const std::string d = dtype.IsString() ? dtype.As<Napi::String>().Utf8Value() : std::string();
    if (d == "float32") {
      options.dtype = data::LoaderOptions::DType::Float32;
    } else if (d == "uint8") {
      options.dtype = data::LoaderOptions::DType::UInt8;
    } else if (d == "float16") {
      options.dtype = data::LoaderOptions::DType::Float16;
    } else {
      throw_argument(env, "dtype must be 'float32', 'uint8' or 'float16'");
    }
    const Napi::Value pin = o.value("pinMemory");
    if (pin.IsBoolean()) {
      options.pin_memory = pin.As<Napi::Boolean>().Value() ? data::LoaderOptions::Pin::On : data::LoaderOptions::Pin::Off;
    } else if (pin.IsString() && pin.As<Napi::String>().Utf8Value() == "auto") {
      options.pin_memory = data::LoaderOptions::Pin::Auto;
    } else {
      throw_argument(env, "pinMemory must be true, false or 'auto'");
    }
    auto loader = argument_errors(env, [&] { return std::make_shared<data::Loader>(source, options); });
    Napi::Object handle = state(env).loader_constructor.New({});
    LoaderHandle::Unwrap(handle)->attach(env, std::move(loader));
    return handle;
  });
}

}  // namespace

void init_loader(Napi::Env env, Napi::Object exports) {
  state(env).loader_constructor = Napi::Persistent(LoaderHandle::define(env));
  exports.Set("createLoader", Napi::Function::New(env, create_loader));
}

}  // namespace s2bnn::binding
