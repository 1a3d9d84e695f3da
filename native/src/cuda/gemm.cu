// General strided GEMM on the GPU: C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C, row-major
// with row strides in elements (puzzle/gemm.h); beta == 0 overwrites C (its old contents, NaNs
// included, are never read). Storage is fp32 in and out, or (mixed precision) bf16 operands with
// a bf16 or fp32 C: every kernel below is a template over the operand type TIn and the output
// type TOut, with fp32 accumulation throughout.
//
// Paths (chosen per call in gemm()):
//  * nothing to multiply (K == 0 or alpha == 0): C = beta * C (0 when beta == 0), like the CPU.
//  * min(M, N) <= kSmallRows: bandwidth-bound "few rows" kernels in plain fp32 (decode: a handful
//    of tokens against a weight matrix). The problem is viewed as C'[m, n] = X[m, K] @ Y[K, n]
//    with m <= 16 (C' = C, or C^T when N is the small side). X chunks are staged in shared memory
//    and every element of Y is read from global memory exactly once:
//      - "dot" kernel when Y runs along k (out = inp @ W^T with W [N, K]): one warp per 4 columns,
//        16-byte loads of the weight rows when aligned (4 fp32 or 8 bf16), warp-shuffle reduction;
//      - "axpy" kernel when Y runs along n: 32 columns x 8 k-slices per block, reduced in smem;
//      - "one-row dot" kernel for m == 1 when the dot kernel would fill under 2 blocks per SM:
//        one block per 4 columns, all its threads along k (o and down projections of a decode).
//    The dot kernels also serve the inference fusions of norm_linear.cu (small_linear_fused,
//    small_qkv_rope_fused): RMSNorm folded into the staging of X (the norm weight multiplied in,
//    each row's sum of squares gathered on the way and its 1/rms applied to the sums at the end,
//    which is the same product), a residual read from its own matrix instead of C, SwiGLU in the
//    epilogue (a warp's columns are gate/up pairs j, F+j, so both halves of an output meet in one
//    warp), and RoPE with the KV-cache append in the epilogue (pairs d, d+HS/2 of a head).
//  * bf16 operands otherwise: gemm_mma.cu's kernel (cp.async k-tiles several stages ahead,
//    ldmatrix, mma.sync m16n8k16) when they are 16-byte aligned with row strides a multiple of 8,
//    split along K (partials reduced by a second kernel) where its tiles would leave SMs idle.
//  * otherwise: our wmma tensor-core kernel (bf16 operands, fp32 accumulation via nvcuda::wmma
//    m16n16k16): block tile 128x128x32, 8 warps in a 4x2 grid of 32x64 warp tiles, operands
//    converted to bf16 when stored to shared memory, double-buffered smem with the next k-tile
//    prefetched into registers while the current one is multiplied (128 registers, so two
//    blocks share an SM; keep an eye on spills in -Xptxas -v when touching it). Each of the four
//    (transA, transB) cases is its own instantiation whose smem layout follows the contiguous
//    dimension of the operand in global memory (the wmma fragment layout absorbs the transpose).
//    Out-of-range loads are zero-filled; the accumulators go through shared memory so edge
//    tiles are stored per element.
//  * with PUZZLE_HAVE_CUBLAS: cublasGemmEx (fp32 storage, CUBLAS_COMPUTE_32F_FAST_16BF) replaces
//    the tensor-core kernel for the large shapes; the few-rows kernels stay ours.
// PUZZLE_CUDA_GEMM=own|wmma|cublas (read once) forces our kernels (wmma: the wmma kernel for bf16
// operands too, to time the two), or cuBLAS for every shape.
// Everything is queued on stream() with no allocation and no synchronisation, so calls can be
// captured into a CUDA graph (the cuBLAS handle and its workspace are created once, outside
// any capture, the first time gemm() or gemm_kernel_name() runs).
#include <mma.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/vec.cuh"

#ifdef PUZZLE_HAVE_CUBLAS
#include <cublas_v2.h>
#endif

