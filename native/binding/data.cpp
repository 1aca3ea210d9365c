// Data bindings: in-memory datasets, ImageFolder trees, the batching loader (next() -> Promise settled on the JS
// thread), and test entry points that apply one augmentation op with given parameters.
#include <cstring>
#include <optional>

#include "../data/augment.h"
#include "../data/image_folder.h"
#include "../data/loader.h"
#include "../data/source.h"
#include "common.h"

namespace s2bnn::binding {
namespace {

// ---- argument parsing -----------------------------------------------------------------------

// Turns the data layer's std::invalid_argument (whose messages name the JS option) into coded
// argument errors.
template <typename Body>
auto argument_errors(Napi::Env env, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::invalid_argument& error) {
    throw_argument(env, error.what());
  }
}

Napi::Object object_arg(Napi::Env env, const Napi::Value& value, const std::string& name) {
  if (!value.IsObject() || value.IsArray()) throw_argument(env, name + " must be an object");
  return value.As<Napi::Object>();
}

std::optional<Napi::Value> field(const Napi::Object& object, const char* key) {
  const Napi::Value v = object.Get(key);
  if (v.IsUndefined()) return std::nullopt;
  return v;
}

double number_field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& prefix, double fallback) {
  const auto v = field(o, key);
  if (!v) return fallback;
  const std::string name = prefix + key;
  const double x = number(env, *v, name.c_str());
  if (!std::isfinite(x)) throw_argument(env, name + " must be a finite number");
  return x;
}

int64_t int_field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& prefix, int64_t fallback) {
  const auto v = field(o, key);
  if (!v) return fallback;
  return integer(env, *v, (prefix + key).c_str());
}

bool bool_field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& prefix, bool fallback) {
  const auto v = field(o, key);
  if (!v) return fallback;
  return boolean(env, *v, (prefix + key).c_str());
}

std::vector<double> numbers(Napi::Env env, const Napi::Value& value, const std::string& name) {
  if (!value.IsArray()) throw_argument(env, name + " must be an array of numbers");
  const Napi::Array array = value.As<Napi::Array>();
  std::vector<double> out(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const std::string element = name + "[" + std::to_string(i) + "]";
    out[i] = number(env, array.Get(i), element.c_str());
    if (!std::isfinite(out[i])) throw_argument(env, element + " must be a finite number");
  }
  return out;
}

std::pair<double, double> pair_field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& prefix,
                                     std::pair<double, double> fallback) {
  const auto v = field(o, key);
  if (!v) return fallback;
  const std::vector<double> pair = numbers(env, *v, prefix + key);
  if (pair.size() != 2) throw_argument(env, prefix + key + " must be [min, max]");
  return {pair[0], pair[1]};
}

std::vector<float> floats_field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& prefix) {
  const auto v = field(o, key);
  if (!v) throw_argument(env, prefix + key + " is required (one value per channel)");
  const std::vector<double> values = numbers(env, *v, prefix + key);
  return std::vector<float>(values.begin(), values.end());
}

data::AugmentOptions parse_augment(Napi::Env env, const Napi::Value& value, const std::string& prefix) {
  const Napi::Object o = object_arg(env, value, prefix.substr(0, prefix.size() - 1));
  data::AugmentOptions out;
  const auto size = field(o, "size");
  if (!size) throw_argument(env, prefix + "size is required");
  out.size = integer(env, *size, (prefix + "size").c_str());
  std::tie(out.scale_min, out.scale_max) = pair_field(env, o, "scale", prefix, {out.scale_min, out.scale_max});
  std::tie(out.ratio_min, out.ratio_max) = pair_field(env, o, "ratio", prefix, {out.ratio_min, out.ratio_max});
  out.hflip = number_field(env, o, "hflip", prefix, 0.0);
  out.grayscale = number_field(env, o, "grayscale", prefix, 0.0);
  if (const auto jitter = field(o, "colorJitter")) {
    const std::string p = prefix + "colorJitter.";
    const Napi::Object j = object_arg(env, *jitter, prefix + "colorJitter");
    out.jitter.p = number_field(env, j, "p", p, 1.0);
    out.jitter.brightness = number_field(env, j, "brightness", p, 0.0);
    out.jitter.contrast = number_field(env, j, "contrast", p, 0.0);
    out.jitter.saturation = number_field(env, j, "saturation", p, 0.0);
    out.jitter.hue = number_field(env, j, "hue", p, 0.0);
  }
  if (const auto blur = field(o, "blur")) {
    const std::string p = prefix + "blur.";
    const Napi::Object b = object_arg(env, *blur, prefix + "blur");
    out.blur.p = number_field(env, b, "p", p, 1.0);
    std::tie(out.blur.sigma_min, out.blur.sigma_max) =
        pair_field(env, b, "sigma", p, {out.blur.sigma_min, out.blur.sigma_max});
    out.blur.kernel_size = int_field(env, b, "kernelSize", p, 0);
    if (field(b, "kernelSize") && out.blur.kernel_size < 1) throw_argument(env, p + "kernelSize must be odd and >= 1");
  }
  out.mean = floats_field(env, o, "mean", prefix);
  out.std = floats_field(env, o, "std", prefix);
  return out;
}

