// Causal grouped-query attention on the GPU, flash style: tiled over queries and keys with an
// online softmax, so no T x T matrix ever reaches global memory. Mirrors cpu/attention.cpp:
// q[B,T,NH,HS] / k,v[B,T,NKV,HS] as strided column slices (row strides q_stride, kv_stride in
// floats), out[B,T,NH,HS] packed, lse[B,NH,T] = natural log-sum-exp of the scaled scores, query
// head h reads KV head h / (NH/NKV), softmax scale 1/sqrt(HS).
//
// Two paths for attention_forward and attention_backward:
//  * tensor cores (default for HS 64 and 128): bf16 operands, fp32 accumulation (nvcuda::wmma),
//    softmax and its gradient in fp32; relative error ~3e-3 (forward) / ~5e-3 (backward, L2)
//    against an fp64 reference. See attn_fwd_tc_kernel and attn_bwd_tc_kernel below.
//  * fp32 SIMT (every other head size, the cached prefill, and everything when the environment
//    variable PUZZLE_CUDA_ATTN=simt, read once): results within fp32 rounding of the CPU backend.
// The decode kernels are SIMT (fp32 math) for fp32 caches and, through attention_decode, for bf16
// caches read directly (half the bytes per step). attention_kernel_name(HS) reports the forward
// path; the backward makes the same choice (use_tc), so the name describes both.
// native/dev/cuda-emu/run.sh tests these kernels on the CPU (no GPU needed): an emulator of
// threads, barriers and wmma, with ASan and TSan.
//
// The SIMT math runs on shared-memory tiles (register-tiled like an SGEMM). Head sizes are padded
// up to a compiled size HSP in {32, 64, 128, 256} (zero columns in shared memory), so any
// HS <= 256 works.
//
// Kernels (all 256 threads, everything on stream(), no host waits, graph capturable):
//  * attn_fwd_tc_kernel  tensor-core forward: one block per (batch*head, 128-query tile), loops
//                        over 64-key tiles (attention_forward only).
//  * attn_bwd_tc_kernel  tensor-core backward: the structure of attn_bwd_kernel (below) with
//                        64- or 128-key tiles and 64-query steps, all five products on wmma.
//  * attn_fwd_kernel     one block per (batch*head, 64-query tile), loops over 64-key tiles;
//                        also serves cached prefill (queries at positions past.. over a cache).
//  * attn_bwd_dot_kernel D[b,h,t] = sum(dout * out), the FlashAttention-2 pre-pass.
//  * attn_bwd_kernel     one block per (batch*kv-head, key tile); loops over the query heads of
//                        the group and the query tiles at or after the key tile; dK, dV live in
//                        registers and are added (+=) to dk/dv once at the end; dQ goes to dq with
//                        fp32 atomicAdd.
//  * attn_decode_kernel  split-KV (flash decoding) for few queries over a long cache: one block
//                        per (batch*kv-head, cache partition, chunk of 16 query rows), where a row
//                        is one (query head of the group, query position): the group shares every
//                        K/V load. The last partition of a chunk to finish merges them (a
//                        counter per chunk), else attn_decode_combine_kernel does.
//
// Thread geometry of the tiled kernels (tid = 16*ty + tx): a score tile S[BQ][BK] gives thread
// (ty,tx) rows ty+16r and columns tx+16c, so a row lives in one half-warp (shuffle reductions with
// xor 8,4,2,1). [rows][HSP] products give thread columns c*16*VEC + tx*VEC + e (vectors of VEC).
// Shared tiles [rows][HSP] use a row stride HSP+4 (conflict-free float4 reads along rows 16 apart)
// and score tiles [BQ][BK] a row stride BK+16 (the two half-warps hit disjoint banks).
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <mutex>

#include "cuda/common.cuh"
#include "cuda/mma.cuh"
#include "cuda/scratch.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kThreads = 256;

// Blocks per SM that the register budget of a tiled kernel is sized for (__launch_bounds__):
// as many as its shared memory lets in, which differs between sm_80 (164 KiB) and sm_90 (228 KiB).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define PUZZLE_ATTN_MINB(sm90, sm80) (sm80)
#else
#define PUZZLE_ATTN_MINB(sm90, sm80) (sm90)
#endif
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.69314718055994531f;

__device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }

// VEC consecutive floats from 4*VEC-byte aligned shared memory.
template <int VEC>
__device__ __forceinline__ void lds_vec(float (&r)[VEC], const float* p) {
  if constexpr (VEC == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    r[0] = t.x;
    r[1] = t.y;
    r[2] = t.z;
    r[3] = t.w;
  } else if constexpr (VEC == 2) {
    const float2 t = *reinterpret_cast<const float2*>(p);
    r[0] = t.x;
    r[1] = t.y;
  } else {
#pragma unroll
    for (int e = 0; e < VEC; ++e) r[e] = p[e];
  }
}

__device__ __forceinline__ float4 lds4(const float* p) { return *reinterpret_cast<const float4*>(p); }

__device__ __forceinline__ float dot4(float4 a, float4 b, float acc) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  return fmaf(a.w, b.w, acc);
}

// Loads 4 floats of a row from global memory: one float4 when `vec` (the caller checked 16-byte
// alignment of every such address), else scalars with columns >= HS read as 0.
__device__ __forceinline__ float4 ldg4(const float* p, int c, int HS, bool vec) {
  if (vec) return *reinterpret_cast<const float4*>(p);
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
  v.x = p[0];
  if (c + 1 < HS) v.y = p[1];
  if (c + 2 < HS) v.z = p[2];
  if (c + 3 < HS) v.w = p[3];
  return v;
}

// The same from bf16 storage (one 8-byte load when `vec`), widened to fp32.
__device__ __forceinline__ float4 ldg4(const bf16x* p, int c, int HS, bool vec) {
  if (vec) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                       __uint_as_float(u.y & 0xffff0000u));
  }
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
  v.x = __bfloat162float(p[0]);
  if (c + 1 < HS) v.y = __bfloat162float(p[1]);
  if (c + 2 < HS) v.z = __bfloat162float(p[2]);
  if (c + 3 < HS) v.w = __bfloat162float(p[3]);
  return v;
}
// A hint to bring the 128-byte line holding p into L2 (no register, nothing waits on it). The CPU
// emulator reads the byte instead, so that AddressSanitizer checks every prefetched address.
__device__ __forceinline__ void prefetch_l2(const void* p) {
#if defined(__CUDA_ARCH__)
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#else
  (void)*static_cast<const volatile char*>(p);
#endif
}

__device__ __forceinline__ float ld1(const float* p) { return *p; }
__device__ __forceinline__ float ld1(const bf16x* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st1(float* p, float v) { *p = v; }
__device__ __forceinline__ void st1(bf16x* p, float v) { *p = __float2bfloat16_rn(v); }

template <int HSP>
struct Geo {
  static constexpr int LD = HSP + 4;                    // row stride of [rows][HSP] tiles
  static constexpr int VEC = HSP >= 64 ? 4 : HSP / 16;  // vector width of [rows][HSP] columns
  static constexpr int OC = HSP / (16 * VEC);           // vectors per thread per row
  static constexpr int NCOL = OC * VEC;                 // columns per thread per row (HSP/16)
  static_assert(HSP % 32 == 0 && OC * 16 * VEC == HSP, "HSP must be 32, 64, 128 or 256");
};

// Copies rows [0, ROWS) x columns [0, HSP) of a strided matrix into a shared tile [ROWS][HSP+4],
// zero-filling rows >= nvalid and columns >= HS, in two steps (all global loads, then all shared
// stores) so the loads are in flight together and can be issued before a barrier.
template <int ROWS, int HSP>
struct TileLoad {
  static constexpr int C4 = HSP / 4, N = ROWS * C4, IT = (N + kThreads - 1) / kThreads;
  float4 buf[IT];

  __device__ __forceinline__ void load(const float* src, int64_t stride, int nvalid, int HS, bool vec, float mul) {
#pragma unroll
    for (int it = 0; it < IT; ++it) {
      const int idx = it * kThreads + (int)threadIdx.x;
      const int r = idx / C4, c = (idx % C4) * 4;
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (idx < N && r < nvalid && c < HS) {
        v = ldg4(src + r * stride + c, c, HS, vec);
        v.x *= mul;
        v.y *= mul;
        v.z *= mul;
        v.w *= mul;
      }
      buf[it] = v;
    }
  }
  __device__ __forceinline__ void store(float* dst) const {
#pragma unroll
    for (int it = 0; it < IT; ++it) {
      const int idx = it * kThreads + (int)threadIdx.x;
      if (idx < N) {
        const int r = idx / C4, c = (idx % C4) * 4;
        *reinterpret_cast<float4*>(dst + r * Geo<HSP>::LD + c) = buf[it];
      }
    }
  }
};

__device__ __forceinline__ float half_warp_max(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float half_warp_sum(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ------------------------------------------------------------------------------------------
// Forward (also cached prefill). Queries i in [0,Tq) sit at positions past+i and see keys
// j <= past+i of the nk = past+Tq key rows. Scores are kept in base 2: q is pre-multiplied by
// scale*log2(e), so p = exp2(s - m) and lse = m*ln2 + ln(l).
template <int HSP, int BQ, int BK>
constexpr size_t fwd_smem_bytes() {
  return sizeof(float) * ((size_t)BQ * Geo<HSP>::LD + (size_t)BK * Geo<HSP>::LD + (size_t)BQ * (BK + 16));
}

template <int HSP, int BQ, int BK, int MINB90, int MINB80>
__global__ void __launch_bounds__(kThreads, PUZZLE_ATTN_MINB(MINB90, MINB80))
    attn_fwd_kernel(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ q,
                    const float* __restrict__ k, const float* __restrict__ v, int Tq, int past, int NH, int group,
                    int HS, int64_t q_bstride, int64_t q_stride, int64_t kv_bstride, int64_t kv_stride,
                    int64_t o_stride, float scale_log2, bool vec_q, bool vec_kv) {
  using G = Geo<HSP>;
  constexpr int LD = G::LD, VEC = G::VEC, OC = G::OC, NCOL = G::NCOL;
  constexpr int LDP = BK + 16, RM = BQ / 16, CN = BK / 16;
  static_assert(BQ % 16 == 0 && BK % 16 == 0 && BK % 4 == 0, "tile sizes");
  extern __shared__ __align__(16) float smem[];
  float* Qs = smem;              // [BQ][LD]  queries, pre-scaled
  float* KVs = Qs + BQ * LD;     // [BK][LD]  keys, then values, of the current key tile
  float* Ps = KVs + BK * LD;     // [BQ][LDP] probabilities of the current tile

  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH, g = h / group;
  const int q0 = ((int)gridDim.y - 1 - (int)blockIdx.y) * BQ;  // the longest tiles start first
  const int nk = past + Tq;
  const float* kb = k + b * kv_bstride + (int64_t)g * HS;
  const float* vb = v + b * kv_bstride + (int64_t)g * HS;

  {
    TileLoad<BQ, HSP> lq;
    lq.load(q + b * q_bstride + q0 * q_stride + (int64_t)h * HS, q_stride, Tq - q0, HS, vec_q, scale_log2);
    lq.store(Qs);
  }

  float o[RM][NCOL];
  float m[RM], l[RM];
#pragma unroll
  for (int r = 0; r < RM; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int e = 0; e < NCOL; ++e) o[r][e] = 0.f;
  }

  const int last_key = past + imin(q0 + BQ, Tq) - 1;  // the furthest key a valid row of this tile sees
  const int nkt = last_key / BK + 1;
  for (int kt = 0; kt < nkt; ++kt) {
    const int k0 = kt * BK;
    {
      TileLoad<BK, HSP> lk;
      lk.load(kb + k0 * kv_stride, kv_stride, nk - k0, HS, vec_kv, 1.f);
      __syncthreads();  // the previous tile's P.V is done with KVs and Ps (first tile: Qs is stored)
      lk.store(KVs);
    }
    __syncthreads();

    // S = Q K^T for rows ty+16r, keys tx+16c
    float s[RM][CN];
#pragma unroll
    for (int r = 0; r < RM; ++r)
#pragma unroll
      for (int c = 0; c < CN; ++c) s[r][c] = 0.f;
#pragma unroll 2
    for (int d = 0; d < HSP; d += 4) {
      float4 a[RM], bk[CN];
#pragma unroll
      for (int r = 0; r < RM; ++r) a[r] = lds4(Qs + (ty + 16 * r) * LD + d);
#pragma unroll
      for (int c = 0; c < CN; ++c) bk[c] = lds4(KVs + (tx + 16 * c) * LD + d);
#pragma unroll
      for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int c = 0; c < CN; ++c) s[r][c] = dot4(a[r], bk[c], s[r][c]);
    }

    // causal mask and online softmax; a row's 16 threads share one half-warp
#pragma unroll
    for (int r = 0; r < RM; ++r) {
      const int lim = past + q0 + ty + 16 * r;  // keys j <= lim are visible
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < CN; ++c) {
        if (k0 + tx + 16 * c > lim) s[r][c] = -INFINITY;
        mx = fmaxf(mx, s[r][c]);
      }
      mx = half_warp_max(mx);
      const float m_new = fmaxf(m[r], mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;
      const float corr = exp2f(m[r] - m_use);
      float sum = 0.f;
#pragma unroll
      for (int c = 0; c < CN; ++c) {
        s[r][c] = exp2f(s[r][c] - m_use);
        sum += s[r][c];
      }
      sum = half_warp_sum(sum);
      l[r] = l[r] * corr + sum;
      m[r] = m_new;
#pragma unroll
      for (int e = 0; e < NCOL; ++e) o[r][e] *= corr;
    }

    {
      TileLoad<BK, HSP> lv;
      lv.load(vb + k0 * kv_stride, kv_stride, nk - k0, HS, vec_kv, 1.f);
      __syncthreads();  // every thread is done reading the keys
#pragma unroll
      for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int c = 0; c < CN; ++c) Ps[(ty + 16 * r) * LDP + tx + 16 * c] = s[r][c];
      lv.store(KVs);
    }
    __syncthreads();

    // O += P V for rows ty+16r, columns c*16*VEC + tx*VEC + e
#pragma unroll 1
    for (int j = 0; j < BK; j += 4) {
      float p[RM][4];
#pragma unroll
      for (int r = 0; r < RM; ++r) lds_vec<4>(p[r], Ps + (ty + 16 * r) * LDP + j);
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
#pragma unroll
        for (int c = 0; c < OC; ++c) {
          float x[VEC];
          lds_vec<VEC>(x, KVs + (j + jj) * LD + c * 16 * VEC + tx * VEC);
#pragma unroll
          for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int e = 0; e < VEC; ++e) o[r][c * VEC + e] = fmaf(p[r][jj], x[e], o[r][c * VEC + e]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < RM; ++r) {
    const int i = q0 + ty + 16 * r;
    if (i < Tq) {
      const float inv = 1.f / l[r];
      float* dst = out + ((int64_t)b * Tq + i) * o_stride + (int64_t)h * HS;
#pragma unroll
      for (int c = 0; c < OC; ++c)
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
          const int d = c * 16 * VEC + tx * VEC + e;
          if (d < HS) dst[d] = o[r][c * VEC + e] * inv;
        }
      if (lse != nullptr && tx == 0) lse[((int64_t)b * NH + h) * Tq + i] = m[r] * kLn2 + logf(l[r]);
    }
  }
}

// ------------------------------------------------------------------------------------------
// Backward pre-pass: D[b,h,t] = sum_d dout[b,t,h,d] * out[b,t,h,d]; one warp per (b,t,h).
// E: storage of dout and out (fp32, or bf16 read directly by the bf16 table).
template <class E>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dot_kernel(float* __restrict__ D, const E* __restrict__ dout, const E* __restrict__ out,
                        int64_t rows, int T, int NH, int HS, int64_t o_stride) {
  const int64_t row = (int64_t)blockIdx.x * (kThreads / 32) + threadIdx.x / 32;  // (b*T + t)*NH + h
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // uniform over the warp; no barrier follows
  const int64_t bt = row / NH;
  const int h = (int)(row % NH);
  const E* a = dout + bt * o_stride + (int64_t)h * HS;
  const E* o = out + bt * o_stride + (int64_t)h * HS;
  float s = 0.f;
  for (int d = lane; d < HS; d += 32) s = fmaf(ld1(a + d), ld1(o + d), s);
  s = warp_sum(s);
  if (lane == 0) {
    const int64_t b = bt / T, t = bt % T;
    D[(b * NH + h) * T + t] = s;
  }
}

template <int HSP, int BQ, int BK>
constexpr size_t bwd_smem_bytes() {
  return sizeof(float) * (2 * (size_t)BK * Geo<HSP>::LD + 2 * (size_t)BQ * Geo<HSP>::LD + 2 * (size_t)BQ * (BK + 16));
}

template <int HSP, int BQ, int BK, int MINB90, int MINB80>
__global__ void __launch_bounds__(kThreads, PUZZLE_ATTN_MINB(MINB90, MINB80))
    attn_bwd_kernel(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv,
                    const float* __restrict__ dout, const float* __restrict__ q, const float* __restrict__ k,
                    const float* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ Dsum, int T,
                    int NH, int NKV, int group, int HS, int64_t q_stride, int64_t kv_stride, int64_t o_stride,
                    float scale, bool vec_q, bool vec_kv, bool vec_o) {
  using G = Geo<HSP>;
  constexpr int LD = G::LD, VEC = G::VEC, OC = G::OC, NCOL = G::NCOL;
  constexpr int LDP = BK + 16, RM = BQ / 16, CN = BK / 16, RJ = BK / 16;
  static_assert(BQ % 16 == 0 && BK % 16 == 0 && (RJ == 1 || RJ == 2 || RJ == 4), "tile sizes");
  extern __shared__ __align__(16) float smem[];
  float* Ks = smem;             // [BK][LD]  this block's keys
  float* Vs = Ks + BK * LD;     // [BK][LD]  this block's values
  float* Qs = Vs + BK * LD;     // [BQ][LD]  current query tile
  float* dOs = Qs + BQ * LD;    // [BQ][LD]  its output gradient
  float* Ps = dOs + BQ * LD;    // [BQ][LDP] P
  float* dSs = Ps + BQ * LDP;   // [BQ][LDP] scale * dS

  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int b = blockIdx.x / NKV, g = blockIdx.x % NKV;
  const int k0 = blockIdx.y * BK;  // the longest key tiles (small k0) start first
  const float scale_log2 = scale * kLog2e;

  {
    TileLoad<BK, HSP> lk, lv;
    lk.load(k + ((int64_t)b * T + k0) * kv_stride + (int64_t)g * HS, kv_stride, T - k0, HS, vec_kv, 1.f);
    lv.load(v + ((int64_t)b * T + k0) * kv_stride + (int64_t)g * HS, kv_stride, T - k0, HS, vec_kv, 1.f);
    lk.store(Ks);
    lv.store(Vs);
  }

  // dK, dV rows k0 + ty*RJ + r, columns c*16*VEC + tx*VEC + e
  float dk_acc[RJ][NCOL], dv_acc[RJ][NCOL];
#pragma unroll
  for (int r = 0; r < RJ; ++r)
#pragma unroll
    for (int e = 0; e < NCOL; ++e) dk_acc[r][e] = dv_acc[r][e] = 0.f;

  const int nqt = (T + BQ - 1) / BQ;
  for (int hh = 0; hh < group; ++hh) {
    const int h = g * group + hh;
    const float* lse_h = lse + ((int64_t)b * NH + h) * T;
    const float* D_h = Dsum + ((int64_t)b * NH + h) * T;
    for (int qt = k0 / BQ; qt < nqt; ++qt) {
      const int q0 = qt * BQ;
      TileLoad<BQ, HSP> lq, ldo;
      lq.load(q + ((int64_t)b * T + q0) * q_stride + (int64_t)h * HS, q_stride, T - q0, HS, vec_q, 1.f);
      ldo.load(dout + ((int64_t)b * T + q0) * o_stride + (int64_t)h * HS, o_stride, T - q0, HS, vec_o, 1.f);
      float lse2[RM], Di[RM];
#pragma unroll
      for (int r = 0; r < RM; ++r) {
        const int i = q0 + ty + 16 * r;
        lse2[r] = i < T ? lse_h[i] * kLog2e : 0.f;
        Di[r] = i < T ? D_h[i] : 0.f;
      }
      __syncthreads();  // the previous tile is done with Qs, dOs, Ps, dSs (first: Ks, Vs stored)
      lq.store(Qs);
      ldo.store(dOs);
      __syncthreads();

      // S = Q K^T for rows ty+16r, keys tx+16c, then P = exp(scale*S - lse) on the causal part
      {
        float s[RM][CN];
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
          for (int c = 0; c < CN; ++c) s[r][c] = 0.f;
#pragma unroll 2
        for (int d = 0; d < HSP; d += 4) {
          float4 a[RM], bk[CN];
#pragma unroll
          for (int r = 0; r < RM; ++r) a[r] = lds4(Qs + (ty + 16 * r) * LD + d);
#pragma unroll
          for (int c = 0; c < CN; ++c) bk[c] = lds4(Ks + (tx + 16 * c) * LD + d);
#pragma unroll
          for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int c = 0; c < CN; ++c) s[r][c] = dot4(a[r], bk[c], s[r][c]);
        }
#pragma unroll
        for (int r = 0; r < RM; ++r) {
          const int i = q0 + ty + 16 * r;
#pragma unroll
          for (int c = 0; c < CN; ++c) {
            const int j = k0 + tx + 16 * c;
            Ps[(ty + 16 * r) * LDP + tx + 16 * c] =
                (j <= i && i < T) ? exp2f(s[r][c] * scale_log2 - lse2[r]) : 0.f;
          }
        }
      }
      // dP = dO V^T, then scale*dS = scale * P * (dP - D); each thread rereads only its own P
      {
        float dp[RM][CN];
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
          for (int c = 0; c < CN; ++c) dp[r][c] = 0.f;
#pragma unroll 2
        for (int d = 0; d < HSP; d += 4) {
          float4 a[RM], bv[CN];
#pragma unroll
          for (int r = 0; r < RM; ++r) a[r] = lds4(dOs + (ty + 16 * r) * LD + d);
#pragma unroll
          for (int c = 0; c < CN; ++c) bv[c] = lds4(Vs + (tx + 16 * c) * LD + d);
#pragma unroll
          for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int c = 0; c < CN; ++c) dp[r][c] = dot4(a[r], bv[c], dp[r][c]);
        }
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
          for (int c = 0; c < CN; ++c) {
            const int at = (ty + 16 * r) * LDP + tx + 16 * c;
            dSs[at] = Ps[at] * (dp[r][c] - Di[r]) * scale;
          }
      }
      __syncthreads();

      // dV += P^T dO and dK += (scale dS)^T Q over the tile's query rows
#pragma unroll 2
      for (int i = 0; i < BQ; ++i) {
        float pj[RJ], sj[RJ];
        lds_vec<RJ>(pj, Ps + i * LDP + ty * RJ);
        lds_vec<RJ>(sj, dSs + i * LDP + ty * RJ);
#pragma unroll
        for (int c = 0; c < OC; ++c) {
          float x[VEC], y[VEC];
          lds_vec<VEC>(x, dOs + i * LD + c * 16 * VEC + tx * VEC);
          lds_vec<VEC>(y, Qs + i * LD + c * 16 * VEC + tx * VEC);
#pragma unroll
          for (int r = 0; r < RJ; ++r)
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
              dv_acc[r][c * VEC + e] = fmaf(pj[r], x[e], dv_acc[r][c * VEC + e]);
              dk_acc[r][c * VEC + e] = fmaf(sj[r], y[e], dk_acc[r][c * VEC + e]);
            }
        }
      }

      // dQ += (scale dS) K for rows ty+16r, columns c*16*VEC + tx*VEC + e
      if (dq != nullptr) {
        float acc[RM][NCOL];
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
          for (int e = 0; e < NCOL; ++e) acc[r][e] = 0.f;
#pragma unroll 1
        for (int j = 0; j < BK; j += 4) {
          float sv[RM][4];
#pragma unroll
          for (int r = 0; r < RM; ++r) lds_vec<4>(sv[r], dSs + (ty + 16 * r) * LDP + j);
#pragma unroll
          for (int jj = 0; jj < 4; ++jj)
#pragma unroll
            for (int c = 0; c < OC; ++c) {
              float x[VEC];
              lds_vec<VEC>(x, Ks + (j + jj) * LD + c * 16 * VEC + tx * VEC);
#pragma unroll
              for (int r = 0; r < RM; ++r)
#pragma unroll
                for (int e = 0; e < VEC; ++e) acc[r][c * VEC + e] = fmaf(sv[r][jj], x[e], acc[r][c * VEC + e]);
            }
        }
#pragma unroll
        for (int r = 0; r < RM; ++r) {
          const int i = q0 + ty + 16 * r;
          if (i < T) {
            float* dst = dq + ((int64_t)b * T + i) * q_stride + (int64_t)h * HS;
#pragma unroll
            for (int c = 0; c < OC; ++c)
#pragma unroll
              for (int e = 0; e < VEC; ++e) {
                const int d = c * 16 * VEC + tx * VEC + e;
                if (d < HS) atomicAdd(dst + d, acc[r][c * VEC + e]);
              }
          }
        }
      }
    }
  }

  // this block owns rows [k0, k0+BK) of kv head g: plain read-modify-write accumulation
