// Causal prefill attention on bf16 storage in the FlashAttention-2 register layout: mma.sync
// m16n8k16 with ldmatrix (cuda/mma.cuh) instead of nvcuda::wmma, so score tiles never leave
// registers (softmax on the accumulators, P reused in place as the A operand of the next
// product), and tiles double-buffered with cp.async (the next one lands while the current one is
// multiplied). The wmma kernels of attention.cu (attn_fwd_tc_kernel, attn_bwd_tc_kernel) send
// every score tile through shared memory and back and wait for each tile; these are their
// replacement candidates for the bf16 table: forward below (also over a KV cache: a prefill of
// queries at positions past..), backward further down.
//
// Forward geometry: one block of 8 warps per (batch*head, 128-query tile); warp w owns query
// rows 16w..16w+15 and keeps their Q fragments in registers for the whole kernel; 64-key tiles.
// Thread (g, t) = (lane/4, lane%4) holds rows g and g+8 of every 16x8 accumulator (mma.cuh), so
// a row's max and sum are reduced over the 4 lanes of a group (shuffles xor 1, 2), and its running
// sum stays per lane until the end. Shared memory: Q [128][HS+8] (the output staging at the end),
// two stages of K and V [64][HS+8]; the +8 pitch makes every ldmatrix conflict-free.
//
// The bf16 default for HS 64 and 128 (attention_bf16.cu) since the H200 run of 2026-11-30
// (benchmarks/results/gpu-h200-2026-11-30.md: forward 1.49x, backward 1.75x the wmma kernels, an
// 8B block's training step at 0.96x PyTorch's speed, was 0.81x); PUZZLE_CUDA_ATTN=wmma keeps the
// wmma kernels, =simt the fp32 ones. The CPU emulator (native/dev/cuda-emu/run.sh, sets mma16 and
// mmabwd16) checks them against fp64 references.
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
                        const bf16x* __restrict__ k, const bf16x* __restrict__ v, int T, int past, int NH, int group,
                        int64_t q_stride, int64_t kv_bstride, int64_t kv_stride, float scale_log2, bool vec_q,
                        bool vec_kv, bool vec_o) {
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
  const bf16x* kb = k + (int64_t)b * kv_bstride + (int64_t)g * HS;
  const bf16x* vb = v + (int64_t)b * kv_bstride + (int64_t)g * HS;
  const int nk = past + T;                                     // keys 0..nk-1 (a cache: the first past)
  const int nkt = (past + min(q0 + kMmaBQ, T) - 1) / kMmaBK + 1;  // the last key a valid row sees

  mma_load_tile<kMmaBQ, HS>(Qs, q + ((int64_t)b * T + q0) * q_stride + (int64_t)h * HS, q_stride, T - q0, vec_q);
  mma_load_tile<kMmaBK, HS>(KV, kb, kv_stride, nk, vec_kv);
  mma_load_tile<kMmaBK, HS>(KV + kMmaBK * LD, vb, kv_stride, nk, vec_kv);
  cp_async_commit();

  const int wrow0 = q0 + warp * 16;
  const bool warp_live = wrow0 < T;  // warp-uniform
  const int row0 = wrow0 + gq, row1 = row0 + 8;     // query rows (positions past + row)
  const int pos0 = past + row0, pos1 = pos0 + 8, wpos = past + wrow0;
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
      mma_load_tile<kMmaBK, HS>(nxt, kb + (int64_t)k1 * kv_stride, kv_stride, nk - k1, vec_kv);
      mma_load_tile<kMmaBK, HS>(nxt + kMmaBK * LD, vb + (int64_t)k1 * kv_stride, kv_stride, nk - k1, vec_kv);
    }
    cp_async_commit();  // possibly empty: the wait below always leaves exactly the newest group
    cp_async_wait<1>();
    __syncthreads();    // tile kt (and at kt = 0, Q) is in shared memory for every thread
    if (!warp_live || k0 > wpos + 15) continue;  // warp-uniform: nothing of the tile is visible
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
    const bool diag = k0 + kMmaBK - 1 > wpos;
#pragma unroll
    for (int n = 0; n < NS; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int key = k0 + n * 8 + 2 * tq + e;
        s[n][e] = diag && key > pos0 ? -INFINITY : s[n][e] * scale_log2;
        s[n][2 + e] = diag && key > pos1 ? -INFINITY : s[n][2 + e] * scale_log2;
      }
    float c0, c1;
    uint32_t pa[KP][4];
    online_softmax_step<NS>(s, m0, m1, l0, l1, c0, c1, pa);
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
  l0 = row_group_sum(l0);
  l1 = row_group_sum(l1);
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

