// gemm_lab: standalone validation + benchmark of puzzle::sgemm against sgemm_reference and
// OpenBLAS cblas_sgemm. Not part of the addon build.
//
// Build (from the repo root; per-file ISA flags exactly as CMakeLists.txt, never -march=native):
//   O=/tmp/gemm_lab; mkdir -p $O
//   F="-O3 -DNDEBUG -std=c++17 -fno-math-errno -Wall -Wno-unused-function -Inative/include -Inative/src -DPUZZLE_X86=1"
//   for f in gemm threadpool cpu_features; do g++ $F -c native/src/cpu/$f.cpp -o $O/$f.o; done
//   g++ $F -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mfma -mavx2 -mf16c -c native/src/cpu/gemm_avx512.cpp -o $O/gemm_avx512.o
//   g++ $F -mavx2 -mfma -mf16c -c native/src/cpu/gemm_avx2.cpp -o $O/gemm_avx2.o
//   g++ $F -c native/dev/gemm_lab.cpp -o $O/gemm_lab.o
//   g++ $O/*.o -o $O/gemm_lab -lopenblas -lpthread
// (needs libopenblas-dev: apt-get install -y libopenblas-dev)
//
// Run:
//   $O/gemm_lab validate [--all-kernels]  all layouts / alpha / beta / odd sizes / strides / few-row
//                                         shapes, pool of 1, 2 and 4 threads (--all-kernels: every
//                                         entry of the ISA's kernel table, not just the engine's)
//   PUZZLE_ISA=avx2 $O/gemm_lab validate  same on the AVX2 path (PUZZLE_ISA=scalar: portable path)
//   $O/gemm_lab bench [--threads 1,2] [--samples 9] [--only SUBSTR] [--all] [--no-blas]
//                     (--all adds the informational "+" shapes: decode, mid sizes, odd attention tiles)
//                     [--kernel I] [--mc X] [--kc Y] [--nc Z]   (tuning: pick table entry / blocking)
//                     [--blas-core NAME]                        (OpenBLAS core, default SkylakeX)
// bench prints the median GFLOP/s with (min-max) over samples, ours vs OpenBLAS (thread count set
// with openblas_set_num_threads to match ours), alternating blocks of ours and OpenBLAS.
// OpenBLAS runs its SkylakeX (AVX-512) kernels: 0.3.21 would pick Haswell on Zen 5, and this box's
// environment sets OPENBLAS_CORETYPE=Haswell; add --blas-core Haswell to compare against that.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "cpu/gemm_kernels.h"
#include "puzzle/cpu_features.h"
#include "puzzle/gemm.h"
#include "puzzle/threadpool.h"

extern "C" char* openblas_get_corename(void);

namespace {

using puzzle::sgemm;
using puzzle::sgemm_reference;

std::mt19937 rng(12345);

void fill(std::vector<float>& v) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (auto& x : v) x = d(rng);
}

// ---------------------------------------------------------------- validation
int g_fail = 0, g_cases = 0;

