#include "common.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "puzzle/cuda_module.h"
#include "puzzle/threadpool.h"

namespace puzzle::bindings {

void fail(const std::string& code, const std::string& msg) { throw Failure(code, msg); }

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// ---------------------------------------------------------------- devices
namespace {
// Index of a NaN or infinity in x (any offender will do), or -1.
int64_t non_finite_at(const float* x, int64_t n) {
  std::atomic<int64_t> bad_at{-1};
  parallel_for(n, 1 << 16, [&](int64_t i0, int64_t i1) {
    float acc = 0.f;
    for (int64_t i = i0; i < i1; ++i) acc += x[i] * 0.f;  // NaN or inf turns the sum to NaN
    if (acc != 0.f) {
      for (int64_t i = i0; i < i1; ++i)
        if (!std::isfinite(x[i])) {
          bad_at = i;
          break;
        }
    }
  });
  return bad_at.load();
}
int64_t non_finite_at(const bf16* x, int64_t n) {
  std::atomic<int64_t> bad_at{-1};
  parallel_for(n, 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      if ((x[i].bits & 0x7f80u) == 0x7f80u) {  // exponent all ones: an infinity or a NaN
        bad_at = i;
        break;
      }
  });
  return bad_at.load();
}
[[noreturn]] void fail_non_finite(const std::string& where, int64_t at) {
  fail("ERR_PUZZLE_NAN", where + " holds a non-finite value at flat index " + std::to_string(at));
}
}  // namespace

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }
Device device_of(const Backend& be) { return &be == &cpu_backend() ? Device::CPU : Device::CUDA; }

Device read_device(const Napi::Value& v, const std::string& fn, const char* arg) {
  if (v.IsUndefined() || v.IsNull()) return Device::CPU;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "cpu") return Device::CPU;
  if (s == "cuda") return Device::CUDA;
  throw make_error(v.Env(), "ERR_PUZZLE_ARG", fn + ": argument '" + arg + "' must be 'cpu' or 'cuda', got '" + s + "'");
}

const Backend& backend_of(Device d, const std::string& fn) {
  if (d == Device::CPU) return cpu_backend();
  std::string why;
  const Backend* be = cuda_backend(&why);
  if (!be) fail("ERR_PUZZLE_NO_GPU", fn + ": device 'cuda' is unavailable: " + why);
  return *be;
}

const Backend& backend_of(Napi::Env env, Device d, const std::string& fn) {
  try {
    return backend_of(d, fn);
  } catch (const Failure& f) {
    throw make_error(env, f.code, f.what());
  }
}

void device_done(const Backend& be, const std::string& fn) {
  if (device_of(be) == Device::CPU) return;
  be.synchronize();
  std::string err = cuda_take_error();
  if (!err.empty()) fail("ERR_PUZZLE_CUDA", fn + ": " + err);
}

void device_done(Napi::Env env, const Backend& be, const std::string& fn) {
  try {
    device_done(be, fn);
  } catch (const Failure& f) {
    throw make_error(env, f.code, f.what());
  }
}

TensorRef new_tensor(Napi::Env env, std::vector<int64_t> shape, DType dtype, const Backend& be, const char* fn) {
  auto t = std::make_shared<TensorData>();
  t->shape = std::move(shape);
  t->dtype = dtype;
  try {
    t->buf = make_buffer(be, std::max<size_t>(t->numel(), 1) * dtype_size(dtype));
  } catch (const std::bad_alloc&) {
    throw make_error(env, "ERR_PUZZLE_OOM", std::string(fn) + ": cannot allocate " + shape_str(t->shape) + " " +
                                                dtype_name(dtype) + " on " + device_name(device_of(be)));
  }
  return t;
}

std::vector<int32_t> host_i32(const TensorData& t, size_t n) {
  std::vector<int32_t> h(n);
  t.buf->backend->copy_to_host(h.data(), t.ptr(), n * sizeof(int32_t));
  return h;
}

void check_finite(const TensorData& t, int64_t n, const std::string& where) {
  const Backend& be = *t.buf->backend;
  if (device_of(be) == Device::CPU) {
    if (t.dtype == DType::BF16) return check_finite(static_cast<const bf16*>(t.ptr()), n, where);
    return check_finite(t.f32(), n, where);
  }
  // On the GPU a float32 check is one reduction (NaN and infinity survive the sum of squares), a
  // bfloat16 one the same over float32 chunks widened on the device; only a failing piece comes
  // to the host, to name the index.
  const auto on_host = [&](const void* p, int64_t m, int64_t offset) {
    std::vector<char> h((size_t)m * dtype_size(t.dtype));
    be.copy_to_host(h.data(), p, h.size());
    const int64_t at = t.dtype == DType::BF16 ? non_finite_at(reinterpret_cast<const bf16*>(h.data()), m)
                                              : non_finite_at(reinterpret_cast<const float*>(h.data()), m);
    if (at >= 0) fail_non_finite(where, offset + at);
  };
  if (t.dtype == DType::F32) {
    if (!std::isfinite(be.ops.sum_squares(t.f32(), n))) on_host(t.ptr(), n, 0);
    return;
  }
  constexpr int64_t kChunk = int64_t(1) << 22;  // 16 MiB of float32 scratch
  BufferPtr scratch = make_buffer(be, (size_t)std::min(n, kChunk) * sizeof(float));
  const bf16* x = static_cast<const bf16*>(t.ptr());
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    be.ops_bf16.to_f32(scratch->f32(), x + i, m);
    if (!std::isfinite(be.ops.sum_squares(scratch->f32(), m))) on_host(x + i, m, i);
  }
}