namespace puzzle::cuda {
namespace {

// ============================================================================================
// Tensor-core kernel
// ============================================================================================

constexpr int kTcThreads = 256;       // 8 warps
constexpr int kTM = 128, kTN = 128;   // block tile (rows of C, columns of C)
constexpr int kTK = 32;               // k per pipeline stage
constexpr int kLdK = kTK + 8;         // 40 bf16: smem row of a tile stored k-contiguous ([128][kTK])
constexpr int kLdR = kTM + 8;         // 136 bf16: smem row of a tile stored row-contiguous ([kTK][128])
constexpr int kTileElems = kTM * kLdK;  // 5120 bf16, enough for either layout (kTK * kLdR = 4352)
constexpr int kStageLd = 68;          // fp32 row stride of a warp's 16x64 epilogue staging area
constexpr int kMaxRowTiles = 65535;   // gridDim.y limit

static_assert(kTM == kTN, "the operand loaders assume square block tiles");
static_assert(kTK * kLdR <= kTileElems, "tile buffer too small");
static_assert(8 * 16 * kStageLd * 4 <= 2 * 2 * kTileElems * 2, "epilogue staging does not fit");

// Element access for both storage types: loads widen to fp32, stores round once.
__device__ __forceinline__ float ldg1(const float* p) { return __ldg(p); }
__device__ __forceinline__ float ldg1(const bf16x* p) { return __bfloat162float(__ldg(p)); }
__device__ __forceinline__ float4 ldg4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }
__device__ __forceinline__ float4 ldg4(const bf16x* p) {  // 4 bf16 = 8 bytes
  const uint2 u = __ldg(reinterpret_cast<const uint2*>(p));
  return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                     __uint_as_float(u.y & 0xffff0000u));
}
// 16 bytes: 4 fp32 or 8 bf16 values, widened.
__device__ __forceinline__ void ldg16(float (&v)[4], const float* p) {
  const float4 t = __ldg(reinterpret_cast<const float4*>(p));
  v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
}
__device__ __forceinline__ void ldg16(float (&v)[8], const bf16x* p) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
  const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) v[2 * i] = __uint_as_float(w[i] << 16), v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
}
__device__ __forceinline__ float load_c(const float* p) { return *p; }
__device__ __forceinline__ float load_c(const bf16x* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_c(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_c(bf16x* p, float v) { *p = __float2bfloat16_rn(v); }

// One operand tile of 128 "rows" (m for A, n for B) by kTK = 32 k-values, read from global memory
// into registers as fp32: 1024 groups of 4 consecutive elements, 4 groups per thread. KC says how
// the operand lies in global memory:
//   KC = true : element (r, k) at X[r * ld + k]   (k contiguous; A without transpose, B^T given)
//   KC = false: element (r, k) at X[k * ld + r]   (r contiguous; A^T given, B without transpose)
// Each group runs along the contiguous dimension, and a thread's 4 groups share one row of
// global memory, so they sit at fixed offsets from a single pointer:
//   KC = true : thread t, group g: row r = t >> 1,  k = ((t & 1) + 2 g) * 4 .. +3   (offset 8 g)
//   KC = false: thread t, group g: k = t >> 3,      r = ((t & 7) + 8 g) * 4 .. +3   (offset 32 g)
// (a warp's load for one g covers whole 32-byte sectors: 16 rows x 32 B, or 4 k-rows x 128 B).
template <bool KC>
__device__ __forceinline__ void tile_coords(int t, int g, int& r, int& k) {
  if (KC) {
    r = t >> 1;
    k = ((t & 1) + 2 * g) * 4;
  } else {
    k = t >> 3;
    r = ((t & 7) + 8 * g) * 4;
  }
}

// A thread's view of one operand: p points at the first element of its group 0 in the current
// k-tile; group g starts at p + g * (KC ? 8 : 32).
template <class TIn>
struct TileCursor {
  const TIn* p;
  int rlim;  // rows of this block's tile that exist: min(R - r0, 128)
};

template <bool KC, class TIn>
__device__ __forceinline__ TileCursor<TIn> make_cursor(const TIn* X, int64_t ld, int r0, int R) {
  int r, k;
  tile_coords<KC>(threadIdx.x, 0, r, k);
  TileCursor<TIn> c;
  c.p = KC ? X + (int64_t)(r0 + r) * ld + k : X + (int64_t)k * ld + (r0 + r);
  c.rlim = min(R - r0, kTM);
  return c;
}

template <bool KC, class TIn>
__device__ __forceinline__ void advance(TileCursor<TIn>& c, int64_t ld) {
  c.p += KC ? (int64_t)kTK : (int64_t)kTK * ld;
}

// Loads the tile whose k-values are k0 .. k0+31, of which klim = min(K - k0, 32) exist. `vec`
// (X 16-byte aligned and ld % 4 == 0) allows one float4 load per group when the whole group is in
// range; otherwise elements are loaded one by one and those out of range read as zero. (For bf16
// operands a group is one 8-byte load and `vec` means 8-byte alignment.)
template <bool KC, class TIn>
__device__ __forceinline__ void load_tile(float4 (&v)[4], const TileCursor<TIn>& cur, int klim, bool vec) {
  if (vec && cur.rlim == kTM && klim == kTK) {  // whole tile in range (block-uniform): plain vector loads
#pragma unroll
    for (int g = 0; g < 4; ++g) v[g] = ldg4(cur.p + g * (KC ? 8 : 32));
    return;
  }
#pragma unroll
  for (int g = 0; g < 4; ++g) {
    int r, k;
    tile_coords<KC>(threadIdx.x, g, r, k);
    const TIn* p = cur.p + g * (KC ? 8 : 32);
    // element c of the group is in range iff line_ok && c < c_lim
    const bool line_ok = KC ? r < cur.rlim : k < klim;
    const int c_lim = KC ? klim - k : cur.rlim - r;
    float e[4];
    if (vec && line_ok && c_lim >= 4) {
      const float4 t = ldg4(p);
      e[0] = t.x, e[1] = t.y, e[2] = t.z, e[3] = t.w;
    } else {
      const int n_ok = line_ok ? c_lim : 0;  // elements 0 .. n_ok-1 exist
#pragma unroll
      for (int c = 0; c < 4; ++c) e[c] = c < n_ok ? ldg1(p + c) : 0.f;
    }
    v[g] = make_float4(e[0], e[1], e[2], e[3]);
  }
}

// Converts the register tile to bf16 and stores it in the canonical smem layout of its kind:
//   KC = true : s[r * kLdK + k]  (read by wmma as row_major A / col_major B, ldm kLdK)
//   KC = false: s[k * kLdR + r]  (read by wmma as col_major A / row_major B, ldm kLdR)
// The 4 elements of a group are adjacent in both layouts: one 8-byte store.
template <bool KC>
__device__ __forceinline__ void store_tile(const float4 (&v)[4], __nv_bfloat16* s) {
#pragma unroll
  for (int g = 0; g < 4; ++g) {
    int r, k;
    tile_coords<KC>(threadIdx.x, g, r, k);
    const __nv_bfloat162 lo = __floats2bfloat162_rn(v[g].x, v[g].y);  // .x at the lower address
    const __nv_bfloat162 hi = __floats2bfloat162_rn(v[g].z, v[g].w);
    uint2 packed;
    std::memcpy(&packed.x, &lo, 4);
    std::memcpy(&packed.y, &hi, 4);
    __nv_bfloat16* dst = KC ? s + r * kLdK + k : s + k * kLdR + r;
    *reinterpret_cast<uint2*>(dst) = packed;
  }
}

template <bool TA, bool TB, class TIn, class TOut>
__global__ void __launch_bounds__(kTcThreads, 2)
    gemm_tc_kernel(int M, int N, int K, float alpha, const TIn* __restrict__ A, int64_t lda,
                   const TIn* __restrict__ B, int64_t ldb, float beta, TOut* C, int64_t ldc, bool vecA,
                   bool vecB) {
  using namespace nvcuda;
  // op(A)(m, k): A[m*lda + k] (k contiguous) unless TA; op(B)(k, n): B[n*ldb + k] (k contiguous) iff TB.
  constexpr bool KA = !TA, KB = TB;
  using LayoutA = typename std::conditional<KA, wmma::row_major, wmma::col_major>::type;
  using LayoutB = typename std::conditional<KB, wmma::col_major, wmma::row_major>::type;
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA>;
  using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB>;
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
  constexpr int ldmA = KA ? kLdK : kLdR;
  constexpr int ldmB = KB ? kLdK : kLdR;

  __shared__ __align__(128) __nv_bfloat16 smem[2][2][kTileElems];  // [stage][A, B]

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm = warp >> 1, wn = warp & 1;  // 4 x 2 warps; warp tile: rows wm*32 .. +31, columns wn*64 .. +63
  const int m0 = blockIdx.y * kTM, n0 = blockIdx.x * kTN;

  FragC acc[2][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  const int ntiles = (K + kTK - 1) / kTK;
  TileCursor<TIn> ca = make_cursor<KA>(A, lda, m0, M);
  TileCursor<TIn> cb = make_cursor<KB>(B, ldb, n0, N);
  {
    float4 stg[4];
    load_tile<KA>(stg, ca, min(K, kTK), vecA);
    store_tile<KA>(stg, smem[0][0]);
    load_tile<KB>(stg, cb, min(K, kTK), vecB);
    store_tile<KB>(stg, smem[0][1]);
  }
  __syncthreads();

  for (int t = 0; t < ntiles; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < ntiles;
    float4 ra[4], rb[4];
    if (more) {  // issue the next tile's global loads now; they land while this tile is multiplied
      const int klim = min(K - (t + 1) * kTK, kTK);
      advance<KA>(ca, lda);
      advance<KB>(cb, ldb);
      load_tile<KA>(ra, ca, klim, vecA);
      load_tile<KB>(rb, cb, klim, vecB);
    }
    const __nv_bfloat16* sA = smem[cur][0];
    const __nv_bfloat16* sB = smem[cur][1];
#pragma unroll
    for (int kk = 0; kk < kTK; kk += 16) {
      FragA fa[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int m = wm * 32 + i * 16;
        wmma::load_matrix_sync(fa[i], KA ? sA + m * kLdK + kk : sA + kk * kLdR + m, ldmA);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int n = wn * 64 + j * 16;
        FragB fb;
        wmma::load_matrix_sync(fb, KB ? sB + n * kLdK + kk : sB + kk * kLdR + n, ldmB);
#pragma unroll
        for (int i = 0; i < 2; ++i) wmma::mma_sync(acc[i][j], fa[i], fb, acc[i][j]);
      }
    }
    if (more) {  // buffer cur^1 was last read in iteration t-1, which every warp has finished
      store_tile<KA>(ra, smem[cur ^ 1][0]);
      store_tile<KB>(rb, smem[cur ^ 1][1]);
    }
    __syncthreads();  // the stores are visible to iteration t+1; every warp is done reading `cur`
  }

  // Epilogue: each warp stages 16 rows x 64 columns at a time in its own slice of the (now idle)
  // tile buffers; each lane then owns two columns (lane, lane + 32) and walks the 16 rows, so
  // every row segment is written as 128 contiguous bytes. Stores are masked per element.
  float* stage = reinterpret_cast<float*>(&smem[0][0][0]) + warp * 16 * kStageLd;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) wmma::store_matrix_sync(stage + j * 16, acc[i][j], kStageLd, wmma::mem_row_major);
    __syncwarp();
    const int gm0 = m0 + wm * 32 + i * 16;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int gn = n0 + wn * 64 + h * 32 + lane;
      if (gn < N) {
#pragma unroll 4
        for (int r = 0; r < 16; ++r) {
          const int gm = gm0 + r;
          if (gm < M) {
            TOut* c = C + (int64_t)gm * ldc + gn;
            float v = alpha * stage[r * kStageLd + h * 32 + lane];
            if (beta != 0.f) v += beta * load_c(c);
            store_c(c, v);
          }
        }
      }
    }
    __syncwarp();  // the staging area is rewritten for the next i
  }
}

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// A group of 4 elements can be one vector load (16 bytes of fp32, 8 of bf16).
template <class T>
bool vec4_aligned(const T* p, int64_t ld) {
  return (reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T))) == 0 && ld % 4 == 0;
}

