// Addon entry: engine diagnostics and settings; Tensor, ops and Block come from their files.
#include <fstream>
#include <sstream>

#include "common.h"
#include "puzzle/cpu_features.h"
#include "puzzle/cuda_module.h"
#include "puzzle/gemm.h"
#include "puzzle/threadpool.h"

namespace puzzle::bindings {
namespace {

Napi::Value EngineInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CpuFeatures& f = cpu_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cpuModel", f.model);
  o.Set("isa", cpu_isa());
  o.Set("gemmKernel", sgemm_kernel_name());
  o.Set("threads", Napi::Number::New(env, num_threads()));
  Napi::Array feats = Napi::Array::New(env);
  uint32_t i = 0;
  auto add = [&](bool on, const char* name) {
    if (on) feats.Set(i++, Napi::String::New(env, name));
  };
  add(f.avx2, "avx2"), add(f.fma, "fma"), add(f.f16c, "f16c"), add(f.avx512f, "avx512f"), add(f.avx512bw, "avx512bw"),
      add(f.avx512vl, "avx512vl"), add(f.avx512dq, "avx512dq"), add(f.avx512bf16, "avx512_bf16");
  o.Set("features", feats);
  return o;
}

Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CudaStatus& s = cuda_probe();
  Napi::Object o = Napi::Object::New(env);
  o.Set("moduleBuilt", Napi::Boolean::New(env, s.module_built));
  o.Set("moduleLoaded", Napi::Boolean::New(env, s.module_loaded));
  o.Set("devices", Napi::Number::New(env, s.device_count));
  o.Set("description", s.reason);
  return o;
}

// cudaRmsnormForward(out, inp, weight, N, C, eps) -> Promise<void>; rejects with ERR_PUZZLE_NO_GPU
Napi::Value CudaRmsnormForward(const Napi::CallbackInfo& info) {
  Args a(info, "cudaRmsnormForward");
  auto out = a.tensor(0, "out", DType::F32), inp = a.tensor(1, "inp", DType::F32), w = a.tensor(2, "weight", DType::F32);
  int64_t N = a.dim(3, "N"), C = a.dim(4, "C");
  float eps = (float)a.number(5, "eps");
  a.numel(out, "out", N * C, "N*C"), a.numel(inp, "inp", N * C, "N*C"), a.numel(w, "weight", C, "C");
  return run_async(info.Env(), {out, inp, w}, [=] {
    std::string err = cuda_rmsnorm_forward_host(out->f32(), inp->f32(), w->f32(), N, C, eps);
    if (!err.empty()) fail(cuda_probe().device_count > 0 ? "ERR_PUZZLE_CUDA" : "ERR_PUZZLE_NO_GPU", err);
  });
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Args a(info, "setThreads");
  int64_t n = a.dim(0, "threads", 0);
  set_num_threads((int)n);
  return Napi::Number::New(info.Env(), num_threads());
}

}  // namespace

void InitEngine(Napi::Env env, Napi::Object exports) {
  exports.Set("engineInfo", Napi::Function::New(env, EngineInfo));
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo));
  exports.Set("cudaRmsnormForward", Napi::Function::New(env, CudaRmsnormForward));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Tensor::Init(env, exports);
  InitOps(env, exports);
  InitBlock(env, exports);
  InitEngine(env, exports);
  return exports;
}

}  // namespace puzzle::bindings

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return puzzle::bindings::Init(env, exports); }
NODE_API_MODULE(puzzle, InitAddon)