data::Transform parse_transform(Napi::Env env, const Napi::Value& value, const std::string& name) {
  const Napi::Object o = object_arg(env, value, name);
  const std::string kind = string(env, o.Get("kind"), (name + ".kind").c_str());
  data::Transform t;
  if (kind == "augment") {
    t.kind = data::Transform::Kind::Augment;
    t.augment = parse_augment(env, o.Get("options"), name + ".options.");
  } else if (kind == "eval") {
    t.kind = data::Transform::Kind::Eval;
    const std::string p = name + ".";
    const auto resize = field(o, "resize"), crop = field(o, "crop");
    if (!resize || !crop) throw_argument(env, name + " of kind 'eval' needs resize and crop");
    t.eval.resize = integer(env, *resize, (p + "resize").c_str());
    t.eval.crop = integer(env, *crop, (p + "crop").c_str());
    t.eval.mean = floats_field(env, o, "mean", p);
    t.eval.std = floats_field(env, o, "std", p);
  } else {
    throw_argument(env, name + ".kind must be 'augment' or 'eval', got '" + kind + "'");
  }
  return t;
}

std::vector<int64_t> index_list(Napi::Env env, const Napi::Value& value, const char* name) {
  if (value.IsTypedArray()) {
    const Napi::TypedArray typed = value.As<Napi::TypedArray>();
    if (typed.TypedArrayType() == napi_int32_array) {
      const Napi::Int32Array a = value.As<Napi::Int32Array>();
      return std::vector<int64_t>(a.Data(), a.Data() + a.ElementLength());
    }
    if (typed.TypedArrayType() == napi_bigint64_array) {
      const Napi::BigInt64Array a = value.As<Napi::BigInt64Array>();
      return std::vector<int64_t>(a.Data(), a.Data() + a.ElementLength());
    }
    throw_argument(env, std::string(name) + " must be an array of integers, an Int32Array or a BigInt64Array");
  }
  return int_list(env, value, name);
}

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

// ---- datasets -----------------------------------------------------------------------------------

class DatasetHandle : public Napi::ObjectWrap<DatasetHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "DatasetHandle",
                       {
                           InstanceAccessor<&DatasetHandle::length>("length"),
                           InstanceAccessor<&DatasetHandle::channels>("channels"),
                           InstanceAccessor<&DatasetHandle::height>("height"),
                           InstanceAccessor<&DatasetHandle::width>("width"),
                           InstanceAccessor<&DatasetHandle::num_classes>("numClasses"),
                           InstanceMethod<&DatasetHandle::subset>("subset"),
                           InstanceMethod<&DatasetHandle::images>("images"),
                           InstanceMethod<&DatasetHandle::labels>("labels"),
                       });
  }

  explicit DatasetHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DatasetHandle>(info) {}

  static Napi::Object create(Napi::Env env, std::shared_ptr<data::InMemorySource> source);

  std::shared_ptr<data::InMemorySource> source;

 private:
  Napi::Value number_value(Napi::Env env, int64_t v) { return Napi::Number::New(env, static_cast<double>(v)); }
  Napi::Value length(const Napi::CallbackInfo& info) { return number_value(info.Env(), source->size()); }
  Napi::Value channels(const Napi::CallbackInfo& info) { return number_value(info.Env(), source->channels()); }
  Napi::Value height(const Napi::CallbackInfo& info) { return number_value(info.Env(), source->height()); }
  Napi::Value width(const Napi::CallbackInfo& info) { return number_value(info.Env(), source->width()); }
  Napi::Value num_classes(const Napi::CallbackInfo& info) { return number_value(info.Env(), source->num_classes()); }

  Napi::Value subset(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const std::vector<int64_t> indices = index_list(env, info[0], "indices");
      return create(env, argument_errors(env, [&] { return source->subset(indices); }));
    });
  }
  Napi::Value images(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value { return wrap(info.Env(), source->images()); });
  }
  Napi::Value labels(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value { return wrap(info.Env(), source->labels()); });
  }
};