// T queries at positions past.. over keys 0..past+T-1 of k, v (batch stride kv_bstride). False,
// nothing queued, where the device does not grant the tiles' shared memory (HS 128 needs 104 KiB:
// not the 99 KiB of sm_86 / sm_89 parts), so the caller takes another kernel.
template <int HS>
bool launch_fwd_mma(bf16x* out, float* lse, const bf16x* q, const bf16x* k, const bf16x* v, int64_t B, int64_t T,
                    int64_t past, int64_t NH, int64_t NKV, int64_t q_stride, int64_t kv_bstride, int64_t kv_stride) {
  const char* where = "attention_forward (bf16, mma)";
  constexpr size_t smem = MmaGeo<HS>::bytes;
  auto kernel = attn_fwd_mma_kernel<HS>;
  static const bool granted = raise_smem_limit(kernel, smem);
  if (!granted) return false;
  const float scale_log2 = (1.f / std::sqrt((float)HS)) * kMmaLog2e;
  const bool vec_q = aligned_rows16(q, q_stride);
  const bool vec_kv = aligned_rows16(k, kv_stride) && aligned_rows16(v, kv_stride) && kv_bstride % 8 == 0;
  const bool vec_o = aligned_rows16(out, NH * HS);
  const dim3 grid((unsigned)(B * NH), (unsigned)((T + kMmaBQ - 1) / kMmaBQ));
  kernel<<<grid, kMmaThreads, smem, stream()>>>(out, lse, q, k, v, (int)T, (int)past, (int)NH, (int)(NH / NKV),
                                                q_stride, kv_bstride, kv_stride, scale_log2, vec_q, vec_kv, vec_o);
  PUZZLE_CUDA_CHECK_LAUNCH(where);
  return true;
}

// ------------------------------------------------------------------------------------------
// Backward (FlashAttention-2 structure, the counterpart of the forward above). One block of 8
// warps per (batch*kv-head, 128-key tile); warp w owns keys 16w..16w+15 and keeps their dK, dV
// in registers for the whole block. The block walks the (query head of the group, 64-query tile)
// steps at or after its key tile, each step's Q, dO (and lse, D) prefetched with cp.async into the
// other of two stages while the current one is used. Per step, warp w computes transposed tiles
// so that everything stays in registers in the layout the next product wants:
//   S^T = K_w Q^T, P^T = exp2(S^T * scale*log2e - lse*log2e) (causal mask, rows < T), rounded to
//   bf16 and reused in place as the A operand of dV_w += P^T dO; dP^T = V_w dO^T;
//   dS^T = P^T (dP^T - D) * scale, rounded, the A operand of dK_w += dS^T Q.
// dQ needs dS with queries as rows: dS^T goes through shared memory ([64][128+8], transposed on
// the way in), then warp w computes dQ for 16 query rows x HS/2 columns (dS K) and adds it to
// dq32 with fp32 atomics (the other key tiles add to the same rows). At the end dK, dV are added
// (+=) to their bf16 slices: the block owns those rows.
constexpr int kMmaBwdBK = 128;  // keys per block (16 per warp)
constexpr int kMmaBwdBQ = 64;   // queries per step

template <int HS>
struct MmaBwdGeo {
  static_assert(HS == 64 || HS == 128, "mma attention backward: HS 64 or 128");
  static constexpr int LD = HS + 8;              // bf16 pitch of K, V, Q, dO
  static constexpr int LDS = kMmaBwdBK + 8;      // bf16 pitch of dS [query][key]
  static constexpr size_t kv_tile = (size_t)kMmaBwdBK * LD * 2;
  static constexpr size_t q_tile = (size_t)kMmaBwdBQ * LD * 2;
  static constexpr size_t k_off = 0, v_off = kv_tile;
  static constexpr size_t st_off = 2 * kv_tile;                        // stage s: Q, dO at st_off + s*stage
  static constexpr size_t stage = 2 * q_tile;
  static constexpr size_t ds_off = st_off + 2 * stage;                 // [64][LDS] bf16
  static constexpr size_t row_off = ds_off + (size_t)kMmaBwdBQ * LDS * 2;  // [2 stages][lse, D][64] fp32
  static constexpr size_t bytes = row_off + 2 * 2 * kMmaBwdBQ * 4;
  static_assert(st_off % 128 == 0 && q_tile % 128 == 0 && ds_off % 128 == 0 && row_off % 16 == 0, "alignment");
};

