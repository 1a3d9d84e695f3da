// The CUDA backend: one stream, a stream-ordered memory pool, sticky error reporting, and the
// op table (the same contract as the CPU backend; see puzzle/backend.h).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "cuda/backend_cuda.h"
#include "cuda/common.cuh"

namespace puzzle::cuda {
namespace {

__global__ void pdl_probe_kernel() {}

std::mutex g_error_mu;
std::string g_error;  // first error seen since the last take_error()

cudaStream_t make_stream() {
  cudaStream_t s = nullptr;
  record_error(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  // Keep freed pool memory instead of returning it at every synchronisation: training repeats
  // the same shapes every step.
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) {
    uint64_t threshold = UINT64_MAX;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
  }
  return s;
}

void* cu_alloc(size_t bytes) {
  void* p = nullptr;
  cudaError_t e = cudaMallocAsync(&p, bytes ? bytes : 1, stream());
  if (e != cudaSuccess) {
    cudaGetLastError();  // an allocation failure is reported as null, not as a sticky error
    // Give the pool's cached memory back and try once more.
    cudaStreamSynchronize(stream());
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) cudaMemPoolTrimTo(pool, 0);
    e = cudaMallocAsync(&p, bytes ? bytes : 1, stream());
    if (e != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
  }
  return p;
}
void cu_free(void* p) {
  if (p) record_error(cudaFreeAsync(p, stream()), "cudaFreeAsync");
}
void cu_memset_zero(void* dst, size_t bytes) { record_error(cudaMemsetAsync(dst, 0, bytes, stream()), "cudaMemset"); }
void cu_copy_to_device(void* dst, const void* src, size_t bytes) {
  // Host memory may be pageable and reused by the caller at once: copy synchronously.
  record_error(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()), "copy_to_device");
  record_error(cudaStreamSynchronize(stream()), "copy_to_device");
}
void cu_copy_to_host(void* dst, const void* src, size_t bytes) {
  record_error(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()), "copy_to_host");
  record_error(cudaStreamSynchronize(stream()), "copy_to_host");
}
void cu_copy_device(void* dst, const void* src, size_t bytes) {
  record_error(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()), "copy_device");
}
void cu_synchronize() { record_error(cudaStreamSynchronize(stream()), "synchronize"); }
double cu_now_ms() {
  cu_synchronize();
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

Backend make_backend() {
  Backend b{};
  b.name = "cuda";
  b.alloc = cu_alloc;
  b.free = cu_free;
  b.memset_zero = cu_memset_zero;
  b.copy_to_device = cu_copy_to_device;
  b.copy_to_host = cu_copy_to_host;
  b.copy_device = cu_copy_device;
  b.synchronize = cu_synchronize;
  b.now_ms = cu_now_ms;
  Ops& o = b.ops;
  o.embedding_forward = embedding_forward;
  o.embedding_backward = embedding_backward;
  o.rmsnorm_forward = rmsnorm_forward;
  o.add_rmsnorm_forward = add_rmsnorm_forward;
  o.rmsnorm_backward = rmsnorm_backward;
  o.matmul_forward = matmul_forward;
  o.matmul_backward = matmul_backward;
  o.gemm = gemm;
  o.rope_forward = rope_forward;
  o.rope_backward = rope_backward;
  o.attention_forward = attention_forward;
  o.attention_backward = attention_backward;
  o.attention_cached_forward = attention_cached_forward;
  o.rope_kv_cache_append = rope_kv_cache_append;
  o.swiglu_forward = swiglu_forward;
  o.swiglu_backward = swiglu_backward;
  o.norm_linear_forward = norm_linear_forward;
  o.norm_swiglu_forward = norm_swiglu_forward;
  o.norm_qkv_rope_cache_forward = norm_qkv_rope_cache_forward;
  o.add_forward = add_forward;
  o.accumulate = accumulate;
  o.cross_entropy_forward = cross_entropy_forward;
  o.cross_entropy_backward = cross_entropy_backward;
  o.kl_forward = kl_forward;
  o.kl_backward = kl_backward;
  o.cosine_forward = cosine_forward;
  o.cosine_backward = cosine_backward;
  o.nmse_forward = nmse_forward;
  o.nmse_backward = nmse_backward;
  o.sum_squares = sum_squares;
  o.adamw_update = adamw_update;
  OpsBf16& h = b.ops_bf16;  // overloads on bf16* (see common.cuh)
  h.to_bf16 = to_bf16;
  h.to_f32 = to_f32;
  h.rmsnorm_forward = rmsnorm_forward;
  h.add_rmsnorm_forward = add_rmsnorm_forward;
  h.rmsnorm_backward = rmsnorm_backward;
  h.gemm = gemm;
  h.gemm_f32out = gemm_f32out;
  h.rope_forward = rope_forward;
  h.rope_backward = rope_backward;
  h.attention_forward = attention_forward;
  h.attention_backward = attention_backward;
  h.attention_cached_forward = attention_cached_forward;
  h.rope_kv_cache_append = rope_kv_cache_append;
  h.swiglu_forward = swiglu_forward;
  h.swiglu_backward = swiglu_backward;
  h.norm_linear_forward = norm_linear_forward;
  h.norm_swiglu_forward = norm_swiglu_forward;
  h.norm_qkv_rope_cache_forward = norm_qkv_rope_cache_forward;
  h.add_forward = add_forward;
  h.accumulate = accumulate;
  return b;
}

}  // namespace

cudaStream_t stream() {
  static cudaStream_t s = make_stream();
  return s;
}

bool pdl_enabled() {
  // Opt-in until a GPU run has timed it (benchmarks/gpu/check.sh's [pdl] rows). The device must be
  // sm_90+ and this module's kernels compiled for it (ptxVersion: code JIT-compiled from sm_80
  // PTX has no griddepcontrol.wait, and PDL without it would race).
  static const bool on = [] {
    const char* e = std::getenv("PUZZLE_CUDA_PDL");
    if (!pdl_allowed(e, 9, 90, 90)) return false;  // not asked for: no device queries
    int dev = 0, major = 0;
    cudaFuncAttributes fa{};
    const bool ok = cudaGetDevice(&dev) == cudaSuccess &&
                    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
                    cudaFuncGetAttributes(&fa, pdl_probe_kernel) == cudaSuccess &&
                    pdl_allowed(e, major, fa.binaryVersion, fa.ptxVersion);
    (void)cudaGetLastError();  // a failed query is not an error of the next launch
    return ok;
  }();
  return on;
}

void record_error(cudaError_t e, const char* where) {
  if (e == cudaSuccess) return;
  std::lock_guard<std::mutex> lk(g_error_mu);
  if (g_error.empty()) g_error = std::string(where) + ": " + cudaGetErrorString(e);
}

std::string unsupported_device(const char* name, int major, int minor) {
  if (major >= 8) return "";
  return std::string(name) + " is sm_" + std::to_string(major) + std::to_string(minor) +
         ", and puzzle's CUDA kernels need sm_80 or newer (A100, H100, RTX 30xx and later)";
}

std::string take_error() {
  std::lock_guard<std::mutex> lk(g_error_mu);
  std::string e;
  e.swap(g_error);
  return e;
}

const Backend& cuda_backend() {
  static Backend b = make_backend();
  return b;
}

}  // namespace puzzle::cuda