Napi::Object DatasetHandle::create(Napi::Env env, std::shared_ptr<data::InMemorySource> source) {
  Napi::Object handle = state(env).dataset_constructor.New({});
  Unwrap(handle)->source = std::move(source);
  return handle;
}

Napi::Value create_in_memory_dataset(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const at::Tensor images = unwrap(env, info[0], "images");
    const at::Tensor labels = unwrap(env, info[1], "labels");
    const int64_t num_classes = integer(env, info[2], "numClasses");
    auto source = argument_errors(env, [&] { return std::make_shared<data::InMemorySource>(images, labels, num_classes); });
    return DatasetHandle::create(env, std::move(source));
  });
}

// ---- ImageFolder ------------------------------------------------------------------------------

class FolderHandle : public Napi::ObjectWrap<FolderHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "FolderHandle",
                       {
                           InstanceAccessor<&FolderHandle::length>("length"),
                           InstanceAccessor<&FolderHandle::channels>("channels"),
                           InstanceAccessor<&FolderHandle::root>("root"),
                           InstanceMethod<&FolderHandle::classes>("classes"),
                           InstanceMethod<&FolderHandle::path>("path"),
                           InstanceMethod<&FolderHandle::subset>("subset"),
                           InstanceMethod<&FolderHandle::labels>("labels"),
                           InstanceMethod<&FolderHandle::read>("read"),
                           InstanceMethod<&FolderHandle::index>("index"),
                       });
  }

  explicit FolderHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FolderHandle>(info) {}

  static Napi::Object create(Napi::Env env, std::shared_ptr<data::ImageFolderSource> source) {
    Napi::Object handle = state(env).folder_constructor.New({});
    Unwrap(handle)->source = std::move(source);
    return handle;
  }

  std::shared_ptr<data::ImageFolderSource> source;

 private:
  int64_t index_arg(Napi::Env env, const Napi::Value& value) {
    const int64_t i = integer(env, value, "index");
    if (i < 0 || i >= source->size()) {
      throw_argument(env, "index must be in [0, " + std::to_string(source->size()) + "), got " + std::to_string(i));
    }
    return i;
  }
  Napi::Value length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(source->size())); }
  Napi::Value channels(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(source->channels()));
  }
  Napi::Value root(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), source->root()); }
  // index() -> { path, status, reason }: what open() did with the index file.
  Napi::Value index(const Napi::CallbackInfo& info) {
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("path", source->index_path());
    out.Set("status", source->index_status());
    out.Set("reason", source->index_reason());
    return out;
  }
  Napi::Value classes(const Napi::CallbackInfo& info) {
    Napi::Array out = Napi::Array::New(info.Env(), source->classes().size());
    for (size_t i = 0; i < source->classes().size(); ++i) out.Set(static_cast<uint32_t>(i), source->classes()[i]);
    return out;
  }
  Napi::Value path(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value { return Napi::String::New(env, source->path(index_arg(env, info[0]))); });
  }
  Napi::Value subset(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const std::vector<int64_t> indices = index_list(env, info[0], "indices");
      return create(env, argument_errors(env, [&] { return source->subset(indices); }));
    });
  }
  Napi::Value labels(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      at::Tensor out = at::empty({source->size()}, at::kLong);
      int64_t* data = out.data_ptr<int64_t>();
      for (int64_t i = 0; i < source->size(); ++i) data[i] = source->label(i);
      return wrap(info.Env(), out);
    });
  }
  // read(i) -> Promise<uint8 [H, W, C]>: the decoded sample, as the loader sees it before the
  // transform (C = channels, except CMYK JPEGs, which always decode to RGB).
  Napi::Value read(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const int64_t i = index_arg(env, info[0]);
      auto src = source;
      auto out = std::make_shared<at::Tensor>();
      return run_async(
          env, kCodeBadImage,
          [src, i, out] {
            const data::Image image = src->load(i);
            *out = at::empty({image.height, image.width, image.channels}, at::kByte);
            std::memcpy(out->data_ptr<uint8_t>(), image.pixels, static_cast<size_t>(out->numel()));
          },
          [out](Napi::Env env) -> Napi::Value { return wrap(env, *out); });
    });
  }
};