// Q and dO rows of one step into a stage (cp.async; rows >= nvalid zero), lse*log2e and D of its
// rows into the stage's row values (plain loads: visible after the next barrier).
template <int HS>
__device__ __forceinline__ void mma_bwd_load_step(unsigned char* smem, int s, const bf16x* q, int64_t q_stride,
                                                  const bf16x* dout, int64_t o_stride, const float* lse,
                                                  const float* D, int nvalid, bool vec_q, bool vec_o) {
  using G = MmaBwdGeo<HS>;
  bf16x* Qs = reinterpret_cast<bf16x*>(smem + G::st_off + s * G::stage);
  mma_load_tile<kMmaBwdBQ, HS>(Qs, q, q_stride, nvalid, vec_q);
  mma_load_tile<kMmaBwdBQ, HS>(Qs + kMmaBwdBQ * G::LD, dout, o_stride, nvalid, vec_o);
  float* rows = reinterpret_cast<float*>(smem + G::row_off) + s * 2 * kMmaBwdBQ;
  const int t = (int)threadIdx.x;
  if (t < kMmaBwdBQ) rows[t] = t < nvalid ? lse[t] * kMmaLog2e : 0.f;
  else if (t < 2 * kMmaBwdBQ) rows[t] = t - kMmaBwdBQ < nvalid ? D[t - kMmaBwdBQ] : 0.f;
}

