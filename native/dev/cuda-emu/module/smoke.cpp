// Smoke test of the emulated CUDA module (build.sh OUT.so --smoke): loads OUT.so the way
// native/src/cuda_loader.cpp does, runs a few ops of its Backend table on device buffers and
// compares them with the CPU backend. Relative L2 error; tolerance 1e-2 for the ops on bf16
// tensor cores (GEMM, attention), one bf16 rounding for bf16 outputs, 1e-5 otherwise.
//   smoke OUT.so      exit status 0 when every check passed
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "puzzle/backend.h"

using puzzle::bf16;
using ProbeFn = int (*)(char*, int);
using BackendFn = const puzzle::Backend* (*)();
using TakeErrorFn = int (*)(char*, int);
using RmsnormFn = int (*)(float*, const float*, const float*, long, long, float, char*, int);

static const puzzle::Backend* G;  // the module's table (device pointers)
static const puzzle::Backend& R() { return puzzle::cpu_backend(); }
static int fails = 0;

static std::mt19937 rng(7);
static std::vector<float> randn(size_t n, float sc = 1.f, float shift = 0.f) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = shift + sc * d(rng);
  return v;
}

// a device copy of host data (freed by the destructor)
template <class T>
struct Dev {
  T* p = nullptr;
  size_t n;
  explicit Dev(const std::vector<T>& h) : n(h.size()) {
    p = (T*)G->alloc(n * sizeof(T));
    if (!p) { std::fprintf(stderr, "alloc failed\n"); std::exit(1); }
    G->copy_to_device(p, h.data(), n * sizeof(T));
  }
  // n elements of all-ones bits (NaN as float or bf16): outputs must be written in full
  explicit Dev(size_t n_) : Dev(ones(n_)) {}
  static std::vector<T> ones(size_t n) {
    std::vector<T> h(n);
    std::memset(h.data(), 0xff, n * sizeof(T));
    return h;
  }
  ~Dev() { G->free(p); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    G->copy_to_host(h.data(), p, n * sizeof(T));
    return h;
  }
};
static std::vector<bf16> to16(const std::vector<float>& v) {
  std::vector<bf16> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = puzzle::f32_to_bf16(v[i]);
  return r;
}
static std::vector<float> to32(const std::vector<bf16>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = puzzle::bf16_to_f32(v[i]);
  return r;
}

// relative L2 error; any non-finite value where the reference is finite fails
static void check(const char* name, const std::vector<float>& got, const std::vector<float>& want, double tol) {
  double d2 = 0, w2 = 0;
  bool bad = got.size() != want.size();
  for (size_t i = 0; !bad && i < want.size(); ++i) {
    if (!std::isfinite(got[i])) { bad = true; break; }
    d2 += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    w2 += (double)want[i] * want[i];
  }
  const double err = bad ? INFINITY : std::sqrt(d2 / std::max(w2, 1e-300));
  const bool ok = err <= tol;
  fails += !ok;
  std::printf("  %-4s %-44s rel L2 %.2e (tol %.0e)\n", ok ? "ok" : "FAIL", name, err, tol);
}

static const double kTc = 1e-2, kBf16 = 4e-3, kF32 = 1e-5;

static void t_rmsnorm() {
  const int64_t N = 5, C = 96;
  auto x = randn(N * C), w = randn(C, 0.5f, 1.f);
  Dev<float> dx(x), dw(w), dout((size_t)(N * C)), drs((size_t)(N));
  std::vector<float> out(N * C), rs(N);
  G->ops.rmsnorm_forward(dout.p, drs.p, dx.p, dw.p, N, C, 1e-5f);
  R().ops.rmsnorm_forward(out.data(), rs.data(), x.data(), w.data(), N, C, 1e-5f);
  check("rmsnorm_forward N5 C96", dout.get(), out, kF32);
  check("rmsnorm_forward rstd", drs.get(), rs, kF32);
}

