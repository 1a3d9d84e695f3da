// Rotary position embedding, HF rotate-half layout (mirrors cpu/rope.cpp):
//   out[i]   = x[i] cos - sign x[i+h] sin
//   out[i+h] = x[i+h] cos + sign x[i] sin        (h = HS/2, i < h; sign -1 for the backward)
// One thread owns W pairs (i .. i+W-1, i+h .. i+h+W-1) and loads all of them before it stores,
// so out == inp (in place) is safe: no other thread touches those elements. x is fp32 or bf16 (E);
// the cos/sin tables are fp32. rope_kv_cache_append rotates a fused qkv row and appends its keys
// and values to the KV cache in the same pass (a decode step's rotation and append, one launch).
#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/vec.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kThreads = 256;

// (x1, x2) <- (x1 cos - sign x2 sin, x2 cos + sign x1 sin), elementwise over W pairs
template <int W>
__device__ __forceinline__ void rotate(float (&x1)[W], float (&x2)[W], const float (&c)[W], const float (&s)[W],
                                       float sign) {
#pragma unroll
  for (int k = 0; k < W; ++k) rope_rotate(x1[k], x2[k], c[k], s[k], sign);
}

// Unit = (token (b, t), head, W consecutive pair indices j .. j+W-1).
template <int W, class E>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(E* out, const E* inp, const float* __restrict__ cos, const float* __restrict__ sin,
                const int32_t* __restrict__ pos, int64_t B, int64_t T, unsigned NH, int64_t HS, int64_t stride,
                float sign) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  const int64_t h = HS / 2;
  const unsigned hw = (unsigned)(h / W), per_row = NH * hw;
  for (int64_t b = blockIdx.z; b < B; b += gridDim.z)
    for (int64_t t = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; t < T; t += (int64_t)gridDim.y * blockDim.y) {
      const int64_t p = pos ? (int64_t)pos[t] : t;
      const float* crow = cos + p * h;
      const float* srow = sin + p * h;
      const int64_t row = (b * T + t) * stride;
      for (unsigned u = blockIdx.x * blockDim.x + threadIdx.x; u < per_row; u += gridDim.x * blockDim.x) {
        const unsigned head = u / hw, j = (u - head * hw) * W;
        const int64_t off = row + (int64_t)head * HS + j;
        float x1[W], x2[W], c[W], s[W];
        ld<W>(x1, inp + off);
        ld<W>(x2, inp + off + h);
        ld<W>(c, crow + j);
        ld<W>(s, srow + j);
        rotate<W>(x1, x2, c, s, sign);
        st<W>(out + off, x1);
        st<W>(out + off + h, x2);
      }
    }
}

// A decode step's RoPE and KV-cache append in one pass over a fused qkv row: units over all
// NH + 2*NKV heads; query heads are rotated in place, key heads rotated in place and stored to
// k_cache, value heads copied to v_cache. The same rotation as rope_kernel, so the qkv row and
// the cache hold exactly what rope_forward + a copy would have left.
template <int W, class E>
__global__ void __launch_bounds__(kThreads)
    rope_kv_append_kernel(E* __restrict__ qkv, E* __restrict__ k_cache, E* __restrict__ v_cache,
                          const float* __restrict__ cos, const float* __restrict__ sin,
                          const int32_t* __restrict__ pos, int64_t B, int64_t T, unsigned NH, unsigned NKV,
                          int64_t HS, int64_t past, int64_t Tmax) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  const int64_t h = HS / 2, QKV = (int64_t)(NH + 2 * NKV) * HS, KV = (int64_t)NKV * HS;
  const unsigned hw = (unsigned)(h / W), per_row = (NH + 2 * NKV) * hw;
  for (int64_t b = blockIdx.z; b < B; b += gridDim.z)
    for (int64_t t = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; t < T; t += (int64_t)gridDim.y * blockDim.y) {
      const int64_t p = pos ? (int64_t)pos[t] : t;
      const float* crow = cos + p * h;
      const float* srow = sin + p * h;
      E* row = qkv + (b * T + t) * QKV;
      const int64_t cache_row = (b * Tmax + past + t) * KV;
      for (unsigned u = blockIdx.x * blockDim.x + threadIdx.x; u < per_row; u += gridDim.x * blockDim.x) {
        const unsigned head = u / hw, j = (u - head * hw) * W;
        const int64_t off = (int64_t)head * HS + j;
        float x1[W], x2[W];
        ld<W>(x1, row + off);
        ld<W>(x2, row + off + h);
        if (head >= NH + NKV) {  // a value head: copied as it is
          E* dst = v_cache + cache_row + (off - (int64_t)(NH + NKV) * HS);
          st<W>(dst, x1);
          st<W>(dst + h, x2);
          continue;
        }
        float c[W], s[W];
        ld<W>(c, crow + j);
        ld<W>(s, srow + j);
        rotate<W>(x1, x2, c, s, 1.f);
        st<W>(row + off, x1);
        st<W>(row + off + h, x2);
        if (head >= NH) {  // a key head: its rotated values go to the cache too
          E* dst = k_cache + cache_row + (off - (int64_t)NH * HS);
          st<W>(dst, x1);
          st<W>(dst + h, x2);
        }
      }
    }
}