// The kernel indexes rows, columns and k with int: problems past these sizes go in pieces.
constexpr int64_t kMaxRowsPerLaunch = (int64_t)kMaxRowTiles * kTM;  // gridDim.y limit
constexpr int64_t kMaxColsPerLaunch = (int64_t)1 << 30;
constexpr int64_t kMaxKPerLaunch = (int64_t)1 << 30;

template <bool TA, bool TB, class TIn, class TOut>
void launch_tc(int64_t M, int64_t N, int64_t K, float alpha, const TIn* A, int64_t lda, const TIn* B,
               int64_t ldb, float beta, TOut* C, int64_t ldc) {
  // Offsets below are multiples of 128 rows/columns or 2^30 k-values, so the alignment tested
  // here holds for every piece.
  const bool vecA = vec4_aligned(A, lda);
  const bool vecB = vec4_aligned(B, ldb);
  for (int64_t ko = 0; ko < K; ko += kMaxKPerLaunch) {
    const int64_t kc = std::min(K - ko, kMaxKPerLaunch);
    const float beta_k = ko == 0 ? beta : 1.f;  // later pieces of k accumulate onto the first
    for (int64_t mo = 0; mo < M; mo += kMaxRowsPerLaunch) {
      const int64_t mc = std::min(M - mo, kMaxRowsPerLaunch);
      for (int64_t no = 0; no < N; no += kMaxColsPerLaunch) {
        const int64_t nc = std::min(N - no, kMaxColsPerLaunch);
        // op(A)(m, k) = A[m*lda + k], or A[k*lda + m] when TA; op(B)(k, n) = B[k*ldb + n], or B[n*ldb + k] when TB.
        const TIn* Ao = TA ? A + ko * lda + mo : A + mo * lda + ko;
        const TIn* Bo = TB ? B + no * ldb + ko : B + ko * ldb + no;
        const dim3 grid((unsigned)((nc + kTN - 1) / kTN), (unsigned)((mc + kTM - 1) / kTM));
        gemm_tc_kernel<TA, TB, TIn, TOut><<<grid, kTcThreads, 0, stream()>>>((int)mc, (int)nc, (int)kc, alpha, Ao, lda, Bo,
                                                                   ldb, beta_k, C + mo * ldc + no, ldc, vecA, vecB);
        PUZZLE_CUDA_CHECK_LAUNCH("gemm (tensor-core kernel)");
      }
    }
  }
}

