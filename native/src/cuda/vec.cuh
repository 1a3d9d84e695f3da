// Vector-access helpers shared by the elementwise, loss and optimiser kernels: 4-element vector
// loads and stores where alignment allows (float4, or 8 bytes of bf16, widened to fp32 in
// registers and rounded once on the way out), the scalar head / vector body / scalar tail split
// of a row, and the launch geometry of rows x units kernels.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace puzzle::cuda {

inline bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }
// Two pointers with the same offset mod 16 can share one head/body/tail split.
inline bool coaligned(const void* a, const void* b) { return (((uintptr_t)a ^ (uintptr_t)b) & 15u) == 0; }
// The same for a 4-element vector of E (16 bytes of fp32, 8 of bf16).
template <class E>
inline bool vec_aligned(const E* p) {
  return ((uintptr_t)p & (4 * sizeof(E) - 1)) == 0;
}
template <class E>
inline bool vec_coaligned(const E* a, const E* b) {
  return (((uintptr_t)a ^ (uintptr_t)b) & (4 * sizeof(E) - 1)) == 0;
}
// Blocks of `threads` for `units` of work, at least 1 and at most `cap`.
inline unsigned flat_grid(int64_t units, int64_t cap, int threads = 256) {
  return (unsigned)std::max<int64_t>(1, std::min<int64_t>((units + threads - 1) / threads, cap));
}

// Rows x units launch shape: threadIdx.x/blockIdx.x walk the units of a row, threadIdx.y/
// blockIdx.y the rows and blockIdx.z the batch (all grid-stride), so no kernel divides a flat
// index.
struct Geometry {
  dim3 grid, block;
};
inline Geometry geometry(int64_t B, int64_t rows, int64_t units, int threads = 256) {
  int tx = 32;
  while (tx < threads && tx < units) tx *= 2;
  const int ty = threads / tx;
  const int64_t gx = std::min<int64_t>((units + tx - 1) / tx, 1 << 16);
  const int64_t gy = std::min<int64_t>((rows + ty - 1) / ty, 65535);
  const int64_t gz = std::min<int64_t>(B, 65535);
  return {dim3((unsigned)gx, (unsigned)gy, (unsigned)gz), dim3((unsigned)tx, (unsigned)ty)};
}
inline Geometry geometry(int64_t rows, int64_t units, int threads = 256) { return geometry(1, rows, units, threads); }

template <int W>
struct Width {
  static constexpr int value = W;
};

template <int W>
__device__ __forceinline__ void ld(float (&v)[W], const float* p) {
  if constexpr (W == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
  } else {
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = p[k];
  }
}
template <int W>
__device__ __forceinline__ void st(float* p, const float (&v)[W]) {
  if constexpr (W == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
#pragma unroll
    for (int k = 0; k < W; ++k) p[k] = v[k];
  }
}

template <int W>
__device__ __forceinline__ void ld(float (&v)[W], const __nv_bfloat16* p) {
  if constexpr (W == 4) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);  // element 0 in the low half of u.x
    v[0] = __uint_as_float(u.x << 16), v[1] = __uint_as_float(u.x & 0xffff0000u);
    v[2] = __uint_as_float(u.y << 16), v[3] = __uint_as_float(u.y & 0xffff0000u);
  } else {
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = __bfloat162float(p[k]);
  }
}
template <int W>
__device__ __forceinline__ void st(__nv_bfloat16* p, const float (&v)[W]) {
  if constexpr (W == 4) {
    const __nv_bfloat162 lo = __floats2bfloat162_rn(v[0], v[1]), hi = __floats2bfloat162_rn(v[2], v[3]);
    uint2 u;
    u.x = *reinterpret_cast<const unsigned*>(&lo);
    u.y = *reinterpret_cast<const unsigned*>(&hi);
    *reinterpret_cast<uint2*>(p) = u;
  } else {
#pragma unroll
    for (int k = 0; k < W; ++k) p[k] = __float2bfloat16_rn(v[k]);
  }
}

// x as an E element holds it: rounded to bf16 (to nearest even, as st does) or fp32 unchanged.
template <class E>
__device__ __forceinline__ float as_stored(float x) {
  if constexpr (std::is_same_v<E, __nv_bfloat16>)
    return __bfloat162float(__float2bfloat16_rn(x));
  else
    return x;
}

// SwiGLU of one gate value g and up value u: silu(g) * u, as cpu/swiglu.cpp writes it (the
// swiglu kernels and the few-rows GEMM's fused epilogue share it, so both equal the CPU's).
__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.f + expf(-g)) * u; }

// RoPE of one pair (x1, x2) = (x[i], x[i+h]) of a head, HF's rotate-half layout as cpu/rope.cpp
// writes it (sign -1: the backward's transposed rotation). The rope kernels and the few-rows
// GEMM's fused q|k|v epilogue share it.
__device__ __forceinline__ void rope_rotate(float& x1, float& x2, float c, float s, float sign) {
  const float o1 = x1 * c - sign * x2 * s;
  const float o2 = x2 * c + sign * x1 * s;
  x1 = o1, x2 = o2;
}

// Calls fn(i, Width<4>) for the aligned vector body and fn(i, Width<1>) for the scalar head and
// tail of [0, len) (base `row`); threads start at t0 and step by `step`. With vec false all of
// it is scalar.
template <class E, class Fn>
__device__ __forceinline__ void split_apply(const E* row, int64_t len, bool vec, int64_t t0, int64_t step, Fn&& fn) {
  constexpr unsigned VB = 4 * sizeof(E);  // bytes per vector
  int64_t head = len, nvec = 0;
  if (vec) {
    head = (int64_t)(((VB - ((uintptr_t)row & (VB - 1))) & (VB - 1)) / sizeof(E));
    if (head > len) head = len;
    nvec = (len - head) >> 2;
  }
  for (int64_t j = t0; j < nvec; j += step) fn(head + 4 * j, Width<4>{});
  for (int64_t i = t0; i < head; i += step) fn(i, Width<1>{});
  for (int64_t i = head + 4 * nvec + t0; i < len; i += step) fn(i, Width<1>{});
}


}  // namespace puzzle::cuda
