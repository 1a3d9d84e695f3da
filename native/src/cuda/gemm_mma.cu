// Our own GEMM for bf16 operands on mma.sync (cuda/mma.cuh), where cuBLAS is absent or
// PUZZLE_CUDA_GEMM=own: C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C, bf16 operands, fp32
// accumulation, bf16 or fp32 C, the semantics of gemm() in gemm.cu (which calls this for the
// large bf16 shapes and keeps its wmma kernel for fp32 operands and for operands this one refuses).
//
// Why a second kernel: gemm.cu's wmma kernel loads each k-tile into registers, converts and
// stores it to shared memory and waits for it, two stages deep; on the H200 it ran at 111 TFLOP/s
// (benchmarks/results/gpu-h200-2026-11-28.md) where cuBLAS ran at 790. Operands already in bf16
// need no conversion, so they can go straight from global to shared memory with cp.async, several
// k-tiles ahead of the tensor cores, which is the structure of CUTLASS's sm80 kernels:
//  * block tile BM x BN x 32 (BM 128; BN 256 when there are enough tiles to fill every SM once,
//    else 128), 8 warps in a 2 x 4 grid of 64 x BN/4 warp tiles, fp32 accumulators in registers
//    (mma.m16n8k16: 64 x 64 per warp is 128 floats a thread);
//  * STAGES k-tiles in flight (4 at BN 256: 120 KiB of shared memory; 3 at BN 128: 60 KiB, so
//    two blocks share an SM), one cp.async group per k-tile, one barrier per k-tile;
//  * each operand tile kept in shared memory in its global layout (k-contiguous rows, or rows
//    along m / n) with 8 bf16 of padding per row, which makes every ldmatrix conflict-free;
//    ldmatrix.trans turns the m- or n-contiguous layouts into the fragments mma.sync wants, so
//    all four (transA, transB) cases read global memory in whole 16-byte chunks;
//  * tiles launched in groups of 8 tile rows (the grid walks down a column of 8 tiles before
//    moving right), so neighbouring blocks share their A and B panels in L2;
//  * the epilogue writes straight from the accumulators: a lane's two adjacent columns as one
//    8-byte (fp32) or 4-byte (bf16) store, beta * C read the same way, edges per element;
//  * split-K where the output has fewer 128 x 128 tiles than the GPU has SMs and K is long (the
//    decode of 17..128 tokens: 64 x 4096 x 14336 is 32 tiles for 132 SMs, so without it three
//    quarters of the GPU would sit idle while a quarter streams the weights): the grid's second
//    dimension splits K into S spans of whole k-tiles, each block writes its raw fp32 partial sums
//    to a scratch buffer [S][M][N] (cuda/scratch.cuh), and a reduce kernel adds the S partials in
//    a fixed order and applies alpha, beta * C and the output type. The result is deterministic
//    run to run; it costs 2 * S * M * N * 4 bytes of extra traffic, small beside the weights read.
// Preconditions (else it returns false and queues nothing): A and B 16-byte aligned with row
// strides a multiple of 8 elements (every cp.async chunk aligned), M, N, K within int. Chunks that
// cross the edge of the matrix (ragged M, N or K) are loaded element by element with zeros past
// the edge, so no shape is excluded. Everything is queued on stream() without allocation or
// synchronisation (graph capture safe).
#include <algorithm>
#include <climits>
#include <cstdint>
#include <mutex>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/mma.cuh"
#include "cuda/scratch.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kMmaGemmThreads = 256;  // 8 warps: 2 along M x 4 along N
constexpr int kBM = 128, kBK = 32;
constexpr int kPad = 8;  // bf16 of padding per shared-memory row (16 bytes)
constexpr int kGroupRows = 8;  // tile rows per launch group (L2 reuse)