template <class TIn, class TOut>
void tc_gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const TIn* A, int64_t lda,
             const TIn* B, int64_t ldb, float beta, TOut* C, int64_t ldc) {
  if (!transA && !transB)
    launch_tc<false, false, TIn, TOut>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else if (!transA && transB)
    launch_tc<false, true, TIn, TOut>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else if (transA && !transB)
    launch_tc<true, false, TIn, TOut>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    launch_tc<true, true, TIn, TOut>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// ============================================================================================
// Few-rows kernels (fp32 math; operands TIn, output TOut): C'(i, j) = alpha * sum_k X(i, k) Y(k, j) + beta * C'(i, j), i < m <= 16
//   X(i, k) = X[i*x_rs + k*x_cs]   C'(i, j) = C[i*c_rs + j*c_cs]
//   dot kernel:  Y(k, j) = Y[j*y_cs + k]  (k contiguous)
//   axpy kernel: Y(k, j) = Y[k*y_rs + j]  (j contiguous)
// ============================================================================================

constexpr int kSmallRows = 16;
constexpr int kSmallThreads = 256;
constexpr int kSmallWarps = kSmallThreads / 32;
constexpr int kXsFloats = 8192;  // 32 KiB of staged X per block: a chunk of KC = kXsFloats / MR k-values
constexpr int kDotCols = 4;      // columns per warp in the dot kernel
constexpr int kAxpySlices = kSmallWarps;  // k-slices (one per warp) in the axpy kernel

// Each thread's part of a row's sum of squares, added to ssq[row] (shared) when the thread moves
// to another row or finishes: a thread's staging indices rarely cross a row boundary, so the
// shared atomics stay few.
struct RowSquares {
  float* ssq;
  int row = -1;
  float s = 0.f;
  __device__ __forceinline__ void add(int i, float squares) {  // squares: of some values of row i
    if (i != row) {
      flush();
      row = i;
    }
    s += squares;
  }
  __device__ __forceinline__ void flush() {
    if (row >= 0 && s != 0.f) atomicAdd(&ssq[row], s);
    s = 0.f;
  }
};

// Stages X(0..MR-1, k0 .. k0+kc-1) into xs[i * KC + kk]; rows m..MR-1 are zero. Columns kk >= kc
// are left as they are (never read). Consecutive threads follow X's contiguous dimension. xvec
// (x_cs == 1, X and its row stride 16-byte aligned): 16-byte loads, four or eight values each, so
// a row of 4096 bf16 takes each thread two loads instead of sixteen one after another (every block
// stages X before it streams its weights: that chain was the start of every block).
// NORM (small_linear_fused's RMSNorm): each value is multiplied by the norm weight nw[k0 + kk]
// (loaded beside it, so the norm adds no step to the chain) and its square goes to its row's
// ssq[i] (shared; 1/rms is a factor of the whole row, applied to the finished sums). nw is
// 16-byte aligned wherever X is.
template <int MR, bool NORM = false, class TIn>
__device__ __forceinline__ void stage_x(float* xs, const TIn* __restrict__ X, int64_t x_rs, int64_t x_cs, int m,
                                        int64_t k0, int kc, bool xvec, const TIn* __restrict__ nw = nullptr,
                                        float* ssq = nullptr) {
  constexpr int KC = kXsFloats / MR;
  const int total = MR * kc;
  RowSquares sq{ssq};
  if (xvec) {
    constexpr int VW = 16 / sizeof(TIn);
    const int kcv = kc / VW, nvec = MR * kcv;
#pragma unroll 4
    for (int idx = threadIdx.x; idx < nvec; idx += blockDim.x) {
      const int i = idx / kcv, kk = (idx - i * kcv) * VW;
      float v[VW];
      if (i < m) {
        ldg16(v, X + i * x_rs + k0 + kk);
        if constexpr (NORM) {
          float g[VW], q = 0.f;
          ldg16(g, nw + k0 + kk);
#pragma unroll
          for (int e = 0; e < VW; ++e) {
            q = fmaf(v[e], v[e], q);
            v[e] *= g[e];
          }
          sq.add(i, q);
        }
      } else {
#pragma unroll
        for (int e = 0; e < VW; ++e) v[e] = 0.f;
      }
#pragma unroll
      for (int e = 0; e < VW; e += 4)
        *reinterpret_cast<float4*>(xs + i * KC + kk + e) = make_float4(v[e], v[e + 1], v[e + 2], v[e + 3]);
    }
    // the last kc % VW values of each row, one at a time
    const int rem = kc - kcv * VW;
    for (int idx = threadIdx.x; idx < MR * rem; idx += blockDim.x) {
      const int i = idx / rem, kk = kcv * VW + (idx - i * rem);
      float v = i < m ? ldg1(X + i * x_rs + k0 + kk) : 0.f;
      if (NORM && i < m) {
        sq.add(i, v * v);
        v *= ldg1(nw + k0 + kk);
      }
      xs[i * KC + kk] = v;
    }
  } else if (x_cs == 1) {
#pragma unroll 4
    for (int idx = threadIdx.x; idx < total; idx += blockDim.x) {
      const int i = idx / kc, kk = idx - i * kc;
      float v = i < m ? ldg1(X + i * x_rs + k0 + kk) : 0.f;
      if (NORM && i < m) {
        sq.add(i, v * v);
        v *= ldg1(nw + k0 + kk);
      }
      xs[i * KC + kk] = v;
    }
  } else {
#pragma unroll 4
    for (int idx = threadIdx.x; idx < total; idx += blockDim.x) {
      const int kk = idx / MR, i = idx - kk * MR;
      float v = i < m ? ldg1(X + i * x_rs + (k0 + kk) * x_cs) : 0.f;
      if (NORM && i < m) {
        sq.add(i, v * v);
        v *= ldg1(nw + k0 + kk);
      }
      xs[i * KC + kk] = v;
    }
  }
  if constexpr (NORM) sq.flush();
}

// Inference fusions of the dot kernels (small_linear_fused, small_qkv_rope_fused): kFuseNone, or
// RMSNorm folded into X's staging, or that and SwiGLU in the epilogue, or that and RoPE with the
// KV-cache append in the epilogue. The last two pair the weight rows a warp reads (kDotCols / 2
// pairs): gate j with up F+j; a head's element d with d+HS/2, which RoPE rotates together.
constexpr int kFuseNone = 0, kFuseNorm = 1, kFuseNormGlu = 2, kFuseNormRope = 3;
__host__ __device__ constexpr bool paired(int fuse) { return fuse == kFuseNormGlu || fuse == kFuseNormRope; }

// kFuseNormRope's epilogue (rope_kv_cache_append's arguments, cuda/rope.cu): output pair p is
// element d = p % h of head p / h of the fused q|k|v row (h = HS / 2); rows are tokens b*T + t.
template <class TOut>
struct QkvRope {
  TOut* k_cache = nullptr;
  TOut* v_cache = nullptr;
  const float* cos = nullptr;
  const float* sin = nullptr;
  const int32_t* pos = nullptr;
  int64_t T = 1, past = 0, Tmax = 0;
  int h = 1, NH = 0, NKV = 0;
};

// The weight row behind a warp's column c (of kDotCols) when its first output column is j0 of n,
// clamped to a valid row (columns past n are read as zero)
template <int FUSE>
__device__ __forceinline__ int64_t weight_row(int c, int64_t j0, int64_t n, int h) {
  constexpr int NP = kDotCols / 2;
  const int64_t p = min64(j0 + (paired(FUSE) ? c % NP : c), n - 1);
  if constexpr (FUSE == kFuseNormGlu) return p + (c >= NP ? n : 0);
  if constexpr (FUSE == kFuseNormRope) return p + (int)p / h * h + (c >= NP ? h : 0);  // n <= INT_MAX
  return p;
}

// kFuseNormRope: row i's output pair p (x1 = element d of head hh, x2 = element d+h, as the product
// left them) rotated unless hh is a value head, stored to the q|k|v row, and a key or value head's
// pair to its cache row past+t too: what rope_kv_cache_append does to the product's output.
// (32-bit division: pairs number at most INT_MAX and rows at most 16; a 64-bit one is a long
// software routine, inlined at every output of the unrolled epilogue.)
template <class TOut>
__device__ __forceinline__ void rope_store(const QkvRope<TOut>& r, TOut* qkv, int i, int64_t p, float x1, float x2) {
  const int hh = (int)p / r.h, d = (int)p - hh * r.h, HS = 2 * r.h;
  const int b = i / (int)r.T, t = i - b * (int)r.T;
  if (hh < r.NH + r.NKV) {
    const int64_t at = (r.pos ? (int64_t)r.pos[t] : t) * r.h + d;
    rope_rotate(x1, x2, r.cos[at], r.sin[at], 1.f);
  }
  TOut* q = qkv + ((int64_t)i * (r.NH + 2 * r.NKV) + hh) * HS + d;
  store_c(q, x1);
  store_c(q + r.h, x2);
  if (hh >= r.NH) {
    const bool key = hh < r.NH + r.NKV;
    TOut* dst = (key ? r.k_cache : r.v_cache) +
                (((int64_t)b * r.Tmax + r.past + t) * r.NKV + hh - r.NH - (key ? 0 : r.NKV)) * HS + d;
    store_c(dst, x1);
    store_c(dst + r.h, x2);
  }
}

template <int MR, class TIn, class TOut, int FUSE>
__global__ void __launch_bounds__(kSmallThreads)
    small_dot_kernel(int m, int64_t n, int64_t K, float alpha, const TIn* __restrict__ X, int64_t x_rs,
                     int64_t x_cs, const TIn* __restrict__ Y, int64_t y_cs, float beta, const TOut* Cin, TOut* C,
                     int64_t c_rs, int64_t c_cs, bool vec, bool xvec, const TIn* __restrict__ nw, float eps,
                     QkvRope<TOut> rope) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  constexpr bool NORM = FUSE != kFuseNone, GLU = FUSE == kFuseNormGlu, ROPE = FUSE == kFuseNormRope;
  constexpr int KC = kXsFloats / MR;
  constexpr int NP = kDotCols / 2;                   // GLU, ROPE: weight-row pairs per warp
  constexpr int OWN = paired(FUSE) ? NP : kDotCols;  // output columns (or pairs) per warp
  static_assert(KC % 8 == 0, "chunks must keep 16-byte alignment of fp32 and bf16 rows");
  __shared__ __align__(16) float xs[kXsFloats];
  __shared__ float ssq[MR];  // NORM: each row's sum of squares (stage_x)
  if (NORM && threadIdx.x < MR) ssq[threadIdx.x] = 0.f;  // published by the first barrier below
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t j0 = ((int64_t)blockIdx.x * kSmallWarps + warp) * OWN;
  const bool active = j0 < n;
  // Output columns j0 .. j0+ncols-1 exist (ncols < OWN only in the last warp): the others read as
  // zero, so every element of Y is loaded exactly once. Their pointers are clamped to stay valid.
  // GLU: n is F, and weight rows j (gate, c < NP) and F+j (up) are the warp's columns; ROPE: n
  // counts pairs (weight_row).
  const int ncols = (int)min64(OWN, n - j0);
  const TIn* yrow[kDotCols];
#pragma unroll
  for (int c = 0; c < kDotCols; ++c) yrow[c] = Y + weight_row<FUSE>(c, j0, n, rope.h) * y_cs;
  auto valid = [&](int c) { return c % OWN < ncols; };

  float acc[MR][kDotCols];
#pragma unroll
  for (int i = 0; i < MR; ++i)
#pragma unroll
    for (int c = 0; c < kDotCols; ++c) acc[i][c] = 0.f;

  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    const int kc = (int)min64(KC, K - k0);
    __syncthreads();  // the previous chunk has been read by every warp
    stage_x<MR, NORM>(xs, X, x_rs, x_cs, m, k0, kc, xvec, nw, ssq);
    __syncthreads();
    if (!active) continue;
    int kbeg = lane;  // first k of the scalar loop
    if (vec) {
      // 16 bytes of a weight row per lane and load: 4 fp32 or 8 bf16 values
      constexpr int VW = 16 / sizeof(TIn);
      constexpr int UNROLL = 8 / VW;  // two fp32 vectors or one bf16 vector in flight per column
      const int kcv = kc & ~(VW - 1);
#pragma unroll UNROLL
      for (int kk = lane * VW; kk < kcv; kk += 32 * VW) {
        float w[kDotCols][VW];
#pragma unroll
        for (int c = 0; c < kDotCols; ++c) {
          if (valid(c)) {
            ldg16(w[c], yrow[c] + k0 + kk);
          } else {
#pragma unroll
            for (int e = 0; e < VW; ++e) w[c][e] = 0.f;
          }
        }
#pragma unroll
        for (int i = 0; i < MR; ++i) {
#pragma unroll
          for (int h = 0; h < VW; h += 4) {
            const float4 x = *reinterpret_cast<const float4*>(xs + i * KC + kk + h);
#pragma unroll
            for (int c = 0; c < kDotCols; ++c) {
              float a = acc[i][c];
              a = fmaf(x.x, w[c][h], a);
              a = fmaf(x.y, w[c][h + 1], a);
              a = fmaf(x.z, w[c][h + 2], a);
              a = fmaf(x.w, w[c][h + 3], a);
              acc[i][c] = a;
            }
          }
        }
      }
      kbeg = kcv + lane;  // the last kc % VW values
    }
#pragma unroll 4
    for (int kk = kbeg; kk < kc; kk += 32) {
      float w[kDotCols];
#pragma unroll
      for (int c = 0; c < kDotCols; ++c) w[c] = valid(c) ? ldg1(yrow[c] + k0 + kk) : 0.f;
#pragma unroll
      for (int i = 0; i < MR; ++i) {
        const float x = xs[i * KC + kk];
#pragma unroll
        for (int c = 0; c < kDotCols; ++c) acc[i][c] = fmaf(x, w[c], acc[i][c]);
      }
    }
  }
  if (!active) return;  // no barrier follows