// openImageFolder(root, channels, index) -> Promise<FolderHandle>: the scan (or the index read)
// runs off the JS thread. index '' means no index file.
Napi::Value open_image_folder(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string root = string(env, info[0], "root");
    const int64_t channels = integer(env, info[1], "channels");
    if (channels != 1 && channels != 3) throw_argument(env, "channels must be 1 or 3, got " + std::to_string(channels));
    const std::string index = info[2].IsUndefined() ? std::string() : string(env, info[2], "index");
    auto out = std::make_shared<std::shared_ptr<data::ImageFolderSource>>();
    return run_async(
        env, kCodeDataset,
        [root, channels, index, out] { *out = std::make_shared<data::ImageFolderSource>(root, channels, index); },
        [out](Napi::Env env) -> Napi::Value { return FolderHandle::create(env, *out); });
  });
}

data::SourcePtr any_source_of(Napi::Env env, const Napi::Value& value, const char* name) {
  if (value.IsObject() && value.As<Napi::Object>().InstanceOf(state(env).folder_constructor.Value())) {
    return FolderHandle::Unwrap(value.As<Napi::Object>())->source;
  }
  if (value.IsObject() && value.As<Napi::Object>().InstanceOf(state(env).dataset_constructor.Value())) {
    return DatasetHandle::Unwrap(value.As<Napi::Object>())->source;
  }
  throw_argument(env, std::string(name) + " must be an InMemoryDataset or an ImageFolder");
}

// ---- the loader -------------------------------------------------------------------------------

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
    auto source = any_source_of(env, info[0], "dataset");
    const Napi::Object o = object_arg(env, info[1], "options");
    data::LoaderOptions options;
    const auto batch = field(o, "batchSize");
    if (!batch) throw_argument(env, "batchSize is required");
    options.batch_size = integer(env, *batch, "batchSize");
    options.views = int_field(env, o, "views", "", 1);
    const auto transform = field(o, "transform");
    if (!transform) throw_argument(env, "transform is required");
    options.transform = parse_transform(env, *transform, "transform");
    options.shuffle = bool_field(env, o, "shuffle", "", true);
    const int64_t seed = int_field(env, o, "seed", "", 0);
    if (seed < 0) throw_argument(env, "seed must be >= 0");
    options.seed = static_cast<uint64_t>(seed);
    options.drop_last = bool_field(env, o, "dropLast", "", false);
    options.workers = int_field(env, o, "workers", "", 0);
    if (field(o, "workers") && options.workers < 1) throw_argument(env, "workers must be between 1 and 1024");
    options.prefetch = int_field(env, o, "prefetch", "", 2);
    options.rank = int_field(env, o, "rank", "", 0);
    options.world_size = int_field(env, o, "worldSize", "", 1);
    options.strict = bool_field(env, o, "strict", "", false);
    options.crop_decode = bool_field(env, o, "cropDecode", "", true);
    if (const auto dtype = field(o, "dtype")) {
      const std::string d = dtype->IsString() ? dtype->As<Napi::String>().Utf8Value() : std::string();
      if (d == "float32") {
        options.dtype = data::LoaderOptions::DType::Float32;
      } else if (d == "uint8") {
        options.dtype = data::LoaderOptions::DType::UInt8;
      } else if (d == "float16") {
        options.dtype = data::LoaderOptions::DType::Float16;
      } else {
        throw_argument(env, "dtype must be 'float32', 'uint8' or 'float16'");
      }
    }
    if (const auto pin = field(o, "pinMemory")) {
      if (pin->IsBoolean()) {
        options.pin_memory = pin->As<Napi::Boolean>().Value() ? data::LoaderOptions::Pin::On : data::LoaderOptions::Pin::Off;
      } else if (pin->IsString() && pin->As<Napi::String>().Utf8Value() == "auto") {
        options.pin_memory = data::LoaderOptions::Pin::Auto;
      } else {
        throw_argument(env, "pinMemory must be true, false or 'auto'");
      }
    }
    auto loader = argument_errors(env, [&] { return std::make_shared<data::Loader>(source, options); });
    Napi::Object handle = state(env).loader_constructor.New({});
    LoaderHandle::Unwrap(handle)->attach(env, std::move(loader));
    return handle;
  });
}