// Shared-memory geometry of one (transA, transB, BN) configuration, in bf16 elements.
template <bool TA, bool TB, int BN>
struct MmaGemmGeo {
  static constexpr int STAGES = BN == 256 ? 4 : 3;
  static constexpr int WN = BN / 4;  // warp tile columns (64 or 32)
  static constexpr int NT = WN / 8;  // n8 tiles per warp
  // A: !TA: [kBM][kBK + kPad] (k contiguous); TA: [kBK][kBM + kPad] (m contiguous)
  static constexpr int LDA = TA ? kBM + kPad : kBK + kPad;
  static constexpr int A_ELEMS = TA ? kBK * LDA : kBM * LDA;
  // B: TB: [BN][kBK + kPad] (k contiguous, B given as [N, K]); !TB: [kBK][BN + kPad] (n contiguous)
  static constexpr int LDB = TB ? kBK + kPad : BN + kPad;
  static constexpr int B_ELEMS = TB ? BN * LDB : kBK * LDB;
  static constexpr int STAGE_ELEMS = A_ELEMS + B_ELEMS;
  static constexpr size_t bytes = (size_t)STAGES * STAGE_ELEMS * 2;
  static_assert(A_ELEMS % 64 == 0 && B_ELEMS % 64 == 0, "every tile starts 128-byte aligned");
  static_assert(NT % 2 == 0, "B fragments are loaded two n8 tiles at a time");
};