void check_case(bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, float beta, int64_t pad_a,
                int64_t pad_b, int64_t pad_c, bool parallel, bool nan_c) {
  const int64_t rowsA = tA ? K : M, colsA = tA ? M : K;
  const int64_t rowsB = tB ? N : K, colsB = tB ? K : N;
  const int64_t lda = colsA + pad_a, ldb = colsB + pad_b, ldc = N + pad_c;
  std::vector<float> A(rowsA * lda + 1), B(rowsB * ldb + 1), C(M * ldc + 1);
  fill(A);
  fill(B);
  fill(C);
  if (nan_c)
    for (auto& x : C) x = NAN;
  std::vector<float> R = C, C0 = C;
  sgemm(tA, tB, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, parallel);
  sgemm_reference(tA, tB, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, R.data(), ldc);
  ++g_cases;
  double worst = 0;
  int64_t bad = -1;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double absdot = 0;
      for (int64_t k = 0; k < K; ++k) {
        float a = tA ? A[k * lda + i] : A[i * lda + k];
        float b = tB ? B[j * ldb + k] : B[k * ldb + j];
        absdot += std::fabs((double)a * b);
      }
      const double c0 = beta == 0.f ? 0.0 : std::fabs((double)beta * C0[i * ldc + j]);
      // Rigorous fp32 bound for any summation order, plus the final scale/add roundings.
      const double tol = (K + 4) * 1.2e-7 * (std::fabs(alpha) * absdot + c0) + 1e-30;
      const double err = std::fabs((double)C[i * ldc + j] - (double)R[i * ldc + j]);
      const double rel = std::isfinite(C[i * ldc + j]) ? err / tol : INFINITY;
      if (!(rel <= worst)) worst = rel, bad = i * ldc + j;
    }
  // Padding between rows of C must be untouched.
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = N; j < ldc; ++j)
      if (!(std::memcmp(&C[i * ldc + j], &C0[i * ldc + j], sizeof(float)) == 0)) worst = INFINITY, bad = i * ldc + j;
  if (std::memcmp(&C.back(), &C0.back(), sizeof(float)) != 0) worst = INFINITY, bad = (int64_t)C.size() - 1;
  if (!(worst <= 1.0)) {
    ++g_fail;
    if (g_fail <= 20)
      std::printf("FAIL %c%c M=%ld N=%ld K=%ld alpha=%g beta=%g pads=%ld/%ld/%ld par=%d nanC=%d: err/tol=%g at %ld "
                  "(got %g want %g)\n",
                  tA ? 'T' : 'N', tB ? 'T' : 'N', (long)M, (long)N, (long)K, alpha, beta, (long)pad_a, (long)pad_b,
                  (long)pad_c, (int)parallel, (int)nan_c, worst, (long)bad, bad >= 0 ? C[bad] : 0.f,
                  bad >= 0 ? R[bad] : 0.f);
  }
}

int validate_one();

// The engine's kernel (entry 0 of the ISA's table), or with --all-kernels every entry, ending on 0.
int validate(bool all_kernels) {
  int rc = 0;
  const int n = all_kernels ? std::max(1, puzzle::gemm_detail::sgemm_kernel_count()) : 1;
  for (int i = n - 1; i >= 0; --i) {
    puzzle::gemm_detail::sgemm_select_kernel(i, 0, 0, 0);
    g_fail = g_cases = 0;
    rc |= validate_one();
  }
  return rc;
}

int validate_one() {
  const int64_t sizes[] = {1, 7, 13, 33, 65};
  const int thread_counts[] = {1, 2, 4};  // 4: the pool's 2 x 2 grid of C rectangles
  for (int nt : thread_counts) {
    puzzle::set_num_threads(nt);
    for (int layout = 0; layout < 4; ++layout) {
      const bool tA = layout & 1, tB = layout & 2;
      // every combination of the odd sizes
      for (int64_t M : sizes)
        for (int64_t N : sizes)
          for (int64_t K : sizes) {
            check_case(tA, tB, M, N, K, 1.f, 0.f, 0, 0, 0, true, false);
            check_case(tA, tB, M, N, K, 0.5f, 1.f, 3, 5, 2, (M + N + K) % 2 == 0, false);
          }
      // alpha / beta variants, NaN in C with beta == 0, strided operands
      const float alphas[] = {1.f, -1.5f, 0.25f};
      const float betas[] = {0.f, 1.f, -0.5f, 2.f};
      for (float alpha : alphas)
        for (float beta : betas) {
          check_case(tA, tB, 37, 45, 29, alpha, beta, 7, 3, 11, true, false);
          check_case(tA, tB, 130, 97, 300, alpha, beta, 1, 0, 4, true, false);
        }
      check_case(tA, tB, 65, 65, 65, 1.f, 0.f, 0, 0, 0, true, true);
      check_case(tA, tB, 200, 150, 77, -2.f, 0.f, 13, 1, 9, true, true);
      check_case(tA, tB, 200, 150, 77, -2.f, 0.f, 13, 1, 9, false, true);
      // sizes that cross the cache blocks (K > kc, M > mc) and tile multiples
      const int64_t big[][3] = {{513, 257, 600},  {300, 1031, 129}, {1, 4100, 70},  {4100, 1, 70},
                                {64, 256, 64},    {256, 64, 256},   {2, 2, 1000},   {448, 96, 520},
                                {33, 4099, 17},   {1023, 65, 1025}, {169, 33, 257}, {14, 32, 256},
                                // few rows / columns (the unpacked small path) and just past it
                                {2, 1030, 1025},  {3, 777, 300},    {4, 200, 33},   {5, 300, 40},
                                {600, 3, 129},    {300, 4, 17},     {1030, 2, 1025}, {4, 4, 4}};
      for (auto& s : big) {
        check_case(tA, tB, s[0], s[1], s[2], 1.f, 0.f, 0, 0, 0, true, false);
        check_case(tA, tB, s[0], s[1], s[2], 0.75f, 1.f, 16, 3, 1, true, false);
        check_case(tA, tB, s[0], s[1], s[2], 1.f, -1.f, 1, 16, 0, false, false);
      }
    }
  }
  // K == 0 and alpha == 0 only scale C.
  {
    std::vector<float> C(12, 2.f), D(12, NAN);
    sgemm(false, false, 3, 4, 0, 1.f, nullptr, 1, nullptr, 1, 0.5f, C.data(), 4);
    sgemm(false, false, 3, 4, 0, 1.f, nullptr, 1, nullptr, 1, 0.f, D.data(), 4);
    ++g_cases;
    bool ok = true;
    for (int i = 0; i < 12; ++i) ok = ok && C[i] == 1.f && D[i] == 0.f;
    if (!ok) ++g_fail, std::printf("FAIL K=0 scaling\n");
  }
  std::printf("validate [%s, isa %s]: %d cases, %d failures\n", puzzle::sgemm_kernel_name(), puzzle::cpu_isa(),
              g_cases, g_fail);
  return g_fail ? 1 : 0;
}

