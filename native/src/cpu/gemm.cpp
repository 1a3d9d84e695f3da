// SGEMM driver: run-time ISA dispatch, BLIS-style cache blocking over packed panels, threading
// over the engine's pool, plus the portable fallback and the reference.
//
// Loop nest (per thread, on its own rectangle of C):
//   jc over N by nc   -> pc over K by kc: pack op(B)[pc:+kc, jc:+nc] (L3-resident)
//     ic over M by mc -> pack op(A)[ic:+mc, pc:+kc] (L2-resident) -> macro kernel (micro-tiles)
// The first K block applies beta, later ones accumulate. Pack buffers are thread_local and only
// grow: the VM pays more for faulting fresh pages than for the arithmetic.
#include "puzzle/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu/gemm_kernels.h"
#include "puzzle/cpu_features.h"
#include "puzzle/threadpool.h"

namespace puzzle {

void sgemm_reference(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        float a = transA ? A[k * lda + i] : A[i * lda + k];
        float b = transB ? B[j * ldb + k] : B[k * ldb + j];
        acc += (double)a * b;
      }
      float prev = beta == 0.f ? 0.f : beta * C[i * ldc + j];
      C[i * ldc + j] = prev + alpha * (float)acc;
    }
}

namespace {

using gemm_detail::PackedKernel;

// Grow-only 64-byte-aligned scratch, one set per thread.
struct Scratch {
  float* p = nullptr;
  size_t cap = 0;
  float* get(size_t floats) {
    if (floats > cap) {
      std::free(p);
      size_t bytes = ((floats * sizeof(float) + 4095) / 4096) * 4096;
      p = static_cast<float*>(std::aligned_alloc(4096, bytes));
      if (!p) std::abort();
      cap = bytes / sizeof(float);
    }
    return p;
  }
  ~Scratch() { std::free(p); }
};

struct ThreadBuffers {
  Scratch a, b;
};

ThreadBuffers& tbuf() {
  thread_local ThreadBuffers t;
  return t;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Splits `total` into equal-ish blocks of at most `cap`, each a multiple of `unit`.
int64_t balanced_block(int64_t total, int64_t cap, int64_t unit) {
  int64_t nb = ceil_div(total, cap);
  return std::min(round_up(ceil_div(total, nb), unit), round_up(cap, unit));
}

void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.f)
      std::memset(c, 0, sizeof(float) * N);
    else if (beta != 1.f)
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
  }
}

constexpr int64_t kBBlockBytes = 4 << 20;

// One thread's whole GEMM on its rectangle of C (A, B, C already offset to it).
void packed_serial(const PackedKernel& kr, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t kc_max = balanced_block(K, kr.kc, 1);
  const int64_t mc_max = balanced_block(M, kr.mc, kr.mr);
  // Packed B block (kc x nc) kept to a few MiB so it stays in L3 next to the other thread's.
  const int64_t nc_cap = std::max<int64_t>(kr.nr, std::min<int64_t>(kr.nc, kBBlockBytes / (4 * kc_max)));
  const int64_t nc_max = balanced_block(N, nc_cap, kr.nr);
  ThreadBuffers& tb = tbuf();
  float* Ap = tb.a.get((size_t)round_up(std::min(mc_max, round_up(M, kr.mr)), kr.mr) * kc_max);
  float* Bp = tb.b.get((size_t)round_up(std::min(nc_max, round_up(N, kr.nr)), kr.nr) * kc_max);
  for (int64_t jc = 0; jc < N; jc += nc_max) {
    const int64_t nc = std::min(nc_max, N - jc);
    for (int64_t pc = 0; pc < K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, K - pc);
      kr.pack_b(transB, transB ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, kc, nc, Bp);
      const float beta_eff = pc == 0 ? beta : 1.f;
      for (int64_t ic = 0; ic < M; ic += mc_max) {
        const int64_t mc = std::min(mc_max, M - ic);
        kr.pack_a(transA, transA ? A + pc * lda + ic : A + ic * lda + pc, lda, mc, kc, Ap);
        kr.macro(mc, nc, kc, Ap, Bp, C + ic * ldc + jc, ldc, alpha, beta_eff);
      }
    }
  }
}