// One 16-byte chunk (8 bf16 along the contiguous dimension) from global to shared memory: by
// cp.async when all 8 exist, else element by element with zeros for the missing ones (nvalid may
// be <= 0: all zeros, and src is not read).
__device__ __forceinline__ void load_chunk(bf16x* dst, const bf16x* src, int nvalid) {
  if (nvalid >= 8) {
    cp_async16(dst, src);
  } else if (nvalid <= 0) {
    *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
  } else {
    alignas(16) bf16x v[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = e < nvalid ? src[e] : __float2bfloat16_rn(0.f);
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(v);
  }
}

// The k-tile starting at k0 of both operands into one stage of shared memory (cp.async chunks,
// not yet committed).
template <bool TA, bool TB, int BN>
__device__ __forceinline__ void load_stage(bf16x* sA, bf16x* sB, const bf16x* __restrict__ A, int64_t lda,
                                           const bf16x* __restrict__ B, int64_t ldb, int M, int N, int K, int m0,
                                           int n0, int k0) {
  using G = MmaGemmGeo<TA, TB, BN>;
  constexpr int A_CHUNKS = kBM * kBK / 8, B_CHUNKS = BN * kBK / 8;
  static_assert(A_CHUNKS % kMmaGemmThreads == 0 && B_CHUNKS % kMmaGemmThreads == 0, "whole chunks per thread");
#pragma unroll
  for (int j = 0; j < A_CHUNKS / kMmaGemmThreads; ++j) {
    const int i = (int)threadIdx.x + j * kMmaGemmThreads;
    if (!TA) {  // A [M, K]: row m, k chunk
      const int r = i / (kBK / 8), c = (i % (kBK / 8)) * 8, m = m0 + r, k = k0 + c;
      load_chunk(sA + r * G::LDA + c, A + (int64_t)m * lda + k, m < M ? K - k : 0);
    } else {  // A [K, M]: row k, m chunk
      const int r = i / (kBM / 8), c = (i % (kBM / 8)) * 8, k = k0 + r, m = m0 + c;
      load_chunk(sA + r * G::LDA + c, A + (int64_t)k * lda + m, k < K ? M - m : 0);
    }
  }
#pragma unroll
  for (int j = 0; j < B_CHUNKS / kMmaGemmThreads; ++j) {
    const int i = (int)threadIdx.x + j * kMmaGemmThreads;
    if (TB) {  // B [N, K]: row n, k chunk
      const int r = i / (kBK / 8), c = (i % (kBK / 8)) * 8, n = n0 + r, k = k0 + c;
      load_chunk(sB + r * G::LDB + c, B + (int64_t)n * ldb + k, n < N ? K - k : 0);
    } else {  // B [K, N]: row k, n chunk
      const int r = i / (BN / 8), c = (i % (BN / 8)) * 8, k = k0 + r, n = n0 + c;
      load_chunk(sB + r * G::LDB + c, B + (int64_t)k * ldb + n, k < K ? N - n : 0);
    }
  }
}

// Adjacent pairs of C for the epilogue (p 8-byte aligned for fp32, 4-byte for bf16).
__device__ __forceinline__ float2 load_pair(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ float2 load_pair(const bf16x* p) {
  const __nv_bfloat162 v = *reinterpret_cast<const __nv_bfloat162*>(p);
  return make_float2(__low2float(v), __high2float(v));
}
__device__ __forceinline__ void store_pair(float* p, float a, float b) { *reinterpret_cast<float2*>(p) = make_float2(a, b); }
__device__ __forceinline__ void store_pair(bf16x* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
}
__device__ __forceinline__ float load_one(const float* p) { return *p; }
__device__ __forceinline__ float load_one(const bf16x* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_one(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_one(bf16x* p, float v) { *p = __float2bfloat16_rn(v); }

// Block (tile, blockIdx.y) multiplies k in [blockIdx.y * kspan, min(K, that + kspan)) (kspan a
// multiple of kBK; kspan >= K and one block row in y when K is not split). Unsplit it writes
// alpha * acc + beta * C to C; split (partial != nullptr) it writes its raw sums to
// partial[blockIdx.y][M][N] and the reduce kernel finishes C.
template <bool TA, bool TB, int BN, class TOut>
__global__ void __launch_bounds__(kMmaGemmThreads, BN == 256 ? 1 : 2)
    gemm_mma_kernel(int M, int N, int K, int kspan, float alpha, const bf16x* __restrict__ A, int64_t lda,
                    const bf16x* __restrict__ B, int64_t ldb, float beta, TOut* C, int64_t ldc, bool pair_ok,
                    float* __restrict__ partial) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  using G = MmaGemmGeo<TA, TB, BN>;
  extern __shared__ __align__(128) unsigned char tc_smem[];
  bf16x* smem = reinterpret_cast<bf16x*>(tc_smem);

  // Tile of this block: groups of kGroupRows tile rows, walked column by column.
  const int tiles_m = (M + kBM - 1) / kBM, tiles_n = (N + BN - 1) / BN;
  const int per_group = kGroupRows * tiles_n;
  const int pid = (int)blockIdx.x, group = pid / per_group, first = group * kGroupRows;
  const int rows_here = min(tiles_m - first, kGroupRows);
  const int in_group = pid - group * per_group;
  const int m0 = (first + in_group % rows_here) * kBM, n0 = (in_group / rows_here) * BN;

  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
  const int wm = warp / 4, wn = warp % 4;  // warp tile: rows wm*64.., columns wn*WN..
  const int q = lane / 8, l8 = lane % 8;   // ldmatrix: matrix q's row addresses come from lanes 8q..8q+7

  float acc[4][G::NT][4];
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < G::NT; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.f;

  // This block's span of k: loads see kend as the end of the matrix (kspan is whole k-tiles, so
  // only the true end of K can be ragged)
  const int kbeg = (int)blockIdx.y * kspan, kend = min(K, kbeg + kspan);
  const int ktiles = (kend - kbeg + kBK - 1) / kBK;
  // Prologue: the first STAGES-1 k-tiles in flight, one group each (empty groups past the end
  // keep the count that cp_async_wait relies on).
#pragma unroll
  for (int s = 0; s < G::STAGES - 1; ++s) {
    if (s < ktiles)
      load_stage<TA, TB, BN>(smem + s * G::STAGE_ELEMS, smem + s * G::STAGE_ELEMS + G::A_ELEMS, A, lda, B, ldb, M, N,
                             kend, m0, n0, kbeg + s * kBK);
    cp_async_commit();
  }

  for (int kt = 0; kt < ktiles; ++kt) {
    // k-tile kt has landed (for this thread's copies; the barrier makes everyone's visible and
    // also says every warp is done with the stage the prefetch below overwrites, read at kt-1)
    cp_async_wait<G::STAGES - 2>();
    __syncthreads();
    {
      const int pf = kt + G::STAGES - 1, ps = pf % G::STAGES;
      if (pf < ktiles)
        load_stage<TA, TB, BN>(smem + ps * G::STAGE_ELEMS, smem + ps * G::STAGE_ELEMS + G::A_ELEMS, A, lda, B, ldb, M,
                               N, kend, m0, n0, kbeg + pf * kBK);
      cp_async_commit();
    }
    const bf16x* sA = smem + (kt % G::STAGES) * G::STAGE_ELEMS;
    const bf16x* sB = sA + G::A_ELEMS;
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      uint32_t af[4][4];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int m = wm * 64 + mi * 16;
        if (!TA)  // matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15), rows from lanes % 16
          ldsm_x4(af[mi], sA + (m + lane % 16) * G::LDA + kk + (lane / 16) * 8);
        else  // stored [k][m]: matrix q is m + (q % 2) * 8, k + (q / 2) * 8, transposed
          ldsm_x4_trans(af[mi], sA + (kk + (q / 2) * 8 + l8) * G::LDA + m + (q % 2) * 8);
      }
      uint32_t bfr[G::NT][2];
#pragma unroll
      for (int nj = 0; nj < G::NT / 2; ++nj) {
        const int n = wn * G::WN + nj * 16;
        uint32_t r[4];  // matrix q: n + (q / 2) * 8, k + (q % 2) * 8
        if (TB)
          ldsm_x4(r, sB + (n + (q / 2) * 8 + l8) * G::LDB + kk + (q % 2) * 8);
        else  // stored [k][n]
          ldsm_x4_trans(r, sB + (kk + (q % 2) * 8 + l8) * G::LDB + n + (q / 2) * 8);
        bfr[2 * nj][0] = r[0], bfr[2 * nj][1] = r[1], bfr[2 * nj + 1][0] = r[2], bfr[2 * nj + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < G::NT; ++ni) mma_16816(acc[mi][ni], af[mi], bfr[ni][0], bfr[ni][1]);
    }
  }
  cp_async_wait<0>();  // no copy may still target shared memory when the block exits

  // Epilogue: lane (g, t) holds rows g and g+8, columns 2t and 2t+1 of each 16x8 accumulator.
  const int g = lane / 4, t = lane % 4;
  // split-K: this span's raw sums go to its slice of the partials (row stride N), not to C
  float* P = partial != nullptr ? partial + (int64_t)blockIdx.y * M * N : nullptr;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < G::NT; ++ni) {
      const int col = n0 + wn * G::WN + ni * 8 + 2 * t;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = m0 + wm * 64 + mi * 16 + g + 8 * h;
        if (row >= M || col >= N) continue;
        if (P != nullptr) {  // pairs when N is even (then every pair is 8-byte aligned)
          float* p = P + (int64_t)row * N + col;
          if (N % 2 == 0) {
            store_pair(p, acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
          } else {
            p[0] = acc[mi][ni][2 * h];
            if (col + 1 < N) p[1] = acc[mi][ni][2 * h + 1];
          }
          continue;
        }
        TOut* p = C + (int64_t)row * ldc + col;
        float v0 = alpha * acc[mi][ni][2 * h], v1 = alpha * acc[mi][ni][2 * h + 1];
        if (pair_ok && col + 1 < N) {
          if (beta != 0.f) {
            const float2 c = load_pair(p);
            v0 += beta * c.x, v1 += beta * c.y;
          }
          store_pair(p, v0, v1);
        } else {
          if (beta != 0.f) v0 += beta * load_one(p);
          store_one(p, v0);
          if (col + 1 < N) {
            if (beta != 0.f) v1 += beta * load_one(p + 1);
            store_one(p + 1, v1);
          }
        }
      }
    }
}

// Split-K reduce: C = alpha * sum_s partial[s] + beta * C (beta == 0: C not read), the S
// partials added in order. vec4: N % 4 == 0, so four consecutive elements share a row and the
// partials are read as float4; pair_ok: C takes pairs (as in the GEMM's epilogue).
template <class TOut>
__global__ void __launch_bounds__(256)
    splitk_reduce_kernel(int M, int N, int S, float alpha, const float* __restrict__ partial, float beta, TOut* C,
                         int64_t ldc, bool vec4, bool pair_ok) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  const int64_t MN = (int64_t)M * N;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  if (vec4) {
    for (int64_t v = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; v < MN / 4; v += stride) {
      float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
      for (int k = 0; k < S; ++k) {
        const float4 p = reinterpret_cast<const float4*>(partial + (int64_t)k * MN)[v];
        s.x += p.x, s.y += p.y, s.z += p.z, s.w += p.w;
      }
      const int64_t idx = 4 * v, row = idx / N, col = idx - row * N;
      TOut* c = C + row * ldc + col;
      float o[4] = {alpha * s.x, alpha * s.y, alpha * s.z, alpha * s.w};
      if (pair_ok) {
#pragma unroll
        for (int h = 0; h < 4; h += 2) {
          if (beta != 0.f) {
            const float2 cv = load_pair(c + h);
            o[h] += beta * cv.x, o[h + 1] += beta * cv.y;
          }
          store_pair(c + h, o[h], o[h + 1]);
        }
      } else {
#pragma unroll
        for (int h = 0; h < 4; ++h) store_one(c + h, beta != 0.f ? o[h] + beta * load_one(c + h) : o[h]);
      }
    }
    return;
  }
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < MN; idx += stride) {
    float s = 0.f;
    for (int k = 0; k < S; ++k) s += partial[(int64_t)k * MN + idx];
    const int64_t row = idx / N, col = idx - row * N;
    TOut* c = C + row * ldc + col;
    store_one(c, beta != 0.f ? alpha * s + beta * load_one(c) : alpha * s);
  }
}