// ---------------------------------------------------------------- Args
void Args::bad(const std::string& code, const std::string& msg) const {
  throw make_error(info_.Env(), code, fn_ + ": " + msg);
}

TensorRef Args::tensor(size_t i, const char* name, DType dtype, bool optional) const {
  return tensor_value(info_[i], name, dtype, optional);
}

TensorRef Args::tensor_value(const Napi::Value& v, const std::string& name, DType dtype, bool optional) const {
  if (optional && (v.IsNull() || v.IsUndefined())) return nullptr;
  if (!Tensor::Is(v)) bad("ERR_PUZZLE_ARG", std::string("argument '") + name + "' must be a Tensor");
  const TensorRef& t = Tensor::Unwrap(v.As<Napi::Object>())->data();
  if (!t) bad("ERR_PUZZLE_DISPOSED", std::string("argument '") + name + "' is a disposed Tensor");
  if (t->dtype != dtype)
    bad("ERR_PUZZLE_DTYPE", std::string("argument '") + name + "' must be " + dtype_name(dtype) + ", got " +
                                dtype_name(t->dtype));
  const Device d = device_of(*t);
  if (want_ && d != *want_)
    bad("ERR_PUZZLE_DEVICE", std::string("argument '") + name + "' is on " + device_name(d) + " but " + want_owner_ +
                                 " is on " + device_name(*want_) + "; move it with tensor.to('" +
                                 device_name(*want_) + "')");
  if (!be_) {
    be_ = t->buf->backend;
    be_arg_ = name;
  } else if (be_ != t->buf->backend) {
    bad("ERR_PUZZLE_DEVICE", std::string("argument '") + name + "' is on " + device_name(d) + " but argument '" +
                                 be_arg_ + "' is on " + device_name(device_of(*be_)) +
                                 "; an op runs where its arguments live: move one with tensor.to()");
  }
  return t;
}

const Backend& Args::backend() const { return be_ ? *be_ : cpu_backend(); }

int64_t Args::dim(size_t i, const char* name, int64_t min) const {
  Napi::Value v = info_[i];
  if (!v.IsNumber()) bad("ERR_PUZZLE_ARG", std::string("argument '") + name + "' must be an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != std::floor(d) || d < (double)min || d > 9.0e15)
    bad("ERR_PUZZLE_ARG", std::string("argument '") + name + "' must be an integer >= " + std::to_string(min) +
                              ", got " + std::to_string(d));
  return (int64_t)d;
}

double Args::number(size_t i, const char* name) const {
  Napi::Value v = info_[i];
  if (!v.IsNumber()) bad("ERR_PUZZLE_ARG", std::string("argument '") + name + "' must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) bad("ERR_PUZZLE_ARG", std::string("argument '") + name + "' must be finite");
  return d;
}

bool Args::flag(size_t i, const char* name) const {
  Napi::Value v = info_[i];
  if (!v.IsBoolean()) bad("ERR_PUZZLE_ARG", std::string("argument '") + name + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

void Args::numel(const TensorRef& t, const char* name, int64_t n, const std::string& what) const {
  if (!t) return;
  if ((int64_t)t->numel() != n)
    bad("ERR_PUZZLE_SHAPE", std::string("argument '") + name + "' has shape " + shape_str(t->shape) + " (" +
                                std::to_string(t->numel()) + " elements), expected " + what + " = " +
                                std::to_string(n) + " elements");
}


void check_finite(const float* x, int64_t n, const std::string& where) {
  if (int64_t at = non_finite_at(x, n); at >= 0) fail_non_finite(where, at);
}

void check_finite(const bf16* x, int64_t n, const std::string& where) {
  if (int64_t at = non_finite_at(x, n); at >= 0) fail_non_finite(where, at);
}

// ---------------------------------------------------------------- async
namespace {
class Task : public Napi::AsyncWorker {
 public:
  Task(Napi::Env env, std::vector<TensorRef> keep, std::function<void()> work,
       std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        keep_(std::move(keep)),
        work_(std::move(work)),
        result_(std::move(result)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const Failure& f) {
      code_ = f.code;
      SetError(f.what());
    } catch (const std::bad_alloc&) {
      code_ = "ERR_PUZZLE_OOM";
      SetError("out of memory");
    } catch (const std::exception& e) {
      code_ = "ERR_PUZZLE_INTERNAL";
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(result_ ? result_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(make_error(Env(), code_, e.Message()).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<TensorRef> keep_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::string code_ = "ERR_PUZZLE_INTERNAL";
};
}  // namespace

Napi::Value run_async(Napi::Env env, std::vector<TensorRef> keep, std::function<void()> work,
                      std::function<Napi::Value(Napi::Env)> result, double flops) {
  // Work of a few microseconds (a decode step of a small block) runs right here: handing it to a
  // libuv worker and back costs more than the work and adds tens of microseconds of jitter.
  // The caller still gets a Promise, already settled.
  if (flops < kInlineFlops) {
    auto deferred = Napi::Promise::Deferred::New(env);
    try {
      work();
      deferred.Resolve(result ? result(env) : env.Undefined());
    } catch (const Failure& f) {
      deferred.Reject(make_error(env, f.code, f.what()).Value());
    } catch (const std::bad_alloc&) {
      deferred.Reject(make_error(env, "ERR_PUZZLE_OOM", "out of memory").Value());
    } catch (const Napi::Error& e) {
      deferred.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred.Reject(make_error(env, "ERR_PUZZLE_INTERNAL", e.what()).Value());
    }
    return deferred.Promise();
  }
  auto* task = new Task(env, std::move(keep), std::move(work), std::move(result));
  Napi::Promise p = task->promise();
  task->Queue();
  return p;
}

}  // namespace puzzle::bindings