static void t_gemm(bool ta, bool tb) {
  const int64_t M = 37, N = 29, K = 45;
  const int64_t lda = ta ? M : K, ldb = tb ? K : N, ldc = N;
  auto a = randn(M * K), b = randn(K * N), c = randn(M * N);
  Dev<float> da(a), db(b), dc(c);
  G->ops.gemm(ta, tb, M, N, K, 0.5f, da.p, lda, db.p, ldb, 1.f, dc.p, ldc);
  R().ops.gemm(ta, tb, M, N, K, 0.5f, a.data(), lda, b.data(), ldb, 1.f, c.data(), ldc);
  const std::string name = std::string("gemm ") + (ta ? "T" : "N") + (tb ? "T" : "N") + " 37x29x45 a0.5 b1";
  check(name.c_str(), dc.get(), c, kTc);
}

static void t_swiglu() {
  const int64_t N = 3, F = 50;
  auto gu = randn(N * 2 * F);
  Dev<float> dgu(gu), dout((size_t)(N * F));
  std::vector<float> out(N * F);
  G->ops.swiglu_forward(dout.p, dgu.p, N, F);
  R().ops.swiglu_forward(out.data(), gu.data(), N, F);
  check("swiglu_forward N3 F50", dout.get(), out, kF32);
}

static void t_attention() {
  const int64_t B = 1, T = 9, NH = 4, NKV = 2, HS = 16, QKV = (NH + 2 * NKV) * HS, QW = NH * HS;
  auto qkv = randn(B * T * QKV);
  Dev<float> dq(qkv), dout((size_t)(B * T * QW)), dlse((size_t)(B * NH * T));
  std::vector<float> out(B * T * QW), lse(B * NH * T);
  G->ops.attention_forward(dout.p, dlse.p, dq.p, dq.p + QW, dq.p + QW + NKV * HS, B, T, NH, NKV, HS, QKV, QKV);
  R().ops.attention_forward(out.data(), lse.data(), qkv.data(), qkv.data() + QW, qkv.data() + QW + NKV * HS, B, T,
                            NH, NKV, HS, QKV, QKV);
  check("attention_forward B1 T9 NH4 NKV2 HS16", dout.get(), out, kTc);
  check("attention_forward lse", dlse.get(), lse, kTc);
}

static void t_cross_entropy() {
  const int64_t N = 4, V = 100;
  auto logits = randn(N * V, 2.f);
  std::vector<int32_t> tg = {3, 99, -100, 0};
  Dev<float> dl(logits), dloss((size_t)(N)), dlse((size_t)(N));
  Dev<int32_t> dt(tg);
  std::vector<float> loss(N), lse(N);
  G->ops.cross_entropy_forward(dloss.p, dlse.p, dl.p, dt.p, N, V);
  R().ops.cross_entropy_forward(loss.data(), lse.data(), logits.data(), tg.data(), N, V);
  check("cross_entropy_forward N4 V100 (one ignored)", dloss.get(), loss, kF32);
  check("cross_entropy_forward lse", dlse.get(), lse, kF32);
}

static void t_adamw() {
  const int64_t n = 1001;  // a ragged tail after the 4-wide vectors
  auto p = randn(n), g = randn(n), m = randn(n, 0.1f), v = randn(n, 0.1f, 1.f);
  for (auto& x : v) x = std::fabs(x);
  Dev<float> dp(p), dg(g), dm(m), dv(v);
  G->ops.adamw_update(dp.p, dg.p, dm.p, dv.p, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 3);
  R().ops.adamw_update(p.data(), g.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 3);
  check("adamw_update n1001 param", dp.get(), p, kF32);
  check("adamw_update m", dm.get(), m, kF32);
  check("adamw_update v", dv.get(), v, kF32);
  const double got = G->ops.sum_squares(dg.p, n), want = R().ops.sum_squares(g.data(), n);
  check("sum_squares n1001", {(float)got}, {(float)want}, kF32);
}

static void t_rmsnorm_bf16() {
  const int64_t N = 6, C = 80;
  auto x = to16(randn(N * C)), w = to16(randn(C, 0.5f, 1.f));
  Dev<bf16> dx(x), dw(w), dout((size_t)(N * C));
  Dev<float> drs((size_t)(N));
  std::vector<bf16> out(N * C);
  std::vector<float> rs(N);
  G->ops_bf16.rmsnorm_forward(dout.p, drs.p, dx.p, dw.p, N, C, 1e-5f);
  R().ops_bf16.rmsnorm_forward(out.data(), rs.data(), x.data(), w.data(), N, C, 1e-5f);
  check("ops_bf16.rmsnorm_forward N6 C80", to32(dout.get()), to32(out), kBf16);
  check("ops_bf16.rmsnorm_forward rstd", drs.get(), rs, kF32);
}

