// Shared binding machinery: typed errors, the Tensor wrapper, argument readers and the
// Promise-returning task that runs native work off the JS thread.
#pragma once
#include <napi.h>

#include <functional>
#include <optional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "puzzle/backend.h"
#include "puzzle/buffer.h"

namespace puzzle::bindings {

// An error with a stable code (ERR_PUZZLE_*) that TypeScript maps to PuzzleError.
struct Failure : std::runtime_error {
  std::string code;
  Failure(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

[[noreturn]] void fail(const std::string& code, const std::string& msg);
Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& msg);

// What a JS Tensor points at: a view (offset, shape) into a shared buffer.
struct TensorData {
  BufferPtr buf;
  size_t offset = 0;  // elements
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  size_t numel() const {
    size_t n = 1;
    for (int64_t d : shape) n *= (size_t)d;
    return n;
  }
  void* ptr() const { return static_cast<char*>(buf->ptr) + offset * dtype_size(dtype); }
  float* f32() const { return static_cast<float*>(ptr()); }
  int32_t* i32() const { return static_cast<int32_t*>(ptr()); }
};
using TensorRef = std::shared_ptr<TensorData>;

std::string shape_str(const std::vector<int64_t>& s);

// ---- devices. A tensor lives where its buffer's backend puts it: the CPU, or the GPU of the
// CUDA module (puzzle_cuda.so). Ops run on the device of their arguments, which must agree.
enum class Device { CPU, CUDA };
const char* device_name(Device d);
Device device_of(const Backend& be);
inline Device device_of(const TensorData& t) { return device_of(*t.buf->backend); }
// 'cpu' (or undefined) | 'cuda'; anything else is ERR_PUZZLE_ARG naming fn and the argument.
Device read_device(const Napi::Value& v, const std::string& fn, const char* arg = "device");
// The backend of a device; ERR_PUZZLE_NO_GPU (with the loader's reason) where no GPU answers.
// The first form throws a JS error (JS thread), the second a Failure (worker thread).
const Backend& backend_of(Napi::Env env, Device d, const std::string& fn);
const Backend& backend_of(Device d, const std::string& fn);
// After device work: waits for the stream and turns a recorded CUDA error into ERR_PUZZLE_CUDA.
// A no-op on the CPU. The first form throws a JS error (JS thread), the second a Failure.
void device_done(Napi::Env env, const Backend& be, const std::string& fn);
void device_done(const Backend& be, const std::string& fn);
// A new tensor on `be` (contents undefined); ERR_PUZZLE_OOM naming fn, shape and device.
TensorRef new_tensor(Napi::Env env, std::vector<int64_t> shape, DType dtype, const Backend& be, const char* fn);
// Host copies for the checks that read data (ids in range, finite values), wherever it lives.
std::vector<int32_t> host_i32(const TensorData& t, size_t n);
void check_finite(const TensorData& t, int64_t n, const std::string& where);

class Tensor : public Napi::ObjectWrap<Tensor> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports);
  static Napi::Object Wrap(Napi::Env env, TensorRef data);
  static bool Is(const Napi::Value& v);
  explicit Tensor(const Napi::CallbackInfo& info);
  ~Tensor() override;
  const TensorRef& data() const { return data_; }

 private:
  static Napi::Value FromArray(const Napi::CallbackInfo& info);
  static Napi::Value Zeros(const Napi::CallbackInfo& info);
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value DTypeName(const Napi::CallbackInfo& info);
  Napi::Value Numel(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value DeviceName(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value ToArray(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value Fill(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  void release(Napi::Env env);

  TensorRef data_;
  int64_t accounted_ = 0;
  static Napi::FunctionReference ctor_;
};

// Reads and checks arguments; every failure names the function and the argument.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn) : info_(info), fn_(fn) {}
  // Every tensor read must live on the device of the first one (ERR_PUZZLE_DEVICE otherwise).
  TensorRef tensor(size_t i, const char* name, DType dtype, bool optional = false) const;
  // The same for a value that is not an argument itself (an element of an array argument)
  TensorRef tensor_value(const Napi::Value& v, const std::string& name, DType dtype, bool optional = false) const;
  // The backend of the tensors read so far (the CPU's when none was).
  const Backend& backend() const;
  // The tensors must be on `d` (a Block's device); call before reading them.
  void expect_device(Device d, const std::string& owner) const { want_ = d, want_owner_ = owner; }
  int64_t dim(size_t i, const char* name, int64_t min = 1) const;
  double number(size_t i, const char* name) const;
  bool flag(size_t i, const char* name) const;
  // The tensor must hold exactly `n` elements (`what` explains n, e.g. "N*C").
  void numel(const TensorRef& t, const char* name, int64_t n, const std::string& what) const;
  [[noreturn]] void bad(const std::string& code, const std::string& msg) const;
  const std::string& fn() const { return fn_; }
  Napi::Env env() const { return info_.Env(); }

 private:
  const Napi::CallbackInfo& info_;
  std::string fn_;
  mutable const Backend* be_ = nullptr;
  mutable std::string be_arg_;
  mutable std::optional<Device> want_;
  mutable std::string want_owner_;
};

// Throws ERR_PUZZLE_NAN when x holds a NaN or an infinity (runs on the worker thread).
void check_finite(const float* x, int64_t n, const std::string& where);
void check_finite(const bf16* x, int64_t n, const std::string& where);

// Runs `work` on a libuv worker thread; resolves with `result(env)` (undefined when empty).
// `keep` holds every buffer the work touches, so a dispose() meanwhile frees nothing early.
// `flops` estimates the work: below kInlineFlops it runs on the calling thread instead (the
// returned Promise is then already settled).
constexpr double kInlineFlops = 4e6;
Napi::Value run_async(Napi::Env env, std::vector<TensorRef> keep, std::function<void()> work,
                      std::function<Napi::Value(Napi::Env)> result = nullptr, double flops = 1e300);

void InitOps(Napi::Env env, Napi::Object exports);
void InitBlock(Napi::Env env, Napi::Object exports);
void InitEngine(Napi::Env env, Napi::Object exports);

}  // namespace puzzle::bindings
