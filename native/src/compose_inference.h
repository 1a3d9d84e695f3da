// The inference fusions of the backend contract (norm_linear_forward, norm_swiglu_forward,
// norm_qkv_rope_cache_forward in puzzle/backend.h) written as the compositions that define them,
// over any op table with the ops they name (Ops, OpsBf16, or CUDA's overloads) and a
// device-to-device copy. The CPU backend runs them as they are; the CUDA backend where it does not
// fuse (more than a few rows).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace puzzle {

// the copy of a backend whose memory is the host's
inline void host_copy(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

template <class T, class Table, class Copy>
void compose_norm_linear(const Table& o, Copy copy, T* out, T* ln, float* rstd, const T* x, const T* norm_weight,
                         const T* weight, const T* res, int64_t N, int64_t C, int64_t OC, float eps) {
  if (N <= 0 || OC <= 0) return;
  const T* inp = x;
  if (norm_weight) {
    o.rmsnorm_forward(ln, rstd, x, norm_weight, N, C, eps);
    inp = ln;
  }
  // the residual is C of a beta-1 product, so the sum is rounded once
  if (res && res != out) copy(out, res, (size_t)(N * OC) * sizeof(T));
  o.gemm(false, true, N, OC, C, 1.f, inp, C, weight, C, res ? 1.f : 0.f, out, OC);
}

template <class T, class Table>
void compose_norm_swiglu(const Table& o, T* out, T* ln, float* rstd, T* gu, const T* x, const T* norm_weight,
                         const T* weight, int64_t N, int64_t C, int64_t F, float eps) {
  if (N <= 0 || F <= 0) return;
  const T* inp = x;
  if (norm_weight) {
    o.rmsnorm_forward(ln, rstd, x, norm_weight, N, C, eps);
    inp = ln;
  }
  o.gemm(false, true, N, 2 * F, C, 1.f, inp, C, weight, C, 0.f, gu, 2 * F);
  o.swiglu_forward(out, gu, N, F);
}

template <class T, class Table, class Copy>
void compose_norm_qkv_rope_cache(const Table& o, Copy copy, T* qkv, T* ln, float* rstd, T* k_cache, T* v_cache,
                                 const T* x, const T* norm_weight, const T* weight, const float* cos, const float* sin,
                                 const int32_t* pos, int64_t B, int64_t T_, int64_t C, int64_t NH, int64_t NKV,
                                 int64_t HS, int64_t past, int64_t Tmax, float eps) {
  if (B <= 0 || T_ <= 0) return;
  compose_norm_linear(o, copy, qkv, ln, rstd, x, norm_weight, weight, (const T*)nullptr, B * T_, C,
                      (NH + 2 * NKV) * HS, eps);
  o.rope_kv_cache_append(qkv, k_cache, v_cache, cos, sin, pos, B, T_, NH, NKV, HS, past, Tmax);
}

}  // namespace puzzle