// Below this many multiply-adds a call stays on the calling thread.
constexpr int64_t kParallelMinFlops = 1 << 20;
// C with few rows (or columns) takes the small path: no packing, op(B) streamed once per 4 rows.
// Decode-time GEMMs (a few tokens against a weight matrix) land here. Crossovers measured against
// the packed path on Zen 5: row updates (op(B) runs along n) win up to ~16 rows; dot products
// (op(B) runs along k) up to ~24 rows when k is long, but their horizontal sums lose for short k.
bool use_small_path(bool transA, bool transB, int64_t M, int64_t N, int64_t K) {
  const bool few_rows = M <= N;
  const int64_t rows = few_rows ? M : N;
  // few rows: op(B) runs along k iff transB; few columns (C^T = op(B)^T op(A)^T): iff !transA.
  const bool dot = few_rows ? transB : !transA;
  return rows <= (dot ? (K >= 256 ? 24 : 2) : 16);
}
// The small path is memory-bound: split it over the pool from this many multiply-adds on.
constexpr int64_t kSmallParallelMinFlops = 1 << 18;

// Few rows (or, transposed, few columns): C'[m, n] over the small kernel, columns split over the pool.
void small_gemm(const PackedKernel& kr, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                bool parallel) {
  // Strided views: op(A)(i,k) = A[i*a_rs + k*a_cs], op(B)(k,j) = B[k*b_rs + j*b_cs], C(i,j) = C[i*c_rs + j*c_cs].
  int64_t m = M, n = N;
  const float *a = A, *b = B;
  int64_t a_rs = transA ? 1 : lda, a_cs = transA ? lda : 1;
  int64_t b_rs = transB ? 1 : ldb, b_cs = transB ? ldb : 1;
  int64_t c_rs = ldc, c_cs = 1;
  if (N < M) {  // few columns: C^T = op(B)^T op(A)^T
    m = N, n = M;
    a = B, b = A;
    a_rs = transB ? ldb : 1, a_cs = transB ? 1 : ldb;
    b_rs = transA ? lda : 1, b_cs = transA ? 1 : lda;
    c_rs = 1, c_cs = ldc;
  }
  struct Job {
    const PackedKernel& kr;
    int64_t m, n, K;
    float alpha, beta;
    const float *a, *b;
    int64_t a_rs, a_cs, b_rs, b_cs;
    float* C;
    int64_t c_rs, c_cs;
    void cols(int64_t j0, int64_t j1) const {
      if (j1 > j0)
        kr.small(m, j1 - j0, K, alpha, a, a_rs, a_cs, b + j0 * b_cs, b_rs, b_cs, beta, C + j0 * c_cs, c_rs, c_cs,
                 tbuf().a.get((size_t)4 * K));
    }
  } job{kr, m, n, K, alpha, beta, a, b, a_rs, a_cs, b_rs, b_cs, C, c_rs, c_cs};
  const int T = parallel ? num_threads() : 1;
  if (T <= 1 || m * n * K < kSmallParallelMinFlops || n < 128) {
    job.cols(0, n);
    return;
  }
  // One captured pointer: the std::function stores it inline, no allocation per call.
  const Job* jp = &job;
  parallel_run([jp](int tid, int nth) {
    const int64_t units = ceil_div(jp->n, 64);  // 64-column units keep the vector blocks whole
    jp->cols(std::min(jp->n, units * tid / nth * 64), std::min(jp->n, units * (tid + 1) / nth * 64));
  });
}