constexpr int kMinSplitKTiles = 4;  // k-tiles a split keeps at least (past the pipeline's prologue)
constexpr int kMaxSplits = 16;
constexpr int64_t kMaxSplitBytes = (int64_t)64 << 20;  // partial sums in scratch, at most

// The number of k-spans for an M x N x K product at BN 128 (1: not split): enough blocks for two
// per SM (the BN 128 kernel's occupancy) where the tiles alone leave SMs idle, each span at least
// kMinSplitKTiles long, the partials within kMaxSplitBytes. *kspan: the span in elements of k.
int splitk_spans(int M, int N, int K, int* kspan) {
  const int64_t tiles = (int64_t)((M + kBM - 1) / kBM) * ((N + 127) / 128);
  const int ktiles = (K + kBK - 1) / kBK;
  *kspan = ktiles * kBK;
  const int64_t sms = device_sm_count();
  if (tiles >= sms) return 1;
  int64_t S = std::min<int64_t>({(2 * sms + tiles - 1) / tiles, ktiles / kMinSplitKTiles, kMaxSplits,
                                 kMaxSplitBytes / ((int64_t)M * N * 4)});
  if (S < 2) return 1;
  const int per = (int)((ktiles + S - 1) / S);  // k-tiles a span; every span non-empty
  *kspan = per * kBK;
  return (ktiles + per - 1) / per;
}