#pragma unroll
  for (int i = 0; i < MR; ++i)
#pragma unroll
    for (int c = 0; c < kDotCols; ++c) {
      float v = acc[i][c];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      acc[i][c] = v;
    }
  // Every lane holds every sum; the (i, c) result is written by lane (i*OWN + c) % 32.
#pragma unroll
  for (int i = 0; i < MR; ++i) {
    // NORM: the row's 1/rms (ssq is complete: the last chunk's staging ended at a barrier)
    const float a = NORM ? alpha / sqrtf(ssq[i] / (float)K + eps) : alpha;
#pragma unroll
    for (int c = 0; c < OWN; ++c) {
      if (lane == ((i * OWN + c) & 31) && i < m && c < ncols) {
        float v = a * acc[i][c];
        if constexpr (ROPE) {
          rope_store(rope, C, i, j0 + c, v, a * acc[i][c + NP]);
          continue;
        }
        const int64_t at = i * c_rs + (j0 + c) * c_cs;
        if constexpr (GLU) v = silu_mul(v, a * acc[i][c + NP]);
        if (beta != 0.f) v += beta * load_c(Cin + at);
        store_c(C + at, v);
      }
    }
  }
}

// The dot case for a single row (m == 1: a batch-1 decode step) when the dot kernel above would
// leave the GPU short of work: it gives each warp its own 4 columns, so n/32 blocks, under one
// per SM for the o and down projections (n = 4096) and too few 16-byte loads in flight to reach
// memory bandwidth. Here one block owns 4 columns and all its threads stride along k (16-byte
// loads of X and of the 4 weight rows, two steps in flight), then reduce across the block:
// n/4 blocks, up to 8 per SM.
template <class TIn, class TOut, int FUSE>
__global__ void __launch_bounds__(kSmallThreads)
    small_dot1_kernel(int64_t n, int64_t K, float alpha, const TIn* __restrict__ X, int64_t x_cs,
                      const TIn* __restrict__ Y, int64_t y_cs, float beta, const TOut* Cin, TOut* C, int64_t c_cs,
                      bool vec, const TIn* __restrict__ nw, float eps, QkvRope<TOut> rope) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  constexpr bool NORM = FUSE != kFuseNone, GLU = FUSE == kFuseNormGlu, ROPE = FUSE == kFuseNormRope;
  constexpr int NP = kDotCols / 2, OWN = paired(FUSE) ? NP : kDotCols;  // as in small_dot_kernel
  __shared__ float red[kSmallWarps][kDotCols + 1];             // + the row's sum of squares
  const int64_t j0 = (int64_t)blockIdx.x * OWN;
  const int ncols = (int)min64(OWN, n - j0);
  const TIn* yrow[kDotCols];
  bool valid[kDotCols];
#pragma unroll
  for (int c = 0; c < kDotCols; ++c) {  // clamped, read as 0
    yrow[c] = Y + weight_row<FUSE>(c, j0, n, rope.h) * y_cs;
    valid[c] = c % OWN < ncols;
  }
  float acc[kDotCols];
