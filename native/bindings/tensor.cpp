// The Tensor class: a typed view into native memory, released by dispose() (or, as a fallback,
// by the garbage collector).
#include <algorithm>
#include <cstring>

#include "common.h"

namespace puzzle::bindings {

Napi::FunctionReference Tensor::ctor_;

Napi::Object Tensor::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function f = DefineClass(env, "Tensor",
                                 {
                                     StaticMethod<&Tensor::FromArray>("fromArray"),
                                     StaticMethod<&Tensor::Zeros>("zeros"),
                                     InstanceAccessor<&Tensor::Shape>("shape"),
                                     InstanceAccessor<&Tensor::DTypeName>("dtype"),
                                     InstanceAccessor<&Tensor::Numel>("numel"),
                                     InstanceAccessor<&Tensor::Disposed>("disposed"),
                                     InstanceAccessor<&Tensor::DeviceName>("device"),
                                     InstanceMethod<&Tensor::To>("to"),
                                     InstanceMethod<&Tensor::ToArray>("toArray"),
                                     InstanceMethod<&Tensor::CopyFrom>("copyFrom"),
                                     InstanceMethod<&Tensor::Fill>("fill"),
                                     InstanceMethod<&Tensor::Dispose>("dispose"),
                                 });
  ctor_ = Napi::Persistent(f);
  exports.Set("Tensor", f);
  return exports;
}

Napi::Object Tensor::Wrap(Napi::Env env, TensorRef data) {
  auto* holder = new TensorRef(std::move(data));
  Napi::External<TensorRef> ext = Napi::External<TensorRef>::New(env, holder);
  return ctor_.New({ext});
}

bool Tensor::Is(const Napi::Value& v) { return v.IsObject() && v.As<Napi::Object>().InstanceOf(ctor_.Value()); }

Tensor::Tensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Tensor>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw make_error(info.Env(), "ERR_PUZZLE_ARG", "Tensor: use Tensor.fromArray() or Tensor.zeros() to create one");
  TensorRef* holder = info[0].As<Napi::External<TensorRef>>().Data();
  data_ = std::move(*holder);
  delete holder;
  // Only tensors that own their whole buffer count towards the GC's external memory.
  if (data_ && data_->offset == 0 && data_.use_count() == 1 && data_->buf.use_count() == 1) {
    accounted_ = (int64_t)data_->buf->bytes;
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), accounted_);
  }
}

Tensor::~Tensor() { data_.reset(); }

void Tensor::release(Napi::Env env) {
  data_.reset();
  if (accounted_) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -accounted_);
    accounted_ = 0;
  }
}

namespace {

std::vector<int64_t> read_shape(const Napi::Value& v, const char* fn) {
  Napi::Env env = v.Env();
  if (!v.IsArray()) throw make_error(env, "ERR_PUZZLE_ARG", std::string(fn) + ": argument 'shape' must be an array");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value d = a.Get(i);
    double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    if (x < 0 || x != (double)(int64_t)x)
      throw make_error(env, "ERR_PUZZLE_SHAPE",
                       std::string(fn) + ": shape[" + std::to_string(i) + "] must be a non-negative integer");
    shape.push_back((int64_t)x);
  }
  return shape;
}

DType read_dtype(const Napi::Value& v, const char* fn) {
  if (v.IsUndefined()) return DType::F32;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "float32") return DType::F32;
  if (s == "int32") return DType::I32;
  if (s == "bfloat16") return DType::BF16;
  throw make_error(v.Env(), "ERR_PUZZLE_DTYPE",
                   std::string(fn) + ": argument 'dtype' must be 'float32', 'int32' or 'bfloat16', got '" + s + "'");
}

// Fills a tensor from typed-array bytes of the matching JS type (Float32Array for float32 and
// bfloat16, which is rounded to nearest even; Int32Array for int32), wherever it lives.
void fill_from(Napi::Env env, const TensorRef& t, const char* src, const char* fn) {
  const Backend& be = *t->buf->backend;
  const size_t n = t->numel();
  if (t->dtype == DType::BF16) {
    const float* f = reinterpret_cast<const float*>(src);
    std::vector<bf16> staged(device_of(be) == Device::CPU ? 0 : n);
    bf16* d = staged.empty() ? static_cast<bf16*>(t->ptr()) : staged.data();
    for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(f[i]);
    if (!staged.empty()) be.copy_to_device(t->ptr(), d, n * sizeof(bf16));
  } else {
    be.copy_to_device(t->ptr(), src, n * dtype_size(t->dtype));
  }
  device_done(env, be, fn);
}

}  // namespace