#pragma unroll
  for (int r = 0; r < RJ; ++r) {
    const int j = k0 + ty * RJ + r;
    if (j < T) {
      const int64_t off = ((int64_t)b * T + j) * kv_stride + (int64_t)g * HS;
#pragma unroll
      for (int c = 0; c < OC; ++c)
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
          const int d = c * 16 * VEC + tx * VEC + e;
          if (d < HS) {
            if (dk != nullptr) dk[off + d] += dk_acc[r][c * VEC + e];
            if (dv != nullptr) dv[off + d] += dv_acc[r][c * VEC + e];
          }
        }
    }
  }
}

// ------------------------------------------------------------------------------------------
// Decode: few queries over a long cache, split-KV. A block takes kDecRows query rows of one KV
// group (row rr = hh*Tq + t: query head g*group+hh at position past+t) and the cache rows
// [kbeg, kend) of one partition, in tiles of kDecKeys keys.
//  scores : 8-lane unit u holds key k0+u (lane l: columns (c*8+l)*4 + 0..3), dots against the
//           shared query rows, reduced over the 8 lanes
//  softmax: warp w owns rows w and w+8, lane = key
//  P.V    : thread (dcol = tid % HSP, key group jg = tid / HSP) sums its KPT keys for all rows;
//           the key groups are added in shared memory at the end
// Partition results are unnormalised (o, m, l) when nsplit > 1. They are merged by the last
// partition of each (batch, KV group, row chunk) to finish, found with a counter per chunk
// (`counters`: zero before the launch and left zero after it, so the next launch and every
// replay of a graph find them so), which saves the decode step a launch; without counters (none
// could be allocated, nsplit > kThreads, or PUZZLE_CUDA_DECODE_COMBINE=kernel) the combine kernel
// below merges them.
// E is the storage of q, the caches and out (fp32, or bf16: the caches are read as bf16, which
// halves the bytes a decode step moves); partitions and all math are fp32.
constexpr int kDecRows = 16;
constexpr int kDecKeys = 32;

// Merges the nsplit unnormalised partitions (o, m, l) of rows r0 .. r0+nrows-1 of (batch b, KV
// group g) into out; the decode kernel's last partition of a chunk and the combine kernel both
// call it with every thread of the block. wts: nrows * nsplit floats of shared memory, inv: nrows
// floats; warp w takes rows w, w + warps, .... Partitions are read through L2 (ld.cg): in the
// decode kernel other blocks wrote them, and no stale L1 line may be read.
template <class E>
__device__ void merge_partitions(E* __restrict__ out, const float* __restrict__ part_o,
                                 const float* __restrict__ part_ml, int b, int g, int r0, int nrows, int group, int Tq,
                                 int NH, int HS, int nsplit, float* wts, float* inv) {
  const int tid = threadIdx.x, lane = tid % 32, w = tid / 32, warps = blockDim.x / 32;
  for (int r = w; r < nrows; r += warps) {
    const int rr = r0 + r, hh = rr / Tq, t = rr % Tq, h = g * group + hh;
    const float* ml = part_ml + (((int64_t)b * NH + h) * Tq + t) * nsplit * 2;
    float mx = -INFINITY;
    for (int x = lane; x < nsplit; x += 32) mx = fmaxf(mx, __ldcg(ml + 2 * x));
    mx = warp_max(mx);
    const float m_use = mx == -INFINITY ? 0.f : mx;  // never -inf: partition 0 sees key 0
    float sum = 0.f;
    for (int x = lane; x < nsplit; x += 32) {
      const float e = exp2f(__ldcg(ml + 2 * x) - m_use);
      wts[r * nsplit + x] = e;
      sum = fmaf(e, __ldcg(ml + 2 * x + 1), sum);
    }
    sum = warp_sum(sum);
    if (lane == 0) inv[r] = 1.f / sum;
  }
  __syncthreads();
  for (int i = tid; i < nrows * HS; i += blockDim.x) {
    const int r = i / HS, d = i % HS;
    const int rr = r0 + r, hh = rr / Tq, t = rr % Tq, h = g * group + hh;
    const float* src = part_o + (((int64_t)b * NH + h) * Tq + t) * nsplit * HS + d;
    float acc = 0.f;
    for (int x = 0; x < nsplit; ++x) acc = fmaf(wts[r * nsplit + x], __ldcg(src + (int64_t)x * HS), acc);
    st1(out + (((int64_t)b * Tq + t) * NH + h) * HS + d, acc * inv[r]);
  }
}

// What a decode block owns: batch b, KV group g (bg = b * NKV + g), rows r0 .. r0+nrows-1 of the
// group's rows (row chunk `chunk`), and the keys [kbeg, kend) of partition `split`. Block index:
// ((bg * nsplit) + split) * nchunk + chunk.
struct DecodePart {
  int b, g, bg, chunk, split, r0, nrows, kbeg, kend;
};
__device__ __forceinline__ DecodePart decode_part(int Tq, int past, int NKV, int group, int keys_per_split, int nsplit,
                                                  int nchunk) {
  DecodePart p;
  int idx = blockIdx.x;
  p.chunk = idx % nchunk;
  idx /= nchunk;
  p.split = idx % nsplit;
  p.bg = idx / nsplit, p.b = p.bg / NKV, p.g = p.bg % NKV;
  p.r0 = p.chunk * kDecRows, p.nrows = imin(kDecRows, group * Tq - p.r0);
  p.kbeg = p.split * keys_per_split, p.kend = imin(p.kbeg + keys_per_split, past + Tq);
  return p;
}

// Whether this block is the last partition of its (batch, KV group, row chunk) to finish, the one
// that merges them all (threadFenceReduction's pattern): every block's partials are made visible
// device-wide before it is counted, and the merging block then reads the others' through L2
// (merge_partitions' ld.cg), never a stale L1 line. The counter (`slot` of counters: zero before
// the launch) is left zero for the next launch and every replay of a graph. Every thread of the
// block calls it, and every thread gets the answer.
__device__ __forceinline__ bool last_to_finish(unsigned* __restrict__ counters, int64_t slot, int nsplit) {
  __shared__ bool merge;
  __threadfence();
  __syncthreads();  // also: every thread is past its reads of what the merge's weights reuse
  if (threadIdx.x == 0) {
    unsigned* c = counters + slot;
    merge = atomicAdd(c, 1u) == (unsigned)nsplit - 1;
    if (merge) *c = 0u;  // every partition has counted: ready for the next launch
  }
  __syncthreads();
  if (merge) __threadfence();
  return merge;
}

constexpr size_t dec_smem_bytes() {
  return sizeof(float) * ((size_t)kDecRows * kThreads + kDecRows * kDecKeys + 3 * kDecRows);
}