#pragma unroll
  for (int c = 0; c < kDotCols; ++c) acc[c] = 0.f;
  float ss = 0.f;  // NORM: this thread's part of the row's sum of squares
  int64_t kbeg = threadIdx.x;
  if (vec) {  // X contiguous, X, nw and every weight row 16-byte aligned
    constexpr int VW = 16 / sizeof(TIn);
    const int64_t kv = K & ~(int64_t)(VW - 1);
#pragma unroll 2
    for (int64_t kk = (int64_t)threadIdx.x * VW; kk < kv; kk += (int64_t)kSmallThreads * VW) {
      float x[VW], w[kDotCols][VW];
      ldg16(x, X + kk);
      if constexpr (NORM) {
        float g[VW];
        ldg16(g, nw + kk);
#pragma unroll
        for (int e = 0; e < VW; ++e) {
          ss = fmaf(x[e], x[e], ss);
          x[e] *= g[e];
        }
      }
#pragma unroll
      for (int c = 0; c < kDotCols; ++c) {
        if (valid[c]) {
          ldg16(w[c], yrow[c] + kk);
        } else {
#pragma unroll
          for (int e = 0; e < VW; ++e) w[c][e] = 0.f;
        }
      }
#pragma unroll
      for (int c = 0; c < kDotCols; ++c)
#pragma unroll
        for (int e = 0; e < VW; ++e) acc[c] = fmaf(x[e], w[c][e], acc[c]);
    }
    kbeg = kv + threadIdx.x;
  }
  for (int64_t kk = kbeg; kk < K; kk += kSmallThreads) {
    float x = ldg1(X + kk * x_cs);
    if constexpr (NORM) {
      ss = fmaf(x, x, ss);
      x *= ldg1(nw + kk);
    }
#pragma unroll
    for (int c = 0; c < kDotCols; ++c) acc[c] = fmaf(x, valid[c] ? ldg1(yrow[c] + kk) : 0.f, acc[c]);
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int c = 0; c <= kDotCols; ++c) {
    if (c == kDotCols && !NORM) break;
    float v = c < kDotCols ? acc[c] : ss;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) red[warp][c] = v;
  }
  __syncthreads();
  if ((int)threadIdx.x < ncols) {
    const int c = threadIdx.x;
    float sum = 0.f, up = 0.f, sq = 0.f;  // up: the pair's second value (GLU, ROPE)
#pragma unroll
    for (int w = 0; w < kSmallWarps; ++w) {
      sum += red[w][c];
      if (paired(FUSE)) up += red[w][c + NP];
      if (NORM) sq += red[w][kDotCols];
    }
    const float a = NORM ? alpha / sqrtf(sq / (float)K + eps) : alpha;
    float v = a * sum;
    if constexpr (ROPE) {
      rope_store(rope, C, 0, j0 + c, v, a * up);
      return;
    }
    if constexpr (GLU) v = silu_mul(v, a * up);
    const int64_t at = (j0 + c) * c_cs;
    if (beta != 0.f) v += beta * load_c(Cin + at);
    store_c(C + at, v);
  }
}

template <int MR, class TIn, class TOut>
__global__ void __launch_bounds__(kSmallThreads)
    small_axpy_kernel(int m, int64_t n, int64_t K, float alpha, const TIn* __restrict__ X, int64_t x_rs,
                      int64_t x_cs, const TIn* __restrict__ Y, int64_t y_rs, float beta, TOut* C, int64_t c_rs,
                      int64_t c_cs, bool xvec) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  constexpr int KC = kXsFloats / MR;
  static_assert(kAxpySlices * MR * 32 <= kXsFloats, "reduction buffer does not fit");
  __shared__ __align__(16) float xs[kXsFloats];
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;  // column within the block, k-slice
  const int64_t j = (int64_t)blockIdx.x * 32 + tx;
  const TIn* ycol = Y + min64(j, n - 1);  // clamped: loads stay valid

  float acc[MR];
#pragma unroll
  for (int i = 0; i < MR; ++i) acc[i] = 0.f;

  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    const int kc = (int)min64(KC, K - k0);
    __syncthreads();
    stage_x<MR>(xs, X, x_rs, x_cs, m, k0, kc, xvec);
    __syncthreads();
#pragma unroll 4
    for (int kk = ty; kk < kc; kk += kAxpySlices) {
      const float w = ldg1(ycol + (k0 + kk) * y_rs);
#pragma unroll
      for (int i = 0; i < MR; ++i) acc[i] = fmaf(xs[i * KC + kk], w, acc[i]);
    }
  }
  __syncthreads();  // xs becomes the reduction buffer [slice][i][column]
#pragma unroll
  for (int i = 0; i < MR; ++i) xs[(ty * MR + i) * 32 + tx] = acc[i];
  __syncthreads();
  if (ty != 0 || j >= n) return;
#pragma unroll
  for (int i = 0; i < MR; ++i) {
    if (i < m) {
      float s = 0.f;
#pragma unroll
      for (int t = 0; t < kAxpySlices; ++t) s += xs[(t * MR + i) * 32 + tx];
      TOut* p = C + i * c_rs + j * c_cs;
      float v = alpha * s;
      if (beta != 0.f) v += beta * load_c(p);
      store_c(p, v);
    }
  }
}

// Cin: where beta's C is read (C itself for a GEMM; the residual of a fused linear, which may be
// C). FUSE (dot kernels only): nw and eps are the norm's weight and epsilon; with kFuseNormGlu n
// counts output columns, F, and Y has 2n rows; with kFuseNormRope n counts pairs, C is the q|k|v
// output and rope says where the rest goes (c_rs, c_cs unused).
template <int MR, int FUSE = kFuseNone, class TIn, class TOut>
void launch_small(bool dot, int m, int64_t n, int64_t K, float alpha, const TIn* X, int64_t x_rs, int64_t x_cs,
                  const TIn* Y, int64_t y_stride, float beta, const TOut* Cin, TOut* C, int64_t c_rs, int64_t c_cs,
                  const TIn* nw = nullptr, float eps = 0.f, const QkvRope<TOut>& rope = {}) {
  constexpr int64_t VW = 16 / sizeof(TIn);  // values per 16-byte load
  constexpr int64_t OWN = paired(FUSE) ? kDotCols / 2 : kDotCols;  // output columns (or pairs) per warp
  // X staged with 16-byte loads: contiguous rows, 16-byte aligned, the norm weight too (stage_x)
  const bool xvec = x_cs == 1 && aligned16(X) && (m == 1 || x_rs % VW == 0) && (FUSE == kFuseNone || aligned16(nw));
  if (dot) {
    const int64_t cols_per_block = (int64_t)kSmallWarps * OWN;
    // 16-byte loads along every weight row (4 fp32 or 8 bf16 values)
    const bool vec = aligned16(Y) && y_stride % VW == 0;
    if (MR == 1 && (n + cols_per_block - 1) / cols_per_block < 2 * (int64_t)device_sm_count()) {
      const bool vec1 = vec && xvec;  // X (and nw) 16 bytes at a time too
      launch_pdl("gemm (one-row dot kernel)", small_dot1_kernel<TIn, TOut, FUSE>, (unsigned)((n + OWN - 1) / OWN),
                 kSmallThreads, 0, n, K, alpha, X, x_cs, Y, y_stride, beta, Cin, C, c_cs, vec1, nw, eps, rope);
      return;
    }
    launch_pdl("gemm (few-rows dot kernel)", small_dot_kernel<MR, TIn, TOut, FUSE>,
               (unsigned)((n + cols_per_block - 1) / cols_per_block), kSmallThreads, 0, m, n, K, alpha, X, x_rs, x_cs, Y,
               y_stride, beta, Cin, C, c_rs, c_cs, vec, xvec, nw, eps, rope);
  } else {
    launch_pdl("gemm (few-rows axpy kernel)", small_axpy_kernel<MR, TIn, TOut>, (unsigned)((n + 31) / 32),
               kSmallThreads, 0, m, n, K, alpha, X, x_rs, x_cs, Y, y_stride, beta, C, c_rs, c_cs, xvec);
  }
}