// Tensor.fromArray(Float32Array | Int32Array, shape?, dtype?, device?) -- dtype 'bfloat16'
// rounds a Float32Array to bf16 storage; device 'cuda' puts it on the GPU.
Napi::Value Tensor::FromArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray())
    throw make_error(env, "ERR_PUZZLE_ARG", "Tensor.fromArray: argument 'data' must be a Float32Array or Int32Array");
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  DType dtype;
  if (ta.TypedArrayType() == napi_float32_array)
    dtype = DType::F32;
  else if (ta.TypedArrayType() == napi_int32_array)
    dtype = DType::I32;
  else
    throw make_error(env, "ERR_PUZZLE_DTYPE", "Tensor.fromArray: argument 'data' must be a Float32Array or Int32Array");
  std::vector<int64_t> shape = info[1].IsUndefined() ? std::vector<int64_t>{(int64_t)ta.ElementLength()}
                                                     : read_shape(info[1], "Tensor.fromArray");
  if (!info[2].IsUndefined()) {
    DType want = read_dtype(info[2], "Tensor.fromArray");
    if (want == DType::BF16 && dtype == DType::F32)
      dtype = DType::BF16;
    else if (want != dtype)
      throw make_error(env, "ERR_PUZZLE_DTYPE",
                       std::string("Tensor.fromArray: a ") + (dtype == DType::F32 ? "Float32Array" : "Int32Array") +
                           " cannot make a " + dtype_name(want) + " tensor");
  }
  const Backend& be = backend_of(env, read_device(info[3], "Tensor.fromArray"), "Tensor.fromArray");
  size_t numel = 1;
  for (int64_t d : shape) numel *= (size_t)d;
  if (numel != ta.ElementLength())
    throw make_error(env, "ERR_PUZZLE_SHAPE",
                     "Tensor.fromArray: shape " + shape_str(shape) + " holds " + std::to_string(numel) +
                         " elements but 'data' has " + std::to_string(ta.ElementLength()));
  TensorRef t = new_tensor(env, shape, dtype, be, "Tensor.fromArray");
  fill_from(env, t, static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), "Tensor.fromArray");
  return Wrap(env, t);
}

// Tensor.zeros(shape, dtype = 'float32', device = 'cpu')
Napi::Value Tensor::Zeros(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int64_t> shape = read_shape(info[0], "Tensor.zeros");
  DType dtype = read_dtype(info[1], "Tensor.zeros");
  const Backend& be = backend_of(env, read_device(info[2], "Tensor.zeros"), "Tensor.zeros");
  TensorRef t = new_tensor(env, shape, dtype, be, "Tensor.zeros");
  be.memset_zero(t->ptr(), t->numel() * dtype_size(t->dtype));
  device_done(env, be, "Tensor.zeros");
  return Wrap(env, t);
}

Napi::Value Tensor::DeviceName(const Napi::CallbackInfo& info) {
  if (!data_) throw make_error(info.Env(), "ERR_PUZZLE_DISPOSED", "Tensor.device: the tensor was disposed");
  return Napi::String::New(info.Env(), device_name(device_of(*data_)));
}

// tensor.to(device) -> this tensor where it already lives there, else a copy on `device`.
Napi::Value Tensor::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!data_) throw make_error(env, "ERR_PUZZLE_DISPOSED", "Tensor.to: the tensor was disposed");
  if (info[0].IsUndefined()) throw make_error(env, "ERR_PUZZLE_ARG", "Tensor.to: argument 'device' must be 'cpu' or 'cuda'");
  const Device want = read_device(info[0], "Tensor.to");
  const Device have = device_of(*data_);
  if (want == have) return info.This();
  const Backend& dst = backend_of(env, want, "Tensor.to");
  const Backend& src = *data_->buf->backend;
  TensorRef t = new_tensor(env, data_->shape, data_->dtype, dst, "Tensor.to");
  const size_t bytes = data_->numel() * dtype_size(data_->dtype);
  if (want == Device::CPU) {
    src.copy_to_host(t->ptr(), data_->ptr(), bytes);
    device_done(env, src, "Tensor.to");
  } else {
    dst.copy_to_device(t->ptr(), data_->ptr(), bytes);
    device_done(env, dst, "Tensor.to");
  }
  return Wrap(env, t);
}

Napi::Value Tensor::Shape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!data_) throw make_error(env, "ERR_PUZZLE_DISPOSED", "Tensor.shape: the tensor was disposed");
  Napi::Array a = Napi::Array::New(env, data_->shape.size());
  for (size_t i = 0; i < data_->shape.size(); ++i) a.Set((uint32_t)i, Napi::Number::New(env, (double)data_->shape[i]));
  return a;
}