template <int HSP, int MINB, class E>
__global__ void __launch_bounds__(kThreads, MINB)
    attn_decode_kernel(E* __restrict__ out, float* __restrict__ part_o, float* __restrict__ part_ml,
                       const E* __restrict__ q, const E* __restrict__ kc, const E* __restrict__ vc, int Tq,
                       int past, int NH, int NKV, int group, int HS, int64_t q_stride, int64_t kv_stride,
                       int64_t kv_bstride, int keys_per_split, int nsplit, int nchunk, float scale_log2,
                       bool vec_kv, unsigned* __restrict__ counters) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  constexpr int KC = HSP / 32;         // float4 key vectors per lane
  constexpr int NJG = kThreads / HSP;  // key groups in P.V
  constexpr int KPT = kDecKeys / NJG;  // keys per thread in P.V
  constexpr int RW = kDecRows / 8;     // softmax rows per warp
  static_assert(KPT % 4 == 0 && KC >= 1, "decode geometry");
  extern __shared__ __align__(16) float smem[];
  float* buf = smem;                        // Qs [kDecRows][HSP], at the end [NJG][kDecRows][HSP]
  float* Ss = buf + kDecRows * kThreads;    // [kDecRows][kDecKeys] scores, then probabilities
  float* Cs = Ss + kDecRows * kDecKeys;     // [kDecRows] rescale factors of the current tile
  float* Ms = Cs + kDecRows;                // [kDecRows] final running max
  float* Ls = Ms + kDecRows;                // [kDecRows] final running sum

  const DecodePart pt = decode_part(Tq, past, NKV, group, keys_per_split, nsplit, nchunk);
  const int b = pt.b, g = pt.g, split = pt.split, r0 = pt.r0, nrows = pt.nrows, kbeg = pt.kbeg, kend = pt.kend;
  const int tid = threadIdx.x, lane = tid % 32, w = tid / 32, u = tid / 8, l8 = tid % 8;
  const int dcol = tid % HSP, jg = tid / HSP;

  for (int i = tid; i < kDecRows * HSP; i += kThreads) {
    const int r = i / HSP, d = i % HSP;
    float val = 0.f;
    if (r < nrows && d < HS) {
      const int rr = r0 + r, hh = rr / Tq, t = rr % Tq;
      val = ld1(q + ((int64_t)b * Tq + t) * q_stride + (int64_t)(g * group + hh) * HS + d) * scale_log2;
    }
    buf[r * HSP + d] = val;
  }

  float o[kDecRows];
#pragma unroll
  for (int r = 0; r < kDecRows; ++r) o[r] = 0.f;
  float m_run[RW], l_run[RW];
#pragma unroll
  for (int kk = 0; kk < RW; ++kk) {
    m_run[kk] = -INFINITY;
    l_run[kk] = 0.f;
  }

  const E* kbase = kc + b * kv_bstride + (int64_t)g * HS;
  const E* vbase = vc + b * kv_bstride + (int64_t)g * HS;
  // The key and value rows of the tile starting at key t0 asked into L2 ahead of their loads: a
  // block has only its current tile's loads in flight, and its scores, softmax and barriers leave
  // them idle, so without this a partition's tiles arrive one DRAM latency after another. Lines
  // of 128 bytes; a row of HS values spans `lines` of them.
  const int row_bytes = HS * (int)sizeof(E), lines = (row_bytes + 127) / 128;
  auto prefetch_tile = [&](int t0) {
    const int nrow = imin(kDecKeys, kend - t0);
    for (int i = tid; i < 2 * nrow * lines; i += kThreads) {
      const int kv_sel = i / (nrow * lines), rest = i % (nrow * lines), j = rest / lines, line = rest % lines;
      const E* row = (kv_sel ? vbase : kbase) + (int64_t)(t0 + j) * kv_stride;
      prefetch_l2(reinterpret_cast<const char*>(row) + imin(line * 128, row_bytes - 1));
    }
  };
  if (kbeg + kDecKeys < kend) prefetch_tile(kbeg + kDecKeys);
  for (int k0 = kbeg; k0 < kend; k0 += kDecKeys) {
    if (k0 + 2 * kDecKeys < kend) prefetch_tile(k0 + 2 * kDecKeys);  // two tiles ahead
    // global loads for the whole tile first
    const int jk = k0 + u;
    float4 kv[KC];
#pragma unroll
    for (int c = 0; c < KC; ++c) {
      const int d = (c * 8 + l8) * 4;
      kv[c] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (jk < kend && d < HS) kv[c] = ldg4(kbase + jk * kv_stride + d, d, HS, vec_kv);
    }
    float vv[KPT];
#pragma unroll
    for (int jj = 0; jj < KPT; ++jj) {
      const int jv = k0 + jg * KPT + jj;
      vv[jj] = (jv < kend && dcol < HS) ? ld1(vbase + jv * kv_stride + dcol) : 0.f;
    }
    __syncthreads();  // Qs stored (first tile); the previous tile's P.V is done with Ss, Cs

    // scores
#pragma unroll 2
    for (int r = 0; r < kDecRows; ++r) {
      if (r < nrows) {  // uniform over the block
        float sd = 0.f;
#pragma unroll
        for (int c = 0; c < KC; ++c) sd = dot4(lds4(buf + r * HSP + (c * 8 + l8) * 4), kv[c], sd);
        sd += __shfl_xor_sync(0xffffffffu, sd, 4);
        sd += __shfl_xor_sync(0xffffffffu, sd, 2);
        sd += __shfl_xor_sync(0xffffffffu, sd, 1);
        if (l8 == 0) {
          const int t = (r0 + r) % Tq;
          Ss[r * kDecKeys + u] = (jk < kend && jk <= past + t) ? sd : -INFINITY;
        }
      }
    }
    __syncthreads();

    // online softmax
#pragma unroll
    for (int kk = 0; kk < RW; ++kk) {
      const int r = w + 8 * kk;
      if (r < nrows) {  // uniform over the warp
        const float sv = Ss[r * kDecKeys + lane];
        const float m_new = fmaxf(m_run[kk], warp_max(sv));
        const float m_use = m_new == -INFINITY ? 0.f : m_new;
        const float corr = exp2f(m_run[kk] - m_use);
        const float p = exp2f(sv - m_use);
        l_run[kk] = l_run[kk] * corr + warp_sum(p);
        m_run[kk] = m_new;
        Ss[r * kDecKeys + lane] = p;
        if (lane == 0) Cs[r] = corr;
      }
    }
    __syncthreads();

    // P.V
#pragma unroll
    for (int r = 0; r < kDecRows; ++r) {
      if (r < nrows) {
        float acc = o[r] * Cs[r];
#pragma unroll
        for (int jj = 0; jj < KPT; jj += 4) {
          const float4 p = lds4(Ss + r * kDecKeys + jg * KPT + jj);
          acc = fmaf(p.x, vv[jj], acc);
          acc = fmaf(p.y, vv[jj + 1], acc);
          acc = fmaf(p.z, vv[jj + 2], acc);
          acc = fmaf(p.w, vv[jj + 3], acc);
        }
        o[r] = acc;
      }
    }
  }

#pragma unroll
  for (int kk = 0; kk < RW; ++kk) {
    const int r = w + 8 * kk;
    if (r < nrows && lane == 0) {
      Ms[r] = m_run[kk];
      Ls[r] = l_run[kk];
    }
  }
  __syncthreads();  // every thread is past its last read of Qs and Ss
#pragma unroll
  for (int r = 0; r < kDecRows; ++r) buf[(jg * kDecRows + r) * HSP + dcol] = o[r];
  __syncthreads();
  if (jg == 0 && dcol < HS) {
    for (int r = 0; r < nrows; ++r) {
      float tot = 0.f;
#pragma unroll
      for (int x = 0; x < NJG; ++x) tot += buf[(x * kDecRows + r) * HSP + dcol];
      const int rr = r0 + r, hh = rr / Tq, t = rr % Tq, h = g * group + hh;
      if (nsplit == 1) {
        st1(out + (((int64_t)b * Tq + t) * NH + h) * HS + dcol, tot / Ls[r]);
      } else {
        const int64_t prow = (((int64_t)b * NH + h) * Tq + t) * nsplit + split;
        part_o[prow * HS + dcol] = tot;
        if (dcol == 0) {
          part_ml[prow * 2] = Ms[r];
          part_ml[prow * 2 + 1] = Ls[r];
        }
      }
    }
  }
  if (nsplit == 1 || counters == nullptr || !last_to_finish(counters, (int64_t)pt.bg * nchunk + pt.chunk, nsplit))
    return;
  // wts [nrows][nsplit] where the key groups were added (nsplit <= kThreads), 1 / sum in Cs
  merge_partitions(out, part_o, part_ml, b, g, r0, nrows, group, Tq, NH, HS, nsplit, buf, Cs);
}

// Merges the partitions of one (batch, KV group, row chunk) per block, where the decode kernel
// could not (no counters).
template <class E>
__global__ void __launch_bounds__(kThreads)
    attn_decode_combine_kernel(E* __restrict__ out, const float* __restrict__ part_o,
                               const float* __restrict__ part_ml, int nsplit, int Tq, int NH, int NKV, int group,
                               int HS, int nchunk) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  extern __shared__ __align__(16) float smem[];  // wts [kDecRows][nsplit], then inv [kDecRows]
  const int chunk = (int)blockIdx.x % nchunk, bg = (int)blockIdx.x / nchunk, b = bg / NKV, g = bg % NKV;
  const int r0 = chunk * kDecRows, nrows = imin(kDecRows, group * Tq - r0);
  merge_partitions(out, part_o, part_ml, b, g, r0, nrows, group, Tq, NH, HS, nsplit, smem, smem + kDecRows * nsplit);
}

// ------------------------------------------------------------------------------------------
// Streamed split-KV decode over bf16 caches (HS 64 or 128, rows 16-byte aligned): what a bf16
// decode runs where it applies (PUZZLE_CUDA_DECODE=simt keeps the kernel above). That kernel holds
// one tile of 32 keys in flight a block and reads the cache in 8- and 2-byte loads between three
// barriers a tile: on an H200 (benchmarks/results/gpu-h200-2026-11-30.md) it moved 600-900 GB/s
// of a 4.2 TB/s card, 67% of an 8B decode step at batch 64. Here a block of 4 warps streams its
// partition through STAGES shared-memory stages of 32 keys filled by cp.async (16-byte
// copies; STAGES - 1 tiles in flight while one is used), with two barriers a tile:
//  scores : lane = key; warp w takes rows w, w+4, w+8, w+12 (row rr = hh*Tq + t, as above) and
//           reads its key's row from shared memory in 16-byte pieces (rows padded by 16 bytes, so
//           the 8 lanes of a phase hit distinct banks) against the fp32 query rows (broadcast)
//  softmax: in the same warp, a row's 32 scores being its lanes' (online, base 2)
//  P.V    : thread (dims dg*4 .. dg*4+3, key group kg) sums its keys of the tile for every row;
//           the key groups are added in shared memory at the end, as in the kernel above
// A tile's rows past the partition's end are copied from its last row (never a row past the
// visible cache) and masked. Partitions are written, counted and merged as by attn_decode_kernel.
constexpr int kAdThreads = 128;
constexpr int kAdKeys = 32;

// The key and value rows of keys t0 .. t0+KEYS-1 into a stage (K [KEYS][LD], then V [KEYS][LD])
// with 16-byte cp.async copies by the block's THREADS threads; rows at or past kend repeat row
// kend - 1 (never a row past the visible cache), for the caller to mask.
template <int KEYS, int HS, int LD, int THREADS>
__device__ __forceinline__ void copy_kv_tile(bf16x* stage, const bf16x* kbase, const bf16x* vbase, int64_t kv_stride,
                                             int t0, int kend) {
  constexpr int CPR = HS / 8;  // 16-byte pieces of a row
  for (int x = (int)threadIdx.x; x < 2 * KEYS * CPR; x += THREADS) {
    const int sel = x / (KEYS * CPR), rest = x % (KEYS * CPR), j = rest / CPR, c = rest % CPR;
    const int row = imin(t0 + j, kend - 1);
    cp_async16(stage + ((size_t)sel * KEYS + j) * LD + c * 8, (sel ? vbase : kbase) + (int64_t)row * kv_stride + c * 8);
  }
}

template <int HS>
struct AdGeo {
  static_assert(HS == 64 || HS == 128, "streamed decode: HS 64 or 128");
  static constexpr int LD = HS + 8;                 // bf16 row pitch of a K or V tile
  static constexpr int STAGES = HS == 128 ? 3 : 4;  // 61 KiB (HS 128) or 42 KiB a block: 3 or 5 an SM
  static constexpr size_t stage_elems = (size_t)2 * kAdKeys * LD;        // the K tile, then the V tile
  static constexpr size_t q_off = STAGES * stage_elems * 2;              // fp32 [kDecRows][HS] queries
  static constexpr size_t p_off = q_off + (size_t)kDecRows * HS * 4;     // fp32 [kDecRows][kAdKeys]
  static constexpr size_t c_off = p_off + (size_t)kDecRows * kAdKeys * 4;  // fp32 [kDecRows] rescales
  static constexpr size_t ml_off = c_off + (size_t)kDecRows * 4;         // fp32 [kDecRows][2] m, l
  static constexpr size_t bytes = ml_off + (size_t)2 * kDecRows * 4;
  static constexpr int NDG = HS / 4;               // P.V: groups of 4 dims
  static constexpr int NKG = kAdThreads / NDG;     // P.V: key groups
  static constexpr int KPG = kAdKeys / NKG;        // keys of a tile a group sums
  // after the key loop the stages hold the key groups' sums [NKG][kDecRows][HS], then the merge's
  // weights (kDecRows x nsplit floats, nsplit <= kAdMaxSplits)
  static_assert((size_t)NKG * kDecRows * HS * 4 <= q_off && KPG % 4 == 0, "streamed decode geometry");
};
constexpr int kAdMaxSplits = 256;

template <int HS>
__global__ void __launch_bounds__(kAdThreads)
    attn_decode_async_kernel(bf16x* __restrict__ out, float* __restrict__ part_o, float* __restrict__ part_ml,
                             const bf16x* __restrict__ q, const bf16x* __restrict__ kc, const bf16x* __restrict__ vc,
                             int Tq, int past, int NH, int NKV, int group, int64_t q_stride, int64_t kv_stride,
                             int64_t kv_bstride, int keys_per_split, int nsplit, int nchunk, float scale_log2,
                             unsigned* __restrict__ counters) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  using G = AdGeo<HS>;
  extern __shared__ __align__(16) float smem[];
  unsigned char* sbase = reinterpret_cast<unsigned char*>(smem);
  bf16x* stages = reinterpret_cast<bf16x*>(sbase);
  float* Qs = reinterpret_cast<float*>(sbase + G::q_off);
  float* Ps = reinterpret_cast<float*>(sbase + G::p_off);
  float* Cs = reinterpret_cast<float*>(sbase + G::c_off);
  float* MLs = reinterpret_cast<float*>(sbase + G::ml_off);

  const DecodePart pt = decode_part(Tq, past, NKV, group, keys_per_split, nsplit, nchunk);
  const int b = pt.b, g = pt.g, split = pt.split, r0 = pt.r0, nrows = pt.nrows, kbeg = pt.kbeg, kend = pt.kend;
  const int ntile = (kend - kbeg + kAdKeys - 1) / kAdKeys;
  const int tid = threadIdx.x, lane = tid % 32, w = tid / 32;
  const int dg = tid % G::NDG, kg = tid / G::NDG;
  const bf16x* kbase = kc + b * kv_bstride + (int64_t)g * HS;
  const bf16x* vbase = vc + b * kv_bstride + (int64_t)g * HS;

  // tile i (keys kbeg + 32 i ..) into stage i % STAGES; a group is committed even when there is no
  // tile left, so that cp_async_wait counts the same groups in every iteration
  auto issue = [&](int i) {
    if (i < ntile)
      copy_kv_tile<kAdKeys, HS, G::LD, kAdThreads>(stages + (size_t)(i % G::STAGES) * G::stage_elems, kbase, vbase,
                                                   kv_stride, kbeg + i * kAdKeys, kend);
    cp_async_commit();
  };
#pragma unroll
  for (int s = 0; s < G::STAGES - 1; ++s) issue(s);

  for (int i = tid; i < kDecRows * HS; i += kAdThreads) {
    const int r = i / HS, d = i % HS;
    float val = 0.f;
    if (r < nrows) {
      const int rr = r0 + r, hh = rr / Tq, t = rr % Tq;
      val = ld1(q + ((int64_t)b * Tq + t) * q_stride + (int64_t)(g * group + hh) * HS + d) * scale_log2;
    }
    Qs[i] = val;
  }

  float o[kDecRows][4];
#pragma unroll
  for (int r = 0; r < kDecRows; ++r)
