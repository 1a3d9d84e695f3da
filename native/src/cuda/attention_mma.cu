// Causal prefill attention forward on bf16 storage in the FlashAttention-2 register layout:
// mma.sync m16n8k16 with ldmatrix (cuda/mma.cuh) instead of nvcuda::wmma, so the scores never
// leave registers (softmax on the accumulators, P reused in place as the A operand of P V), and
// K/V tiles double-buffered with cp.async (tile kt+1 lands while tile kt is multiplied).
// attn_fwd_tc_kernel (attention.cu) sends every score tile through shared memory and back, and
// waits for each K/V tile; this kernel is its replacement candidate for the bf16 table.
//
// Geometry: one block of 8 warps per (batch*head, 128-query tile); warp w owns query rows
// 16w..16w+15 and keeps its Q fragments in registers for the whole kernel; 64-key tiles. Thread
// (g, t) = (lane/4, lane%4) holds rows g and g+8 of every 16x8 accumulator (mma.cuh), so a row's
// max and sum are reduced over the 4 lanes of a group (shuffles xor 1, 2), and its running sum
// stays per lane until the end. Shared memory: Q [128][HS+8] (the output staging at the end), two
// stages of K and V [64][HS+8]; the +8 pitch makes every ldmatrix conflict-free.
//
// Selected with PUZZLE_CUDA_ATTN=mma (attention_bf16.cu) until a GPU run has timed it against
// the wmma kernel (benchmarks/gpu/check.sh prints both); the CPU emulator
// (native/dev/cuda-emu/run.sh, set mma16) checks it against an fp64 reference.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cuda/common.cuh"
#include "cuda/mma.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kMmaThreads = 256;  // 8 warps
constexpr int kMmaBQ = 128;       // query rows per block (16 per warp)
constexpr int kMmaBK = 64;        // keys per tile
constexpr float kMmaLog2e = 1.4426950408889634f;
constexpr float kMmaLn2 = 0.69314718055994531f;

template <int HS>
struct MmaGeo {
  static_assert(HS == 64 || HS == 128, "mma attention: HS 64 or 128");
  static constexpr int LD = HS + 8;                                 // bf16 row pitch of every tile
  static constexpr size_t tile = (size_t)kMmaBK * LD * 2;           // one K or V tile, bytes
  static constexpr size_t kv_off = (size_t)kMmaBQ * LD * 2;         // after Q
  static constexpr size_t bytes = kv_off + 4 * tile;                // K0 V0 K1 V1
  static_assert(kv_off % 128 == 0 && tile % 128 == 0, "alignment");
};

// Rows [0, ROWS) x HS columns of a strided bf16 matrix into a shared tile [ROWS][HS+8]: 16-byte
// cp.async copies when vec (16-byte aligned rows), else plain element copies; rows >= nvalid are
// zero (masked keys must be finite: 0 * NaN would poison P V).
template <int ROWS, int HS>
__device__ __forceinline__ void mma_load_tile(bf16x* dst, const bf16x* src, int64_t stride, int nvalid, bool vec) {
  constexpr int CH = HS / 8, LD = HS + 8;
  for (int i = (int)threadIdx.x; i < ROWS * CH; i += kMmaThreads) {
    const int r = i / CH, c = (i % CH) * 8;
    bf16x* d = dst + r * LD + c;
    if (r >= nvalid) {
      *reinterpret_cast<uint4*>(d) = make_uint4(0u, 0u, 0u, 0u);
    } else if (vec) {
      cp_async16(d, src + r * stride + c);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) d[e] = src[r * stride + c + e];
    }
  }
}