// ---------------------------------------------------------------- benchmark
struct Shape {
  std::string name;
  bool tA, tB;
  int64_t M, N, K;
  float beta;
  bool parallel;     // false: per-head GEMM, single-threaded call
  int64_t lda_pad;   // strided operand like the fused-QKV views attention uses
  bool big;          // 4096^3: fewer samples
};

std::vector<Shape> shapes() {
  std::vector<Shape> s;
  const int64_t layers[][3] = {{2048, 512, 1536}, {2048, 512, 512}, {2048, 512, 2816}, {2048, 1408, 512}};
  const char* lname[] = {"qkv", "attn-out", "gate|up", "down"};
  for (int l = 0; l < 4; ++l) {
    const int64_t N = layers[l][0], C = layers[l][1], OC = layers[l][2];
    std::string n = lname[l];
    s.push_back({n + " fwd NT", false, true, N, OC, C, 0.f, true, 0, false});
    s.push_back({n + " dinp NN", false, false, N, C, OC, 1.f, true, 0, false});
    s.push_back({n + " dW TN", true, false, OC, C, N, 1.f, true, 0, false});
  }
  s.push_back({"1024^3 NN", false, false, 1024, 1024, 1024, 0.f, true, 0, false});
  s.push_back({"1024^3 NT", false, true, 1024, 1024, 1024, 0.f, true, 0, false});
  s.push_back({"1024^3 TN", true, false, 1024, 1024, 1024, 0.f, true, 0, false});
  s.push_back({"lmhead 4096x4096x256 NT", false, true, 4096, 4096, 256, 0.f, true, 0, false});
  // per-head attention GEMMs (parallel = false), operands strided like the fused QKV buffer
  s.push_back({"head S=QK^T 64x256x64 NT", false, true, 64, 256, 64, 0.f, false, 1472, false});
  s.push_back({"head O=PV 64x64x256 NN", false, false, 64, 64, 256, 0.f, false, 0, false});
  s.push_back({"head dV=P^TdO 256x64x64 TN", true, false, 256, 64, 64, 1.f, false, 0, false});
  s.push_back({"head 256x64x256 NT", false, true, 256, 64, 256, 0.f, false, 0, false});
  s.push_back({"head 256x64x256 NN", false, false, 256, 64, 256, 0.f, false, 0, false});
  s.push_back({"head 256x64x256 TN", true, false, 256, 64, 256, 1.f, false, 0, false});
  s.push_back({"head 64x256x64 NN", false, false, 64, 256, 64, 0.f, false, 0, false});
  s.push_back({"head 64x256x64 TN", true, false, 64, 256, 64, 1.f, false, 0, false});
  s.push_back({"4096^3 NN", false, false, 4096, 4096, 4096, 0.f, true, 0, true});
  // informational (bench --all): decode-time few-token GEMMs (the unpacked small path), mid sizes,
  // and the odd tiles attention produces when T is not a multiple of its 64-row query tile
  s.push_back({"+decode 1x1536x512 NT", false, true, 1, 1536, 512, 0.f, true, 0, false});
  s.push_back({"+decode 4x2816x512 NT", false, true, 4, 2816, 512, 0.f, true, 0, false});
  s.push_back({"+decode 16x1536x512 NT", false, true, 16, 1536, 512, 0.f, true, 0, false});
  s.push_back({"+decode 4x512x1536 NN", false, false, 4, 512, 1536, 0.f, true, 0, false});
  s.push_back({"+decode 32x1536x512 NT", false, true, 32, 1536, 512, 0.f, true, 0, false});
  s.push_back({"+small-N 2048x4x512 NN", false, false, 2048, 4, 512, 0.f, true, 0, false});
  s.push_back({"+mid 256^3 NN", false, false, 256, 256, 256, 0.f, true, 0, false});
  s.push_back({"+mid 128^3 NT", false, true, 128, 128, 128, 0.f, true, 0, false});
  s.push_back({"+tail 16x256x64 NT", false, true, 16, 256, 64, 0.f, false, 0, false});
  s.push_back({"+tail 4x256x64 NT", false, true, 4, 256, 64, 0.f, false, 0, false});
  s.push_back({"+tail 16x64x256 NN", false, false, 16, 64, 256, 0.f, false, 0, false});
  s.push_back({"+tail 256x64x8 TN", true, false, 256, 64, 8, 1.f, false, 0, false});
  return s;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Stats {
  double med, lo, hi;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

int bench(int argc, char** argv) {
  std::vector<int> threads = {1, 2};
  int samples = 9;
  bool blas = true, all = false;
  std::string only;
  int kidx = -1, mc = 0, kc = 0, nc = 0;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--threads") {
      threads.clear();
      std::string t = next();
      for (size_t p = 0; p < t.size();) {
        size_t q = t.find(',', p);
        if (q == std::string::npos) q = t.size();
        threads.push_back(std::atoi(t.substr(p, q - p).c_str()));
        p = q + 1;
      }
    } else if (a == "--samples") samples = std::atoi(next().c_str());
    else if (a == "--only") only = next();
    else if (a == "--no-blas") blas = false;
    else if (a == "--all") all = true;
    else if (a == "--kernel") kidx = std::atoi(next().c_str());
    else if (a == "--mc") mc = std::atoi(next().c_str());
    else if (a == "--kc") kc = std::atoi(next().c_str());
    else if (a == "--nc") nc = std::atoi(next().c_str());
    else if (a == "--blas-core") next();
  }
  const char* kname = puzzle::gemm_detail::sgemm_select_kernel(kidx, mc, kc, nc);
  std::printf("ours: %s (isa %s, %s)   OpenBLAS core: %s\n", kname, puzzle::cpu_isa(),
              puzzle::cpu_features().model.c_str(), openblas_get_corename());
  std::printf("%-28s %3s  %26s  %26s  %6s\n", "shape", "thr", "ours GFLOP/s med (min-max)",
              "OpenBLAS GFLOP/s med (min-max)", "ratio");
  for (int nt : threads) {
    puzzle::set_num_threads(nt);
    openblas_set_num_threads(nt);
    for (const Shape& s : shapes()) {
      if (!only.empty() && s.name.find(only) == std::string::npos) continue;
      if (s.name[0] == '+' && !all && only.empty()) continue;
      if (!s.parallel && nt != 1) continue;  // per-head GEMMs are single-threaded by construction
      const int64_t rowsA = s.tA ? s.K : s.M, colsA = s.tA ? s.M : s.K;
      const int64_t rowsB = s.tB ? s.N : s.K, colsB = s.tB ? s.K : s.N;
      const int64_t lda = colsA + s.lda_pad, ldb = colsB + s.lda_pad, ldc = s.N;
      std::vector<float> A(rowsA * lda), B(rowsB * ldb), C(s.M * ldc);
      fill(A);
      fill(B);
      fill(C);
      for (auto& x : C) x *= 1e-3f;
      const double flop = 2.0 * s.M * s.N * s.K;
      // calls per sample so that a sample lasts >= ~20 ms at ~300 GFLOP/s
      const int calls = std::max<int64_t>(1, (int64_t)(6e9 / flop));
      const int ns = s.big ? std::max(3, samples / 3) : samples;
      auto ours = [&] {
        sgemm(s.tA, s.tB, s.M, s.N, s.K, 1.f, A.data(), lda, B.data(), ldb, s.beta, C.data(), ldc, s.parallel);
      };
      auto theirs = [&] {
        cblas_sgemm(CblasRowMajor, s.tA ? CblasTrans : CblasNoTrans, s.tB ? CblasTrans : CblasNoTrans, (int)s.M,
                    (int)s.N, (int)s.K, 1.f, A.data(), (int)lda, B.data(), (int)ldb, s.beta, C.data(), (int)ldc);
      };
      std::vector<double> go, gb;
      auto sample = [&](auto& fn, std::vector<double>& out) {
        double t0 = now();
        for (int c = 0; c < calls; ++c) fn();
        out.push_back(flop * calls / (now() - t0) * 1e-9);
      };
      // warm-up (page faults, pack buffers), then alternate blocks of 3 samples.
      ours();
      if (blas) theirs();
      for (int done = 0; done < ns; done += 3) {
        // OpenBLAS's idle workers spin (sched_yield) for a while after a call: let them go to
        // sleep before our pool runs, so neither library's timing includes the other's spinning.
        if (blas && nt > 1) std::this_thread::sleep_for(std::chrono::milliseconds(250));
        ours();
        for (int r = 0; r < 3 && done + r < ns; ++r) sample(ours, go);
        if (blas) {
          theirs();
          for (int r = 0; r < 3 && done + r < ns; ++r) sample(theirs, gb);
        }
      }
      Stats so = stats(go);
      char bo[64] = "", bb[64] = "-", br[16] = "-";
      std::snprintf(bo, sizeof bo, "%6.1f (%6.1f-%6.1f)", so.med, so.lo, so.hi);
      if (blas) {
        Stats sb = stats(gb);
        std::snprintf(bb, sizeof bb, "%6.1f (%6.1f-%6.1f)", sb.med, sb.lo, sb.hi);
        std::snprintf(br, sizeof br, "%5.2f", so.med / sb.med);
      }
      std::printf("%-28s %3d  %26s  %26s  %6s\n", s.name.c_str(), nt, bo, bb, br);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenBLAS 0.3.21 does not know Zen 5 and falls back to its AVX2 "Haswell" kernels (this box's
  // environment even sets OPENBLAS_CORETYPE=Haswell). Compare against its AVX-512 SkylakeX kernels
  // unless --blas-core NAME says otherwise. The variable is read when the library loads: re-exec.
  std::string core = "SkylakeX";
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--blas-core") core = argv[i + 1];
  // Idle OpenBLAS workers spin (sched_yield) for ~2^28 cycles after every call and then steal a
  // core from our pool (and vice versa); a short timeout keeps the two libraries out of each
  // other's timings (set OPENBLAS_THREAD_TIMEOUT yourself to override).
  const char* cur = std::getenv("OPENBLAS_CORETYPE");
  if (!cur || core != cur || !std::getenv("OPENBLAS_THREAD_TIMEOUT")) {
    setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
    execv("/proc/self/exe", argv);
  }
  std::string mode = argc > 1 ? argv[1] : "validate";
  if (mode == "validate") return validate(argc > 2 && std::string(argv[2]) == "--all-kernels");
  if (mode == "bench") return bench(argc, argv);
  std::printf("usage: gemm_lab validate | bench [options]  (see the comment at the top of gemm_lab.cpp)\n");
  return 2;
}