// ---- test entry points: one op with given parameters ------------------------------------------

data::CropBox box_field(Napi::Env env, const Napi::Object& o, const char* key, const data::CropBox& fallback) {
  const auto v = field(o, key);
  if (!v) return fallback;
  const std::vector<int64_t> b = int_list(env, *v, key);
  if (b.size() != 4) throw_argument(env, std::string(key) + " must be [top, left, height, width]");
  data::CropBox box;
  box.top = b[0];
  box.left = b[1];
  box.height = b[2];
  box.width = b[3];
  return box;
}

data::AugmentParams parse_params(Napi::Env env, const Napi::Value& value) {
  const Napi::Object o = object_arg(env, value, "params");
  data::AugmentParams p;
  p.crop = box_field(env, o, "crop", p.crop);
  p.jitter = bool_field(env, o, "jitter", "params.", false);
  if (const auto order = field(o, "order")) {
    const std::vector<int64_t> list = int_list(env, *order, "params.order");
    if (list.size() != 4) throw_argument(env, "params.order must list the 4 jitter ops");
    for (size_t i = 0; i < 4; ++i) {
      if (list[i] < 0 || list[i] > 3) throw_argument(env, "params.order entries must be 0..3");
      p.order[i] = static_cast<int>(list[i]);
    }
  }
  p.brightness = number_field(env, o, "brightness", "params.", 1.0);
  p.contrast = number_field(env, o, "contrast", "params.", 1.0);
  p.saturation = number_field(env, o, "saturation", "params.", 1.0);
  p.hue = number_field(env, o, "hue", "params.", 0.0);
  p.grayscale = bool_field(env, o, "grayscale", "params.", false);
  p.blur = bool_field(env, o, "blur", "params.", false);
  p.sigma = number_field(env, o, "sigma", "params.", 0.0);
  p.flip = bool_field(env, o, "flip", "params.", false);
  return p;
}

data::Image image_of(Napi::Env env, const at::Tensor& tensor) {
  if (tensor.scalar_type() != at::kByte || tensor.dim() != 3 || !tensor.device().is_cpu() || !tensor.is_contiguous()) {
    throw_argument(env, "image must be a contiguous CPU uint8 tensor [H, W, C]");
  }
  if (tensor.size(2) != 1 && tensor.size(2) != 3 && tensor.size(2) != 4) {
    throw_argument(env, "image must have 1, 3 or 4 channels");
  }
  if (tensor.size(0) < 1 || tensor.size(1) < 1) throw_argument(env, "image must not be empty");
  data::Image image;
  image.height = tensor.size(0);
  image.width = tensor.size(1);
  image.channels = tensor.size(2);
  image.pixels = tensor.data_ptr<uint8_t>();
  return image;
}