// Calls go(std::integral_constant<int, MR>) with the few-rows kernels' row tile MR for m <= 16 rows:
// the smallest of 1, 2, 4, 8, 16 that holds them.
template <class Go>
void with_row_tile(int m, Go&& go) {
  if (m <= 1)
    go(std::integral_constant<int, 1>{});
  else if (m <= 2)
    go(std::integral_constant<int, 2>{});
  else if (m <= 4)
    go(std::integral_constant<int, 4>{});
  else if (m <= 8)
    go(std::integral_constant<int, 8>{});
  else
    go(std::integral_constant<int, 16>{});
}

// min(M, N) <= kSmallRows.
template <class TIn, class TOut>
void small_gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const TIn* A,
                int64_t lda, const TIn* B, int64_t ldb, float beta, TOut* C, int64_t ldc) {
  int m;
  int64_t n, x_rs, x_cs, y_stride, c_rs, c_cs;
  const TIn *X, *Y;
  bool dot;
  if (M <= N) {  // C = op(A) op(B): X = op(A), Y = op(B)
    m = (int)M, n = N;
    X = A, x_rs = transA ? 1 : lda, x_cs = transA ? lda : 1;
    Y = B, dot = transB;   // op(B)(k, j) = B[j*ldb + k] when transB, else B[k*ldb + j]
    y_stride = ldb;
    c_rs = ldc, c_cs = 1;
  } else {  // few columns: C^T = op(B)^T op(A)^T: X = op(B)^T, Y = op(A)^T
    m = (int)N, n = M;
    X = B, x_rs = transB ? ldb : 1, x_cs = transB ? 1 : ldb;  // X(j, k) = op(B)(k, j)
    Y = A, dot = !transA;  // Y(k, i) = op(A)(i, k) = A[i*lda + k] unless transA, else A[k*lda + i]
    y_stride = lda;
    c_rs = 1, c_cs = ldc;
  }
  with_row_tile(m, [&](auto mr) {
    launch_small<decltype(mr)::value>(dot, m, n, K, alpha, X, x_rs, x_cs, Y, y_stride, beta, C, C, c_rs, c_cs);
  });
}

// ============================================================================================
// C = beta * C (no product to add): beta == 0 writes zeros without reading C.
// ============================================================================================

template <class TOut>
__global__ void scale_kernel(int64_t M, int64_t N, float beta, TOut* C, int64_t ldc) {
  const int64_t total = M * N;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = idx / N, j = idx - i * N;
    TOut* p = C + i * ldc + j;
    store_c(p, beta == 0.f ? 0.f : beta * load_c(p));
  }
}

template <class TOut>
void scale_c(int64_t M, int64_t N, float beta, TOut* C, int64_t ldc) {
  if (beta == 1.f) return;
  const unsigned blocks = (unsigned)std::min<int64_t>((M * N + 255) / 256, 8192);  // grid-stride loop
  scale_kernel<TOut><<<blocks, 256, 0, stream()>>>(M, N, beta, C, ldc);
  PUZZLE_CUDA_CHECK_LAUNCH("gemm (scale C)");
}

// ============================================================================================
// Path selection
// ============================================================================================

// kWmma: our kernels with the older wmma kernel for bf16 operands too (to time one against the other)
enum class Mode { kAuto, kOwn, kWmma, kCublas };

Mode gemm_mode() {
  static const Mode mode = [] {
    const char* e = std::getenv("PUZZLE_CUDA_GEMM");
    if (e && std::strcmp(e, "own") == 0) return Mode::kOwn;
    if (e && std::strcmp(e, "wmma") == 0) return Mode::kWmma;
    if (e && std::strcmp(e, "cublas") == 0) return Mode::kCublas;
    return Mode::kAuto;
  }();
  return mode;
}

#ifdef PUZZLE_HAVE_CUBLAS
// One handle for the process, bound to stream(), with its own workspace so that cuBLAS never
// allocates while a graph is being captured. Created on first need outside a capture; if the
// first need comes during a capture, that call uses our kernels and creation is tried again later.
constexpr size_t kCublasWorkspaceBytes = 32u << 20;
std::atomic<int> g_cublas_state{0};  // 0: not tried, 1: ready, -1: unavailable
cublasHandle_t g_cublas = nullptr;
std::mutex g_cublas_mutex;

cublasHandle_t cublas_handle() {
  const int s = g_cublas_state.load(std::memory_order_acquire);
  if (s != 0) return s > 0 ? g_cublas : nullptr;
  std::lock_guard<std::mutex> lock(g_cublas_mutex);
  if (g_cublas_state.load(std::memory_order_relaxed) == 0) {
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream(), &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone) return nullptr;
    cublasHandle_t h = nullptr;
    bool ok = cublasCreate(&h) == CUBLAS_STATUS_SUCCESS;
    // cublasSetStream resets the workspace to the default pool, so the workspace comes after it.
    if (ok) ok = cublasSetStream(h, stream()) == CUBLAS_STATUS_SUCCESS;
    if (ok) {
      void* ws = nullptr;
      if (cudaMalloc(&ws, kCublasWorkspaceBytes) == cudaSuccess) {
        if (cublasSetWorkspace(h, ws, kCublasWorkspaceBytes) != CUBLAS_STATUS_SUCCESS) cudaFree(ws);
      }
    }
    if (!ok && h) cublasDestroy(h);
    (void)cudaGetLastError();  // a failed optional setup must not be reported by the next launch
    // The handle is never destroyed: tearing it down at exit can race the CUDA context's teardown.
    g_cublas = ok ? h : nullptr;
    g_cublas_state.store(ok ? 1 : -1, std::memory_order_release);
  }
  return g_cublas_state.load(std::memory_order_relaxed) > 0 ? g_cublas : nullptr;
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS gets B first. Returns
// false (nothing queued) when cuBLAS is unavailable or the call does not fit its int interface.
template <class T>
constexpr cudaDataType_t cuda_type() {
  return std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_16BF;
}