// Two blocks per SM for HS 64 (<= 128 registers); one for HS 128 (the O accumulators alone are 64).
template <int HS>
__global__ void __launch_bounds__(kMmaThreads, HS == 64 ? 2 : 1)
    attn_fwd_mma_kernel(bf16x* __restrict__ out, float* __restrict__ lse, const bf16x* __restrict__ q,
                        const bf16x* __restrict__ k, const bf16x* __restrict__ v, int T, int NH, int group,
                        int64_t q_stride, int64_t kv_stride, float scale_log2, bool vec_q, bool vec_kv, bool vec_o) {
  using G = MmaGeo<HS>;
  constexpr int LD = G::LD;
  constexpr int KQ = HS / 16;       // k-steps of Q K^T
  constexpr int NS = kMmaBK / 8;    // 16x8 score tiles per warp
  constexpr int NO = HS / 8;        // 16x8 output tiles per warp
  constexpr int KP = kMmaBK / 16;   // k-steps of P V
  extern __shared__ __align__(128) unsigned char tc_smem[];
  bf16x* Qs = reinterpret_cast<bf16x*>(tc_smem);
  bf16x* KV = reinterpret_cast<bf16x*>(tc_smem + G::kv_off);  // stage s: K at 2s, V at 2s+1 tiles

  const int lane = (int)threadIdx.x % 32, warp = (int)threadIdx.x / 32;
  const int gq = lane >> 2, tq = lane & 3;
  const int bh = (int)blockIdx.x, b = bh / NH, h = bh % NH, g = h / group;
  const int q0 = ((int)gridDim.y - 1 - (int)blockIdx.y) * kMmaBQ;  // the longest tiles start first
  const bf16x* kb = k + (int64_t)b * T * kv_stride + (int64_t)g * HS;
  const bf16x* vb = v + (int64_t)b * T * kv_stride + (int64_t)g * HS;
  const int nkt = (min(q0 + kMmaBQ, T) - 1) / kMmaBK + 1;

  mma_load_tile<kMmaBQ, HS>(Qs, q + ((int64_t)b * T + q0) * q_stride + (int64_t)h * HS, q_stride, T - q0, vec_q);
  mma_load_tile<kMmaBK, HS>(KV, kb, kv_stride, T, vec_kv);
  mma_load_tile<kMmaBK, HS>(KV + kMmaBK * LD, vb, kv_stride, T, vec_kv);
  cp_async_commit();

  const int wrow0 = q0 + warp * 16;
  const bool warp_live = wrow0 < T;  // warp-uniform
  const int row0 = wrow0 + gq, row1 = row0 + 8;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // l: this lane's part of the row sums
  float o[NO][4];
#pragma unroll
  for (int f = 0; f < NO; ++f) o[f][0] = o[f][1] = o[f][2] = o[f][3] = 0.f;
  uint32_t qa[KQ][4];

  for (int kt = 0; kt < nkt; ++kt) {
    const int st = kt & 1, k0 = kt * kMmaBK;
    __syncthreads();  // every warp is done with the other stage (tile kt-1)
    if (kt + 1 < nkt) {
      const int k1 = k0 + kMmaBK;
      bf16x* nxt = KV + (size_t)(2 * (st ^ 1)) * kMmaBK * LD;
      mma_load_tile<kMmaBK, HS>(nxt, kb + (int64_t)k1 * kv_stride, kv_stride, T - k1, vec_kv);
      mma_load_tile<kMmaBK, HS>(nxt + kMmaBK * LD, vb + (int64_t)k1 * kv_stride, kv_stride, T - k1, vec_kv);
    }
    cp_async_commit();  // possibly empty: the wait below always leaves exactly the newest group
    cp_async_wait<1>();
    __syncthreads();    // tile kt (and at kt = 0, Q) is in shared memory for every thread
    if (!warp_live || k0 > wrow0 + 15) continue;  // warp-uniform: nothing of the tile is visible
    if (kt == 0) {
#pragma unroll
      for (int kk = 0; kk < KQ; ++kk)
        ldsm_x4(qa[kk], Qs + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + kk * 16 + (lane >> 4) * 8);
    }
    const bf16x* Kt = KV + (size_t)(2 * st) * kMmaBK * LD;
    const bf16x* Vt = Kt + kMmaBK * LD;

    // S = Q K^T (16 x 64 per warp)
    float s[NS][4];
#pragma unroll
    for (int n = 0; n < NS; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KQ; ++kk)
#pragma unroll
      for (int j = 0; j < NS / 2; ++j) {
        uint32_t kf[4];
        ldsm_x4(kf, Kt + (j * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
        mma_16816(s[2 * j], qa[kk], kf[0], kf[1]);
        mma_16816(s[2 * j + 1], qa[kk], kf[2], kf[3]);
      }

    // causal mask (only where the tile reaches past the warp's first row), online softmax in log2
    const bool diag = k0 + kMmaBK - 1 > wrow0;
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int n = 0; n < NS; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int key = k0 + n * 8 + 2 * tq + e;
        s[n][e] = diag && key > row0 ? -INFINITY : s[n][e] * scale_log2;
        s[n][2 + e] = diag && key > row1 ? -INFINITY : s[n][2 + e] * scale_log2;
        mx0 = fmaxf(mx0, s[n][e]);
        mx1 = fmaxf(mx1, s[n][2 + e]);
      }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
    const float c0 = exp2f(m0 - mu0), c1 = exp2f(m1 - mu1);
    m0 = mn0;
    m1 = mn1;
    // P rounded to bf16 and summed as rounded (the weights that multiply V are the ones l
    // normalises), packed straight into A fragments: score tiles 2p and 2p+1 are k-step p
    uint32_t pa[KP][4];
    float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
    for (int n = 0; n < NS; ++n) {
      const __nv_bfloat162 p01 = __floats2bfloat162_rn(exp2f(s[n][0] - mu0), exp2f(s[n][1] - mu0));
      const __nv_bfloat162 p23 = __floats2bfloat162_rn(exp2f(s[n][2] - mu1), exp2f(s[n][3] - mu1));
      sum0 += __low2float(p01) + __high2float(p01);
      sum1 += __low2float(p23) + __high2float(p23);
      pa[n / 2][(n % 2) * 2] = pack_bf16x2(p01);
      pa[n / 2][(n % 2) * 2 + 1] = pack_bf16x2(p23);
    }
    l0 = l0 * c0 + sum0;
    l1 = l1 * c1 + sum1;
#pragma unroll
    for (int f = 0; f < NO; ++f) {
      o[f][0] *= c0;
      o[f][1] *= c0;
      o[f][2] *= c1;
      o[f][3] *= c1;
    }

    // O += P V
#pragma unroll
    for (int p = 0; p < KP; ++p)
#pragma unroll
      for (int dp = 0; dp < NO / 2; ++dp) {
        uint32_t vf[4];
        ldsm_x4_trans(vf, Vt + (p * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 + (lane >> 4) * 8);
        mma_16816(o[2 * dp], pa[p], vf[0], vf[1]);
        mma_16816(o[2 * dp + 1], pa[p], vf[2], vf[3]);
      }
  }

  if (!warp_live) return;  // warp-uniform; no block barrier follows
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  if (tq == 0 && lse != nullptr) {
    if (row0 < T) lse[((int64_t)b * NH + h) * T + row0] = m0 * kMmaLn2 + logf(l0);
    if (row1 < T) lse[((int64_t)b * NH + h) * T + row1] = m1 * kMmaLn2 + logf(l1);
  }
  const float inv0 = 1.f / l0, inv1 = 1.f / l1;
  // stage the warp's 16 rows in its own rows of the Q tile (only this warp read them), then
  // store them as whole 16-byte row pieces
  bf16x* stage = Qs + warp * 16 * LD;
  __syncwarp();
#pragma unroll
  for (int f = 0; f < NO; ++f) {
    *reinterpret_cast<__nv_bfloat162*>(stage + gq * LD + f * 8 + 2 * tq) =
        __floats2bfloat162_rn(o[f][0] * inv0, o[f][1] * inv0);
    *reinterpret_cast<__nv_bfloat162*>(stage + (gq + 8) * LD + f * 8 + 2 * tq) =
        __floats2bfloat162_rn(o[f][2] * inv1, o[f][3] * inv1);
  }
  __syncwarp();
  for (int i = lane; i < 16 * (HS / 8); i += 32) {
    const int r = i / (HS / 8), c = (i % (HS / 8)) * 8, row = wrow0 + r;
    if (row >= T) continue;
    bf16x* dst = out + ((int64_t)b * T + row) * NH * HS + (int64_t)h * HS + c;
    const bf16x* src = stage + r * LD + c;
    if (vec_o) {
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) dst[e] = src[e];
    }
  }
}

bool aligned_rows16(const void* p, int64_t stride) { return (uintptr_t)p % 16 == 0 && stride % 8 == 0; }

template <int HS>
void launch_fwd_mma(bf16x* out, float* lse, const bf16x* q, const bf16x* k, const bf16x* v, int64_t B, int64_t T,
                    int64_t NH, int64_t NKV, int64_t q_stride, int64_t kv_stride) {
  const char* where = "attention_forward (bf16, mma)";
  constexpr size_t smem = MmaGeo<HS>::bytes;
  auto kernel = attn_fwd_mma_kernel<HS>;
  static const cudaError_t attr = [&] {  // once per kernel: the opt-in above 48 KiB
    int dev = 0, optin = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e == cudaSuccess && (size_t)optin < smem) e = cudaErrorInvalidConfiguration;
    if (e == cudaSuccess) e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    return e;
  }();
  if (attr != cudaSuccess) {
    record_error(attr, where);
    return;
  }
  const float scale_log2 = (1.f / std::sqrt((float)HS)) * kMmaLog2e;
  const bool vec_q = aligned_rows16(q, q_stride);
  const bool vec_kv = aligned_rows16(k, kv_stride) && aligned_rows16(v, kv_stride);
  const bool vec_o = aligned_rows16(out, NH * HS);
  const dim3 grid((unsigned)(B * NH), (unsigned)((T + kMmaBQ - 1) / kMmaBQ));
  kernel<<<grid, kMmaThreads, smem, stream()>>>(out, lse, q, k, v, (int)T, (int)NH, (int)(NH / NKV), q_stride,
                                                kv_stride, scale_log2, vec_q, vec_kv, vec_o);
  PUZZLE_CUDA_CHECK_LAUNCH(where);
}

}  // namespace

bool attention_mma_selected() {
  static const bool on = [] {
    const char* e = std::getenv("PUZZLE_CUDA_ATTN");
    return e != nullptr && std::strcmp(e, "mma") == 0;
  }();
  return on;
}

bool attention_forward_mma(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                           int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  if (HS != 64 && HS != 128) return false;
  if (B <= 0 || T <= 0 || NH <= 0) return true;
  if (NKV <= 0 || NH % NKV != 0 || T > INT32_MAX / 2) {
    record_error(cudaErrorInvalidValue, "attention_forward (bf16, mma)");
    return true;
  }
  if (HS == 64)
    launch_fwd_mma<64>(dev(out), lse, dev(q), dev(k), dev(v), B, T, NH, NKV, q_stride, kv_stride);
  else
    launch_fwd_mma<128>(dev(out), lse, dev(q), dev(k), dev(v), B, T, NH, NKV, q_stride, kv_stride);
  return true;
}

}  // namespace puzzle::cuda