// S^T-shaped product for warp w: acc[16 keys][64 queries] = A_w (16 rows of As, HS wide) times
// the 64 rows of Bs (HS wide), transposed: acc[n][.] is the 8-query tile n.
template <int HS>
__device__ __forceinline__ void mma_rows_by_rows(float (&acc)[kMmaBwdBQ / 8][4], const bf16x* As, const bf16x* Bs,
                                                 int lane) {
  constexpr int LD = HS + 8;
#pragma unroll
  for (int n = 0; n < kMmaBwdBQ / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll 1  // the accumulators are what must stay in registers; the k-steps need not unroll
  for (int kk = 0; kk < HS / 16; ++kk) {
    uint32_t a[4];
    ldsm_x4(a, As + ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
    for (int j = 0; j < kMmaBwdBQ / 16; ++j) {
      uint32_t b[4];
      ldsm_x4(b, Bs + (j * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
      mma_16816(acc[2 * j], a, b[0], b[1]);
      mma_16816(acc[2 * j + 1], a, b[2], b[3]);
    }
  }
}

// acc[16 rows][HS] += A (16 x 64, as 4 k-steps of packed bf16 fragments) times the 64 rows of Bs.
template <int HS>
__device__ __forceinline__ void mma_frags_by_rows(float (&acc)[HS / 8][4], const uint32_t (&a)[kMmaBwdBQ / 16][4],
                                                  const bf16x* Bs, int lane) {
  constexpr int LD = HS + 8;
#pragma unroll
  for (int p = 0; p < kMmaBwdBQ / 16; ++p)
#pragma unroll
    for (int dp = 0; dp < HS / 16; ++dp) {
      uint32_t b[4];
      ldsm_x4_trans(b, Bs + (p * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 + (lane >> 4) * 8);
      mma_16816(acc[2 * dp], a[p], b[0], b[1]);
      mma_16816(acc[2 * dp + 1], a[p], b[2], b[3]);
    }
}

template <int HS>
__global__ void __launch_bounds__(kMmaThreads, 1)
    attn_bwd_mma_kernel(float* __restrict__ dq, bf16x* __restrict__ dk, bf16x* __restrict__ dv,
                        const bf16x* __restrict__ dout, const bf16x* __restrict__ q, const bf16x* __restrict__ k,
                        const bf16x* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ Dsum,
                        int T, int NH, int NKV, int group, int64_t q_stride, int64_t kv_stride, float scale,
                        bool vec_q, bool vec_kv, bool vec_o) {
  using G = MmaBwdGeo<HS>;
  constexpr int LD = G::LD, LDS = G::LDS, BQ = kMmaBwdBQ, BK = kMmaBwdBK;
  constexpr int NQ = BQ / 8;   // 8-query tiles of S^T / dP^T
  constexpr int KP = BQ / 16;  // k-steps over queries (dV, dK)
  constexpr int NO = HS / 8;   // 8-column tiles of dK, dV
  extern __shared__ __align__(128) unsigned char tc_smem[];
  const bf16x* Ks = reinterpret_cast<const bf16x*>(tc_smem + G::k_off);
  const bf16x* Vs = reinterpret_cast<const bf16x*>(tc_smem + G::v_off);
  bf16x* dSs = reinterpret_cast<bf16x*>(tc_smem + G::ds_off);

  const int lane = (int)threadIdx.x % 32, warp = (int)threadIdx.x / 32;
  const int gq = lane >> 2, tq = lane & 3;
  const int b = (int)blockIdx.x / NKV, g = (int)blockIdx.x % NKV;
  const int k0 = (int)blockIdx.y * BK;  // the longest key tiles (small k0) start first
  const int key0 = k0 + warp * 16 + gq, key1 = key0 + 8;  // this thread's two key rows
  const float scale_log2 = scale * kMmaLog2e;
  const int64_t o_stride = (int64_t)NH * HS;
  {
    const int64_t off = ((int64_t)b * T + k0) * kv_stride + (int64_t)g * HS;
    mma_load_tile<BK, HS>(reinterpret_cast<bf16x*>(tc_smem + G::k_off), k + off, kv_stride, T - k0, vec_kv);
    mma_load_tile<BK, HS>(reinterpret_cast<bf16x*>(tc_smem + G::v_off), v + off, kv_stride, T - k0, vec_kv);
  }
  // steps: (query head hh of the group, query tile qt >= k0 / BQ), hh-major
  const int qt0 = k0 / BQ, nqt = (T + BQ - 1) / BQ - qt0, nsteps = group * nqt;
  auto step_load = [&](int st, int s) {
    const int hh = st / nqt, q0 = (qt0 + st % nqt) * BQ, h = g * group + hh;
    const int64_t rowoff = ((int64_t)b * NH + h) * T + q0;
    mma_bwd_load_step<HS>(tc_smem, s, q + ((int64_t)b * T + q0) * q_stride + (int64_t)h * HS, q_stride,
                          dout + ((int64_t)b * T + q0) * o_stride + (int64_t)h * HS, o_stride, lse + rowoff,
                          Dsum + rowoff, T - q0, vec_q, vec_o);
  };
  step_load(0, 0);
  cp_async_commit();

  float dk_acc[NO][4], dv_acc[NO][4];
#pragma unroll
  for (int f = 0; f < NO; ++f)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk_acc[f][e] = dv_acc[f][e] = 0.f;

  for (int st = 0; st < nsteps; ++st) {
    const int s = st & 1;
    const int hh = st / nqt, q0 = (qt0 + st % nqt) * BQ, h = g * group + hh;
    __syncthreads();  // every warp is done with the other stage and with dS (step st-1)
    if (st + 1 < nsteps) step_load(st + 1, s ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();  // step st's Q, dO, lse, D (and at st = 0, K and V) are in shared memory
    const bf16x* Qs = reinterpret_cast<const bf16x*>(tc_smem + G::st_off + s * G::stage);
    const bf16x* dOs = Qs + BQ * LD;
    const float* lse_s = reinterpret_cast<const float*>(tc_smem + G::row_off) + s * 2 * BQ;
    const float* D_s = lse_s + BQ;
    const bool diag = q0 < k0 + BK - 1;  // some key of the block is after some query of the step

    // S^T and P^T for keys 16w.. (rows) x the step's 64 queries (columns)
    float sacc[NQ][4];
    mma_rows_by_rows<HS>(sacc, Ks + warp * 16 * LD, Qs, lane);
    uint32_t pa[KP][4];  // P^T as A fragments over the query dimension (dS reads them back)
#pragma unroll
    for (int n = 0; n < NQ; ++n) {
      float e4[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = n * 8 + 2 * tq + (e & 1), key = e < 2 ? key0 : key1;
        const bool on = q0 + qi < T && !(diag && key > q0 + qi);
        e4[e] = on ? exp2f(sacc[n][e] * scale_log2 - lse_s[qi]) : 0.f;
      }
      const __nv_bfloat162 p01 = __floats2bfloat162_rn(e4[0], e4[1]);
      const __nv_bfloat162 p23 = __floats2bfloat162_rn(e4[2], e4[3]);
      pa[n / 2][(n % 2) * 2] = pack_bf16x2(p01);
      pa[n / 2][(n % 2) * 2 + 1] = pack_bf16x2(p23);
    }
    mma_frags_by_rows<HS>(dv_acc, pa, dOs, lane);  // dV_w += P^T dO

    // dP^T = V_w dO^T; dS^T = P^T (dP^T - D) * scale
    mma_rows_by_rows<HS>(sacc, Vs + warp * 16 * LD, dOs, lane);
    uint32_t da[KP][4];
#pragma unroll
    for (int n = 0; n < NQ; ++n) {
      const int qa = n * 8 + 2 * tq;
      const float2 p01 = unpack_bf16x2(pa[n / 2][(n % 2) * 2]), p23 = unpack_bf16x2(pa[n / 2][(n % 2) * 2 + 1]);
      const float D0 = D_s[qa], D1 = D_s[qa + 1];
      const __nv_bfloat162 d01 = __floats2bfloat162_rn(p01.x * (sacc[n][0] - D0) * scale, p01.y * (sacc[n][1] - D1) * scale);
      const __nv_bfloat162 d23 = __floats2bfloat162_rn(p23.x * (sacc[n][2] - D0) * scale, p23.y * (sacc[n][3] - D1) * scale);
      da[n / 2][(n % 2) * 2] = pack_bf16x2(d01);
      da[n / 2][(n % 2) * 2 + 1] = pack_bf16x2(d23);
      // dS with queries as rows, for dQ
      dSs[qa * LDS + warp * 16 + gq] = __low2bfloat16(d01);
      dSs[(qa + 1) * LDS + warp * 16 + gq] = __high2bfloat16(d01);
      dSs[qa * LDS + warp * 16 + gq + 8] = __low2bfloat16(d23);
      dSs[(qa + 1) * LDS + warp * 16 + gq + 8] = __high2bfloat16(d23);
    }
    mma_frags_by_rows<HS>(dk_acc, da, Qs, lane);  // dK_w += dS^T Q
    __syncthreads();  // all of dS is in shared memory

    // dQ (16 query rows x HS/2 columns per warp) = dS K, added to dq
    {
      const int r0 = (warp % 4) * 16, c0 = (warp / 4) * (HS / 2);
      float qacc[HS / 16][4];
#pragma unroll
      for (int f = 0; f < HS / 16; ++f) qacc[f][0] = qacc[f][1] = qacc[f][2] = qacc[f][3] = 0.f;
#pragma unroll 1
      for (int kk = 0; kk < BK / 16; ++kk) {
        uint32_t a[4];
        ldsm_x4(a, dSs + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int dp = 0; dp < HS / 32; ++dp) {
          uint32_t bb[4];
          ldsm_x4_trans(bb, Ks + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + c0 + dp * 16 + (lane >> 4) * 8);
          mma_16816(qacc[2 * dp], a, bb[0], bb[1]);
          mma_16816(qacc[2 * dp + 1], a, bb[2], bb[3]);
        }
      }
      if (dq != nullptr) {
#pragma unroll
        for (int f = 0; f < HS / 16; ++f)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int qi = q0 + r0 + gq + (e >> 1) * 8;
            if (qi < T)
              atomicAdd(dq + ((int64_t)b * T + qi) * o_stride + (int64_t)h * HS + c0 + f * 8 + 2 * tq + (e & 1),
                        qacc[f][e]);
          }
      }
    }
  }

  // this block owns keys k0..k0+127 of kv head g: add dK, dV (the sum in fp32, rounded once)
#pragma unroll
  for (int f = 0; f < NO; ++f)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int key = e < 2 ? key0 : key1;
      if (key >= T) continue;
      const int64_t off = ((int64_t)b * T + key) * kv_stride + (int64_t)g * HS + f * 8 + 2 * tq + (e & 1);
      if (dk != nullptr) dk[off] = __float2bfloat16_rn(__bfloat162float(dk[off]) + dk_acc[f][e]);
      if (dv != nullptr) dv[off] = __float2bfloat16_rn(__bfloat162float(dv[off]) + dv_acc[f][e]);
    }
}

// Whether the device grants the backward kernel's shared memory (raised once, on first ask).
template <int HS>
bool bwd_mma_granted() {
  static const bool granted = raise_smem_limit(attn_bwd_mma_kernel<HS>, MmaBwdGeo<HS>::bytes);
  return granted;
}

// Only once bwd_mma_granted<HS>() (attention_backward_mma asks before its pre-pass).
template <int HS>
void launch_bwd_mma(float* dq, bf16x* dk, bf16x* dv, const bf16x* dout, const bf16x* q, const bf16x* k,
                    const bf16x* v, const float* lse, const float* D, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                    int64_t q_stride, int64_t kv_stride) {
  const char* where = "attention_backward (bf16, mma)";
  constexpr size_t smem = MmaBwdGeo<HS>::bytes;
  auto kernel = attn_bwd_mma_kernel<HS>;
  const bool vec_q = aligned_rows16(q, q_stride);
  const bool vec_kv = aligned_rows16(k, kv_stride) && aligned_rows16(v, kv_stride);
  const bool vec_o = aligned_rows16(dout, NH * HS);
  const dim3 grid((unsigned)(B * NKV), (unsigned)((T + kMmaBwdBK - 1) / kMmaBwdBK));
  kernel<<<grid, kMmaThreads, smem, stream()>>>(dq, dk, dv, dout, q, k, v, lse, D, (int)T, (int)NH, (int)NKV,
                                                (int)(NH / NKV), q_stride, kv_stride, 1.f / std::sqrt((float)HS),
                                                vec_q, vec_kv, vec_o);
  PUZZLE_CUDA_CHECK_LAUNCH(where);
}

}  // namespace

bool attention_mma_selected() {
  static const bool on = [] {
    const char* e = std::getenv("PUZZLE_CUDA_ATTN");
    return e == nullptr || (std::strcmp(e, "wmma") != 0 && std::strcmp(e, "simt") != 0);
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
    return launch_fwd_mma<64>(dev(out), lse, dev(q), dev(k), dev(v), B, T, 0, NH, NKV, q_stride, T * kv_stride,
                              kv_stride);
  return launch_fwd_mma<128>(dev(out), lse, dev(q), dev(k), dev(v), B, T, 0, NH, NKV, q_stride, T * kv_stride,
                             kv_stride);
}

bool attention_cached_forward_mma(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, int64_t B,
                                  int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                                  int64_t Tmax) {
  if (HS != 64 && HS != 128) return false;
  if (B <= 0 || Tq <= 0 || NH <= 0) return true;
  if (NKV <= 0 || NH % NKV != 0 || past < 0 || past + Tq > Tmax || Tmax > INT32_MAX / 2) {
    record_error(cudaErrorInvalidValue, "attention_cached_forward (bf16, mma)");
    return true;
  }
  const int64_t KW = NKV * HS;
  if (HS == 64)
    return launch_fwd_mma<64>(dev(out), nullptr, dev(q), dev(k_cache), dev(v_cache), B, Tq, past, NH, NKV, q_stride,
                              Tmax * KW, KW);
  return launch_fwd_mma<128>(dev(out), nullptr, dev(q), dev(k_cache), dev(v_cache), B, Tq, past, NH, NKV, q_stride,
                             Tmax * KW, KW);
}

bool attention_backward_mma(float* dq32, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                            const bf16* v, const bf16* out, const float* lse, float* D, int64_t B, int64_t T,
                            int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  if (HS != 64 && HS != 128) return false;
  if (B <= 0 || T <= 0 || NH <= 0) return true;
  if (dq32 == nullptr && dk == nullptr && dv == nullptr) return true;
  if (NKV <= 0 || NH % NKV != 0 || T > INT32_MAX / 2) {
    record_error(cudaErrorInvalidValue, "attention_backward (bf16, mma)");
    return true;
  }
  // the pre-pass only once the kernel is known to run: a declined call costs nothing
  if (!(HS == 64 ? bwd_mma_granted<64>() : bwd_mma_granted<128>())) return false;
  attention_backward_dot(D, dout, out, B, T, NH, HS);
  if (HS == 64)
    launch_bwd_mma<64>(dq32, dev(dk), dev(dv), dev(dout), dev(q), dev(k), dev(v), lse, D, B, T, NH, NKV, q_stride,
                       kv_stride);
  else
    launch_bwd_mma<128>(dq32, dev(dk), dev(dv), dev(dout), dev(q), dev(k), dev(v), lse, D, B, T, NH, NKV, q_stride,
                        kv_stride);
  return true;
}

}  // namespace puzzle::cuda
