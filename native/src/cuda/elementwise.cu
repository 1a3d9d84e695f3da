// Residual add, gradient accumulation and the KV-cache append (mirrors cpu/elementwise.cpp), for
// fp32 and bf16 storage (E), and the fp32 <-> bf16 conversions of mixed precision.
// Flat ops split the range into a scalar head (up to the first vector boundary), a vector body
// and a scalar tail, when all arrays share the same alignment; otherwise all scalar.
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

template <class E>
__global__ void __launch_bounds__(kThreads) add_kernel(E* out, const E* a, const E* b, int64_t n, bool vec) {
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

template <class E>
__global__ void __launch_bounds__(kThreads) accumulate_kernel(E* out, const E* a, int64_t n, bool vec) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
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

// x: W-element units of a K/V row, y: tokens t, z: batch b (all grid-stride).
template <int W, class E>
__global__ void __launch_bounds__(kThreads)
    kv_append_kernel(E* __restrict__ k_cache, E* __restrict__ v_cache, const E* __restrict__ qkv,
                     int64_t B, int64_t T, int64_t QKV, int64_t koff, int64_t voff, int64_t KV, int64_t past,
                     int64_t Tmax) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  const int64_t U = KV / W;
  for (int64_t b = blockIdx.z; b < B; b += gridDim.z)
    for (int64_t t = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; t < T; t += (int64_t)gridDim.y * blockDim.y) {
      const E* src = qkv + (b * T + t) * QKV;
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

// out[i] = In -> Out conversion of inp[i]; vectors of 4 when both bases are vector-aligned.
template <class Out, class In>
__global__ void __launch_bounds__(kThreads) convert_kernel(Out* __restrict__ out, const In* __restrict__ inp, int64_t n,
                                                           bool vec) {
  const int64_t nvec = vec ? n / 4 : 0;
  for (int64_t j = global_tid(); j < nvec; j += global_stride()) {
    float v[4];
    ld<4>(v, inp + 4 * j);
    st<4>(out + 4 * j, v);
  }
  for (int64_t i = 4 * nvec + global_tid(); i < n; i += global_stride()) {
    float v[1];
    ld<1>(v, inp + i);
    st<1>(out + i, v);
  }
}

template <class E>
void add_t(E* out, const E* a, const E* b, int64_t n) {
  if (n <= 0) return;
  const bool vec = vec_coaligned(out, a) && vec_coaligned(out, b);
  add_kernel<E><<<grid_for(vec ? n / 4 + 1 : n), kThreads, 0, stream()>>>(out, a, b, n, vec);
  PUZZLE_CUDA_CHECK_LAUNCH("add_forward");
}

template <class E>
void accumulate_t(E* out, const E* a, int64_t n) {
  if (n <= 0) return;
  const bool vec = vec_coaligned(out, a);
  launch_pdl("accumulate", accumulate_kernel<E>, grid_for(vec ? n / 4 + 1 : n), kThreads, 0, out, a, n, vec);
}

template <class E>
void kv_cache_append_t(E* k_cache, E* v_cache, const E* qkv, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS,
                       int64_t past, int64_t Tmax) {
  const int64_t QKV = (NH + 2 * NKV) * HS, KV = NKV * HS;
  if (B <= 0 || T <= 0 || KV <= 0) return;
  const int64_t koff = NH * HS, voff = (NH + NKV) * HS;
  // vectors when every row start and column offset is a multiple of 4 elements and bases are aligned
  const bool vec = KV % 4 == 0 && koff % 4 == 0 && QKV % 4 == 0 && vec_aligned(k_cache) && vec_aligned(v_cache) &&
                   vec_aligned(qkv);
  if (vec) {
    const Geometry g = geometry(B, T, KV / 4);
    launch_pdl("kv_cache_append", kv_append_kernel<4, E>, g.grid, g.block, 0, k_cache, v_cache, qkv, B, T, QKV, koff,
               voff, KV, past, Tmax);
  } else {
    const Geometry g = geometry(B, T, KV);
    launch_pdl("kv_cache_append", kv_append_kernel<1, E>, g.grid, g.block, 0, k_cache, v_cache, qkv, B, T, QKV, koff,
               voff, KV, past, Tmax);
  }
}

template <class Out, class In>
void convert_t(Out* out, const In* inp, int64_t n, const char* name) {
  if (n <= 0) return;
  const bool vec = vec_aligned(out) && vec_aligned(inp);
  convert_kernel<Out, In><<<grid_for(vec ? n / 4 + 1 : n), kThreads, 0, stream()>>>(out, inp, n, vec);
  PUZZLE_CUDA_CHECK_LAUNCH(name);
}

}  // namespace

void add_forward(float* out, const float* a, const float* b, int64_t n) { add_t(out, a, b, n); }
void add_forward(bf16* out, const bf16* a, const bf16* b, int64_t n) { add_t(dev(out), dev(a), dev(b), n); }
void accumulate(float* out, const float* a, int64_t n) { accumulate_t(out, a, n); }
void accumulate(bf16* out, const bf16* a, int64_t n) { accumulate_t(dev(out), dev(a), n); }

void kv_cache_append(float* k_cache, float* v_cache, const float* qkv, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                     int64_t HS, int64_t past, int64_t Tmax) {
  kv_cache_append_t(k_cache, v_cache, qkv, B, T, NH, NKV, HS, past, Tmax);
}
void kv_cache_append(bf16* k_cache, bf16* v_cache, const bf16* qkv, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                     int64_t HS, int64_t past, int64_t Tmax) {
  kv_cache_append_t(dev(k_cache), dev(v_cache), dev(qkv), B, T, NH, NKV, HS, past, Tmax);
}

void to_bf16(bf16* out, const float* inp, int64_t n) { convert_t(dev(out), inp, n, "to_bf16"); }
void to_f32(float* out, const bf16* inp, int64_t n) { convert_t(out, dev(inp), n, "to_f32"); }

}  // namespace puzzle::cuda
