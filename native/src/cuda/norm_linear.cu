// The inference fusions of the backend contract on CUDA (puzzle/backend.h): a cached forward's
// norm + product, product + residual, norm + gate|up product + SwiGLU, and norm + q|k|v product +
// RoPE + KV-cache append. For a few rows (a decode step) each is one launch of gemm.cu's few-rows
// dot kernels, which fold the norm into their staging of X and the residual, the gate or the
// rotation and the append into their epilogue: a decode step of a GQA + SwiGLU block runs 5
// kernels instead of 9, and the normalised rows and the gate|up activations never go to memory.
// Otherwise (more rows, PUZZLE_CUDA_GEMM=cublas, or PUZZLE_CUDA_FUSE=0, which
// benchmarks/gpu/check.sh sets for a pass tagged [fuse=off] to time the two) the composition that
// defines them (compose_inference.h) over the ops of this backend.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "compose_inference.h"
#include "cuda/common.cuh"

namespace puzzle::cuda {
namespace {

// This backend's ops under the names compose_inference.h calls (the overloads of common.cuh).
struct CudaOps {
  template <class... A>
  void rmsnorm_forward(A... a) const {
    cuda::rmsnorm_forward(a...);
  }
  template <class... A>
  void gemm(A... a) const {
    cuda::gemm(a...);
  }
  template <class... A>
  void swiglu_forward(A... a) const {
    cuda::swiglu_forward(a...);
  }
  template <class... A>
  void rope_kv_cache_append(A... a) const {
    cuda::rope_kv_cache_append(a...);
  }
};

// PUZZLE_CUDA_FUSE=0: always the composition (read once)
bool fusion_on() {
  static const bool on = [] {
    const char* e = std::getenv("PUZZLE_CUDA_FUSE");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
}

void copy_on_stream(void* dst, const void* src, size_t bytes) {
  record_error(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()), "norm_linear_forward (residual)");
}

template <class T>
void norm_linear_t(T* out, T* ln, float* rstd, const T* x, const T* nw, const T* W, const T* res, int64_t N, int64_t C,
                   int64_t OC, float eps) {
  if (fusion_on() && small_linear_fused(out, x, nw, W, res, N, C, OC, 0, eps)) return;
  compose_norm_linear(CudaOps{}, copy_on_stream, out, ln, rstd, x, nw, W, res, N, C, OC, eps);
}

template <class T>
void norm_swiglu_t(T* out, T* ln, float* rstd, T* gu, const T* x, const T* nw, const T* W, int64_t N, int64_t C,
                   int64_t F, float eps) {
  if (fusion_on() && small_linear_fused(out, x, nw, W, (const T*)nullptr, N, C, 2 * F, F, eps)) return;
  compose_norm_swiglu(CudaOps{}, out, ln, rstd, gu, x, nw, W, N, C, F, eps);
}

template <class T>
void norm_qkv_rope_cache_t(T* qkv, T* ln, float* rstd, T* k_cache, T* v_cache, const T* x, const T* nw, const T* W,
                           const float* cos, const float* sin, const int32_t* pos, int64_t B, int64_t Tq, int64_t C,
                           int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tmax, float eps) {
  if (fusion_on() &&
      small_qkv_rope_fused(qkv, k_cache, v_cache, x, nw, W, cos, sin, pos, B, Tq, C, NH, NKV, HS, past, Tmax, eps))
    return;
  compose_norm_qkv_rope_cache(CudaOps{}, copy_on_stream, qkv, ln, rstd, k_cache, v_cache, x, nw, W, cos, sin, pos, B,
                              Tq, C, NH, NKV, HS, past, Tmax, eps);
}

}  // namespace

void norm_linear_forward(float* out, float* ln, float* rstd, const float* x, const float* norm_weight,
                         const float* weight, const float* res, int64_t N, int64_t C, int64_t OC, float eps) {
  norm_linear_t(out, ln, rstd, x, norm_weight, weight, res, N, C, OC, eps);
}
void norm_swiglu_forward(float* out, float* ln, float* rstd, float* gu, const float* x, const float* norm_weight,
                         const float* weight, int64_t N, int64_t C, int64_t F, float eps) {
  norm_swiglu_t(out, ln, rstd, gu, x, norm_weight, weight, N, C, F, eps);
}
void norm_linear_forward(bf16* out, bf16* ln, float* rstd, const bf16* x, const bf16* norm_weight, const bf16* weight,
                         const bf16* res, int64_t N, int64_t C, int64_t OC, float eps) {
  norm_linear_t(out, ln, rstd, x, norm_weight, weight, res, N, C, OC, eps);
}
void norm_swiglu_forward(bf16* out, bf16* ln, float* rstd, bf16* gu, const bf16* x, const bf16* norm_weight,
                         const bf16* weight, int64_t N, int64_t C, int64_t F, float eps) {
  norm_swiglu_t(out, ln, rstd, gu, x, norm_weight, weight, N, C, F, eps);
}

void norm_qkv_rope_cache_forward(float* qkv, float* ln, float* rstd, float* k_cache, float* v_cache, const float* x,
                                 const float* norm_weight, const float* weight, const float* cos, const float* sin,
                                 const int32_t* pos, int64_t B, int64_t T, int64_t C, int64_t NH, int64_t NKV,
                                 int64_t HS, int64_t past, int64_t Tmax, float eps) {
  norm_qkv_rope_cache_t(qkv, ln, rstd, k_cache, v_cache, x, norm_weight, weight, cos, sin, pos, B, T, C, NH, NKV, HS,
                        past, Tmax, eps);
}
void norm_qkv_rope_cache_forward(bf16* qkv, bf16* ln, float* rstd, bf16* k_cache, bf16* v_cache, const bf16* x,
                                 const bf16* norm_weight, const bf16* weight, const float* cos, const float* sin,
                                 const int32_t* pos, int64_t B, int64_t T, int64_t C, int64_t NH, int64_t NKV,
                                 int64_t HS, int64_t past, int64_t Tmax, float eps) {
  norm_qkv_rope_cache_t(qkv, ln, rstd, k_cache, v_cache, x, norm_weight, weight, cos, sin, pos, B, T, C, NH, NKV, HS,
                        past, Tmax, eps);
}

}  // namespace puzzle::cuda