void packed_gemm(const PackedKernel& kr, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                 bool parallel) {
  // Few rows: op(B) runs along k iff transB; few columns (transposed problem): op(A) runs along k iff !transA.
  if (use_small_path(transA, transB, M, N, K)) {
    small_gemm(kr, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, parallel);
    return;
  }
  const int T = parallel ? num_threads() : 1;
  if (T <= 1 || M * N * K < kParallelMinFlops) {
    packed_serial(kr, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Grid tm x tn of rectangles (tm * tn == T) that minimises per-thread tiles plus packing.
  const int64_t mt = ceil_div(M, kr.mr), nt = ceil_div(N, kr.nr);
  int best_tm = 1;
  double best = 1e300;
  for (int tm = 1; tm <= T; ++tm) {
    if (T % tm) continue;
    const int tn = T / tm;
    if (tm > mt || tn > nt) continue;
    const double rows = (double)ceil_div(mt, tm) * kr.mr, cols = (double)ceil_div(nt, tn) * kr.nr;
    const double cost = rows * cols + 8.0 * (rows * (double)ceil_div((int64_t)cols, kr.nc) + cols);
    if (cost < best) best = cost, best_tm = tm;
  }
  struct Job {
    const PackedKernel& kr;
    bool transA, transB;
    int64_t M, N, K;
    float alpha;
    const float* A;
    int64_t lda;
    const float* B;
    int64_t ldb;
    float beta;
    float* C;
    int64_t ldc, mt, nt;
    int T, tm, tn;
    void run(int tid, int nth) const {
      if (nth != T) {  // nested inside another parallel region: the pool runs us serially
        if (tid == 0) packed_serial(kr, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
      }
      const int ti = tid / tn, tj = tid % tn;
      const int64_t i0 = std::min(M, mt * ti / tm * kr.mr), i1 = std::min(M, mt * (ti + 1) / tm * kr.mr);
      const int64_t j0 = std::min(N, nt * tj / tn * kr.nr), j1 = std::min(N, nt * (tj + 1) / tn * kr.nr);
      if (i1 <= i0 || j1 <= j0) return;
      packed_serial(kr, transA, transB, i1 - i0, j1 - j0, K, alpha, transA ? A + i0 : A + i0 * lda, lda,
                    transB ? B + j0 * ldb : B + j0, ldb, beta, C + i0 * ldc + j0, ldc);
    }
  } job{kr, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, mt, nt, T, best_tm, T / best_tm};
  // Each thread packs its own operands for its rectangle (no barriers: a descheduled thread on this
  // shared box then delays only its own share). One captured pointer keeps std::function inline.
  const Job* jp = &job;
  parallel_run([jp](int tid, int nth) { jp->run(tid, nth); });
}

// Portable fallback (no SIMD assumptions): rows of C over the pool; each thread packs op(B) in
// column blocks of kPortableCols into its grow-only buffer and accumulates one row at a time.
constexpr int64_t kPortableCols = 256;

void sgemm_portable(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool parallel) {
  auto rows = [&](int64_t i0, int64_t i1) {
    ThreadBuffers& tb = tbuf();
    float* acc = tb.a.get((size_t)kPortableCols);
    for (int64_t j0 = 0; j0 < N; j0 += kPortableCols) {
      const int64_t nb = std::min(kPortableCols, N - j0);
      float* Bp = tb.b.get((size_t)K * nb);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < nb; ++j) Bp[k * nb + j] = transB ? B[(j0 + j) * ldb + k] : B[k * ldb + j0 + j];
      for (int64_t i = i0; i < i1; ++i) {
        std::fill(acc, acc + nb, 0.f);
        for (int64_t k = 0; k < K; ++k) {
          const float a = transA ? A[k * lda + i] : A[i * lda + k];
          const float* b = Bp + k * nb;
          for (int64_t j = 0; j < nb; ++j) acc[j] += a * b[j];
        }
        float* c = C + i * ldc + j0;
        if (beta == 0.f)
          for (int64_t j = 0; j < nb; ++j) c[j] = alpha * acc[j];
        else
          for (int64_t j = 0; j < nb; ++j) c[j] = beta * c[j] + alpha * acc[j];
      }
    }
  };
  if (parallel && M * N * K >= kParallelMinFlops)
    parallel_for(M, 16, rows);
  else
    rows(0, M);
}

struct Dispatch {
  PackedKernel kernel{};
  bool packed = false;
  const PackedKernel* table = nullptr;
  int count = 0;
};

Dispatch& dispatch() {
  static Dispatch d = [] {
    Dispatch r;
#if defined(__x86_64__) || defined(_M_X64)
    const char* isa = cpu_isa();
    if (std::strcmp(isa, "avx512") == 0)
      r.table = gemm_detail::avx512_kernels(&r.count);
    else if (std::strcmp(isa, "avx2") == 0)
      r.table = gemm_detail::avx2_kernels(&r.count);
#endif
    if (r.table && r.count > 0) {
      r.kernel = r.table[0];
      r.packed = true;
    }
    return r;
  }();
  return d;
}

}  // namespace

const char* gemm_detail::sgemm_select_kernel(int index, int mc, int kc, int nc) {
  Dispatch& d = dispatch();
  if (!d.table) return "portable";
  if (index >= 0 && index < d.count) d.kernel = d.table[index];
  if (mc > 0) d.kernel.mc = (int)round_up(mc, d.kernel.mr);
  if (kc > 0) d.kernel.kc = kc;
  if (nc > 0) d.kernel.nc = (int)round_up(nc, d.kernel.nr);
  return d.kernel.name;
}

int gemm_detail::sgemm_kernel_count() { return dispatch().count; }

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool parallel) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const Dispatch& d = dispatch();
  if (d.packed)
    packed_gemm(d.kernel, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, parallel);
  else
    sgemm_portable(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, parallel);
}

const char* sgemm_kernel_name() { return dispatch().packed ? dispatch().kernel.name : "portable"; }

}  // namespace puzzle
