// Dataset bindings: in-memory datasets (uint8 images + labels held as tensors) and ImageFolder
// trees (scanned or read from their index off the JS thread).
#include <cstring>

#include "../data/image_folder.h"
#include "../data/source.h"
#include "common.h"

namespace s2bnn::binding {
namespace {

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

}  // namespace

data::SourcePtr unwrap_source(Napi::Env env, const Napi::Value& value, const char* name) {
  if (value.IsObject() && value.As<Napi::Object>().InstanceOf(state(env).folder_constructor.Value())) {
    return FolderHandle::Unwrap(value.As<Napi::Object>())->source;
  }
  if (value.IsObject() && value.As<Napi::Object>().InstanceOf(state(env).dataset_constructor.Value())) {
    return DatasetHandle::Unwrap(value.As<Napi::Object>())->source;
  }
  throw_argument(env, std::string(name) + " must be an InMemoryDataset or an ImageFolder");
}


void init_datasets(Napi::Env env, Napi::Object exports) {
  AddonState& s = state(env);
  s.dataset_constructor = Napi::Persistent(DatasetHandle::define(env));
  s.folder_constructor = Napi::Persistent(FolderHandle::define(env));
  exports.Set("openImageFolder", Napi::Function::New(env, open_image_folder));
  exports.Set("createInMemoryDataset", Napi::Function::New(env, create_in_memory_dataset));
}

}  // namespace s2bnn::binding