#pragma unroll
    for (int x = 0; x < 4; ++x) o[r][x] = 0.f;
  float m_run[4], l_run[4];  // rows w + 4 kk, in the warp that owns them
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    m_run[kk] = -INFINITY;
    l_run[kk] = 0.f;
  }

  for (int i = 0; i < ntile; ++i) {
    cp_async_wait<G::STAGES - 2>();
    __syncthreads();  // tile i has landed (every thread's copies); tile i-1's P.V is done with Ps, Cs, its stage
    issue(i + G::STAGES - 1);  // into the stage tile i-1 used
    const bf16x* ks = stages + (size_t)(i % G::STAGES) * G::stage_elems;
    const bf16x* vs = ks + (size_t)kAdKeys * G::LD;
    const int jk = kbeg + i * kAdKeys + lane;

    // scores
    float s[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll 4
    for (int c = 0; c < HS / 8; ++c) {
      const uint4 kr = *reinterpret_cast<const uint4*>(ks + lane * G::LD + c * 8);
      const float2 k0 = unpack_bf16x2(kr.x), k1 = unpack_bf16x2(kr.y), k2 = unpack_bf16x2(kr.z),
                   k3 = unpack_bf16x2(kr.w);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const int r = w + 4 * kk;
        if (r < nrows) {  // uniform over the warp
          const float4 qa = lds4(Qs + r * HS + c * 8), qb = lds4(Qs + r * HS + c * 8 + 4);
          float a = s[kk];
          a = fmaf(qa.x, k0.x, a);
          a = fmaf(qa.y, k0.y, a);
          a = fmaf(qa.z, k1.x, a);
          a = fmaf(qa.w, k1.y, a);
          a = fmaf(qb.x, k2.x, a);
          a = fmaf(qb.y, k2.y, a);
          a = fmaf(qb.z, k3.x, a);
          a = fmaf(qb.w, k3.y, a);
          s[kk] = a;
        }
      }
    }
    // online softmax, in the warp that owns the row
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const int r = w + 4 * kk;
      if (r < nrows) {  // uniform over the warp
        const int t = (r0 + r) % Tq;
        const float sv = (jk < kend && jk <= past + t) ? s[kk] : -INFINITY;
        const float m_new = fmaxf(m_run[kk], warp_max(sv));
        const float m_use = m_new == -INFINITY ? 0.f : m_new;
        const float corr = exp2f(m_run[kk] - m_use);
        const float p = exp2f(sv - m_use);
        l_run[kk] = l_run[kk] * corr + warp_sum(p);
        m_run[kk] = m_new;
        Ps[r * kAdKeys + lane] = p;
        if (lane == 0) Cs[r] = corr;
      }
    }
    __syncthreads();  // Ps, Cs

    // P.V: this thread's KPG keys of the tile, 4 dims
    float vf[G::KPG][4];
#pragma unroll
    for (int jj = 0; jj < G::KPG; ++jj) {
      const uint2 vr = *reinterpret_cast<const uint2*>(vs + (kg * G::KPG + jj) * G::LD + dg * 4);
      const float2 v0 = unpack_bf16x2(vr.x), v1 = unpack_bf16x2(vr.y);
      vf[jj][0] = v0.x;
      vf[jj][1] = v0.y;
      vf[jj][2] = v1.x;
      vf[jj][3] = v1.y;
    }
#pragma unroll
    for (int r = 0; r < kDecRows; ++r) {
      if (r < nrows) {  // uniform over the block
        const float cr = Cs[r];
        float acc[4];
#pragma unroll
        for (int x = 0; x < 4; ++x) acc[x] = o[r][x] * cr;
#pragma unroll
        for (int jj = 0; jj < G::KPG; jj += 4) {
          const float4 p = lds4(Ps + r * kAdKeys + kg * G::KPG + jj);
#pragma unroll
          for (int x = 0; x < 4; ++x) {
            acc[x] = fmaf(p.x, vf[jj][x], acc[x]);
            acc[x] = fmaf(p.y, vf[jj + 1][x], acc[x]);
            acc[x] = fmaf(p.z, vf[jj + 2][x], acc[x]);
            acc[x] = fmaf(p.w, vf[jj + 3][x], acc[x]);
          }
        }
#pragma unroll
        for (int x = 0; x < 4; ++x) o[r][x] = acc[x];
      }
    }
  }
  cp_async_wait<0>();  // only empty groups are left; none may land in what the stages become below

#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    const int r = w + 4 * kk;
    if (r < nrows && lane == 0) {
      MLs[2 * r] = m_run[kk];
      MLs[2 * r + 1] = l_run[kk];
    }
  }
  __syncthreads();  // every thread is past its last read of the stages, Ps and Cs
  float* red = reinterpret_cast<float*>(sbase);  // [NKG][kDecRows][HS]
#pragma unroll
  for (int r = 0; r < kDecRows; ++r)
    if (r < nrows)
      *reinterpret_cast<float4*>(red + ((size_t)kg * kDecRows + r) * HS + dg * 4) =
          make_float4(o[r][0], o[r][1], o[r][2], o[r][3]);
  __syncthreads();
  for (int i = tid; i < nrows * HS; i += kAdThreads) {
    const int r = i / HS, d = i % HS;
    float tot = 0.f;
#pragma unroll
    for (int x = 0; x < G::NKG; ++x) tot += red[((size_t)x * kDecRows + r) * HS + d];
    const int rr = r0 + r, hh = rr / Tq, t = rr % Tq, h = g * group + hh;
    if (nsplit == 1) {
      st1(out + (((int64_t)b * Tq + t) * NH + h) * HS + d, tot / MLs[2 * r + 1]);
    } else {
      const int64_t prow = (((int64_t)b * NH + h) * Tq + t) * nsplit + split;
      part_o[prow * HS + d] = tot;
      if (d == 0) {
        part_ml[prow * 2] = MLs[2 * r];
        part_ml[prow * 2 + 1] = MLs[2 * r + 1];
      }
    }
  }
  // the merge's weights reuse red
  if (nsplit == 1 || counters == nullptr || !last_to_finish(counters, (int64_t)pt.bg * nchunk + pt.chunk, nsplit))
    return;
  merge_partitions(out, part_o, part_ml, b, g, r0, nrows, group, Tq, NH, HS, nsplit, red, Cs);
}

// ------------------------------------------------------------------------------------------
// Split-KV decode on the tensor cores (PUZZLE_CUDA_DECODE=mma, a candidate until a GPU run has
// timed it against the streamed kernel above; same conditions: bf16 caches, HS 64 or 128, 16-byte
// rows). The streamed kernel read the cache at 0.8-1.3 TB/s on the H200
// (benchmarks/results/gpu-h200-2026-11-30-b.md); counted from its source (an estimate, not a
// profile), it issues about 500 instructions a warp for each tile of 32 keys (the scores and P V
// as fp32 FMAs, shuffle reductions per row), this kernel about a sixth of that per byte. Here the
// block's up to 16 rows (row rr =
// hh*Tq + t, as above; padded with zero queries) are the M = 16 of mma.m16n8k16 (cuda/mma.cuh):
//  * tiles of 64 keys stream through cp.async stages as in the streamed kernel; warp w takes keys
//    16w .. 16w+15 of every tile, so each warp runs its own online softmax over a quarter of the
//    partition's keys, in registers (attention_mma.cu's forward with one 16-key column of scores:
//    S = Q K^T from ldmatrix fragments, P rounded to bf16 straight into the A operand of P V, V
//    through ldmatrix.trans, O in accumulators);
//  * at the end the four warps' (m, l, O) are merged through shared memory, and the block writes
//    its rows (one partition) or its partition, counted and merged as by attn_decode_kernel.
constexpr int kAmThreads = 128;
constexpr int kAmKeys = 64;

template <int HS>
struct AmGeo {
  static_assert(HS == 64 || HS == 128, "tensor-core decode: HS 64 or 128");
  static constexpr int LD = HS + 8;                  // bf16 row pitch (conflict-free ldmatrix)
  static constexpr int STAGES = HS == 128 ? 3 : 4;   // 106 or 76 KiB a block: 2 or 3 an SM
  static constexpr size_t stage_elems = (size_t)2 * kAmKeys * LD;        // the K tile, then the V tile
  static constexpr size_t q_off = STAGES * stage_elems * 2;              // bf16 [16][LD] queries
  static constexpr size_t ml_off = q_off + (size_t)kDecRows * LD * 2;    // fp32 [4][kDecRows] m, then l
  static constexpr size_t bytes = ml_off + (size_t)2 * 4 * kDecRows * 4;
  // after the key loop the stages hold the warps' O [4][kDecRows][HS] fp32, then the merge's weights
  static_assert((size_t)4 * kDecRows * HS * 4 <= q_off && q_off % 16 == 0, "tensor-core decode geometry");
};

template <int HS>
__global__ void __launch_bounds__(kAmThreads)
    attn_decode_mma_kernel(bf16x* __restrict__ out, float* __restrict__ part_o, float* __restrict__ part_ml,
                           const bf16x* __restrict__ q, const bf16x* __restrict__ kc, const bf16x* __restrict__ vc,
                           int Tq, int past, int NH, int NKV, int group, int64_t q_stride, int64_t kv_stride,
                           int64_t kv_bstride, int keys_per_split, int nsplit, int nchunk, float scale_log2,
                           unsigned* __restrict__ counters) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  using G = AmGeo<HS>;
  constexpr int LD = G::LD;
  constexpr int KQ = HS / 16;  // k-steps of Q K^T
  constexpr int NO = HS / 8;   // 16x8 output tiles
  extern __shared__ __align__(16) float smem[];
  unsigned char* sbase = reinterpret_cast<unsigned char*>(smem);
  bf16x* stages = reinterpret_cast<bf16x*>(sbase);
  bf16x* Qs = reinterpret_cast<bf16x*>(sbase + G::q_off);
  float* Ms = reinterpret_cast<float*>(sbase + G::ml_off);  // [4][kDecRows]
  float* Ls = Ms + 4 * kDecRows;                            // [4][kDecRows]

  const DecodePart pt = decode_part(Tq, past, NKV, group, keys_per_split, nsplit, nchunk);
  const int b = pt.b, g = pt.g, split = pt.split, r0 = pt.r0, nrows = pt.nrows, kbeg = pt.kbeg, kend = pt.kend;
  const int ntile = (kend - kbeg + kAmKeys - 1) / kAmKeys;
  const int tid = threadIdx.x, lane = tid % 32, w = tid / 32, gq = lane >> 2, tq = lane & 3;
  const bf16x* kbase = kc + b * kv_bstride + (int64_t)g * HS;
  const bf16x* vbase = vc + b * kv_bstride + (int64_t)g * HS;

  auto issue = [&](int i) {  // as in attn_decode_async_kernel: always a group
    if (i < ntile)
      copy_kv_tile<kAmKeys, HS, LD, kAmThreads>(stages + (size_t)(i % G::STAGES) * G::stage_elems, kbase, vbase,
                                                kv_stride, kbeg + i * kAmKeys, kend);
    cp_async_commit();
  };
#pragma unroll
  for (int s = 0; s < G::STAGES - 1; ++s) issue(s);

  for (int i = tid; i < kDecRows * HS; i += kAmThreads) {  // the rows' queries, zero past nrows
    const int r = i / HS, d = i % HS;
    bf16x val = __float2bfloat16_rn(0.f);
    if (r < nrows) {
      const int rr = r0 + r, hh = rr / Tq, t = rr % Tq;
      val = q[((int64_t)b * Tq + t) * q_stride + (int64_t)(g * group + hh) * HS + d];
    }
    Qs[r * LD + d] = val;
  }
  // the positions of this lane's two rows (gq, gq + 8): a key is visible to a row up to past + t
  const int vis0 = past + (r0 + gq) % Tq, vis1 = past + (r0 + gq + 8) % Tq;

  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // l: this lane's part of the row sums
  float o[NO][4];