Napi::Value Tensor::DTypeName(const Napi::CallbackInfo& info) {
  if (!data_) throw make_error(info.Env(), "ERR_PUZZLE_DISPOSED", "Tensor.dtype: the tensor was disposed");
  return Napi::String::New(info.Env(), dtype_name(data_->dtype));
}

Napi::Value Tensor::Numel(const Napi::CallbackInfo& info) {
  if (!data_) throw make_error(info.Env(), "ERR_PUZZLE_DISPOSED", "Tensor.numel: the tensor was disposed");
  return Napi::Number::New(info.Env(), (double)data_->numel());
}

Napi::Value Tensor::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !data_); }

// A copy into a fresh Float32Array / Int32Array (bfloat16 widens to a Float32Array).
Napi::Value Tensor::ToArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!data_) throw make_error(env, "ERR_PUZZLE_DISPOSED", "Tensor.toArray: the tensor was disposed");
  size_t n = data_->numel();
  const Backend& be = *data_->buf->backend;
  if (data_->dtype == DType::I32) {
    Napi::Int32Array a = Napi::Int32Array::New(env, n);
    be.copy_to_host(a.Data(), data_->ptr(), n * 4);
    device_done(env, be, "Tensor.toArray");
    return a;
  }
  Napi::Float32Array a = Napi::Float32Array::New(env, n);
  if (data_->dtype == DType::BF16) {
    std::vector<bf16> staged(device_of(be) == Device::CPU ? 0 : n);
    if (!staged.empty()) be.copy_to_host(staged.data(), data_->ptr(), n * sizeof(bf16));
    device_done(env, be, "Tensor.toArray");
    const bf16* s = staged.empty() ? static_cast<const bf16*>(data_->ptr()) : staged.data();
    for (size_t i = 0; i < n; ++i) a[i] = bf16_to_f32(s[i]);
  } else {
    be.copy_to_host(a.Data(), data_->ptr(), n * 4);
    device_done(env, be, "Tensor.toArray");
  }
  return a;
}

// tensor.copyFrom(typedArray): overwrite the contents in place (e.g. loading weights into a view).
Napi::Value Tensor::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!data_) throw make_error(env, "ERR_PUZZLE_DISPOSED", "Tensor.copyFrom: the tensor was disposed");
  const bool is_int = data_->dtype == DType::I32;
  bool ok_type = info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() ==
                                               (is_int ? napi_int32_array : napi_float32_array);
  if (!ok_type)
    throw make_error(env, "ERR_PUZZLE_DTYPE",
                     std::string("Tensor.copyFrom: argument 'data' must be a ") +
                         (is_int ? "Int32Array" : "Float32Array"));
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  if (ta.ElementLength() != data_->numel())
    throw make_error(env, "ERR_PUZZLE_SHAPE",
                     "Tensor.copyFrom: the tensor has " + std::to_string(data_->numel()) + " elements " +
                         shape_str(data_->shape) + " but 'data' has " + std::to_string(ta.ElementLength()));
  fill_from(env, data_, static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), "Tensor.copyFrom");
  return info.This();
}

Napi::Value Tensor::Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!data_) throw make_error(env, "ERR_PUZZLE_DISPOSED", "Tensor.fill: the tensor was disposed");
  if (!info[0].IsNumber()) throw make_error(env, "ERR_PUZZLE_ARG", "Tensor.fill: argument 'value' must be a number");
  double v = info[0].As<Napi::Number>().DoubleValue();
  const size_t n = data_->numel();
  const Backend& be = *data_->buf->backend;
  if (v == 0) {  // all-zero bits in every dtype: no host staging of a GPU tensor (zeroing gradients)
    be.memset_zero(data_->ptr(), n * dtype_size(data_->dtype));
    device_done(env, be, "Tensor.fill");
    return info.This();
  }
  // Other values are made on the host (in place on the CPU, staged for a GPU).
  std::vector<char> staged(device_of(be) == Device::CPU ? 0 : n * dtype_size(data_->dtype));
  void* dst = staged.empty() ? data_->ptr() : staged.data();
  if (data_->dtype == DType::I32)
    std::fill_n(static_cast<int32_t*>(dst), n, (int32_t)v);
  else if (data_->dtype == DType::BF16)
    std::fill_n(static_cast<bf16*>(dst), n, f32_to_bf16((float)v));
  else
    std::fill_n(static_cast<float*>(dst), n, (float)v);
  if (!staged.empty()) be.copy_to_device(data_->ptr(), dst, staged.size());
  device_done(env, be, "Tensor.fill");
  return info.This();
}

Napi::Value Tensor::Dispose(const Napi::CallbackInfo& info) {
  release(info.Env());
  return info.Env().Undefined();
}

}  // namespace puzzle::bindings