// two host threads at once (the addon's libuv workers): launches must serialise
static void t_threads() {
  const int64_t N = 4, C = 64;
  auto x = randn(N * C), w = randn(C, 0.5f, 1.f);
  std::vector<float> out(N * C), rs(N);
  R().ops.rmsnorm_forward(out.data(), rs.data(), x.data(), w.data(), N, C, 1e-5f);
  std::vector<float> got[2];
  auto work = [&](int i) {
    Dev<float> dx(x), dw(w), dout((size_t)(N * C)), drs((size_t)(N));
    for (int r = 0; r < 4; ++r) G->ops.rmsnorm_forward(dout.p, drs.p, dx.p, dw.p, N, C, 1e-5f);
    got[i] = dout.get();
  };
  std::thread a(work, 0), b(work, 1);
  a.join(), b.join();
  check("rmsnorm_forward from two threads (1)", got[0], out, kF32);
  check("rmsnorm_forward from two threads (2)", got[1], out, kF32);
}

int main(int argc, char** argv) {
  if (argc != 2) { std::fprintf(stderr, "usage: smoke MODULE.so\n"); return 2; }
  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) { std::fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
  auto probe = (ProbeFn)dlsym(h, "puzzle_cuda_probe");
  auto backend = (BackendFn)dlsym(h, "puzzle_cuda_backend");
  auto take_error = (TakeErrorFn)dlsym(h, "puzzle_cuda_take_error");
  auto rms_host = (RmsnormFn)dlsym(h, "puzzle_cuda_rmsnorm_forward_host");
  if (!probe || !backend || !take_error || !rms_host) { std::fprintf(stderr, "missing entry points\n"); return 1; }
  char desc[512] = {0};
  const int n = probe(desc, sizeof desc);
  std::printf("probe: %d device(s): %s\n", n, desc);
  if (n != 1) return 1;
  G = backend();
  if (!G || std::strcmp(G->name, "cuda") != 0) { std::fprintf(stderr, "no cuda backend table\n"); return 1; }

  t_rmsnorm();
  t_gemm(false, false);
  t_gemm(true, true);
  t_swiglu();
  t_attention();
  t_cross_entropy();
  t_adamw();
  t_rmsnorm_bf16();
  t_threads();
  {
    const long N = 3, C = 40;
    auto x = randn(N * C), w = randn(C, 0.5f, 1.f);
    std::vector<float> got(N * C), want(N * C), rs(N);
    char err[512] = {0};
    const int rc = rms_host(got.data(), x.data(), w.data(), N, C, 1e-5f, err, sizeof err);
    if (rc != 0) std::printf("  FAIL puzzle_cuda_rmsnorm_forward_host: %s\n", err), ++fails;
    R().ops.rmsnorm_forward(want.data(), rs.data(), x.data(), w.data(), N, C, 1e-5f);
    check("puzzle_cuda_rmsnorm_forward_host N3 C40", got, want, kF32);
  }
  G->synchronize();
  char err[512] = {0};
  if (take_error(err, sizeof err) != 0) std::printf("  FAIL take_error: %s\n", err), ++fails;
  else std::printf("  ok   take_error: none\n");
  // Last, since the error is sticky (as a GPU context's): host memory given to a kernel must
  // fail as an illegal address would on a GPU, not quietly work because "device" memory is RAM.
  {
    const int64_t N = 2, C = 32;
    std::vector<float> x(N * C, 1.f), w(C, 1.f), out(N * C), rs(N);
    G->ops.rmsnorm_forward(out.data(), rs.data(), x.data(), w.data(), N, C, 1e-5f);
    G->synchronize();
    if (take_error(err, sizeof err) != 0 && std::strstr(err, "illegal memory access"))
      std::printf("  ok   host pointers given to a kernel: \"%s\"\n", err);
    else
      std::printf("  FAIL host pointers given to a kernel went unnoticed\n"), ++fails;
  }
  std::printf("%s\n", fails ? "smoke: FAILED" : "smoke: all passed");
  return fails ? 1 : 0;
}