#pragma unroll
  for (int f = 0; f < NO; ++f) o[f][0] = o[f][1] = o[f][2] = o[f][3] = 0.f;
  uint32_t qa[KQ][4];

  for (int i = 0; i < ntile; ++i) {
    cp_async_wait<G::STAGES - 2>();
    __syncthreads();  // tile i (at i = 0 the queries too) is in shared memory; tile i-1's stage is free
    issue(i + G::STAGES - 1);
    if (i == 0) {
#pragma unroll
      for (int kk = 0; kk < KQ; ++kk)
        ldsm_x4(qa[kk], Qs + ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + kk * 16 + (lane >> 4) * 8);
    }
    const bf16x* Kt = stages + (size_t)(i % G::STAGES) * G::stage_elems + (size_t)w * 16 * LD;
    const bf16x* Vt = Kt + (size_t)kAmKeys * LD;
    const int k0 = kbeg + i * kAmKeys + w * 16;  // this warp's first key

    // S = Q K^T: 16 rows x this warp's 16 keys
    float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
    for (int kk = 0; kk < KQ; ++kk) {
      uint32_t kf[4];
      ldsm_x4(kf, Kt + ((lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
      mma_16816(s[0], qa[kk], kf[0], kf[1]);
      mma_16816(s[1], qa[kk], kf[2], kf[3]);
    }
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int key = k0 + n * 8 + 2 * tq + e;
        s[n][e] = key < kend && key <= vis0 ? s[n][e] * scale_log2 : -INFINITY;
        s[n][2 + e] = key < kend && key <= vis1 ? s[n][2 + e] * scale_log2 : -INFINITY;
      }
    // P in the A fragment of P V (score tiles 0 and 1 are its two halves along k)
    float c0, c1;
    uint32_t pa[1][4];
    online_softmax_step<2>(s, m0, m1, l0, l1, c0, c1, pa);
#pragma unroll
    for (int f = 0; f < NO; ++f) {
      o[f][0] *= c0;
      o[f][1] *= c0;
      o[f][2] *= c1;
      o[f][3] *= c1;
    }
    // O += P V over this warp's 16 keys
#pragma unroll
    for (int dp = 0; dp < NO / 2; ++dp) {
      uint32_t vf[4];
      ldsm_x4_trans(vf, Vt + ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 + (lane >> 4) * 8);
      mma_16816(o[2 * dp], pa[0], vf[0], vf[1]);
      mma_16816(o[2 * dp + 1], pa[0], vf[2], vf[3]);
    }
  }
  cp_async_wait<0>();  // only empty groups are left; none may land in what the stages become below

  // merge the four warps: each row's block max M, then sum_w exp2(m_w - M) (l_w, O_w)
  l0 = row_group_sum(l0);
  l1 = row_group_sum(l1);
  if (tq == 0) {
    Ms[w * kDecRows + gq] = m0;
    Ms[w * kDecRows + gq + 8] = m1;
    Ls[w * kDecRows + gq] = l0;
    Ls[w * kDecRows + gq + 8] = l1;
  }
  __syncthreads();  // every warp's m and l; every thread is past its last read of the stages
  auto row_max = [&](int r) {
    float mr = Ms[r];
#pragma unroll
    for (int x = 1; x < 4; ++x) mr = fmaxf(mr, Ms[x * kDecRows + r]);
    return mr == -INFINITY ? 0.f : mr;  // a row that sees no key of the partition: all weights 0
  };
  const float e0 = exp2f(m0 - row_max(gq)), e1 = exp2f(m1 - row_max(gq + 8));
  float* red = reinterpret_cast<float*>(sbase);  // [4][kDecRows][HS]
#pragma unroll
  for (int f = 0; f < NO; ++f) {
    *reinterpret_cast<float2*>(red + ((size_t)w * kDecRows + gq) * HS + f * 8 + 2 * tq) =
        make_float2(o[f][0] * e0, o[f][1] * e0);
    *reinterpret_cast<float2*>(red + ((size_t)w * kDecRows + gq + 8) * HS + f * 8 + 2 * tq) =
        make_float2(o[f][2] * e1, o[f][3] * e1);
  }
  __syncthreads();
  for (int i = tid; i < nrows * HS; i += kAmThreads) {
    const int r = i / HS, d = i % HS;
    const float mr = row_max(r);
    float tot = 0.f, lr = 0.f;
#pragma unroll
    for (int x = 0; x < 4; ++x) {
      tot += red[((size_t)x * kDecRows + r) * HS + d];
      lr += Ls[x * kDecRows + r] * exp2f(Ms[x * kDecRows + r] - mr);
    }
    const int rr = r0 + r, hh = rr / Tq, t = rr % Tq, h = g * group + hh;
    if (nsplit == 1) {
      st1(out + (((int64_t)b * Tq + t) * NH + h) * HS + d, tot / lr);
    } else {
      const int64_t prow = (((int64_t)b * NH + h) * Tq + t) * nsplit + split;
      part_o[prow * HS + d] = tot;
      if (d == 0) {
        float mx = Ms[r];
#pragma unroll
        for (int x = 1; x < 4; ++x) mx = fmaxf(mx, Ms[x * kDecRows + r]);
        part_ml[prow * 2] = mx;  // -inf where the row saw no key here, as attn_decode_kernel writes
        part_ml[prow * 2 + 1] = lr;
      }
    }
  }
  // the merge's weights reuse red
  if (nsplit == 1 || counters == nullptr || !last_to_finish(counters, (int64_t)pt.bg * nchunk + pt.chunk, nsplit))
    return;
  merge_partitions(out, part_o, part_ml, b, g, r0, nrows, group, Tq, NH, HS, nsplit, red, Ls);
}

// ------------------------------------------------------------------------------------------
// Tensor-core forward (HS 64 or 128): bf16 operands, fp32 accumulation via nvcuda::wmma
// m16n16k16, online softmax in fp32. One block of 8 warps per (batch*head, 128-query tile);
// warp w owns query rows 16w..16w+15 of the tile. Per 64-key tile: K and V are converted to bf16
// into shared memory; each warp computes its 16x64 scores S = Q K^T (Q pre-scaled by
// scale*log2e, so scores are in base 2) into accumulator fragments, stores them to its own fp32
// scratch [16][68], two lanes per row apply the causal mask and the online softmax, write P as
// bf16 over the scores (same row pitch in bytes) and the row's correction factor to shared
// memory, then the warp rescales its output fragments and accumulates P V on the tensor cores.
// The output stays in accumulator fragments for the whole key loop; per-row scaling of a
// fragment uses a fragment of row indices (a 16x16 table r loaded with load_matrix_sync), so no
// assumption on the fragment's element layout is made.
namespace wmma = nvcuda::wmma;

constexpr int kTcBQ = 128;             // queries per block (8 warps x 16 rows)
constexpr int kTcBK = 64;              // keys per tile (32 where 64 does not fit: sm_86 / sm_89 at HS 128)

// BK keys per tile: 64 (HS 128: 103.5 KiB), or 32 (71 KiB) for the 99 KiB of sm_86 / sm_89 parts.
template <int HS, int BK = kTcBK>
struct TcGeo {
  static_assert(HS == 64 || HS == 128, "tensor-core attention: HS 64 or 128");
  static_assert(BK == 32 || BK == 64, "key tile of 32 or 64");
  static constexpr int LD = HS + 8;  // bf16 row pitch of the Q, K, V tiles (conflict-free fragments)
  static constexpr int LDS = BK + 4;    // floats: row pitch of a warp's score scratch (68 or 36)
  static constexpr int LDP = 2 * LDS;   // bf16: P rows written over the score rows
  static constexpr size_t q_off = 0;                                          // [128][LD] bf16
  static constexpr size_t k_off = q_off + (size_t)kTcBQ * LD * 2;             // [BK][LD] bf16
  static constexpr size_t v_off = k_off + (size_t)BK * LD * 2;                // [BK][LD] bf16
  static constexpr size_t s_off = v_off + (size_t)BK * LD * 2;                // [8][16][LDS] fp32
  static constexpr size_t rid_off = s_off + (size_t)(kThreads / 32) * 16 * LDS * 4;  // [16][16] fp32
  static constexpr size_t row_off = rid_off + 16 * 16 * 4;                   // [8][16] fp32
  static constexpr size_t bytes = row_off + (size_t)(kThreads / 32) * 16 * 4;
  static_assert(k_off % 128 == 0 && v_off % 128 == 0 && s_off % 128 == 0 && rid_off % 128 == 0, "alignment");
};

// Rows [0, ROWS) x columns [0, HS) of a strided fp32 matrix, times mul, as bf16 into a shared
// tile [ROWS][HS+8]; rows >= nvalid are zero. A thread keeps one column group (kThreads is a
// multiple of HS/4) and walks rows kThreads/(HS/4) apart; loads go out in batches of 4 float4
// (not unrolled further: the output fragments hold most registers).
template <int ROWS, int HS, class S>
__device__ __forceinline__ void tc_load_tile(__nv_bfloat16* dst, const S* src, int64_t stride, int nvalid, bool vec,
                                             float mul) {
  constexpr int C4 = HS / 4, RSTEP = kThreads / C4, IT = ROWS / RSTEP, BATCH = IT < 4 ? IT : 4;
  static_assert(kThreads % C4 == 0 && ROWS % RSTEP == 0 && IT % BATCH == 0, "tile load geometry");
  const int r0 = (int)threadIdx.x / C4, c = ((int)threadIdx.x % C4) * 4;
  const int64_t rstep = (int64_t)RSTEP * stride;
  const S* p = src + r0 * stride + c;
  __nv_bfloat16* d = dst + r0 * (HS + 8) + c;
#pragma unroll 1
  for (int it0 = 0; it0 < IT; it0 += BATCH) {
    float4 buf[BATCH];
#pragma unroll
    for (int j = 0; j < BATCH; ++j) {
      float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
      if (r0 + (it0 + j) * RSTEP < nvalid) x = ldg4(p + j * rstep, c, HS, vec);
      buf[j] = x;
    }
#pragma unroll
    for (int j = 0; j < BATCH; ++j) {
      __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(d + j * RSTEP * (HS + 8));
      o[0] = __floats2bfloat162_rn(buf[j].x * mul, buf[j].y * mul);
      o[1] = __floats2bfloat162_rn(buf[j].z * mul, buf[j].w * mul);
    }
    p += BATCH * rstep;
    d += BATCH * RSTEP * (HS + 8);
  }
}

// Two blocks per SM (128 registers) where the shared memory allows it: not HS 128 on sm_80.
// E: storage of q, k, v and out (fp32, or bf16 read and written directly by the bf16 table).
template <int HS, class E, int BK>
__global__ void __launch_bounds__(kThreads, PUZZLE_ATTN_MINB(2, HS == 128 ? 1 : 2))
    attn_fwd_tc_kernel(E* __restrict__ out, float* __restrict__ lse, const E* __restrict__ q,
                       const E* __restrict__ k, const E* __restrict__ v, int Tq, int past, int NH, int group,
                       int64_t q_bstride, int64_t q_stride, int64_t kv_bstride, int64_t kv_stride, int64_t o_stride,
                       float scale_log2, bool vec_q, bool vec_kv) {
  using G = TcGeo<HS, BK>;
  constexpr int LD = G::LD, NF = HS / 16, LDS = G::LDS, LDP = G::LDP;
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
  using FragBc = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major>;
  using FragBr = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
  extern __shared__ __align__(128) unsigned char tc_smem[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(tc_smem + G::q_off);
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(tc_smem + G::k_off);
  __nv_bfloat16* Vs = reinterpret_cast<__nv_bfloat16*>(tc_smem + G::v_off);
  float* rid = reinterpret_cast<float*>(tc_smem + G::rid_off);  // rid[r][c] = r

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  float* Ss = reinterpret_cast<float*>(tc_smem + G::s_off) + warp * 16 * LDS;  // this warp's scores
  __nv_bfloat16* Ps = reinterpret_cast<__nv_bfloat16*>(Ss);                      // its P, over them
  float* rowv = reinterpret_cast<float*>(tc_smem + G::row_off) + warp * 16;      // per-row factors

  const int bh = blockIdx.x, b = bh / NH, h = bh % NH, g = h / group;
  const int q0 = ((int)gridDim.y - 1 - (int)blockIdx.y) * kTcBQ;  // the longest tiles start first
  const int nk = past + Tq;
  const E* kb = k + b * kv_bstride + (int64_t)g * HS;
  const E* vb = v + b * kv_bstride + (int64_t)g * HS;

  rid[tid] = (float)(tid / 16);  // 256 threads: one 16x16 table
  tc_load_tile<kTcBQ, HS>(Qs, q + b * q_bstride + q0 * q_stride + (int64_t)h * HS, q_stride, Tq - q0, vec_q,
                          scale_log2);

  // Softmax geometry: lanes 2r and 2r+1 own row r of the warp's 16 (columns 4j + 2*half + {0,1}).
  const int r = lane >> 1, half = lane & 1;
  const int wrow0 = q0 + warp * 16;               // first query row of this warp
  const bool warp_live = wrow0 < Tq;              // warp-uniform: some row of the warp is valid
  const int row_pos = past + wrow0 + r;           // keys <= row_pos are visible to row r
  const int warp_last = past + wrow0 + 15;        // the furthest key any row of the warp sees
  float m_run = -INFINITY, l_run = 0.f;

  FragC o[NF];
#pragma unroll
  for (int f = 0; f < NF; ++f) wmma::fill_fragment(o[f], 0.f);

  const int last_key = past + imin(q0 + kTcBQ, Tq) - 1;  // the furthest key a valid row of this tile sees
  const int nkt = last_key / BK + 1;
  for (int kt = 0; kt < nkt; ++kt) {
    const int k0 = kt * BK;
    __syncthreads();  // every warp is done with the previous K, V tiles (first tile: nothing)
    tc_load_tile<BK, HS>(Ks, kb + (int64_t)k0 * kv_stride, kv_stride, nk - k0, vec_kv, 1.f);
    tc_load_tile<BK, HS>(Vs, vb + (int64_t)k0 * kv_stride, kv_stride, nk - k0, vec_kv, 1.f);
    __syncthreads();  // K, V (first tile: Q and the row table) are in shared memory
    if (!warp_live || k0 > warp_last) continue;  // warp-uniform: the whole tile is masked for this warp

    // S = Q K^T, 16 x 64, into the warp's scratch (two halves of 32 keys: fewer live registers)
#pragma unroll
    for (int n0 = 0; n0 < BK / 16; n0 += 2) {
      FragC s[2];
      wmma::fill_fragment(s[0], 0.f);
      wmma::fill_fragment(s[1], 0.f);
#pragma unroll
      for (int kk = 0; kk < HS; kk += 16) {
        FragA a;
        wmma::load_matrix_sync(a, Qs + warp * 16 * LD + kk, LD);
#pragma unroll
        for (int n = 0; n < 2; ++n) {
          FragBc bk;
          wmma::load_matrix_sync(bk, Ks + (n0 + n) * 16 * LD + kk, LD);
          wmma::mma_sync(s[n], a, bk, s[n]);
        }
      }
      wmma::store_matrix_sync(Ss + n0 * 16, s[0], LDS, wmma::mem_row_major);
      wmma::store_matrix_sync(Ss + (n0 + 1) * 16, s[1], LDS, wmma::mem_row_major);
    }
    __syncwarp();

    // causal mask and online softmax of row r (two lanes): the max in a first pass over the scores,
    // then exponentials rounded to bf16 (packed in registers) and summed as rounded, so the
    // weights that multiply V are exactly the ones that l normalises
    const float* srow = Ss + r * LDS;
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < BK / 4; ++j) {
      const int c = 4 * j + 2 * half;
      const float2 x = *reinterpret_cast<const float2*>(srow + c);
      if (k0 + c <= row_pos) mx = fmaxf(mx, x.x);
      if (k0 + c + 1 <= row_pos) mx = fmaxf(mx, x.y);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float m_new = fmaxf(m_run, mx);
    const float m_use = m_new == -INFINITY ? 0.f : m_new;
    const float corr = exp2f(m_run - m_use);
    __nv_bfloat162 pv[BK / 4];
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < BK / 4; ++j) {
      const int c = 4 * j + 2 * half;
      const float2 x = *reinterpret_cast<const float2*>(srow + c);
      const float e0 = k0 + c <= row_pos ? exp2f(x.x - m_use) : 0.f;
      const float e1 = k0 + c + 1 <= row_pos ? exp2f(x.y - m_use) : 0.f;
      pv[j] = __floats2bfloat162_rn(e0, e1);
      sum += __low2float(pv[j]) + __high2float(pv[j]);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l_run = l_run * corr + sum;
    m_run = m_new;
    const bool rescale = !__all_sync(0xffffffffu, corr == 1.f);
    __syncwarp();  // both lanes of every row have read its scores: P may overwrite them
    {
      __nv_bfloat16* prow = Ps + r * LDP;
#pragma unroll
      for (int j = 0; j < BK / 4; ++j) *reinterpret_cast<__nv_bfloat162*>(prow + 4 * j + 2 * half) = pv[j];
      if (half == 0) rowv[r] = corr;
    }
    __syncwarp();

    if (rescale) {  // O *= corr per row
      FragC ids;
      wmma::load_matrix_sync(ids, rid, 16, wmma::mem_row_major);
#pragma unroll
      for (int i = 0; i < ids.num_elements; ++i) {
        const float cf = rowv[(int)ids.x[i]];
#pragma unroll
        for (int f = 0; f < NF; ++f) o[f].x[i] *= cf;
      }
    }

    // O += P V (the key steps not unrolled: 8 independent products each, and fewer live registers)
#pragma unroll 1
    for (int kk = 0; kk < BK; kk += 16) {
      FragA pa;
      wmma::load_matrix_sync(pa, Ps + kk, LDP);
#pragma unroll
      for (int f = 0; f < NF; ++f) {
        FragBr vf;
        wmma::load_matrix_sync(vf, Vs + kk * LD + f * 16, LD);
        wmma::mma_sync(o[f], pa, vf, o[f]);
      }
    }
  }

  if (!warp_live) return;  // warp-uniform; no block barrier follows
  __syncwarp();            // every lane is done reading rowv and P of the last tile
  if (half == 0) {
    rowv[r] = 1.f / l_run;
    const int i = wrow0 + r;
    if (lse != nullptr && i < Tq) lse[((int64_t)b * NH + h) * Tq + i] = m_run * kLn2 + logf(l_run);
  }
  __syncwarp();
  {
    FragC ids;
    wmma::load_matrix_sync(ids, rid, 16, wmma::mem_row_major);
#pragma unroll
    for (int i = 0; i < ids.num_elements; ++i) {
      const float inv = rowv[(int)ids.x[i]];
#pragma unroll
      for (int f = 0; f < NF; ++f) o[f].x[i] *= inv;
    }
  }
  // 64 columns at a time through the score scratch, then coalesced row stores
#pragma unroll
  for (int f0 = 0; f0 < NF; f0 += BK / 16) {
#pragma unroll
    for (int f = 0; f < BK / 16; ++f)
      wmma::store_matrix_sync(Ss + f * 16, o[f0 + f], LDS, wmma::mem_row_major);
    __syncwarp();
#pragma unroll 4
    for (int idx = lane; idx < 16 * BK; idx += 32) {
      const int rr = idx / BK, c = idx % BK, i = wrow0 + rr;
      if (i < Tq) st1(out + ((int64_t)b * Tq + i) * o_stride + (int64_t)h * HS + f0 * 16 + c, Ss[rr * LDS + c]);
    }
    __syncwarp();  // the scratch is rewritten by the next chunk
  }
}

// ------------------------------------------------------------------------------------------
// Tensor-core backward (HS 64 or 128), the counterpart of attn_fwd_tc_kernel: bf16 operands,
// fp32 accumulation (wmma m16n16k16), FlashAttention-2 structure like attn_bwd_kernel. One block
// of 8 warps per (batch*kv-head, BK-key tile); K and V are converted to bf16 in shared memory
// once. The block loops over the query heads of the group and the 64-query tiles at or after its
// key tile; per step (three block barriers):
//  1. Q and dO of the step -> bf16 shared tiles; lse*log2e and D of its rows -> shared floats
//     (TbStepLoad: the loads start before the barrier that frees the tiles).
//  2. Warp w takes query rows 16*(w/2).. and BK/2 keys, two 16x16 fragments at a time: S = Q K^T,
//     elementwise P = exp2(S*scale*log2e - lse*log2e) (causal mask, rows < T) written as bf16 to
//     the shared P tile [64][BK]; then dP = dO V^T into the same fragments and dS = P (dP - D)
//     scale (P read back as rounded: what dV uses too) written as bf16 to the dS tile.
//  3. dV += P^T dO and dK += dS^T Q into accumulator fragments that live for the whole block
//     (warp w: key rows 16*(w/(128/BK)).., HS*BK/128 columns); dQ = dS K for the step into
//     fragments (warp w: query rows 16*(w/2).., HS/2 columns, two fragments at a time), added to
//     dq with fp32 atomicAdd (other key tiles add to the same rows), like FlashAttention-2.
// At the end dK and dV are added (+=) to dk/dv: the block owns those rows. The elementwise work
// on fragments needs each element's (row, column): a 16x16 table holding 16r + c is loaded into
// an accumulator fragment, so no assumption on the hardware's fragment layout is made (the same
// trick as the forward's row table). It is reloaded from shared memory at each use: kept in
// registers across the loops, it (and the addresses the compiler hoists from it) cost ~30
// registers, and the dK/dV fragments already hold 64 of the 128 that two blocks per SM allow.
// The A fragment of a row block is reused across the warp's column fragments (S/dP: 2, dV/dK:
// HS*BK/2048, dQ: 2), so shared-memory fragment traffic stays ~1.25-1.5 loads per mma.
// Sizes (shared memory, blocks per SM): HS 128: BK 64, 105.5 KiB (2 on sm_90, 1 on sm_80);
// HS 64: BK 128 on sm_90 (107.5 KiB, 2), BK 64 on sm_80 (73.5 KiB, 2). A 128-key tile halves the
// dq atomics and the Q/dO reloads, but for HS 128 its dK/dV fragments alone would take 128
// registers (one block per SM).
constexpr int kTbBQ = 64;   // queries per step (4 row blocks of 16, two warps each)

// DQF: dQ fragments a warp stages at a time (2: a warp's atomics cover 32 columns of a row; 1:
// half the staging, 8 KiB less, which fits HS 128 into the 99 KiB of sm_86 / sm_89 parts).
template <int HS, int BK, int DQF = 2>
struct TbGeo {
  static_assert(HS == 64 || HS == 128, "tensor-core attention backward: HS 64 or 128");
  static_assert(BK == 64 || BK == 128, "key tile of 64 or 128");
  static constexpr int LD = HS + 8;     // bf16 row pitch of K, V, Q, dO (conflict-free fragments)
  static constexpr int LDP = BK + 8;    // bf16 row pitch of P and dS
  static constexpr int WPK = 128 / BK;  // warps per 16-key row block of dK, dV
  static constexpr int NFD = HS / 16 / WPK;  // dK (and dV) fragments per warp
  static constexpr int NFQ = HS / 32;        // dQ fragments per warp
  static_assert(DQF == 1 || DQF == 2, "dQ staged one or two fragments at a time");
  static constexpr int LDQ = 16 * DQF + 4;   // fp32 row pitch of a warp's dQ staging [16][16 DQF]
  static constexpr size_t k_off = 0;                                    // [BK][LD] bf16
  static constexpr size_t v_off = k_off + (size_t)BK * LD * 2;          // [BK][LD] bf16
  static constexpr size_t q_off = v_off + (size_t)BK * LD * 2;          // [64][LD] bf16
  static constexpr size_t do_off = q_off + (size_t)kTbBQ * LD * 2;      // [64][LD] bf16
  static constexpr size_t p_off = do_off + (size_t)kTbBQ * LD * 2;      // [64][LDP] bf16
  static constexpr size_t ds_off = p_off + (size_t)kTbBQ * LDP * 2;     // [64][LDP] bf16
  static constexpr size_t idx_off = ds_off + (size_t)kTbBQ * LDP * 2;   // [16][16] fp32: 16r + c
  static constexpr size_t dq_off = idx_off + 16 * 16 * 4;              // [8][16][LDQ] fp32: dQ staging
  static constexpr size_t row_off = dq_off + (size_t)(kThreads / 32) * 16 * LDQ * 4;  // [2][64] fp32
  static constexpr size_t bytes = row_off + 2 * kTbBQ * 4;
  static_assert(v_off % 128 == 0 && q_off % 128 == 0 && do_off % 128 == 0 && p_off % 128 == 0 &&
                    ds_off % 128 == 0 && idx_off % 128 == 0 && dq_off % 128 == 0,
                "alignment");
  // Two blocks per SM on sm_90 (228 KiB per SM, 1 KiB reserved per block): __launch_bounds__
  // sizes the registers for that.
  static_assert(2 * (bytes + 1024) <= 228 * 1024, "two blocks per SM on sm_90");
};

// Blocks per SM on sm_80 (164 KiB per SM): two where they fit.
template <int HS, int BK, int DQF>
constexpr int tb_minb80() {
  return 2 * (TbGeo<HS, BK, DQF>::bytes + 1024) <= 164 * 1024 ? 2 : 1;
}

// The Q and dO rows of a backward step as bf16 tiles [64][HS+8] (rows >= nvalid zero), with the
// geometry of tc_load_tile, in batches of BATCH float4 per thread and tile so that a batch of
// both tiles is in flight at once. load() and store() are split: the first batch is issued
// before the barrier that frees the tiles, so its latency overlaps the wait for the other warps.
template <int HS>
struct TbStepLoad {
  static constexpr int C4 = HS / 4, RSTEP = kThreads / C4, IT = kTbBQ / RSTEP, BATCH = IT < 4 ? IT : 4;
  static_assert(kThreads % C4 == 0 && kTbBQ % RSTEP == 0 && IT % BATCH == 0, "tile load geometry");
  float4 qb[BATCH], ob[BATCH];

  template <class E>
  __device__ __forceinline__ void load(const E* q, int64_t q_stride, bool vec_q, const E* o, int64_t o_stride,
                                       bool vec_o, int nvalid, int it0) {
    const int r = (int)threadIdx.x / C4 + it0 * RSTEP, c = ((int)threadIdx.x % C4) * 4;
#pragma unroll
    for (int j = 0; j < BATCH; ++j) {
      const int rr = r + j * RSTEP;
      qb[j] = ob[j] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (rr < nvalid) {
        qb[j] = ldg4(q + rr * q_stride + c, c, HS, vec_q);
        ob[j] = ldg4(o + rr * o_stride + c, c, HS, vec_o);
      }
    }
  }
  __device__ __forceinline__ void store(__nv_bfloat16* Qs, __nv_bfloat16* dOs, int it0) const {
    const int r = (int)threadIdx.x / C4 + it0 * RSTEP, c = ((int)threadIdx.x % C4) * 4;
#pragma unroll
    for (int j = 0; j < BATCH; ++j) {
      const int at = (r + j * RSTEP) * (HS + 8) + c;
      __nv_bfloat162* dq2 = reinterpret_cast<__nv_bfloat162*>(Qs + at);
      __nv_bfloat162* do2 = reinterpret_cast<__nv_bfloat162*>(dOs + at);
      dq2[0] = __floats2bfloat162_rn(qb[j].x, qb[j].y);
      dq2[1] = __floats2bfloat162_rn(qb[j].z, qb[j].w);
      do2[0] = __floats2bfloat162_rn(ob[j].x, ob[j].y);
      do2[1] = __floats2bfloat162_rn(ob[j].z, ob[j].w);
    }
  }
};

// (row, column) of element i of an accumulator fragment, from the index fragment (16r + c).
__device__ __forceinline__ int frag_row(int e) { return e >> 4; }
__device__ __forceinline__ int frag_col(int e) { return e & 15; }

// E: storage of dout, q, k, v, dk and dv (fp32, or bf16 read and written directly by the bf16
// table); dq is fp32 either way (row stride dq_stride): the key tiles add into it with atomics.
template <int HS, int BK, class E, int DQF>
__global__ void __launch_bounds__(kThreads, PUZZLE_ATTN_MINB(2, (tb_minb80<HS, BK, DQF>())))
    attn_bwd_tc_kernel(float* __restrict__ dq, E* __restrict__ dk, E* __restrict__ dv, const E* __restrict__ dout,
                       const E* __restrict__ q, const E* __restrict__ k, const E* __restrict__ v,
                       const float* __restrict__ lse, const float* __restrict__ Dsum, int T, int NH, int NKV,
                       int group, int64_t q_stride, int64_t dq_stride, int64_t kv_stride, int64_t o_stride,
                       float scale, bool vec_q, bool vec_kv, bool vec_o) {
  using G = TbGeo<HS, BK, DQF>;
  constexpr int BQ = kTbBQ, LD = G::LD, LDP = G::LDP, WPK = G::WPK, NFD = G::NFD, NFQ = G::NFQ, LDQ = G::LDQ;
  constexpr int SPW = BK / 32;  // S/dP column fragments per warp, done two at a time
  static_assert(SPW % 2 == 0, "S/dP fragments in pairs");
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
  using FragAc = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major>;
  using FragBc = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major>;
  using FragBr = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
  constexpr int NE = FragC::num_elements;
  extern __shared__ __align__(128) unsigned char tc_smem[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(tc_smem + G::k_off);
  __nv_bfloat16* Vs = reinterpret_cast<__nv_bfloat16*>(tc_smem + G::v_off);
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(tc_smem + G::q_off);
  __nv_bfloat16* dOs = reinterpret_cast<__nv_bfloat16*>(tc_smem + G::do_off);
  __nv_bfloat16* Ps = reinterpret_cast<__nv_bfloat16*>(tc_smem + G::p_off);
  __nv_bfloat16* dSs = reinterpret_cast<__nv_bfloat16*>(tc_smem + G::ds_off);
  float* idx = reinterpret_cast<float*>(tc_smem + G::idx_off);
  float* lse_s = reinterpret_cast<float*>(tc_smem + G::row_off);  // [64] lse*log2e of the step's rows
  float* d_s = lse_s + BQ;                                          // [64] D of the step's rows

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  float* wdq = reinterpret_cast<float*>(tc_smem + G::dq_off) + warp * 16 * LDQ;  // this warp's dQ staging
  const int b = blockIdx.x / NKV, g = blockIdx.x % NKV;
  const int k0 = blockIdx.y * BK;  // the longest key tiles (small k0) start first
  const float scale_log2 = scale * kLog2e;

  idx[tid] = (float)tid;  // 256 threads: element (r, c) holds 16r + c
  {
    const int64_t off = ((int64_t)b * T + k0) * kv_stride + (int64_t)g * HS;
    tc_load_tile<BK, HS>(Ks, k + off, kv_stride, T - k0, vec_kv, 1.f);
    tc_load_tile<BK, HS>(Vs, v + off, kv_stride, T - k0, vec_kv, 1.f);
  }
  __syncthreads();

  const int rb = warp / 2;                  // S/dP and dQ: query row block of this warp
  const int kb = warp / WPK;                // dK/dV: key row block
  const int nd0 = (warp % WPK) * NFD;       // dK/dV: first column fragment
  const int nq0 = (warp % 2) * NFQ;         // dQ: first column fragment
  FragC dk_acc[NFD], dv_acc[NFD];
#pragma unroll
  for (int f = 0; f < NFD; ++f) {
    wmma::fill_fragment(dk_acc[f], 0.f);
    wmma::fill_fragment(dv_acc[f], 0.f);
  }

  const int nqt = (T + BQ - 1) / BQ;
  for (int hh = 0; hh < group; ++hh) {
    const int h = g * group + hh;
    const float* lse_h = lse + ((int64_t)b * NH + h) * T;
    const float* D_h = Dsum + ((int64_t)b * NH + h) * T;
    for (int qt = k0 / BQ; qt < nqt; ++qt) {
      const int q0 = qt * BQ;
      const E* qsrc = q + ((int64_t)b * T + q0) * q_stride + (int64_t)h * HS;
      const E* osrc = dout + ((int64_t)b * T + q0) * o_stride + (int64_t)h * HS;
      TbStepLoad<HS> ld;
      ld.load(qsrc, q_stride, vec_q, osrc, o_stride, vec_o, T - q0, 0);
      float lse_v = 0.f, d_v = 0.f;
      if (tid < BQ && q0 + tid < T) {
        lse_v = lse_h[q0 + tid] * kLog2e;
        d_v = D_h[q0 + tid];
      }
      __syncthreads();  // the previous step is done with Qs, dOs, Ps, dSs and the row values
      ld.store(Qs, dOs, 0);
      if (tid < BQ) {
        lse_s[tid] = lse_v;
        d_s[tid] = d_v;
      }
#pragma unroll 1
      for (int it0 = ld.BATCH; it0 < ld.IT; it0 += ld.BATCH) {  // HS 128: the second half
        ld.load(qsrc, q_stride, vec_q, osrc, o_stride, vec_o, T - q0, it0);
        ld.store(Qs, dOs, it0);
      }
      __syncthreads();

      // S = Q K^T for rows 16rb.., keys 16cb.. -> P (bf16) to shared; then dP = dO V^T on the same
      // fragments -> dS = P (dP - D) scale (bf16), with P read back (each lane rereads only the
      // elements it wrote, so no barrier; fewer live registers than holding S and dP together)
#pragma unroll 1
      for (int j = 0; j < SPW; j += 2) {
        const int cb = (warp % 2) * SPW + j;
        FragC acc[2];
        wmma::fill_fragment(acc[0], 0.f);
        wmma::fill_fragment(acc[1], 0.f);
#pragma unroll 1
        for (int kk = 0; kk < HS; kk += 16) {
          FragA qa;
          wmma::load_matrix_sync(qa, Qs + rb * 16 * LD + kk, LD);
#pragma unroll
          for (int n = 0; n < 2; ++n) {
            FragBc kf;
            wmma::load_matrix_sync(kf, Ks + (cb + n) * 16 * LD + kk, LD);
            wmma::mma_sync(acc[n], qa, kf, acc[n]);
          }
        }
        FragC eid;
        wmma::load_matrix_sync(eid, idx, 16, wmma::mem_row_major);
#pragma unroll
        for (int n = 0; n < 2; ++n)
#pragma unroll
          for (int i = 0; i < NE; ++i) {
            const int e = (int)eid.x[i], r = rb * 16 + frag_row(e), c = (cb + n) * 16 + frag_col(e);
            const int qi = q0 + r;
            const float p = (k0 + c <= qi && qi < T) ? exp2f(acc[n].x[i] * scale_log2 - lse_s[r]) : 0.f;
            Ps[r * LDP + c] = __float2bfloat16(p);
          }
        wmma::fill_fragment(acc[0], 0.f);
        wmma::fill_fragment(acc[1], 0.f);
#pragma unroll 1
        for (int kk = 0; kk < HS; kk += 16) {
          FragA oa;
          wmma::load_matrix_sync(oa, dOs + rb * 16 * LD + kk, LD);
#pragma unroll
          for (int n = 0; n < 2; ++n) {
            FragBc vf;
            wmma::load_matrix_sync(vf, Vs + (cb + n) * 16 * LD + kk, LD);
            wmma::mma_sync(acc[n], oa, vf, acc[n]);
          }
        }
        wmma::load_matrix_sync(eid, idx, 16, wmma::mem_row_major);
#pragma unroll
        for (int n = 0; n < 2; ++n)
#pragma unroll
          for (int i = 0; i < NE; ++i) {
            const int e = (int)eid.x[i], r = rb * 16 + frag_row(e), c = (cb + n) * 16 + frag_col(e);
            const float p = __bfloat162float(Ps[r * LDP + c]);
            dSs[r * LDP + c] = __float2bfloat16(p * (acc[n].x[i] - d_s[r]) * scale);
          }
      }
      __syncthreads();

      // dV += P^T dO, dK += dS^T Q: P^T and dS^T are the shared tiles read column-major
#pragma unroll 1
      for (int kq = 0; kq < BQ; kq += 16) {
        FragAc pa, sa;
        wmma::load_matrix_sync(pa, Ps + kq * LDP + kb * 16, LDP);
        wmma::load_matrix_sync(sa, dSs + kq * LDP + kb * 16, LDP);
#pragma unroll
        for (int f = 0; f < NFD; ++f) {
          FragBr of, qf;
          wmma::load_matrix_sync(of, dOs + kq * LD + (nd0 + f) * 16, LD);
          wmma::mma_sync(dv_acc[f], pa, of, dv_acc[f]);
          wmma::load_matrix_sync(qf, Qs + kq * LD + (nd0 + f) * 16, LD);
          wmma::mma_sync(dk_acc[f], sa, qf, dk_acc[f]);
        }
      }

      // dQ = dS K for rows 16rb.., two column fragments at a time (registers: the dK, dV
      // fragments are live), added to dq (other key tiles add to the same rows) through the
      // warp's staging: a warp's atomics then cover one 128-byte row (4 full sectors) instead of
      // fragment elements strewn over 8 rows, half the L2 atomic traffic
      if (dq != nullptr) {
#pragma unroll 1
        for (int f0 = 0; f0 < NFQ; f0 += DQF) {
          FragC acc[DQF];
#pragma unroll
          for (int f = 0; f < DQF; ++f) wmma::fill_fragment(acc[f], 0.f);
#pragma unroll 1
          for (int kk = 0; kk < BK; kk += 16) {
            FragA sa;
            wmma::load_matrix_sync(sa, dSs + rb * 16 * LDP + kk, LDP);
#pragma unroll
            for (int f = 0; f < DQF; ++f) {
              FragBr kf;
              wmma::load_matrix_sync(kf, Ks + kk * LD + (nq0 + f0 + f) * 16, LD);
              wmma::mma_sync(acc[f], sa, kf, acc[f]);
            }
          }
#pragma unroll
          for (int f = 0; f < DQF; ++f) wmma::store_matrix_sync(wdq + 16 * f, acc[f], LDQ, wmma::mem_row_major);
          __syncwarp();
          const int nrows = imin(16, T - (q0 + rb * 16));
          // lane -> column lane % (16 DQF), rows lane / (16 DQF) apart by 32 / (16 DQF)
          const int col = lane % (16 * DQF), rstep = 2 / DQF;
          float* dst = dq + ((int64_t)b * T + q0 + rb * 16) * dq_stride + (int64_t)h * HS + (nq0 + f0) * 16 + col;
#pragma unroll 2  // 4 spills a register on sm_90
          for (int r = lane / (16 * DQF); r < nrows; r += rstep) atomicAdd(dst + r * dq_stride, wdq[r * LDQ + col]);
          __syncwarp();  // the staging is rewritten by the next fragments
        }
      }
    }
  }

  // this block owns rows [k0, k0+BK) of kv head g: plain read-modify-write accumulation (bf16:
  // the sum in fp32, rounded once)
  FragC eid;
  wmma::load_matrix_sync(eid, idx, 16, wmma::mem_row_major);
  const int64_t base = ((int64_t)b * T + k0 + kb * 16) * kv_stride + (int64_t)g * HS + nd0 * 16;
#pragma unroll
  for (int i = 0; i < NE; ++i) {
    const int e = (int)eid.x[i], r = frag_row(e), c = frag_col(e);
    if (k0 + kb * 16 + r < T) {
      const int64_t off = base + r * kv_stride + c;
#pragma unroll
      for (int f = 0; f < NFD; ++f) {
        if (dk != nullptr) st1(dk + off + f * 16, ld1(dk + off + f * 16) + dk_acc[f].x[i]);
        if (dv != nullptr) st1(dv + off + f * 16, ld1(dv + off + f * 16) + dv_acc[f].x[i]);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------
// Host side.

// Records why a kernel cannot run here: its tiles need more shared memory than the device grants.
void refuse_smem(size_t bytes, const char* where) {
  const std::string why = std::string(where) + ": the kernel needs " + std::to_string((bytes + 1023) / 1024) +
                          " KiB of shared memory a block and this GPU grants " +
                          std::to_string(device_smem_optin() / 1024) + " KiB";
  record_error(cudaErrorInvalidConfiguration, why.c_str());
}

// D for the backward, partition results for the split-KV decode (cuda/scratch.cuh)
Scratch& scratch() {
  static Scratch s("attention scratch");
  return s;
}

bool aligned16(const void* p, int64_t stride, int64_t HS) {
  return ((uintptr_t)p % 16 == 0) && stride % 4 == 0 && HS % 4 == 0;
}
// Vectors of 4 elements of E at every row start and every 4th column (16 bytes fp32, 8 bf16).
template <class E>
bool vec4_rows(const E* p, int64_t stride, int64_t HS) {
  return ((uintptr_t)p % (4 * sizeof(E)) == 0) && stride % 4 == 0 && HS % 4 == 0;
}

int padded_head_size(int64_t HS) {
  if (HS <= 0) return 0;
  if (HS <= 32) return 32;
  if (HS <= 64) return 64;
  if (HS <= 128) return 128;
  if (HS <= 256) return 256;
  return 0;
}

template <class E>
struct FwdArgsT {
  E* out;
  float* lse;
  const E* q;
  const E* k;
  const E* v;
  int64_t B, Tq, past, NH, NKV, HS, q_bstride, q_stride, kv_bstride, kv_stride;
};
using FwdArgs = FwdArgsT<float>;

template <int HSP, int BQ, int BK, int MINB90, int MINB80>
void launch_fwd(const FwdArgs& a, const char* where) {
  constexpr size_t smem = fwd_smem_bytes<HSP, BQ, BK>();
  auto kernel = attn_fwd_kernel<HSP, BQ, BK, MINB90, MINB80>;
  static const bool ok = raise_smem_limit(kernel, smem);
  if (!ok) {
    refuse_smem(smem, where);
    return;
  }
  const float scale_log2 = (1.f / std::sqrt((float)a.HS)) * kLog2e;
  const bool vec_q = aligned16(a.q, a.q_stride, a.HS) && a.q_bstride % 4 == 0;
  const bool vec_kv = aligned16(a.k, a.kv_stride, a.HS) && aligned16(a.v, a.kv_stride, a.HS) && a.kv_bstride % 4 == 0;
  const dim3 grid((unsigned)(a.B * a.NH), (unsigned)((a.Tq + BQ - 1) / BQ));
  kernel<<<grid, kThreads, smem, stream()>>>(a.out, a.lse, a.q, a.k, a.v, (int)a.Tq, (int)a.past, (int)a.NH,
                                             (int)(a.NH / a.NKV), (int)a.HS, a.q_bstride, a.q_stride, a.kv_bstride,
                                             a.kv_stride, a.NH * a.HS, scale_log2, vec_q, vec_kv);
  PUZZLE_CUDA_CHECK_LAUNCH(where);
}

// PUZZLE_CUDA_ATTN=simt (read once) forces the fp32 SIMT forward and backward for every head size.
bool attn_simt_forced() {
  static const bool forced = [] {
    const char* e = std::getenv("PUZZLE_CUDA_ATTN");
    return e != nullptr && std::strcmp(e, "simt") == 0;
  }();
  return forced;
}

// Whether the device grants a kernel `bytes` of shared memory (up to 48 KiB always; beyond, what
// it offers to opt in to: 227 KiB on sm_90, 163 KiB on sm_80, 99 KiB on sm_86 and sm_89).
bool smem_fits(size_t bytes) { return bytes <= 48 * 1024 || (int64_t)bytes <= device_smem_optin(); }

// The tensor-core kernels serve HS 64 and 128 where the device has the shared memory for them
// (on the 99 KiB of sm_86 / sm_89 parts at HS 128 the forward takes 32-key tiles and the
// backward stages dQ in halves).
bool use_tc_fwd(int64_t HS) {
  if (attn_simt_forced()) return false;
  return HS == 64 ? smem_fits(TcGeo<64, 32>::bytes) : HS == 128 && smem_fits(TcGeo<128, 32>::bytes);
}
bool use_tc_bwd(int64_t HS) {
  if (attn_simt_forced()) return false;
  return HS == 64 ? smem_fits(TbGeo<64, 64>::bytes) : HS == 128 && smem_fits(TbGeo<128, 64, 1>::bytes);
}

template <int HS, int BK, class E>
void launch_fwd_tc_bk(const FwdArgsT<E>& a, const char* where) {
  constexpr size_t smem = TcGeo<HS, BK>::bytes;
  auto kernel = attn_fwd_tc_kernel<HS, E, BK>;
  static const bool ok = raise_smem_limit(kernel, smem);
  if (!ok) {
    refuse_smem(smem, where);
    return;
  }
  const float scale_log2 = (1.f / std::sqrt((float)a.HS)) * kLog2e;
  const bool vec_q = vec4_rows(a.q, a.q_stride, a.HS) && a.q_bstride % 4 == 0;
  const bool vec_kv = vec4_rows(a.k, a.kv_stride, a.HS) && vec4_rows(a.v, a.kv_stride, a.HS) && a.kv_bstride % 4 == 0;
  const dim3 grid((unsigned)(a.B * a.NH), (unsigned)((a.Tq + kTcBQ - 1) / kTcBQ));
  kernel<<<grid, kThreads, smem, stream()>>>(a.out, a.lse, a.q, a.k, a.v, (int)a.Tq, (int)a.past, (int)a.NH,
                                             (int)(a.NH / a.NKV), a.q_bstride, a.q_stride, a.kv_bstride, a.kv_stride,
                                             a.NH * a.HS, scale_log2, vec_q, vec_kv);
  PUZZLE_CUDA_CHECK_LAUNCH(where);
}

// 64-key tiles where they fit (HS 64: 71.5 KiB, HS 128: 103.5 KiB), else 32 (HS 128: 71 KiB).
template <int HS, class E>
void launch_fwd_tc(const FwdArgsT<E>& a, const char* where) {
  if (smem_fits(TcGeo<HS, 64>::bytes))
    launch_fwd_tc_bk<HS, 64>(a, where);
  else
    launch_fwd_tc_bk<HS, 32>(a, where);
}

// allow_tc: the tensor-core kernel may serve this call (attention_forward; the cached prefill
// keeps the fp32 kernel).
void dispatch_fwd(const FwdArgs& a, const char* where, bool allow_tc) {
  if (allow_tc && use_tc_fwd(a.HS)) {
    if (a.HS == 64)
      launch_fwd_tc<64, float>(a, where);
    else
      launch_fwd_tc<128, float>(a, where);
    return;
  }
  switch (padded_head_size(a.HS)) {
    case 32: launch_fwd<32, 64, 64, 2, 2>(a, where); break;     //  38 KiB shared
    case 64: launch_fwd<64, 64, 64, 2, 2>(a, where); break;     //  54 KiB
    case 128: launch_fwd<128, 64, 64, 2, 1>(a, where); break;   //  86 KiB
    case 256:
      if (smem_fits(fwd_smem_bytes<256, 64, 64>()))
        launch_fwd<256, 64, 64, 1, 1>(a, where);  // 150 KiB
      else
        launch_fwd<256, 32, 32, 1, 1>(a, where);  //  73 KiB: sm_86 / sm_89
      break;
    default: record_error(cudaErrorInvalidValue, where);
  }
}

// dq is fp32 for either storage E (the tensor-core kernel adds key tiles into it with atomics),
// row stride dq_stride (the fp32 table's dq shares q's stride).
template <class E>
struct BwdArgsT {
  float* dq;
  E* dk;
  E* dv;
  const E* dout;
  const E* q;
  const E* k;
  const E* v;
  const float* lse;
  const float* D;
  int64_t B, T, NH, NKV, HS, q_stride, dq_stride, kv_stride;
};
using BwdArgs = BwdArgsT<float>;

template <int HSP, int BQ, int BK, int MINB90, int MINB80>
void launch_bwd(const BwdArgs& a) {
  const char* where = "attention_backward";
  constexpr size_t smem = bwd_smem_bytes<HSP, BQ, BK>();
  auto kernel = attn_bwd_kernel<HSP, BQ, BK, MINB90, MINB80>;
  static const bool ok = raise_smem_limit(kernel, smem);
  if (!ok) {
    refuse_smem(smem, where);
    return;
  }
  const int64_t o_stride = a.NH * a.HS;
  const bool vec_q = aligned16(a.q, a.q_stride, a.HS);
  const bool vec_kv = aligned16(a.k, a.kv_stride, a.HS) && aligned16(a.v, a.kv_stride, a.HS);
  const bool vec_o = aligned16(a.dout, o_stride, a.HS);
  const dim3 grid((unsigned)(a.B * a.NKV), (unsigned)((a.T + BK - 1) / BK));
  kernel<<<grid, kThreads, smem, stream()>>>(a.dq, a.dk, a.dv, a.dout, a.q, a.k, a.v, a.lse, a.D, (int)a.T,
                                             (int)a.NH, (int)a.NKV, (int)(a.NH / a.NKV), (int)a.HS, a.q_stride,
                                             a.kv_stride, o_stride, 1.f / std::sqrt((float)a.HS), vec_q, vec_kv,
                                             vec_o);
  PUZZLE_CUDA_CHECK_LAUNCH(where);
}

template <int HS, int BK, int DQF = 2, class E>
void launch_bwd_tc(const BwdArgsT<E>& a, const char* where) {
  constexpr size_t smem = TbGeo<HS, BK, DQF>::bytes;
  auto kernel = attn_bwd_tc_kernel<HS, BK, E, DQF>;
  static const bool ok = raise_smem_limit(kernel, smem);
  if (!ok) {
    refuse_smem(smem, where);
    return;
  }
  const int64_t o_stride = a.NH * a.HS;
  const bool vec_q = vec4_rows(a.q, a.q_stride, a.HS);
  const bool vec_kv = vec4_rows(a.k, a.kv_stride, a.HS) && vec4_rows(a.v, a.kv_stride, a.HS);
  const bool vec_o = vec4_rows(a.dout, o_stride, a.HS);
  const dim3 grid((unsigned)(a.B * a.NKV), (unsigned)((a.T + BK - 1) / BK));
  kernel<<<grid, kThreads, smem, stream()>>>(a.dq, a.dk, a.dv, a.dout, a.q, a.k, a.v, a.lse, a.D, (int)a.T,
                                             (int)a.NH, (int)a.NKV, (int)(a.NH / a.NKV), a.q_stride, a.dq_stride,
                                             a.kv_stride, o_stride, 1.f / std::sqrt((float)a.HS), vec_q, vec_kv,
                                             vec_o);
  PUZZLE_CUDA_CHECK_LAUNCH(where);
}

// Key tile of the tensor-core backward: 128 (half the dq atomics and Q/dO reloads of 64) where
// two blocks of that size still fit an SM, which is HS 64 on sm_90; else 64.
template <class E>
void dispatch_bwd_tc(const BwdArgsT<E>& a, const char* where) {
  if (a.HS == 128 && smem_fits(TbGeo<128, 64>::bytes))
    launch_bwd_tc<128, 64>(a, where);  // 105.5 KiB shared
  else if (a.HS == 128)
    launch_bwd_tc<128, 64, 1>(a, where);  // 97.5 KiB: sm_86 / sm_89
  else if ((int64_t)(2 * TbGeo<64, 128>::bytes) <= device_smem_optin())
    launch_bwd_tc<64, 128>(a, where);  // 107.5 KiB: sm_90
  else
    launch_bwd_tc<64, 64>(a, where);   // 73.5 KiB: sm_80
}

void dispatch_bwd(const BwdArgs& a) {
  if (use_tc_bwd(a.HS)) {
    dispatch_bwd_tc(a, "attention_backward");
    return;
  }
  switch (padded_head_size(a.HS)) {
    case 32: launch_bwd<32, 64, 64, 2, 2>(a); break;  // 76 KiB shared
    case 64: launch_bwd<64, 32, 64, 2, 2>(a); break;  // 71 KiB
    case 128:
      if (smem_fits(bwd_smem_bytes<128, 64, 64>()))
        launch_bwd<128, 64, 64, 1, 1>(a);  // 172 KiB: sm_90
      else if (smem_fits(bwd_smem_bytes<128, 32, 64>()))
        launch_bwd<128, 32, 64, 1, 1>(a);  // 119 KiB: sm_80
      else
        launch_bwd<128, 16, 64, 1, 1>(a);  // 92.5 KiB: sm_86 / sm_89
      break;
    case 256:
      if (smem_fits(bwd_smem_bytes<256, 32, 32>()))
        launch_bwd<256, 32, 32, 1, 1>(a);  // 142 KiB
      else
        launch_bwd<256, 16, 16, 1, 1>(a);  // 69 KiB: sm_86 / sm_89 (16 keys a block: more Q reloads)
      break;
    default: record_error(cudaErrorInvalidValue, "attention_backward");
  }
}

template <int HSP, class E>
void launch_decode(E* out, float* part_o, float* part_ml, const E* q, const E* kc, const E* vc, int64_t B, int64_t Tq,
                   int64_t past, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t Tmax,
                   int keys_per_split, int nsplit, int nchunk, unsigned* counters) {
  const int64_t kv_stride = NKV * HS;
  const bool vec_kv = vec4_rows(kc, kv_stride, HS) && vec4_rows(vc, kv_stride, HS);
  const unsigned grid = (unsigned)(B * NKV * nsplit * nchunk);
  launch_pdl("attention_cached_forward (decode)", attn_decode_kernel<HSP, HSP == 256 ? 1 : 2, E>, grid, kThreads,
             dec_smem_bytes(), out, part_o, part_ml, q, kc, vc, (int)Tq, (int)past, (int)NH, (int)NKV,
             (int)(NH / NKV), (int)HS, q_stride, kv_stride, Tmax * kv_stride, keys_per_split, nsplit, nchunk,
             (1.f / std::sqrt((float)HS)) * kLog2e, vec_kv, counters);
}

// Which decode kernel a cached forward of few queries takes: for bf16 caches of HS 64 or 128 whose
// rows are 16-byte aligned the streamed one (attn_decode_async_kernel), or with
// PUZZLE_CUDA_DECODE=mma the tensor-core one (attn_decode_mma_kernel), each where the device gives
// the block its shared memory (else the next of the three); otherwise, for fp32, and with
// PUZZLE_CUDA_DECODE=simt, attn_decode_kernel.
enum class DecodeKernel { simt, streamed, mma };

template <auto Kernel>
bool smem_granted_once(size_t bytes) {
  static const bool ok = raise_smem_limit(Kernel, bytes);  // asked once for each kernel
  return ok;
}

template <class E>
DecodeKernel decode_kernel_for(const E* kc, const E* vc, int64_t HS, int64_t kv_stride) {
  if constexpr (!std::is_same_v<E, bf16x>) {
    return DecodeKernel::simt;
  } else {
    static const DecodeKernel asked = [] {
      const char* e = std::getenv("PUZZLE_CUDA_DECODE");
      if (e != nullptr && std::strcmp(e, "simt") == 0) return DecodeKernel::simt;
      if (e != nullptr && std::strcmp(e, "mma") == 0) return DecodeKernel::mma;
      return DecodeKernel::streamed;
    }();
    if (asked == DecodeKernel::simt || (HS != 64 && HS != 128) || kv_stride % 8 != 0) return DecodeKernel::simt;
    if ((uintptr_t)kc % 16 != 0 || (uintptr_t)vc % 16 != 0) return DecodeKernel::simt;
    if (asked == DecodeKernel::mma && (HS == 64 ? smem_granted_once<attn_decode_mma_kernel<64>>(AmGeo<64>::bytes)
                                                : smem_granted_once<attn_decode_mma_kernel<128>>(AmGeo<128>::bytes)))
      return DecodeKernel::mma;
    const bool ok = HS == 64 ? smem_granted_once<attn_decode_async_kernel<64>>(AdGeo<64>::bytes)
                             : smem_granted_once<attn_decode_async_kernel<128>>(AdGeo<128>::bytes);
    return ok ? DecodeKernel::streamed : DecodeKernel::simt;
  }
}

// The streamed or the tensor-core decode (same arguments).
template <int HS>
void launch_decode_bf16(DecodeKernel which, bf16x* out, float* part_o, float* part_ml, const bf16x* q,
                        const bf16x* kc, const bf16x* vc, int64_t B, int64_t Tq, int64_t past, int64_t NH,
                        int64_t NKV, int64_t q_stride, int64_t Tmax, int keys_per_split, int nsplit, int nchunk,
                        unsigned* counters) {
  const int64_t kv_stride = NKV * HS;
  const unsigned grid = (unsigned)(B * NKV * nsplit * nchunk);
  const float scale_log2 = (1.f / std::sqrt((float)HS)) * kLog2e;
  if (which == DecodeKernel::mma)
    launch_pdl("attention_cached_forward (decode, mma)", attn_decode_mma_kernel<HS>, grid, kAmThreads,
               AmGeo<HS>::bytes, out, part_o, part_ml, q, kc, vc, (int)Tq, (int)past, (int)NH, (int)NKV,
               (int)(NH / NKV), q_stride, kv_stride, Tmax * kv_stride, keys_per_split, nsplit, nchunk, scale_log2,
               counters);
  else
    launch_pdl("attention_cached_forward (decode)", attn_decode_async_kernel<HS>, grid, kAdThreads,
               AdGeo<HS>::bytes, out, part_o, part_ml, q, kc, vc, (int)Tq, (int)past, (int)NH, (int)NKV,
               (int)(NH / NKV), q_stride, kv_stride, Tmax * kv_stride, keys_per_split, nsplit, nchunk, scale_log2,
               counters);
}

// The decode kernel's merge counters: at least n, all zero, or nullptr (the combine kernel then
// merges). Allocated and zeroed outside a stream capture only; a buffer, once handed out, is
// never freed, since a captured graph may keep using it (a larger need gets a new one). Every
// launch leaves its counters at zero, and all launches are ordered on the one stream.
unsigned* decode_counters(int64_t n) {
  static const bool off = [] {
    const char* e = std::getenv("PUZZLE_CUDA_DECODE_COMBINE");
    return e != nullptr && std::strcmp(e, "kernel") == 0;
  }();
  static std::mutex mu;
  static unsigned* buf = nullptr;
  static int64_t cap = 0;
  if (off) return nullptr;
  std::lock_guard<std::mutex> guard(mu);
  if (n <= cap) return buf;
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream(), &st) != cudaSuccess || st != cudaStreamCaptureStatusNone) {
    (void)cudaGetLastError();
    return nullptr;
  }
  const int64_t want = std::max<int64_t>(n, 4096);
  void* p = nullptr;
  if (cudaMalloc(&p, (size_t)want * sizeof(unsigned)) != cudaSuccess) {
    (void)cudaGetLastError();  // the combine kernel needs no counters
    return nullptr;
  }
  if (cudaMemsetAsync(p, 0, (size_t)want * sizeof(unsigned), stream()) != cudaSuccess) {
    (void)cudaGetLastError();
    cudaFree(p);  // never handed out
    return nullptr;
  }
  buf = static_cast<unsigned*>(p);
  cap = want;
  return buf;
}

constexpr int64_t kDecodeMaxTq = 16;       // more queries than this go to the tiled kernel
constexpr int64_t kMinTilesPerSplit = 4;   // at least 128 cache rows per partition
constexpr int64_t kMaxDecSplits = 512;     // the combine kernel's weights: 16 x 513 floats (32 KiB)

}  // namespace

const char* attention_kernel_name(int64_t HS) { return use_tc_fwd(HS) ? "tensor-core" : "simt"; }

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  if (B <= 0 || T <= 0 || NH <= 0) return;
  if (NKV <= 0 || NH % NKV != 0) {
    record_error(cudaErrorInvalidValue, "attention_forward");
    return;
  }
  dispatch_fwd(FwdArgs{out, lse, q, k, v, B, T, 0, NH, NKV, HS, T * q_stride, q_stride, T * kv_stride, kv_stride},
               "attention_forward", true);
}

bool attention_forward_tc(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                          int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  if (!use_tc_fwd(HS)) return false;
  if (B <= 0 || T <= 0 || NH <= 0) return true;
  if (NKV <= 0 || NH % NKV != 0) {
    record_error(cudaErrorInvalidValue, "attention_forward (bf16)");
    return true;
  }
  const FwdArgsT<bf16x> a{dev(out), lse, dev(q), dev(k), dev(v), B, T, 0, NH, NKV, HS, T * q_stride, q_stride,
                          T * kv_stride, kv_stride};
  if (HS == 64)
    launch_fwd_tc<64>(a, "attention_forward (bf16)");
  else
    launch_fwd_tc<128>(a, "attention_forward (bf16)");
  return true;
}

bool attention_cached_forward_tc(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, int64_t B,
                                 int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                                 int64_t Tmax) {
  const char* where = "attention_cached_forward (bf16)";
  if (!use_tc_fwd(HS)) return false;
  if (B <= 0 || Tq <= 0 || NH <= 0) return true;
  if (NKV <= 0 || NH % NKV != 0 || past < 0 || past + Tq > Tmax) {
    record_error(cudaErrorInvalidValue, where);
    return true;
  }
  const int64_t KW = NKV * HS;
  const FwdArgsT<bf16x> a{dev(out), nullptr, dev(q), dev(k_cache), dev(v_cache), B, Tq, past, NH, NKV, HS,
                          Tq * q_stride, q_stride, Tmax * KW, KW};
  if (HS == 64)
    launch_fwd_tc<64>(a, where);
  else
    launch_fwd_tc<128>(a, where);
  return true;
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, int64_t B, int64_t T, int64_t NH,
                        int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  if (B <= 0 || T <= 0 || NH <= 0) return;
  if (dq == nullptr && dk == nullptr && dv == nullptr) return;
  if (NKV <= 0 || NH % NKV != 0 || padded_head_size(HS) == 0) {
    record_error(cudaErrorInvalidValue, "attention_backward");
    return;
  }
  Scratch& sc = scratch();
  std::lock_guard<std::mutex> guard(sc.lock());
  bool temporary = false;
  const int64_t rows = B * T * NH;
  float* D = sc.acquire((size_t)rows * sizeof(float), &temporary);
  if (D == nullptr) return;
  attn_bwd_dot_kernel<float><<<blocks_for(rows, kThreads / 32), kThreads, 0, stream()>>>(D, dout, out, rows, (int)T,
                                                                                   (int)NH, (int)HS, NH * HS);
  PUZZLE_CUDA_CHECK_LAUNCH("attention_backward (D)");
  dispatch_bwd(BwdArgs{dq, dk, dv, dout, q, k, v, lse, D, B, T, NH, NKV, HS, q_stride, q_stride, kv_stride});
  sc.release(D, temporary);
}

bool attention_backward_tc(float* dq32, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                           const bf16* v, const bf16* out, const float* lse, int64_t B, int64_t T, int64_t NH,
                           int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  const char* where = "attention_backward (bf16)";
  if (!use_tc_bwd(HS)) return false;
  if (B <= 0 || T <= 0 || NH <= 0) return true;
  if (dq32 == nullptr && dk == nullptr && dv == nullptr) return true;
  if (NKV <= 0 || NH % NKV != 0) {
    record_error(cudaErrorInvalidValue, where);
    return true;
  }
  Scratch& sc = scratch();
  std::lock_guard<std::mutex> guard(sc.lock());
  bool temporary = false;
  const int64_t rows = B * T * NH;
  float* D = sc.acquire((size_t)rows * sizeof(float), &temporary);
  if (D == nullptr) return true;
  attn_bwd_dot_kernel<bf16x><<<blocks_for(rows, kThreads / 32), kThreads, 0, stream()>>>(D, dev(dout), dev(out), rows,
                                                                                   (int)T, (int)NH, (int)HS, NH * HS);
  PUZZLE_CUDA_CHECK_LAUNCH("attention_backward (bf16, D)");
  dispatch_bwd_tc(BwdArgsT<bf16x>{dq32, dev(dk), dev(dv), dev(dout), dev(q), dev(k), dev(v), lse, D, B, T, NH, NKV,
                                  HS, q_stride, NH * HS, kv_stride},
                  where);
  sc.release(D, temporary);
  return true;
}

void attention_backward_dot(float* D, const bf16* dout, const bf16* out, int64_t B, int64_t T, int64_t NH,
                            int64_t HS) {
  const int64_t rows = B * T * NH;
  if (rows <= 0) return;
  attn_bwd_dot_kernel<bf16x><<<blocks_for(rows, kThreads / 32), kThreads, 0, stream()>>>(D, dev(dout), dev(out), rows,
                                                                                   (int)T, (int)NH, (int)HS, NH * HS);
  PUZZLE_CUDA_CHECK_LAUNCH("attention_backward (bf16, D)");
}

namespace {

// The split-KV decode for Tq <= kDecodeMaxTq queries (arguments checked by the caller).
template <class E>
void decode(E* out, const E* q, const E* k_cache, const E* v_cache, int64_t B, int64_t Tq, int64_t NH, int64_t NKV,
            int64_t HS, int64_t q_stride, int64_t past, int64_t Tmax, int HSP) {
  // split-KV: enough blocks to fill the GPU a few times over, partitions of >= 4 tiles. The
  // streamed kernel: about three waves of the 3 to 5 blocks an SM holds. Its blocks run for as
  // long as their partitions stream, so a grid of 1.3 waves (an 8B decode at batch 64 with one
  // partition a KV head: 512 blocks for 396 places) left the GPU a third idle for the second half
  // of the kernel: 3 partitions took it from 0.204 to 0.184 ms on the H200. Partitions of 2 tiles
  // cost more than they gain (batch 1 past 8192: 0.036 ms with 64 partitions of 4 tiles, 0.053
  // with 128 of 2; benchmarks/results/gpu-h200-2026-11-30-c.md).
  // The tensor-core kernel: tiles of 64 keys (partitions of >= 2), 2 or 3 blocks an SM, also
  // about three waves.
  const DecodeKernel which = decode_kernel_for(k_cache, v_cache, HS, NKV * HS);
  static_assert(kAdKeys == kDecKeys && kAmKeys == 2 * kDecKeys, "partitions of whole tiles of every kernel");
  const int64_t keys_tile = which == DecodeKernel::mma ? kAmKeys : kDecKeys;
  const int64_t min_tiles = which == DecodeKernel::mma ? kMinTilesPerSplit / 2 : kMinTilesPerSplit;
  const int64_t group = NH / NKV, R = group * Tq;
  const int64_t nchunk = (R + kDecRows - 1) / kDecRows;
  const int64_t nk = past + Tq, ntiles = (nk + keys_tile - 1) / keys_tile;
  const int64_t base = B * NKV * nchunk;
  const int64_t waves = which == DecodeKernel::simt ? 4 : which == DecodeKernel::mma ? 6 : 9;
  const int64_t target = waves * (int64_t)device_sm_count();
  const int64_t max_splits = which == DecodeKernel::simt ? kMaxDecSplits : kAdMaxSplits;
  int64_t nsplit = std::min({(target + base - 1) / base, (ntiles + min_tiles - 1) / min_tiles, max_splits});
  nsplit = std::max<int64_t>(nsplit, 1);
  const int64_t tiles_per = (ntiles + nsplit - 1) / nsplit;
  nsplit = (ntiles + tiles_per - 1) / tiles_per;  // every partition is non-empty
  const int keys_per_split = (int)(tiles_per * keys_tile);

  Scratch& sc = scratch();
  std::unique_lock<std::mutex> guard(sc.lock(), std::defer_lock);
  float* part = nullptr;
  bool temporary = false;
  const int64_t prow = B * NH * Tq * nsplit;
  if (nsplit > 1) {
    guard.lock();
    part = sc.acquire((size_t)prow * (HS + 2) * sizeof(float), &temporary);
    if (part == nullptr) return;
  }
  float* part_o = part;
  float* part_ml = part != nullptr ? part + prow * HS : nullptr;
  // the last partition of each chunk merges (no combine launch) where counters can be had
  unsigned* counters = nsplit > 1 && nsplit <= kThreads ? decode_counters(base) : nullptr;
  if constexpr (std::is_same_v<E, bf16x>) {
    if (which != DecodeKernel::simt) {
      if (HS == 64)
        launch_decode_bf16<64>(which, out, part_o, part_ml, q, k_cache, v_cache, B, Tq, past, NH, NKV, q_stride,
                               Tmax, keys_per_split, (int)nsplit, (int)nchunk, counters);
      else
        launch_decode_bf16<128>(which, out, part_o, part_ml, q, k_cache, v_cache, B, Tq, past, NH, NKV, q_stride,
                                Tmax, keys_per_split, (int)nsplit, (int)nchunk, counters);
    }
  }
  if (which == DecodeKernel::simt) switch (HSP) {
    case 32: launch_decode<32>(out, part_o, part_ml, q, k_cache, v_cache, B, Tq, past, NH, NKV, HS, q_stride, Tmax,
                               keys_per_split, (int)nsplit, (int)nchunk, counters); break;
    case 64: launch_decode<64>(out, part_o, part_ml, q, k_cache, v_cache, B, Tq, past, NH, NKV, HS, q_stride, Tmax,
                               keys_per_split, (int)nsplit, (int)nchunk, counters); break;
    case 128: launch_decode<128>(out, part_o, part_ml, q, k_cache, v_cache, B, Tq, past, NH, NKV, HS, q_stride,
                                 Tmax, keys_per_split, (int)nsplit, (int)nchunk, counters); break;
    default: launch_decode<256>(out, part_o, part_ml, q, k_cache, v_cache, B, Tq, past, NH, NKV, HS, q_stride,
                                Tmax, keys_per_split, (int)nsplit, (int)nchunk, counters); break;
  }
  if (nsplit > 1 && counters == nullptr) {
    const size_t smem = sizeof(float) * (size_t)kDecRows * (nsplit + 1);
    launch_pdl("attention_cached_forward (combine)", attn_decode_combine_kernel<E>, (unsigned)base, kThreads, smem, out,
               part_o, part_ml, (int)nsplit, (int)Tq, (int)NH, (int)NKV, (int)group, (int)HS, (int)nchunk);
  }
  sc.release(part, temporary);
}

// The arguments of a cached forward, checked; 0 when invalid (recorded), else the padded HS.
int cached_args_ok(int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tq, int64_t Tmax, const char* where) {
  const int HSP = padded_head_size(HS);
  if (NKV <= 0 || NH % NKV != 0 || HSP == 0 || past < 0 || past + Tq > Tmax) {
    record_error(cudaErrorInvalidValue, where);
    return 0;
  }
  return HSP;
}

}  // namespace

void attention_cached_forward(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t B,
                              int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                              int64_t Tmax) {
  const char* where = "attention_cached_forward";
  if (B <= 0 || Tq <= 0 || NH <= 0) return;
  const int HSP = cached_args_ok(NH, NKV, HS, past, Tq, Tmax, where);
  if (HSP == 0) return;
  const int64_t kv_stride = NKV * HS;
  if (Tq > kDecodeMaxTq) {  // prefill: the tiled kernel with queries offset by `past`
    dispatch_fwd(FwdArgs{out, nullptr, q, k_cache, v_cache, B, Tq, past, NH, NKV, HS, Tq * q_stride, q_stride,
                         Tmax * kv_stride, kv_stride},
                 where, false);
    return;
  }
  decode(out, q, k_cache, v_cache, B, Tq, NH, NKV, HS, q_stride, past, Tmax, HSP);
}

bool attention_decode(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, int64_t B, int64_t Tq,
                      int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past, int64_t Tmax) {
  if (Tq > kDecodeMaxTq) return false;
  if (B <= 0 || Tq <= 0 || NH <= 0) return true;
  const int HSP = cached_args_ok(NH, NKV, HS, past, Tq, Tmax, "attention_cached_forward (bf16)");
  if (HSP != 0) decode(dev(out), dev(q), dev(k_cache), dev(v_cache), B, Tq, NH, NKV, HS, q_stride, past, Tmax, HSP);
  return true;
}

}  // namespace puzzle::cuda
