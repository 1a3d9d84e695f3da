// Residual add, gradient accumulation and the KV-cache append (mirrors cpu/elementwise.cpp).
// Flat ops split the range into a scalar head (up to the first 16-byte boundary), a float4 body
// and a scalar tail, when all arrays share the same alignment mod 16; otherwise all scalar.
#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/vec.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride loops beyond this

unsigned grid_for(int64_t units) {
  return (unsigned)std::max<int64_t>(1, std::min<int64_t>((units + kThreads - 1) / kThreads, kMaxBlocks));
}

__device__ __forceinline__ int64_t global_tid() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t global_stride() { return (int64_t)gridDim.x * blockDim.x; }

__global__ void __launch_bounds__(kThreads) add_kernel(float* out, const float* a, const float* b, int64_t n, bool vec) {
  split_apply(out, n, vec, global_tid(), global_stride(), [&](int64_t i, auto w) {
    constexpr int W = decltype(w)::value;
    float x[W], y[W];
    ld<W>(x, a + i);
    ld<W>(y, b + i);
#pragma unroll
    for (int k = 0; k < W; ++k) x[k] = x[k] + y[k];
    st<W>(out + i, x);
  });
}

__global__ void __launch_bounds__(kThreads) accumulate_kernel(float* out, const float* a, int64_t n, bool vec) {
  split_apply(out, n, vec, global_tid(), global_stride(), [&](int64_t i, auto w) {
    constexpr int W = decltype(w)::value;
    float x[W], y[W];
    ld<W>(x, out + i);
    ld<W>(y, a + i);
#pragma unroll
    for (int k = 0; k < W; ++k) x[k] += y[k];
    st<W>(out + i, x);
  });
}

// x: W-float units of a K/V row, y: tokens t, z: batch b (all grid-stride).
template <int W>
__global__ void __launch_bounds__(kThreads)
    kv_append_kernel(float* __restrict__ k_cache, float* __restrict__ v_cache, const float* __restrict__ qkv,
                     int64_t B, int64_t T, int64_t QKV, int64_t koff, int64_t voff, int64_t KV, int64_t past,
                     int64_t Tmax) {
  const int64_t U = KV / W;
  for (int64_t b = blockIdx.z; b < B; b += gridDim.z)
    for (int64_t t = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; t < T; t += (int64_t)gridDim.y * blockDim.y) {
      const float* src = qkv + (b * T + t) * QKV;
      const int64_t dst = (b * Tmax + past + t) * KV;
      for (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < U; u += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = u * W;
        float kv[W], vv[W];
        ld<W>(kv, src + koff + c);
        ld<W>(vv, src + voff + c);
        st<W>(k_cache + dst + c, kv);
        st<W>(v_cache + dst + c, vv);
      }
    }
}

}  // namespace

void add_forward(float* out, const float* a, const float* b, int64_t n) {
  if (n <= 0) return;
  const bool vec = coaligned(out, a) && coaligned(out, b);
  add_kernel<<<grid_for(vec ? n / 4 + 1 : n), kThreads, 0, stream()>>>(out, a, b, n, vec);
  PUZZLE_CUDA_CHECK_LAUNCH("add_forward");
}

void accumulate(float* out, const float* a, int64_t n) {
  if (n <= 0) return;
  const bool vec = coaligned(out, a);
  accumulate_kernel<<<grid_for(vec ? n / 4 + 1 : n), kThreads, 0, stream()>>>(out, a, n, vec);
  PUZZLE_CUDA_CHECK_LAUNCH("accumulate");
}

void kv_cache_append(float* k_cache, float* v_cache, const float* qkv, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                     int64_t HS, int64_t past, int64_t Tmax) {
  const int64_t QKV = (NH + 2 * NKV) * HS, KV = NKV * HS;
  if (B <= 0 || T <= 0 || KV <= 0) return;
  const int64_t koff = NH * HS, voff = (NH + NKV) * HS;
  // float4 when every row start and column offset is a multiple of 4 floats and bases are aligned
  const bool vec = KV % 4 == 0 && koff % 4 == 0 && QKV % 4 == 0 && aligned16(k_cache) && aligned16(v_cache) &&
                   aligned16(qkv);
  if (vec) {
    const Geometry g = geometry(B, T, KV / 4);
    kv_append_kernel<4><<<g.grid, g.block, 0, stream()>>>(k_cache, v_cache, qkv, B, T, QKV, koff, voff, KV, past, Tmax);
  } else {
    const Geometry g = geometry(B, T, KV);
    kv_append_kernel<1><<<g.grid, g.block, 0, stream()>>>(k_cache, v_cache, qkv, B, T, QKV, koff, voff, KV, past, Tmax);
  }
  PUZZLE_CUDA_CHECK_LAUNCH("kv_cache_append");
}

}  // namespace puzzle::cuda