// applyTransform(image uint8 [H, W, C], spec) -> float32 [C', H', W']. Color ops, blur and
// normalize run on the image converted to float [0, 1] CHW, as torchvision's tensor ops do.
Napi::Value apply_transform(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const at::Tensor tensor = unwrap(env, info[0], "image");
    const data::Image image = image_of(env, tensor);
    const Napi::Object spec = object_arg(env, info[1], "spec");
    const std::string op = string(env, spec.Get("op"), "spec.op");
    int64_t c = int_field(env, spec, "channels", "spec.", image.channels == 1 ? 1 : 3);
    if (c != 1 && c != 3) throw_argument(env, "spec.channels must be 1 or 3");
    data::Workspace ws;
    data::CropBox whole;
    whole.height = image.height;
    whole.width = image.width;
    const auto plain = [&]() {
      at::Tensor out = at::empty({c, image.height, image.width}, at::kFloat);
      data::resample(image, c, whole, image.height, image.width, 0, 0, image.height, image.width, false,
                     out.data_ptr<float>(), ws);
      return out;
    };
    return argument_errors(env, [&]() -> Napi::Value {
      const int64_t h = image.height, w = image.width;
      if (op == "resample") {
        const data::CropBox box = box_field(env, spec, "box", whole);
        const std::vector<int64_t> size = int_list(env, spec.Get("size"), "spec.size");
        if (size.size() != 2 || size[0] < 1 || size[1] < 1) throw_argument(env, "spec.size must be [height, width]");
        data::CropBox window;
        window.height = size[0];
        window.width = size[1];
        window = box_field(env, spec, "window", window);
        if (window.top < 0 || window.left < 0 || window.height < 1 || window.width < 1 ||
            window.top + window.height > size[0] || window.left + window.width > size[1]) {
          throw_argument(env, "spec.window must lie inside spec.size");
        }
        at::Tensor out = at::empty({c, window.height, window.width}, at::kFloat);
        data::resample(image, c, box, size[0], size[1], window.top, window.left, window.height, window.width,
                       bool_field(env, spec, "flip", "spec.", false), out.data_ptr<float>(), ws);
        return wrap(env, out);
      }
      if (op == "augment") {
        data::Transform t;
        t.augment = parse_augment(env, spec.Get("options"), "spec.options.");
        t.validate(c);
        const data::AugmentParams params = parse_params(env, spec.Get("params"));
        at::Tensor out = at::empty({c, t.augment.size, t.augment.size}, at::kFloat);
        data::apply_augment(image, c, t.augment, params, out.data_ptr<float>(), ws);
        return wrap(env, out);
      }
      if (op == "eval") {
        data::Transform t = parse_transform(env, spec.Get("transform"), "spec.transform");
        if (t.kind != data::Transform::Kind::Eval) throw_argument(env, "spec.transform must be of kind 'eval'");
        t.validate(c);
        at::Tensor out = at::empty({c, t.eval.crop, t.eval.crop}, at::kFloat);
        data::apply_eval(image, c, t.eval, out.data_ptr<float>(), ws);
        return wrap(env, out);
      }
      at::Tensor out = plain();
      float* x = out.data_ptr<float>();
      if (op == "toFloat") {
      } else if (op == "brightness" || op == "contrast" || op == "saturation" || op == "hue") {
        const double factor = number(env, spec.Get("factor"), "spec.factor");
        if (op == "hue" ? !(factor >= -0.5 && factor <= 0.5) : !(factor >= 0 && std::isfinite(factor))) {
          throw_argument(env, "spec.factor out of range for " + op);
        }
        if (op == "brightness") data::adjust_brightness(x, c, h, w, factor);
        if (op == "contrast") data::adjust_contrast(x, c, h, w, factor);
        if (op == "saturation") data::adjust_saturation(x, c, h, w, factor);
        if (op == "hue") data::adjust_hue(x, c, h, w, factor);
      } else if (op == "grayscale") {
        data::to_grayscale(x, c, h, w);
      } else if (op == "blur") {
        const int64_t k = integer(env, spec.Get("kernelSize"), "spec.kernelSize");
        const double sigma = number(env, spec.Get("sigma"), "spec.sigma");
        if (k < 1 || k % 2 == 0) throw_argument(env, "spec.kernelSize must be odd and >= 1");
        if (!(sigma > 0)) throw_argument(env, "spec.sigma must be > 0");
        data::gaussian_blur(x, c, h, w, k, sigma, ws);
      } else if (op == "normalize") {
        const std::vector<float> mean = floats_field(env, spec, "mean", "spec."), std = floats_field(env, spec, "std", "spec.");
        if (static_cast<int64_t>(mean.size()) != c || static_cast<int64_t>(std.size()) != c) {
          throw_argument(env, "spec.mean and spec.std need one value per channel");
        }
        data::normalize(x, c, h, w, mean, std);
      } else {
        throw_argument(env, "unknown spec.op '" + op +
                                "' (expected resample, augment, eval, toFloat, brightness, contrast, saturation, hue, "
                                "grayscale, blur or normalize)");
      }
      return wrap(env, out);
    });
  });
}