Scratch& splitk_scratch() {
  static Scratch s("gemm split-K scratch");
  return s;
}

// Launches one configuration; false (nothing queued) if its shared memory cannot be granted.
// splits > 1 (BN 128 only): the split-K path, kspan elements of k a span.
template <bool TA, bool TB, int BN, class TOut>
bool launch_mma(int M, int N, int K, float alpha, const bf16x* A, int64_t lda, const bf16x* B, int64_t ldb, float beta,
                TOut* C, int64_t ldc, int splits = 1, int kspan = 0) {
  using G = MmaGemmGeo<TA, TB, BN>;
  auto kernel = gemm_mma_kernel<TA, TB, BN, TOut>;
  static const bool granted = raise_smem_limit(kernel, G::bytes);
  if (!granted) return false;
  const int64_t tiles = (int64_t)((M + kBM - 1) / kBM) * ((N + BN - 1) / BN);
  if (tiles > INT_MAX) return false;
  const bool pair_ok = ldc % 2 == 0 && reinterpret_cast<uintptr_t>(C) % (2 * sizeof(TOut)) == 0;
  // split-K: partial sums in scratch (held until the reduce is queued); without the memory for
  // them the unsplit kernel runs
  Scratch& sc = splitk_scratch();
  std::unique_lock<std::mutex> guard(sc.lock(), std::defer_lock);
  bool temporary = false;
  const int64_t MN = (int64_t)M * N;
  float* partial = nullptr;
  if (splits > 1) {
    guard.lock();
    partial = sc.acquire((size_t)(splits * MN) * sizeof(float), &temporary, /*quiet=*/true);
  }
  const dim3 grid((unsigned)tiles, partial != nullptr ? (unsigned)splits : 1u);
  launch_pdl("gemm (mma.sync kernel)", kernel, grid, kMmaGemmThreads, G::bytes, M, N, K, partial != nullptr ? kspan : K,
             alpha, A, lda, B, ldb, beta, C, ldc, pair_ok, partial);
  if (partial == nullptr) return true;
  const bool vec4 = N % 4 == 0;
  const int64_t items = vec4 ? MN / 4 : MN;
  const unsigned blocks = (unsigned)std::min<int64_t>((items + 255) / 256, 8 * (int64_t)device_sm_count());
  launch_pdl("gemm (split-K reduce)", splitk_reduce_kernel<TOut>, blocks, 256, 0, M, N, splits, alpha, partial, beta,
             C, ldc, vec4, pair_ok);
  sc.release(partial, temporary);
  return true;
}