template <class E>
void rope(E* out, const E* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B, int64_t T,
          int64_t NH, int64_t HS, int64_t stride, float sign, const char* name) {
  const int64_t h = HS / 2;
  if (B <= 0 || T <= 0 || NH <= 0 || h <= 0) return;
  const bool vec = h % 4 == 0 && stride % 4 == 0 && vec_aligned(out) && vec_aligned(inp) && aligned16(cos) &&
                   aligned16(sin);
  if (vec) {
    const Geometry g = geometry(B, T, NH * (h / 4));
    launch_pdl(name, rope_kernel<4, E>, g.grid, g.block, 0, out, inp, cos, sin, pos, B, T, (unsigned)NH, HS, stride, sign);
  } else {
    const Geometry g = geometry(B, T, NH * h);
    launch_pdl(name, rope_kernel<1, E>, g.grid, g.block, 0, out, inp, cos, sin, pos, B, T, (unsigned)NH, HS, stride, sign);
  }
}

template <class E>
void rope_kv_append(E* qkv, E* k_cache, E* v_cache, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                    int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tmax) {
  const int64_t h = HS / 2, heads = NH + 2 * NKV;
  if (B <= 0 || T <= 0 || NKV <= 0 || h <= 0) return;
  // vectors of 4 pairs: h % 4 == 0 keeps every head, row and cache row offset a multiple of 4
  const bool vec = h % 4 == 0 && vec_aligned(qkv) && vec_aligned(k_cache) && vec_aligned(v_cache) && aligned16(cos) &&
                   aligned16(sin);
  if (vec) {
    const Geometry g = geometry(B, T, heads * (h / 4));
    launch_pdl("rope_kv_cache_append", rope_kv_append_kernel<4, E>, g.grid, g.block, 0, qkv, k_cache, v_cache, cos, sin,
               pos, B, T, (unsigned)NH, (unsigned)NKV, HS, past, Tmax);
  } else {
    const Geometry g = geometry(B, T, heads * h);
    launch_pdl("rope_kv_cache_append", rope_kv_append_kernel<1, E>, g.grid, g.block, 0, qkv, k_cache, v_cache, cos, sin,
               pos, B, T, (unsigned)NH, (unsigned)NKV, HS, past, Tmax);
  }
}

}  // namespace

void rope_kv_cache_append(float* qkv, float* k_cache, float* v_cache, const float* cos, const float* sin,
                          const int32_t* pos, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t past,
                          int64_t Tmax) {
  rope_kv_append(qkv, k_cache, v_cache, cos, sin, pos, B, T, NH, NKV, HS, past, Tmax);
}
void rope_kv_cache_append(bf16* qkv, bf16* k_cache, bf16* v_cache, const float* cos, const float* sin,
                          const int32_t* pos, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t past,
                          int64_t Tmax) {
  rope_kv_append(dev(qkv), dev(k_cache), dev(v_cache), cos, sin, pos, B, T, NH, NKV, HS, past, Tmax);
}

void rope_forward(float* out, const float* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                  int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  rope(out, inp, cos, sin, pos, B, T, NH, HS, stride, 1.f, "rope_forward");
}

void rope_backward(float* dinp, const float* dout, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                   int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  rope(dinp, dout, cos, sin, pos, B, T, NH, HS, stride, -1.f, "rope_backward");
}

void rope_forward(bf16* out, const bf16* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                  int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  rope(dev(out), dev(inp), cos, sin, pos, B, T, NH, HS, stride, 1.f, "rope_forward");
}

void rope_backward(bf16* dinp, const bf16* dout, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                   int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  rope(dev(dinp), dev(dout), cos, sin, pos, B, T, NH, HS, stride, -1.f, "rope_backward");
}

}  // namespace puzzle::cuda