// sampleAugment(options, {seed, epoch, view, height, width, first, count}) -> the parameters
// drawn for samples first..first+count-1, exactly as the loader draws them, as columns of typed
// arrays (one JS object per sample would cost more than the draws).
Napi::Value sample_augment(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    data::Transform t;
    t.augment = parse_augment(env, info[0], "options.");
    const Napi::Object where = object_arg(env, info[1], "where");
    const int64_t seed = int_field(env, where, "seed", "where.", 0);
    const int64_t epoch = int_field(env, where, "epoch", "where.", 0);
    const int64_t view = int_field(env, where, "view", "where.", 0);
    const int64_t height = int_field(env, where, "height", "where.", 0);
    const int64_t width = int_field(env, where, "width", "where.", 0);
    const int64_t count = int_field(env, where, "count", "where.", 1);
    const int64_t first = int_field(env, where, "first", "where.", 0);
    if (seed < 0 || epoch < 0 || view < 0 || first < 0 || height < 1 || width < 1 || count < 0 || count > 10000000) {
      throw_argument(env, "where needs seed, epoch, view, first >= 0, height, width >= 1 and 0 <= count <= 1e7");
    }
    argument_errors(env, [&] { t.validate(static_cast<int64_t>(t.augment.mean.size())); });
    const size_t n = static_cast<size_t>(count);
    Napi::Int32Array crop = Napi::Int32Array::New(env, 4 * n), order = Napi::Int32Array::New(env, 4 * n);
    Napi::Uint8Array flags = Napi::Uint8Array::New(env, 4 * n);  // jitter, grayscale, blur, flip
    Napi::Float64Array factors = Napi::Float64Array::New(env, 5 * n);  // b, c, s, h, sigma
    for (size_t i = 0; i < n; ++i) {
      data::Philox rng = data::sample_stream(static_cast<uint64_t>(seed), epoch, first + static_cast<int64_t>(i), view);
      const data::AugmentParams p = data::sample_augment(t.augment, rng, height, width);
      const int64_t box[4] = {p.crop.top, p.crop.left, p.crop.height, p.crop.width};
      for (size_t k = 0; k < 4; ++k) {
        crop[4 * i + k] = static_cast<int32_t>(box[k]);
        order[4 * i + k] = p.order[k];
      }
      flags[4 * i] = p.jitter;
      flags[4 * i + 1] = p.grayscale;
      flags[4 * i + 2] = p.blur;
      flags[4 * i + 3] = p.flip;
      const double f[5] = {p.brightness, p.contrast, p.saturation, p.hue, p.sigma};
      for (size_t k = 0; k < 5; ++k) factors[5 * i + k] = f[k];
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("crop", crop);
    out.Set("order", order);
    out.Set("flags", flags);
    out.Set("factors", factors);
    return out;
  });
}

Napi::Value default_blur_kernel_size(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t size = integer(env, info[0], "size");
    if (size < 1) throw_argument(env, "size must be >= 1");
    return Napi::Number::New(env, static_cast<double>(data::default_blur_kernel_size(size)));
  });
}

}  // namespace

void init_data(Napi::Env env, Napi::Object exports) {
  AddonState& s = state(env);
  s.dataset_constructor = Napi::Persistent(DatasetHandle::define(env));
  s.loader_constructor = Napi::Persistent(LoaderHandle::define(env));
  s.folder_constructor = Napi::Persistent(FolderHandle::define(env));
  exports.Set("openImageFolder", Napi::Function::New(env, open_image_folder));
  exports.Set("createInMemoryDataset", Napi::Function::New(env, create_in_memory_dataset));
  exports.Set("createLoader", Napi::Function::New(env, create_loader));
  Napi::Object testing = Napi::Object::New(env);
  testing.Set("applyTransform", Napi::Function::New(env, apply_transform));
  testing.Set("sampleAugment", Napi::Function::New(env, sample_augment));
  testing.Set("defaultBlurKernelSize", Napi::Function::New(env, default_blur_kernel_size));
  exports.Set("dataTesting", testing);
}

}  // namespace s2bnn::binding