// fp32 operands use the bf16 tensor cores (FAST_16BF, like our kernel); bf16 operands are
// multiplied as they are with fp32 accumulation.
template <class TIn, class TOut>
bool cublas_gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const TIn* A,
                 int64_t lda, const TIn* B, int64_t ldb, float beta, TOut* C, int64_t ldc) {
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX) return false;
  // Leading-dimension rules of the column-major views (a row-major [R, S] matrix is a column-major
  // S x R one with ld = its row stride): B: N x K (OP_N) or K x N (OP_T); A: K x M or M x K; C: N x M.
  if (ldb < std::max<int64_t>(1, transB ? K : N) || lda < std::max<int64_t>(1, transA ? M : K) ||
      ldc < std::max<int64_t>(1, N))
    return false;
  cublasHandle_t h = cublas_handle();
  if (!h) return false;
  const cublasStatus_t st =
      cublasGemmEx(h, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M, (int)K,
                   &alpha, B, cuda_type<TIn>(), (int)ldb, A, cuda_type<TIn>(), (int)lda, &beta, C, cuda_type<TOut>(),
                   (int)ldc, std::is_same_v<TIn, float> ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F,
                   CUBLAS_GEMM_DEFAULT);
  PUZZLE_CUDA_CHECK_LAUNCH("gemm (cublasGemmEx)");
  return st == CUBLAS_STATUS_SUCCESS;
}
#endif

template <class TIn, class TOut>
void gemm_t(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const TIn* A, int64_t lda,
            const TIn* B, int64_t ldb, float beta, TOut* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const Mode mode = gemm_mode();
  const bool small = std::min(M, N) <= kSmallRows;
#ifdef PUZZLE_HAVE_CUBLAS
  if (mode == Mode::kCublas || (mode == Mode::kAuto && !small))
    if (cublas_gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
#else
  (void)mode;
#endif
  if (small) {
    small_gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // bf16 operands: the cp.async / mma.sync kernel of gemm_mma.cu unless PUZZLE_CUDA_GEMM=wmma or
  // it refuses the operands (alignment); the wmma kernel otherwise and for fp32 operands.
  if constexpr (std::is_same_v<TIn, bf16x>)
    if (mode != Mode::kWmma && gemm_mma(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
  tc_gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// out[N, OC] = res + RMSNorm?(x) @ W[OC, C]^T, or (F > 0) out[N, F] = SwiGLU(RMSNorm(x) @ W[2F, C]^T), on
// the dot kernels with their fusions (see small_linear_fused in common.cuh).
template <class T>
bool small_linear_fused_t(T* out, const T* x, const T* nw, const T* W, const T* res, int64_t N, int64_t C, int64_t OC,
                          int64_t F, float eps) {
  const bool glu = F > 0;
  const int64_t n = glu ? F : OC;  // output columns
  if (gemm_mode() == Mode::kCublas || N <= 0 || N > kSmallRows || C <= 0 || n < N) return false;
  if (glu && (!nw || res)) return false;
  const float beta = res ? 1.f : 0.f;
  const int m = (int)N;
  auto go = [&](auto mr) {
    constexpr int MR = decltype(mr)::value;
    if (glu)
      launch_small<MR, kFuseNormGlu>(true, m, n, C, 1.f, x, C, 1, W, C, 0.f, out, out, n, 1, nw, eps);
    else if (nw)
      launch_small<MR, kFuseNorm>(true, m, n, C, 1.f, x, C, 1, W, C, beta, res, out, n, 1, nw, eps);
    else
      launch_small<MR, kFuseNone>(true, m, n, C, 1.f, x, C, 1, W, C, beta, res ? res : out, out, n, 1);
  };
  with_row_tile(m, go);
  return true;
}

// qkv[N, (NH+2NKV)*HS] = RMSNorm(x) @ W^T with q and k rotated and the new keys and values in the
// caches (norm_qkv_rope_cache_forward, puzzle/backend.h), N = B*T rows, on the dot kernels.
template <class T>
bool small_qkv_rope_fused_t(T* qkv, T* k_cache, T* v_cache, const T* x, const T* nw, const T* W, const float* cos,
                            const float* sin, const int32_t* pos, int64_t B, int64_t Tq, int64_t C, int64_t NH,
                            int64_t NKV, int64_t HS, int64_t past, int64_t Tmax, float eps) {
  const int64_t N = B * Tq, h = HS / 2, n = (NH + 2 * NKV) * h;  // output pairs
  if (gemm_mode() == Mode::kCublas || !nw || B <= 0 || Tq <= 0 || N > kSmallRows || C <= 0 || HS <= 0 || HS % 2 ||
      NH < 0 || NKV <= 0 || n < N || n > INT_MAX)
    return false;
  QkvRope<T> r;
  r.k_cache = k_cache, r.v_cache = v_cache, r.cos = cos, r.sin = sin, r.pos = pos;
  r.T = Tq, r.past = past, r.Tmax = Tmax;
  r.h = (int)h, r.NH = (int)NH, r.NKV = (int)NKV;
  const int m = (int)N;
  auto go = [&](auto mr) {
    constexpr int MR = decltype(mr)::value;
    launch_small<MR, kFuseNormRope>(true, m, n, C, 1.f, x, C, 1, W, C, 0.f, qkv, qkv, 2 * n, 1, nw, eps, r);
  };
  with_row_tile(m, go);
  return true;
}

}  // namespace

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_t(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
          const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc) {
  gemm_t(transA, transB, M, N, K, alpha, dev(A), lda, dev(B), ldb, beta, dev(C), ldc);
}
void gemm_f32out(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
                 const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_t(transA, transB, M, N, K, alpha, dev(A), lda, dev(B), ldb, beta, C, ldc);
}

bool small_linear_fused(float* out, const float* x, const float* nw, const float* W, const float* res, int64_t N,
                        int64_t C, int64_t OC, int64_t F, float eps) {
  return small_linear_fused_t(out, x, nw, W, res, N, C, OC, F, eps);
}
bool small_linear_fused(bf16* out, const bf16* x, const bf16* nw, const bf16* W, const bf16* res, int64_t N, int64_t C,
                        int64_t OC, int64_t F, float eps) {
  return small_linear_fused_t(dev(out), dev(x), nw ? dev(nw) : nullptr, dev(W), res ? dev(res) : nullptr, N, C, OC, F,
                              eps);
}

bool small_qkv_rope_fused(float* qkv, float* k_cache, float* v_cache, const float* x, const float* nw, const float* W,
                          const float* cos, const float* sin, const int32_t* pos, int64_t B, int64_t T, int64_t C,
                          int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tmax, float eps) {
  return small_qkv_rope_fused_t(qkv, k_cache, v_cache, x, nw, W, cos, sin, pos, B, T, C, NH, NKV, HS, past, Tmax, eps);
}
bool small_qkv_rope_fused(bf16* qkv, bf16* k_cache, bf16* v_cache, const bf16* x, const bf16* nw, const bf16* W,
                          const float* cos, const float* sin, const int32_t* pos, int64_t B, int64_t T, int64_t C,
                          int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tmax, float eps) {
  return small_qkv_rope_fused_t(dev(qkv), dev(k_cache), dev(v_cache), dev(x), nw ? dev(nw) : nullptr, dev(W), cos, sin,
                                pos, B, T, C, NH, NKV, HS, past, Tmax, eps);
}

const char* gemm_kernel_name() {
#ifdef PUZZLE_HAVE_CUBLAS
  if (gemm_mode() != Mode::kOwn && gemm_mode() != Mode::kWmma && cublas_handle()) return "cublas";
#endif
  return gemm_mode() == Mode::kWmma ? "puzzle-wmma-bf16" : "puzzle-mma-bf16";
}

}  // namespace puzzle::cuda