template <bool TA, bool TB, class TOut>
bool dispatch_bn(int M, int N, int K, float alpha, const bf16x* A, int64_t lda, const bf16x* B, int64_t ldb,
                 float beta, TOut* C, int64_t ldc) {
  // BN 256 (more work per byte of shared memory read) when its tiles fill every SM at least once
  // and the device grants its shared memory; BN 128 otherwise.
  const int64_t tiles256 = (int64_t)((M + kBM - 1) / kBM) * ((N + 255) / 256);
  if (tiles256 >= device_sm_count() && launch_mma<TA, TB, 256>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
    return true;
  // BN 128, split along K where its tiles leave SMs idle
  int kspan = 0;
  const int splits = splitk_spans(M, N, K, &kspan);
  return launch_mma<TA, TB, 128>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, splits, kspan);
}

template <class TOut>
bool gemm_mma_t(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const bf16x* A, int64_t lda,
                const bf16x* B, int64_t ldb, float beta, TOut* C, int64_t ldc) {
  if (M <= 0 || N <= 0 || K <= 0 || M > INT_MAX || N > INT_MAX || K > INT_MAX) return false;
  const auto aligned = [](const bf16x* p, int64_t ld) { return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 8 == 0; };
  if (!aligned(A, lda) || !aligned(B, ldb)) return false;
  const int m = (int)M, n = (int)N, k = (int)K;
  if (!transA && !transB) return dispatch_bn<false, false>(m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  if (!transA && transB) return dispatch_bn<false, true>(m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  if (transA && !transB) return dispatch_bn<true, false>(m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  return dispatch_bn<true, true>(m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

void gemm_mma_trim_scratch() { splitk_scratch().trim(); }

bool gemm_mma(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const bf16x* A, int64_t lda,
              const bf16x* B, int64_t ldb, float beta, bf16x* C, int64_t ldc) {
  return gemm_mma_t(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
bool gemm_mma(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const bf16x* A, int64_t lda,
              const bf16x* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  return gemm_mma_t(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace puzzle::cuda
