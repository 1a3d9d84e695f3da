// puzzle_cuda_check: the CUDA backend against the CPU engine, op by op and block by block, then
// the GPU benchmarks (GEMM rate, copy bandwidth, block forward+backward, decode steps in CUDA
// graphs against their bandwidth and compute floors). Run by benchmarks/gpu/check.sh; needs no
// Node. Exit status 0 only when every check passes.
//
//   puzzle_cuda_check [--json FILE] [--no-bench] [--quick] [--part f32|bf16|all] [--tag TAG]
//   puzzle_cuda_check --kernels [--json FILE]
// --kernels skips the checks and times only a Llama-3.1-8B bf16 block's forward+backward and its
// decode steps, then traces a few more of each through CUPTI (kernel_trace.h) and prints where
// the GPU time goes, kernel by kernel (JSON: "kernels").
// --part runs only the fp32 or only the bf16 (mixed precision) checks and benchmarks: check.sh
// runs them as two processes, so a fault in one leaves the other's results standing. --tag
// appends " [TAG]" to every check and result name (check.sh: bf16 runs with candidate paths,
// e.g. PUZZLE_CUDA_PDL=1 with rows marked [pdl]).
//
// Errors are relative L2 norms ||gpu - cpu|| / ||cpu||, against tolerances written per kind of
// arithmetic (TOL below). The fp32 ops: the GPU runs matrix products on the tensor cores with
// bf16 operands (fp32 accumulation), everything else in fp32. The bf16 ops (mixed precision) are
// checked against the CPU's bf16 table (the fp32 kernels on widened inputs, rounded once), on the
// same bf16 inputs, and bf16 blocks against bf16 blocks on the CPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/backend_cuda.h"
#include "kernel_trace.h"
#include "puzzle/backend.h"
#include "puzzle/block.h"
#include "puzzle/threadpool.h"

namespace puzzle::cuda {
const char* gemm_kernel_name();
const char* attention_kernel_name(int64_t HS);  // forward and backward: "tensor-core" or "simt"
// attention_mma.cu, called directly: the bf16 forward and backward (the default for HS 64 and 128;
// PUZZLE_CUDA_ATTN=wmma or simt deselects them), and attention.cu's backward pre-pass
bool attention_forward_mma(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                           int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
bool attention_backward_mma(float* dq32, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                            const bf16* v, const bf16* out, const float* lse, float* D, int64_t B, int64_t T,
                            int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
void attention_backward_dot(float* D, const bf16* dout, const bf16* out, int64_t B, int64_t T, int64_t NH,
                            int64_t HS);
bool attention_mma_selected();  // unless PUZZLE_CUDA_ATTN=wmma or simt
cudaStream_t stream();
}  // namespace puzzle::cuda

using namespace puzzle;

namespace {

// ---- tolerances (relative L2), per kind of arithmetic ----------------------------------------
struct Tol {
  double f32 = 2e-5;        // elementwise and reductions in fp32 (order of summation differs)
  double gemm_bf16 = 1.5e-2;  // bf16 operands, fp32 accumulation (2^-8 rounding per operand)
  double attention = 2e-4;  // fp32 flash attention (online softmax, different summation order)
  double attention_tc = 1e-2;  // tensor-core flash attention forward (bf16 operands); backward on its out/lse
  double block = 3e-2;      // a whole block: several bf16 products in a row
  double bf16 = 4e-3;       // a bf16 op against the CPU's: the same fp32 math, one rounding apart
  double bf16_f32out = 1e-4;  // bf16 operands, fp32 output (weight gradients): summation order only
} TOL;

const Backend& CPU = cpu_backend();
const Backend* GPU = nullptr;
bool g_f32 = true, g_bf16 = true;  // which parts run (--part)
std::string g_tag;                 // " [TAG]" after every name (--tag)
bool g_kernels = false;            // --kernels: per-kernel breakdowns of the block benchmarks
bool g_only_decode = false;        // --only-decode: of the block benchmarks, the decode steps only

std::mt19937_64 rng(1234);
std::vector<float> randn(size_t n, float scale = 1.f, float shift = 0.f) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = shift + scale * d(rng);
  return v;
}
std::vector<int32_t> randint(size_t n, int hi) {
  std::uniform_int_distribution<int> d(0, hi - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Device memory holding a copy of host data; poisoned with NaN when asked, so that an element
// the kernel forgot to write fails the comparison.
struct Dev {
  void* p = nullptr;
  size_t bytes = 0;
  Dev() = default;
  explicit Dev(size_t b) : bytes(b) {
    p = GPU->alloc(b);
    if (!p) {
      std::fprintf(stderr, "out of GPU memory (%zu bytes)\n", b);
      std::exit(2);
    }
  }
  template <class T>
  explicit Dev(const std::vector<T>& h) : Dev(h.size() * sizeof(T)) {
    GPU->copy_to_device(p, h.data(), bytes);
  }
  ~Dev() {
    if (p) GPU->free(p);
  }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  float* f() const { return (float*)p; }
  int32_t* i() const { return (int32_t*)p; }
  void poison() { cudaMemsetAsync(p, 0xff, bytes, cuda::stream()); }  // 0xffffffff is a NaN
  std::vector<float> get() const {
    std::vector<float> h(bytes / sizeof(float));
    GPU->copy_to_host(h.data(), p, bytes);
    return h;
  }
};

// bf16 device data from float values (rounded), read back widened.
std::vector<bf16> round16(const std::vector<float>& v) {
  std::vector<bf16> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_bf16(v[i]);
  return h;
}
std::vector<float> widen16(const std::vector<bf16>& h) {
  std::vector<float> v(h.size());
  for (size_t i = 0; i < h.size(); ++i) v[i] = bf16_to_f32(h[i]);
  return v;
}
std::vector<float> concat(std::vector<float> a, const std::vector<float>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
struct Dev16 {
  Dev d;
  size_t n;
  explicit Dev16(size_t n_) : d(std::max<size_t>(n_, 1) * 2), n(n_) {}
  explicit Dev16(const std::vector<bf16>& h) : d(h), n(h.size()) {}
  bf16* p() const { return (bf16*)d.p; }
  std::vector<float> get() const {
    std::vector<bf16> h(n);
    GPU->copy_to_host(h.data(), d.p, n * 2);
    return widen16(h);
  }
};

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double d = (double)got[i] - want[i];
    if (!std::isfinite(got[i])) return INFINITY;
    num += d * d;
    den += (double)want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

struct Result {
  std::string name;
  double err, tol;
  bool pass;
};
std::vector<Result> results;

void check(const std::string& name0, double err, double tol) {
  const std::string name = name0 + g_tag;
  std::string cuda_err = cuda::take_error();
  bool pass = err <= tol && cuda_err.empty();
  results.push_back({name, err, tol, pass});
  std::printf("  %-4s %-58s err %.2e  tol %.0e%s%s\n", pass ? "ok" : "FAIL", name.c_str(), err, tol,
              cuda_err.empty() ? "" : "  CUDA: ", cuda_err.c_str());
  std::fflush(stdout);
}
void check(const std::string& name, const std::vector<float>& got, const std::vector<float>& want, double tol) {
  check(name, rel_err(got, want), tol);
}

// ---- op checks -------------------------------------------------------------------------------
void check_embedding() {
  const int64_t N = 300, C = 96, V = 50;
  auto ids = randint(N, V);
  auto table = randn(V * C), dout = randn(N * C), dtable0 = randn(V * C);
  std::vector<float> out(N * C), dtable = dtable0;
  CPU.ops.embedding_forward(out.data(), ids.data(), table.data(), N, C);
  CPU.ops.embedding_backward(dtable.data(), dout.data(), ids.data(), N, C);
  Dev g_ids(ids), g_table(table), g_dout(dout), g_dtable(dtable0), g_out(N * C * 4);
  g_out.poison();
  GPU->ops.embedding_forward(g_out.f(), g_ids.i(), g_table.f(), N, C);
  GPU->ops.embedding_backward(g_dtable.f(), g_dout.f(), g_ids.i(), N, C);
  check("embedding forward", g_out.get(), out, TOL.f32);
  check("embedding backward (accumulates, repeated ids)", g_dtable.get(), dtable, TOL.f32);
}

void check_rmsnorm(int64_t N, int64_t C) {
  auto x = randn(N * C), w = randn(C, 0.5f, 1.f), dout = randn(N * C), dx0 = randn(N * C), dw0 = randn(C);
  std::vector<float> out(N * C), rstd(N), dx = dx0, dw = dw0;
  CPU.ops.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
  CPU.ops.rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), N, C);
  Dev gx(x), gw(w), gd(dout), gdx(dx0), gdw(dw0), gout(N * C * 4), grstd(N * 4);
  gout.poison(), grstd.poison();
  GPU->ops.rmsnorm_forward(gout.f(), grstd.f(), gx.f(), gw.f(), N, C, 1e-5f);
  GPU->ops.rmsnorm_backward(gdx.f(), gdw.f(), gd.f(), gx.f(), gw.f(), grstd.f(), N, C);
  std::string s = " N" + std::to_string(N) + " C" + std::to_string(C);
  check("rmsnorm forward" + s, gout.get(), out, TOL.f32);
  check("rmsnorm rstd" + s, grstd.get(), rstd, TOL.f32);
  check("rmsnorm backward dinp" + s, gdx.get(), dx, TOL.f32);
  check("rmsnorm backward dweight" + s, gdw.get(), dw, TOL.f32);
  // the residual add fused with the norm, in place (sum == a) as the block calls it
  auto r = randn(N * C);
  std::vector<float> sum = x, out2(N * C), rstd2(N);
  CPU.ops.add_rmsnorm_forward(sum.data(), out2.data(), rstd2.data(), sum.data(), r.data(), w.data(), N, C, 1e-5f);
  Dev gr(r), gout2(N * C * 4), grstd2(N * 4);
  gout2.poison(), grstd2.poison();
  GPU->ops.add_rmsnorm_forward(gx.f(), gout2.f(), grstd2.f(), gx.f(), gr.f(), gw.f(), N, C, 1e-5f);
  check("add+rmsnorm sum (in place)" + s, gx.get(), sum, TOL.f32);
  check("add+rmsnorm forward" + s, gout2.get(), out2, TOL.f32);
  check("add+rmsnorm rstd" + s, grstd2.get(), rstd2, TOL.f32);
}

void check_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t pad, float alpha, float beta) {
  // Stored shapes: A is [M,K] or [K,M]; B is [K,N] or [N,K]; each row padded by `pad` floats.
  const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  const int64_t lda = ac + pad, ldb = bc + pad, ldc = N + pad;
  auto A = randn(ar * lda), B = randn(br * ldb), C0 = randn(M * ldc);
  std::vector<float> C = C0;
  CPU.ops.gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  Dev gA(A), gB(B), gC(C0);
  if (beta == 0.f) gC.poison();  // beta 0 must overwrite, NaN included
  GPU->ops.gemm(ta, tb, M, N, K, alpha, gA.f(), lda, gB.f(), ldb, beta, gC.f(), ldc);
  char name[128];
  std::snprintf(name, sizeof name, "gemm %c%c M%ld N%ld K%ld ld+%ld a%.1f b%.1f", ta ? 'T' : 'N', tb ? 'T' : 'N',
                (long)M, (long)N, (long)K, (long)pad, alpha, beta);
  auto got = gC.get();
  if (beta == 0.f)  // padding columns are never written: compare the M x N window only
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = N; n < ldc; ++n) got[m * ldc + n] = C[m * ldc + n];
  check(name, got, C, TOL.gemm_bf16);
}

void check_matmul(int64_t N, int64_t C, int64_t OC, bool bias) {
  auto x = randn(N * C), w = randn(OC * C, 0.05f), b = randn(OC), dout = randn(N * OC);
  auto dx0 = randn(N * C), dw0 = randn(OC * C), db0 = randn(OC);
  std::vector<float> out(N * OC), dx = dx0, dw = dw0, db = db0;
  CPU.ops.matmul_forward(out.data(), x.data(), w.data(), bias ? b.data() : nullptr, N, C, OC);
  CPU.ops.matmul_backward(dx.data(), dw.data(), bias ? db.data() : nullptr, dout.data(), x.data(), w.data(), N, C, OC);
  Dev gx(x), gw(w), gb(b), gd(dout), gdx(dx0), gdw(dw0), gdb(db0), gout(N * OC * 4);
  gout.poison();
  GPU->ops.matmul_forward(gout.f(), gx.f(), gw.f(), bias ? gb.f() : nullptr, N, C, OC);
  GPU->ops.matmul_backward(gdx.f(), gdw.f(), bias ? gdb.f() : nullptr, gd.f(), gx.f(), gw.f(), N, C, OC);
  std::string s = " N" + std::to_string(N) + " C" + std::to_string(C) + " OC" + std::to_string(OC);
  check("matmul forward" + s, gout.get(), out, TOL.gemm_bf16);
  check("matmul backward dinp" + s, gdx.get(), dx, TOL.gemm_bf16);
  check("matmul backward dweight" + s, gdw.get(), dw, TOL.gemm_bf16);
  if (bias) check("matmul backward dbias" + s, gdb.get(), db, TOL.f32);
}

void rope_tables(int64_t P, int64_t HS, std::vector<float>& cos, std::vector<float>& sin) {
  const int64_t h = HS / 2;
  cos.resize(P * h), sin.resize(P * h);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < h; ++i) {
      double f = p * std::pow(500000.0, -2.0 * i / HS);
      cos[p * h + i] = (float)std::cos(f), sin[p * h + i] = (float)std::sin(f);
    }
}

void check_rope() {
  const int64_t B = 2, T = 33, NH = 6, HS = 64, stride = NH * HS + 40, P = 100;
  std::vector<float> cos, sin;
  rope_tables(P, HS, cos, sin);
  auto pos = randint(T, P);
  auto x = randn(B * T * stride);
  std::vector<float> out = x, din = x;
  CPU.ops.rope_forward(out.data(), out.data(), cos.data(), sin.data(), pos.data(), B, T, NH, HS, stride);
  CPU.ops.rope_backward(din.data(), din.data(), cos.data(), sin.data(), pos.data(), B, T, NH, HS, stride);
  Dev gc(cos), gs(sin), gp(pos), gx(x), gx2(x);
  GPU->ops.rope_forward(gx.f(), gx.f(), gc.f(), gs.f(), gp.i(), B, T, NH, HS, stride);
  GPU->ops.rope_backward(gx2.f(), gx2.f(), gc.f(), gs.f(), gp.i(), B, T, NH, HS, stride);
  check("rope forward (in place, strided, positions)", gx.get(), out, TOL.f32);
  check("rope backward (in place, strided, positions)", gx2.get(), din, TOL.f32);
  std::vector<float> out2(B * T * stride, 0.f);
  CPU.ops.rope_forward(out2.data(), x.data(), cos.data(), sin.data(), nullptr, B, T, NH, HS, stride);
  Dev gx3(x), go(std::vector<float>(B * T * stride, 0.f));
  GPU->ops.rope_forward(go.f(), gx3.f(), gc.f(), gs.f(), nullptr, B, T, NH, HS, stride);
  check("rope forward (out of place, default positions)", go.get(), out2, TOL.f32);
}

void check_attention(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
  // q, k, v as column slices of one fused buffer, as inside a block.
  const int64_t QKV = (NH + 2 * NKV) * HS;
  auto qkv = randn(B * T * QKV);
  auto dout = randn(B * T * NH * HS);
  auto dqkv0 = randn(B * T * QKV, 0.1f);
  std::vector<float> out(B * T * NH * HS), lse(B * NH * T), dqkv = dqkv0;
  const float *q = qkv.data(), *k = q + NH * HS, *v = k + NKV * HS;
  CPU.ops.attention_forward(out.data(), lse.data(), q, k, v, B, T, NH, NKV, HS, QKV, QKV);
  CPU.ops.attention_backward(dqkv.data(), dqkv.data() + NH * HS, dqkv.data() + (NH + NKV) * HS, dout.data(), q, k, v,
                             out.data(), lse.data(), B, T, NH, NKV, HS, QKV, QKV);
  Dev gqkv(qkv), gdout(dout), gdqkv(dqkv0), gout(out.size() * 4), glse(lse.size() * 4);
  gout.poison(), glse.poison();
  float *gq = gqkv.f(), *gk = gq + NH * HS, *gv = gk + NKV * HS;
  GPU->ops.attention_forward(gout.f(), glse.f(), gq, gk, gv, B, T, NH, NKV, HS, QKV, QKV);
  GPU->ops.attention_backward(gdqkv.f(), gdqkv.f() + NH * HS, gdqkv.f() + (NH + NKV) * HS, gdout.f(), gq, gk, gv,
                              gout.f(), glse.f(), B, T, NH, NKV, HS, QKV, QKV);
  char s[96];
  std::snprintf(s, sizeof s, " B%ld T%ld NH%ld NKV%ld HS%ld", (long)B, (long)T, (long)NH, (long)NKV, (long)HS);
  const double tol =
      std::strcmp(cuda::attention_kernel_name(HS), "tensor-core") == 0 ? TOL.attention_tc : TOL.attention;
  check(std::string("attention forward") + s, gout.get(), out, tol);
  check(std::string("attention lse") + s, glse.get(), lse, tol);
  check(std::string("attention backward dq|dk|dv") + s, gdqkv.get(), dqkv, tol);
}

void check_cached_attention(int64_t B, int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tmax) {
  const int64_t QKV = (NH + 2 * NKV) * HS, KV = NKV * HS;
  auto qkv = randn(B * Tq * QKV);
  auto kc = randn(B * Tmax * KV), vc = randn(B * Tmax * KV);
  std::vector<float> kc_cpu = kc, vc_cpu = vc, out(B * Tq * NH * HS), qkv_cpu = qkv, cos, sin;
  rope_tables(past + Tq, HS, cos, sin);
  std::vector<int32_t> pos(Tq);
  for (int64_t t = 0; t < Tq; ++t) pos[t] = (int32_t)(past + t);
  CPU.ops.rope_kv_cache_append(qkv_cpu.data(), kc_cpu.data(), vc_cpu.data(), cos.data(), sin.data(), pos.data(), B, Tq,
                               NH, NKV, HS, past, Tmax);
  CPU.ops.attention_cached_forward(out.data(), qkv_cpu.data(), kc_cpu.data(), vc_cpu.data(), B, Tq, NH, NKV, HS, QKV,
                                   past, Tmax);
  Dev gqkv(qkv), gk(kc), gv(vc), gout(out.size() * 4), gc(cos), gs(sin), gp(pos);
  gout.poison();
  GPU->ops.rope_kv_cache_append(gqkv.f(), gk.f(), gv.f(), gc.f(), gs.f(), gp.i(), B, Tq, NH, NKV, HS, past, Tmax);
  GPU->ops.attention_cached_forward(gout.f(), gqkv.f(), gk.f(), gv.f(), B, Tq, NH, NKV, HS, QKV, past, Tmax);
  char s[112];
  std::snprintf(s, sizeof s, " B%ld Tq%ld NH%ld NKV%ld HS%ld past%ld", (long)B, (long)Tq, (long)NH, (long)NKV, (long)HS,
                (long)past);
  check(std::string("rope + kv cache append") + s,
        rel_err(gqkv.get(), qkv_cpu) + rel_err(gk.get(), kc_cpu) + rel_err(gv.get(), vc_cpu), TOL.f32);
  check(std::string("cached attention") + s, gout.get(), out, TOL.attention);
}

void check_swiglu_elementwise() {
  const int64_t N = 77, F = 333, n = N * F;
  auto gu = randn(N * 2 * F), dout = randn(n), a = randn(n), b = randn(n);
  std::vector<float> out(n), dgu(N * 2 * F), sum(n), acc = a;
  CPU.ops.swiglu_forward(out.data(), gu.data(), N, F);
  CPU.ops.swiglu_backward(dgu.data(), dout.data(), gu.data(), N, F);
  CPU.ops.add_forward(sum.data(), a.data(), b.data(), n);
  CPU.ops.accumulate(acc.data(), b.data(), n);
  Dev ggu(gu), gd(dout), ga(a), gb(b), gout(n * 4), gdgu(N * 2 * F * 4), gsum(n * 4);
  gout.poison(), gdgu.poison(), gsum.poison();
  GPU->ops.swiglu_forward(gout.f(), ggu.f(), N, F);
  GPU->ops.swiglu_backward(gdgu.f(), gd.f(), ggu.f(), N, F);
  GPU->ops.add_forward(gsum.f(), ga.f(), gb.f(), n);
  GPU->ops.accumulate(ga.f(), gb.f(), n);
  check("swiglu forward", gout.get(), out, TOL.f32);
  check("swiglu backward (writes)", gdgu.get(), dgu, TOL.f32);
  check("add", gsum.get(), sum, TOL.f32);
  check("accumulate", ga.get(), acc, TOL.f32);
}

void check_losses() {
  const int64_t N = 37, V = 5003, C = 300;
  auto logits = randn(N * V, 2.f), teacher = randn(N * V, 2.f);
  auto targets = randint(N, V);
  targets[3] = targets[10] = -100;
  auto dl0 = randn(N * V, 0.01f);
  std::vector<float> losses(N), lse(N), dl = dl0, kl(N), dkl = dl0;
  CPU.ops.cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), N, V);
  CPU.ops.cross_entropy_backward(dl.data(), logits.data(), lse.data(), targets.data(), N, V, 1.f / N);
  CPU.ops.kl_forward(kl.data(), teacher.data(), logits.data(), N, V);
  CPU.ops.kl_backward(dkl.data(), teacher.data(), logits.data(), N, V, 0.5f);
  Dev gl(logits), gt(teacher), gtar(targets), gdl(dl0), gdkl(dl0), glosses(N * 4), glse(N * 4), gkl(N * 4);
  glosses.poison(), glse.poison(), gkl.poison();
  GPU->ops.cross_entropy_forward(glosses.f(), glse.f(), gl.f(), gtar.i(), N, V);
  GPU->ops.cross_entropy_backward(gdl.f(), gl.f(), glse.f(), gtar.i(), N, V, 1.f / N);
  GPU->ops.kl_forward(gkl.f(), gt.f(), gl.f(), N, V);
  GPU->ops.kl_backward(gdkl.f(), gt.f(), gl.f(), N, V, 0.5f);
  check("cross-entropy forward (ignores -100)", glosses.get(), losses, TOL.f32);
  check("cross-entropy lse", glse.get(), lse, TOL.f32);
  check("cross-entropy backward", gdl.get(), dl, TOL.f32);
  check("KL forward", gkl.get(), kl, TOL.f32);
  check("KL backward", gdkl.get(), dkl, TOL.f32);

  auto x = randn(N * C), y = randn(N * C), dx0 = randn(N * C);
  std::vector<float> cl(N), dx = dx0, dn = dx0;
  CPU.ops.cosine_forward(cl.data(), x.data(), y.data(), N, C);
  CPU.ops.cosine_backward(dx.data(), x.data(), y.data(), N, C, 0.25f);
  double nm = CPU.ops.nmse_forward(x.data(), y.data(), N * C);
  CPU.ops.nmse_backward(dn.data(), x.data(), y.data(), N * C, 2.f);
  Dev gx(x), gy(y), gdx(dx0), gdn(dx0), gcl(N * 4);
  gcl.poison();
  GPU->ops.cosine_forward(gcl.f(), gx.f(), gy.f(), N, C);
  GPU->ops.cosine_backward(gdx.f(), gx.f(), gy.f(), N, C, 0.25f);
  double gnm = GPU->ops.nmse_forward(gx.f(), gy.f(), N * C);
  GPU->ops.nmse_backward(gdn.f(), gx.f(), gy.f(), N * C, 2.f);
  check("cosine forward", gcl.get(), cl, TOL.f32);
  check("cosine backward", gdx.get(), dx, TOL.f32);
  check("nmse forward", std::fabs(gnm - nm) / std::fabs(nm), TOL.f32);
  check("nmse backward", gdn.get(), dn, TOL.f32);
}

void check_optimiser() {
  const int64_t n = 1000003;
  auto p = randn(n), g = randn(n), m = randn(n, 0.1f), v = randn(n, 0.01f, 0.02f);
  for (auto& x : v) x = std::fabs(x);
  double ss = CPU.ops.sum_squares(g.data(), n);
  std::vector<float> pc = p, mc = m, vc = v;
  CPU.ops.adamw_update(pc.data(), g.data(), mc.data(), vc.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.7f, 3);
  Dev gp(p), gg(g), gm(m), gv(v);
  double gss = GPU->ops.sum_squares(gg.f(), n);
  GPU->ops.adamw_update(gp.f(), gg.f(), gm.f(), gv.f(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.7f, 3);
  check("sum of squares (1M)", std::fabs(gss - ss) / ss, TOL.f32);
  check("adamw param", gp.get(), pc, TOL.f32);
  check("adamw m", gm.get(), mc, TOL.f32);
  check("adamw v", gv.get(), vc, TOL.f32);
}

// ---- block checks: the same Block code on both backends ----------------------------------------
const char* kind_name(AttnKind a) { return a == AttnKind::GQA ? "gqa" : a == AttnKind::Linear ? "linear" : "noop"; }
const char* kind_name(FfnKind f) { return f == FfnKind::SwiGLU ? "swiglu" : f == FfnKind::Linear ? "linear" : "noop"; }

void check_block(BlockConfig cfg, int64_t B, int64_t T) {
  Block cpu(CPU, cfg), gpu(*GPU, cfg);
  auto params = randn(cpu.num_params(), 0.05f);
  for (auto& pi : cpu.params())  // norms near 1
    if (pi.shape.size() == 1)
      for (size_t i = 0; i < pi.numel; ++i) params[pi.offset + i] = 1.f + 0.1f * params[pi.offset + i];
  std::memcpy(cpu.param_buffer()->ptr, params.data(), params.size() * 4);
  GPU->copy_to_device(gpu.param_buffer()->ptr, params.data(), params.size() * 4);
  const int64_t N = B * T, C = cfg.C, P = T + 8;
  std::vector<float> cos, sin;
  rope_tables(P, cfg.HS, cos, sin);
  auto x = randn(N * C), dout = randn(N * C);
  Dev gc(cos), gs(sin), gx(x), gd(dout), gout(N * C * 4), gdx(N * C * 4);
  BlockInputs ic{B, T, cos.data(), sin.data(), nullptr}, ig{B, T, gc.f(), gs.f(), nullptr};
  std::vector<float> out(N * C), dx(N * C);
  cpu.forward(out.data(), x.data(), ic, true);
  cpu.zero_grad();
  cpu.grad_buffer();
  cpu.backward(dx.data(), dout.data());
  gpu.grad_buffer();
  gpu.zero_grad();
  gpu.forward(gout.f(), gx.f(), ig, true);
  gpu.backward(gdx.f(), gd.f());
  char s[128];
  std::snprintf(s, sizeof s, "block %s+%s C%ld NH%ld NKV%ld F%ld B%ld T%ld", kind_name(cfg.attn), kind_name(cfg.ffn),
                (long)C, (long)cfg.NH, (long)cfg.NKV, (long)cfg.F, (long)B, (long)T);
  check(std::string(s) + " forward", gout.get(), out, TOL.block);
  check(std::string(s) + " backward dx", gdx.get(), dx, TOL.block);
  std::vector<float> grads(cpu.num_params()), ggrads(cpu.num_params());
  std::memcpy(grads.data(), cpu.grad_buffer()->ptr, grads.size() * 4);
  GPU->copy_to_host(ggrads.data(), gpu.grad_buffer()->ptr, ggrads.size() * 4);
  for (auto& pi : cpu.params()) {
    std::vector<float> a(ggrads.begin() + pi.offset, ggrads.begin() + pi.offset + pi.numel),
        b(grads.begin() + pi.offset, grads.begin() + pi.offset + pi.numel);
    check(std::string(s) + " d" + pi.name, a, b, TOL.block);
  }
  if (cfg.attn != AttnKind::GQA) return;
  // Inference over a KV cache: a prompt of T tokens, then 3 decode steps, on both backends.
  const int64_t Tmax = T + 4, KV = cfg.NKV * cfg.HS;
  std::vector<float> kc(B * Tmax * KV, 0.f), vc(B * Tmax * KV, 0.f), o1(N * C);
  Dev gkc(kc), gvc(vc);
  cpu.forward_cached(o1.data(), x.data(), ic, kc.data(), vc.data(), 0, Tmax);
  gpu.forward_cached(gout.f(), gx.f(), ig, gkc.f(), gvc.f(), 0, Tmax);
  check(std::string(s) + " cached prefill", gout.get(), o1, TOL.block);
  for (int step = 0; step < 3; ++step) {
    auto xs = randn(B * C);
    std::vector<int32_t> pos{(int32_t)(T + step)};
    Dev gxs(xs), gpos(pos), gos(B * C * 4);
    std::vector<float> os(B * C);
    BlockInputs sc{B, 1, cos.data(), sin.data(), pos.data()}, sg{B, 1, gc.f(), gs.f(), gpos.i()};
    cpu.forward_cached(os.data(), xs.data(), sc, kc.data(), vc.data(), T + step, Tmax);
    gpu.forward_cached(gos.f(), gxs.f(), sg, gkc.f(), gvc.f(), T + step, Tmax);
    check(std::string(s) + " decode step " + std::to_string(step + 1), gos.get(), os, TOL.block);
  }
}

// ---- the bf16 table: the same inputs (bf16) on both backends ---------------------------------
void check_bf16_ops() {
  const OpsBf16& c = CPU.ops_bf16;
  const OpsBf16& g = GPU->ops_bf16;
  {  // conversions, add, accumulate (odd length: vector body and scalar tail)
    const int64_t n = 1001;
    auto a32 = randn(n), b32 = randn(n);
    auto a = round16(a32), b = round16(b32);
    Dev ga32(a32);
    Dev16 ga(a), gb(b), gsum(n), gcast(n);
    Dev gback(n * 4);
    std::vector<bf16> sum(n), cast(n), acc = a;
    c.add_forward(sum.data(), a.data(), b.data(), n);
    c.to_bf16(cast.data(), a32.data(), n);
    c.accumulate(acc.data(), b.data(), n);
    g.add_forward(gsum.p(), ga.p(), gb.p(), n);
    g.to_bf16(gcast.p(), ga32.f(), n);
    g.to_f32(gback.f(), gcast.p(), n);
    g.accumulate(ga.p(), gb.p(), n);
    check("bf16 add", gsum.get(), widen16(sum), 0);
    check("bf16 accumulate", ga.get(), widen16(acc), 0);
    check("to_bf16 (round to nearest even)", gcast.get(), widen16(cast), 0);
    check("to_f32", gback.get(), widen16(cast), 0);
  }
  {  // RMSNorm
    const int64_t N = 37, C = 1000;
    auto x = round16(randn(N * C)), w = round16(randn(C, 0.1f, 1.f)), d = round16(randn(N * C)), dx0 = round16(randn(N * C));
    std::vector<bf16> out(N * C), dx = dx0;
    std::vector<float> rstd(N), dw(C, 0.f);
    c.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
    c.rmsnorm_backward(dx.data(), dw.data(), d.data(), x.data(), w.data(), rstd.data(), N, C);
    Dev16 gx(x), gw(w), gd(d), gdx(dx0), gout(N * C);
    Dev grstd(N * 4), gdw(std::vector<float>(C, 0.f));
    g.rmsnorm_forward(gout.p(), grstd.f(), gx.p(), gw.p(), N, C, 1e-5f);
    g.rmsnorm_backward(gdx.p(), gdw.f(), gd.p(), gx.p(), gw.p(), grstd.f(), N, C);
    check("bf16 rmsnorm forward", gout.get(), widen16(out), TOL.bf16);
    check("bf16 rmsnorm rstd", grstd.get(), rstd, TOL.f32);
    check("bf16 rmsnorm backward dinp (accumulates)", gdx.get(), widen16(dx), TOL.bf16);
    check("bf16 rmsnorm backward dweight (fp32)", gdw.get(), dw, TOL.bf16_f32out);
    auto r = round16(randn(N * C));
    std::vector<bf16> sum(N * C), out2(N * C);
    std::vector<float> rstd2(N);
    c.add_rmsnorm_forward(sum.data(), out2.data(), rstd2.data(), x.data(), r.data(), w.data(), N, C, 1e-5f);
    Dev16 gr(r), gsum(N * C), gout2(N * C);
    Dev grstd2(N * 4);
    g.add_rmsnorm_forward(gsum.p(), gout2.p(), grstd2.f(), gx.p(), gr.p(), gw.p(), N, C, 1e-5f);
    check("bf16 add+rmsnorm sum", gsum.get(), widen16(sum), 0);
    check("bf16 add+rmsnorm forward", gout2.get(), widen16(out2), TOL.bf16);
    check("bf16 add+rmsnorm rstd", grstd2.get(), rstd2, TOL.f32);
  }
  // The inference fusions (norm + product, product + residual, norm + gate|up + SwiGLU) on 8B
  // decode shapes: one row on the one-row dot kernel (qkv) and the dot kernel (gate|up), the down
  // projection adding itself in place, 16 rows, and 40 rows, which compose. The fused kernels keep
  // the normalised rows and gate|up in fp32 where the CPU rounds them: a GEMM's tolerance.
  struct FS { int64_t N, C, OC, F; bool norm; int res; } fused[] = {
      {1, 4096, 6144, 0, true, 0}, {1, 4096, 0, 14336, true, 0}, {1, 14336, 4096, 0, false, 2},
      {16, 4096, 1024, 0, true, 1}, {16, 4096, 0, 1000, true, 0}, {40, 1024, 512, 0, true, 1}, {40, 1024, 0, 300, true, 0}};
  for (const FS& t : fused) {
    const bool glu = t.F > 0;
    const int64_t n_out = glu ? t.F : t.OC, rows = glu ? 2 * t.F : t.OC;
    auto x = round16(randn(t.N * t.C)), w = round16(randn(t.C, 0.1f, 1.f)), res = round16(randn(t.N * n_out));
    auto W = round16(randn(rows * t.C, 1.f / std::sqrt((float)t.C)));
    std::vector<bf16> out = t.res == 2 ? res : std::vector<bf16>(t.N * n_out), ln(t.N * t.C), gu(t.N * std::max<int64_t>(rows, 1));
    std::vector<float> rstd(t.N);
    Dev16 gx(x), gw(w), gW(W), gres(res), gout(t.res == 2 ? res : std::vector<bf16>(t.N * n_out)), gln(t.N * t.C);
    Dev16 ggu(t.N * std::max<int64_t>(rows, 1));
    Dev grstd(t.N * 4);
    const bf16* nw = t.norm ? w.data() : nullptr;
    if (glu) {
      c.norm_swiglu_forward(out.data(), ln.data(), rstd.data(), gu.data(), x.data(), nw, W.data(), t.N, t.C, t.F, 1e-5f);
      g.norm_swiglu_forward(gout.p(), gln.p(), grstd.f(), ggu.p(), gx.p(), t.norm ? gw.p() : nullptr, gW.p(), t.N, t.C, t.F, 1e-5f);
    } else {
      const bf16* r = t.res == 1 ? res.data() : t.res == 2 ? out.data() : nullptr;
      const bf16* gr = t.res == 1 ? gres.p() : t.res == 2 ? gout.p() : nullptr;
      c.norm_linear_forward(out.data(), ln.data(), rstd.data(), x.data(), nw, W.data(), r, t.N, t.C, t.OC, 1e-5f);
      g.norm_linear_forward(gout.p(), gln.p(), grstd.f(), gx.p(), t.norm ? gw.p() : nullptr, gW.p(), gr, t.N, t.C, t.OC, 1e-5f);
    }
    char name[128];
    std::snprintf(name, sizeof name, "bf16 %s N%ld C%ld %s%ld%s%s", glu ? "norm+swiglu" : "norm+linear", (long)t.N,
                  (long)t.C, glu ? "F" : "OC", (long)(glu ? t.F : t.OC), t.norm ? " norm" : "",
                  t.res == 1 ? " res" : t.res == 2 ? " res in place" : "");
    check(name, gout.get(), widen16(out), TOL.gemm_bf16);
  }
  // norm + q|k|v product + RoPE + KV-cache append on 8B heads (32 query, 8 KV, head size 128): one
  // row (a batch-1 decode step: the one-row dot kernel), 2 rows, 16 rows (a 4 x 4 prefill), and
  // 40 rows, which compose; the caches' other rows must keep what they held.
  struct QR { int64_t B, T, past; } qkv_rope[] = {{1, 1, 700}, {2, 1, 33}, {4, 4, 9}, {2, 20, 5}};
  for (const QR& t : qkv_rope) {
    const int64_t C = 4096, NH = 32, NKV = 8, HS = 128, QKV = (NH + 2 * NKV) * HS, N = t.B * t.T, KW = NKV * HS;
    const int64_t Tmax = t.past + t.T + 3;
    std::vector<float> cos, sin;
    rope_tables(Tmax, HS, cos, sin);
    std::vector<int32_t> pos(t.T);
    for (int64_t i = 0; i < t.T; ++i) pos[i] = (int32_t)(t.past + i);
    auto x = round16(randn(N * C)), w = round16(randn(C, 0.1f, 1.f)), W = round16(randn(QKV * C, 1.f / std::sqrt((float)C)));
    auto k0 = round16(randn(t.B * Tmax * KW)), v0 = round16(randn(t.B * Tmax * KW));
    std::vector<bf16> q(N * QKV), ln(N * C), kc = k0, vc = v0;
    std::vector<float> rstd(N);
    c.norm_qkv_rope_cache_forward(q.data(), ln.data(), rstd.data(), kc.data(), vc.data(), x.data(), w.data(), W.data(),
                                  cos.data(), sin.data(), pos.data(), t.B, t.T, C, NH, NKV, HS, t.past, Tmax, 1e-5f);
    Dev16 gx(x), gw(w), gW(W), gq(N * QKV), gln(N * C), gk(k0), gv(v0);
    Dev gcos(cos), gsin(sin), gpos(pos), grstd(N * 4);
    g.norm_qkv_rope_cache_forward(gq.p(), gln.p(), grstd.f(), gk.p(), gv.p(), gx.p(), gw.p(), gW.p(), gcos.f(), gsin.f(),
                                  gpos.i(), t.B, t.T, C, NH, NKV, HS, t.past, Tmax, 1e-5f);
    char name[128];
    std::snprintf(name, sizeof name, "bf16 norm+qkv+rope+append B%ld T%ld past%ld", (long)t.B, (long)t.T, (long)t.past);
    check(std::string(name) + " qkv", gq.get(), widen16(q), TOL.gemm_bf16);
    check(std::string(name) + " k|v caches", concat(gk.get(), gv.get()), concat(widen16(kc), widen16(vc)), TOL.gemm_bf16);
  }
  // GEMMs: the tensor-core / cuBLAS path and the few-rows path, bf16 and fp32 outputs. Without
  // cuBLAS (or with PUZZLE_CUDA_GEMM=own) the aligned ones (row strides a multiple of 8) run the
  // mma.sync kernel: the last three reach its 256-wide tiles on 132 SMs, with ragged N or K
  struct S { bool ta, tb; int64_t M, N, K, pad; float alpha, beta; } shapes[] = {
      {false, true, 257, 193, 300, 3, 1.f, 0.f}, {true, false, 128, 256, 96, 0, 1.f, 1.f},
      {false, false, 130, 70, 64, 1, 0.5f, 1.f}, {true, true, 96, 160, 40, 0, 1.f, 0.f},
      {false, true, 1, 515, 260, 1, 1.f, 0.f},   {false, true, 16, 1024, 512, 0, 1.f, 1.f},
      {false, false, 300, 520, 72, 8, 1.f, 1.f}, {false, true, 1536, 2824, 200, 0, 1.f, 0.f},
      {true, false, 2048, 4096, 264, 0, 0.5f, 1.f}, {false, false, 2048, 2048, 128, 0, 1.f, 0.f}};
  for (const S& t : shapes) {
    const int64_t lda = (t.ta ? t.M : t.K) + t.pad, ldb = (t.tb ? t.K : t.N) + t.pad, ldc = t.N + t.pad;
    auto A = round16(randn((t.ta ? t.K : t.M) * lda)), B = round16(randn((t.tb ? t.N : t.K) * ldb));
    auto C0 = randn(t.M * ldc);
    auto C16 = round16(C0);
    std::vector<bf16> cc = C16;
    std::vector<float> cf = C0;
    c.gemm(t.ta, t.tb, t.M, t.N, t.K, t.alpha, A.data(), lda, B.data(), ldb, t.beta, cc.data(), ldc);
    c.gemm_f32out(t.ta, t.tb, t.M, t.N, t.K, t.alpha, A.data(), lda, B.data(), ldb, t.beta, cf.data(), ldc);
    Dev16 gA(A), gB(B), gC(C16);
    Dev gCf(C0);
    g.gemm(t.ta, t.tb, t.M, t.N, t.K, t.alpha, gA.p(), lda, gB.p(), ldb, t.beta, gC.p(), ldc);
    g.gemm_f32out(t.ta, t.tb, t.M, t.N, t.K, t.alpha, gA.p(), lda, gB.p(), ldb, t.beta, gCf.f(), ldc);
    char s[96];
    std::snprintf(s, sizeof s, "%c%c M%ld N%ld K%ld ld+%ld b%.0f", t.ta ? 'T' : 'N', t.tb ? 'T' : 'N', (long)t.M,
                  (long)t.N, (long)t.K, (long)t.pad, t.beta);
    check(std::string("bf16 gemm ") + s, gC.get(), widen16(cc), TOL.bf16);
    check(std::string("bf16 gemm -> fp32 ") + s, gCf.get(), cf, TOL.bf16_f32out);
  }
  {  // RoPE in place on a fused qkv row, SwiGLU, KV append, attention (forward, backward, cached)
    const int64_t B = 2, T = 70, NH = 8, NKV = 2, HS = 64, QKV = (NH + 2 * NKV) * HS, N = B * T, P = T + 4;
    std::vector<float> cos, sin;
    rope_tables(P, HS, cos, sin);
    Dev gcos(cos), gsin(sin);
    auto qkv = round16(randn(N * QKV));
    std::vector<bf16> r = qkv;
    c.rope_forward(r.data(), r.data(), cos.data(), sin.data(), nullptr, B, T, NH + NKV, HS, QKV);
    Dev16 gq(qkv);
    g.rope_forward(gq.p(), gq.p(), gcos.f(), gsin.f(), nullptr, B, T, NH + NKV, HS, QKV);
    check("bf16 rope forward (in place, fused qkv)", gq.get(), widen16(r), TOL.bf16);
    std::vector<bf16> rb = r;
    c.rope_backward(rb.data(), rb.data(), cos.data(), sin.data(), nullptr, B, T, NH, HS, QKV);
    Dev16 gqb(r);
    g.rope_backward(gqb.p(), gqb.p(), gcos.f(), gsin.f(), nullptr, B, T, NH, HS, QKV);
    check("bf16 rope backward", gqb.get(), widen16(rb), TOL.bf16);

    const bf16 *q = r.data(), *k = q + NH * HS, *v = k + NKV * HS;
    std::vector<bf16> out(N * NH * HS);
    std::vector<float> lse(B * NH * T);
    c.attention_forward(out.data(), lse.data(), q, k, v, B, T, NH, NKV, HS, QKV, QKV);
    Dev16 gr(r), gout(N * NH * HS);
    Dev glse(B * NH * T * 4);
    g.attention_forward(gout.p(), glse.f(), gr.p(), gr.p() + NH * HS, gr.p() + (NH + NKV) * HS, B, T, NH, NKV, HS, QKV, QKV);
    const double tol_attn =
        std::strcmp(cuda::attention_kernel_name(HS), "tensor-core") == 0 ? TOL.attention_tc : TOL.attention;
    check("bf16 attention forward", gout.get(), widen16(out), std::max(tol_attn, TOL.bf16));
    check("bf16 attention lse", glse.get(), lse, tol_attn);
    // the mma.sync kernels (attention_mma.cu), called directly, on this shape and on HS 128 with
    // rows that are not 16-byte aligned (element copies instead of cp.async), where they are
    // selected (the default; not under PUZZLE_CUDA_ATTN=wmma or simt).
    for (int64_t hs : {64, 128}) {
      if (!cuda::attention_mma_selected()) break;
      const int64_t pad = hs == 64 ? 0 : 3, W = (NH + 2 * NKV) * hs + pad, TT = hs == 64 ? T : 300;
      auto x = round16(randn(B * TT * W));
      std::vector<bf16> mo(B * TT * NH * hs);
      std::vector<float> ml(B * NH * TT);
      c.attention_forward(mo.data(), ml.data(), x.data(), x.data() + NH * hs, x.data() + (NH + NKV) * hs, B, TT, NH, NKV,
                          hs, W, W);
      Dev16 gx(x), gmo(B * TT * NH * hs);
      Dev gml(B * NH * TT * 4);
      const bool took = cuda::attention_forward_mma((bf16*)gmo.p(), gml.f(), (bf16*)gx.p(), (bf16*)gx.p() + NH * hs,
                                                    (bf16*)gx.p() + (NH + NKV) * hs, B, TT, NH, NKV, hs, W, W);
      const std::string sh = " HS" + std::to_string(hs) + " T" + std::to_string(TT) + (pad ? " unaligned" : "");
      check("bf16 attention forward [mma]" + sh, took ? gmo.get() : std::vector<float>(), widen16(mo),
            std::max(TOL.attention_tc, TOL.bf16));
      check("bf16 attention lse [mma]" + sh, took ? gml.get() : std::vector<float>(), ml, TOL.attention_tc);
      // its backward, on the CPU's out and lse, into a pre-filled fused gradient: dK, dV added in
      // place on the device, dQ summed in fp32 there and added to its slice here (as
      // attention_bf16.cu does on the device)
      auto mdo = round16(randn(B * TT * NH * hs)), mg0 = round16(randn(B * TT * W, 0.1f));
      std::vector<bf16> mg = mg0;
      c.attention_backward(mg.data(), mg.data() + NH * hs, mg.data() + (NH + NKV) * hs, mdo.data(), x.data(),
                           x.data() + NH * hs, x.data() + (NH + NKV) * hs, mo.data(), ml.data(), B, TT, NH, NKV, hs, W, W);
      Dev16 gmg(mg0), gmdo(mdo), gcmo(mo);
      Dev gcml(ml), gD(B * NH * TT * 4), gdq32(B * TT * NH * hs * 4);
      cudaMemsetAsync(gdq32.p, 0, gdq32.bytes, cuda::stream());
      const bool btook = cuda::attention_backward_mma(gdq32.f(), gmg.p() + NH * hs, gmg.p() + (NH + NKV) * hs, gmdo.p(),
                                                      gx.p(), gx.p() + NH * hs, gx.p() + (NH + NKV) * hs, gcmo.p(),
                                                      gcml.f(), gD.f(), B, TT, NH, NKV, hs, W, W);
      std::vector<float> got = gmg.get();
      const std::vector<float> dq32 = gdq32.get();
      for (int64_t r = 0; r < B * TT; ++r)
        for (int64_t cc = 0; cc < NH * hs; ++cc)
          got[r * W + cc] = bf16_to_f32(f32_to_bf16(got[r * W + cc] + dq32[r * NH * hs + cc]));
      check("bf16 attention backward dq|dk|dv [mma]" + sh, btook ? got : std::vector<float>(), widen16(mg),
            std::max(TOL.attention_tc, TOL.bf16));
    }
    auto dout = round16(randn(N * NH * HS)), d0 = round16(randn(N * QKV, 0.1f));
    std::vector<bf16> dq = d0;
    c.attention_backward(dq.data(), dq.data() + NH * HS, dq.data() + (NH + NKV) * HS, dout.data(), q, k, v, out.data(),
                         lse.data(), B, T, NH, NKV, HS, QKV, QKV);
    Dev16 gdq(d0), gdout(dout), gcout(out);
    Dev gclse(lse);
    g.attention_backward(gdq.p(), gdq.p() + NH * HS, gdq.p() + (NH + NKV) * HS, gdout.p(), gr.p(), gr.p() + NH * HS,
                         gr.p() + (NH + NKV) * HS, gcout.p(), gclse.f(), B, T, NH, NKV, HS, QKV, QKV);
    check("bf16 attention backward dq|dk|dv (accumulates)", gdq.get(), widen16(dq), std::max(tol_attn, TOL.bf16));

    const int64_t Tmax = T + 6, KW = NKV * HS;
    auto kc0 = round16(randn(B * Tmax * KW)), vc0 = round16(randn(B * Tmax * KW));
    std::vector<bf16> kc = kc0, vc = vc0, co(B * NH * HS);
    auto q10 = round16(randn(B * QKV));
    std::vector<bf16> q1 = q10;
    std::vector<float> rc, rs;
    rope_tables(T + 1, HS, rc, rs);
    const std::vector<int32_t> p1{(int32_t)T};  // the decode step's position
    c.rope_kv_cache_append(q1.data(), kc.data(), vc.data(), rc.data(), rs.data(), p1.data(), B, 1, NH, NKV, HS, T, Tmax);
    c.attention_cached_forward(co.data(), q1.data(), kc.data(), vc.data(), B, 1, NH, NKV, HS, QKV, T, Tmax);
    Dev16 gkc(kc0), gvc(vc0), gq1(q10), gco(B * NH * HS);
    Dev grc(rc), grs(rs), gp1(p1);
    g.rope_kv_cache_append(gq1.p(), gkc.p(), gvc.p(), grc.f(), grs.f(), gp1.i(), B, 1, NH, NKV, HS, T, Tmax);
    g.attention_cached_forward(gco.p(), gq1.p(), gkc.p(), gvc.p(), B, 1, NH, NKV, HS, QKV, T, Tmax);
    // the rotation may differ by a bf16 rounding (fused multiply-adds); the values are copied exactly
    check("bf16 rope + kv cache append (q, k rotated)", rel_err(gq1.get(), widen16(q1)) + rel_err(gkc.get(), widen16(kc)),
          TOL.bf16);
    check("bf16 rope + kv cache append (v copied)", gvc.get(), widen16(vc), 0);
    check("bf16 cached attention (decode, bf16 cache read directly)", gco.get(), widen16(co), TOL.bf16);
    {  // a cached prefill of 40 queries after 30 cached rows: the tensor-core forward over the cache
      const int64_t Tq = 40, past = 30, Tm = 80;
      auto pk = round16(randn(B * Tm * KW)), pvv = round16(randn(B * Tm * KW)), pq = round16(randn(B * Tq * QKV));
      std::vector<bf16> po(B * Tq * NH * HS);
      c.attention_cached_forward(po.data(), pq.data(), pk.data(), pvv.data(), B, Tq, NH, NKV, HS, QKV, past, Tm);
      Dev16 gpk(pk), gpv(pvv), gpq(pq), gpo(B * Tq * NH * HS);
      g.attention_cached_forward(gpo.p(), gpq.p(), gpk.p(), gpv.p(), B, Tq, NH, NKV, HS, QKV, past, Tm);
      check("bf16 cached attention (prefill of 40 after 30)", gpo.get(), widen16(po), std::max(tol_attn, TOL.bf16));
    }

    const int64_t F = 300;
    auto gu = round16(randn(N * 2 * F)), dh = round16(randn(N * F));
    std::vector<bf16> h(N * F), dgu(N * 2 * F);
    c.swiglu_forward(h.data(), gu.data(), N, F);
    c.swiglu_backward(dgu.data(), dh.data(), gu.data(), N, F);
    Dev16 ggu(gu), gdh(dh), gh(N * F), gdgu(N * 2 * F);
    g.swiglu_forward(gh.p(), ggu.p(), N, F);
    g.swiglu_backward(gdgu.p(), gdh.p(), ggu.p(), N, F);
    check("bf16 swiglu forward", gh.get(), widen16(h), TOL.bf16);
    check("bf16 swiglu backward", gdgu.get(), widen16(dgu), TOL.bf16);
  }
}

// A bf16 block on the GPU against a bf16 block on the CPU (same fp32 master weights, same bf16
// input): forward, input and weight gradients, cached prefill and decode steps.
void check_block_bf16(BlockConfig cfg, int64_t B, int64_t T) {
  Block cpu(CPU, cfg, DType::BF16), gpu(*GPU, cfg, DType::BF16);
  auto params = randn(cpu.num_params(), 0.05f);
  for (auto& pi : cpu.params())
    if (pi.shape.size() == 1)
      for (size_t i = 0; i < pi.numel; ++i) params[pi.offset + i] = 1.f + 0.1f * params[pi.offset + i];
  std::memcpy(cpu.param_buffer()->ptr, params.data(), params.size() * 4);
  GPU->copy_to_device(gpu.param_buffer()->ptr, params.data(), params.size() * 4);
  cpu.weights_changed(), gpu.weights_changed();
  const int64_t N = B * T, C = cfg.C, P = T + 8;
  std::vector<float> cos, sin;
  rope_tables(P, cfg.HS, cos, sin);
  auto x = round16(randn(N * C)), dout = round16(randn(N * C));
  Dev gc(cos), gs(sin);
  Dev16 gx(x), gd(dout), gout(N * C), gdx(N * C);
  BlockInputs ic{B, T, cos.data(), sin.data(), nullptr}, ig{B, T, gc.f(), gs.f(), nullptr};
  std::vector<bf16> out(N * C), dx(N * C);
  cpu.grad_buffer(), cpu.zero_grad();
  cpu.forward(out.data(), x.data(), ic, true);
  cpu.backward(dx.data(), dout.data());
  gpu.grad_buffer(), gpu.zero_grad();
  gpu.forward(gout.p(), gx.p(), ig, true);
  gpu.backward(gdx.p(), gd.p());
  char s[128];
  std::snprintf(s, sizeof s, "bf16 block %s+%s C%ld NH%ld NKV%ld F%ld B%ld T%ld", kind_name(cfg.attn),
                kind_name(cfg.ffn), (long)C, (long)cfg.NH, (long)cfg.NKV, (long)cfg.F, (long)B, (long)T);
  check(std::string(s) + " forward", gout.get(), widen16(out), TOL.block);
  check(std::string(s) + " backward dx", gdx.get(), widen16(dx), TOL.block);
  std::vector<float> grads(cpu.num_params()), ggrads(cpu.num_params());
  std::memcpy(grads.data(), cpu.grad_buffer()->ptr, grads.size() * 4);
  GPU->copy_to_host(ggrads.data(), gpu.grad_buffer()->ptr, ggrads.size() * 4);
  for (auto& pi : cpu.params()) {
    std::vector<float> a(ggrads.begin() + pi.offset, ggrads.begin() + pi.offset + pi.numel),
        b(grads.begin() + pi.offset, grads.begin() + pi.offset + pi.numel);
    check(std::string(s) + " d" + pi.name + " (fp32)", a, b, TOL.block);
  }
  if (cfg.attn != AttnKind::GQA) return;
  const int64_t Tmax = T + 4, KV = cfg.NKV * cfg.HS;
  std::vector<bf16> kc(B * Tmax * KV, bf16{0}), vc(B * Tmax * KV, bf16{0}), o1(N * C);
  Dev16 gkc(kc), gvc(vc);
  cpu.forward_cached(o1.data(), x.data(), ic, kc.data(), vc.data(), 0, Tmax);
  gpu.forward_cached(gout.p(), gx.p(), ig, gkc.p(), gvc.p(), 0, Tmax);
  check(std::string(s) + " cached prefill", gout.get(), widen16(o1), TOL.block);
  for (int step = 0; step < 2; ++step) {
    auto xs = round16(randn(B * C));
    std::vector<int32_t> pos{(int32_t)(T + step)};
    Dev gpos(pos);
    Dev16 gxs(xs), gos(B * C);
    std::vector<bf16> os(B * C);
    BlockInputs sc{B, 1, cos.data(), sin.data(), pos.data()}, sg{B, 1, gc.f(), gs.f(), gpos.i()};
    cpu.forward_cached(os.data(), xs.data(), sc, kc.data(), vc.data(), T + step, Tmax);
    gpu.forward_cached(gos.p(), gxs.p(), sg, gkc.p(), gvc.p(), T + step, Tmax);
    check(std::string(s) + " decode step " + std::to_string(step + 1), gos.get(), widen16(os), TOL.block);
  }
}

void run_checks(bool quick) {
  BlockConfig c;
  if (!g_f32) goto bf16_part;
  std::printf("\n== CUDA against CPU (relative L2 error) ==\n");
  check_embedding();
  check_rmsnorm(67, 1000);
  check_rmsnorm(5, 4096);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      check_gemm(ta, tb, 128, 128, 128, 0, 1.f, 0.f);
      check_gemm(ta, tb, 257, 193, 300, 3, 0.5f, 1.f);
      check_gemm(ta, tb, 1, 515, 260, 1, 1.f, 0.f);
      check_gemm(ta, tb, 7, 1000, 129, 0, 1.f, 1.f);
    }
  check_gemm(false, true, 16, 4096, 1024, 0, 1.f, 0.f);   // decode-sized, the small-M path
  check_gemm(false, true, 64, 2048, 1024, 0, 1.f, 1.f);   // batch-64 decode
  check_gemm(false, false, 1024, 1024, 1024, 0, 1.f, 0.f);
  check_matmul(100, 256, 384, true);
  check_matmul(3, 512, 1000, false);
  check_rope();
  check_attention(2, 77, 8, 2, 32);
  check_attention(1, 300, 4, 4, 64);
  check_attention(1, 130, 4, 1, 128);
  check_attention(2, 65, 6, 3, 48);
  check_attention(1, 1, 2, 1, 16);
  if (!quick) check_attention(1, 1030, 8, 2, 128);
  check_cached_attention(2, 1, 8, 2, 32, 100, 128);
  check_cached_attention(1, 1, 32, 8, 128, 5000, 8192);
  check_cached_attention(3, 17, 4, 2, 64, 0, 40);
  check_cached_attention(64, 1, 8, 1, 128, 511, 600);
  check_swiglu_elementwise();
  check_losses();
  check_optimiser();
  c.C = 256, c.NH = 8, c.HS = 32, c.NKV = 2, c.F = 704;
  check_block(c, 2, 40);
  c.ffn = FfnKind::Linear;
  check_block(c, 2, 16);
  c.NKV = 1, c.ffn = FfnKind::NoOp;
  check_block(c, 1, 70);
  c.attn = AttnKind::Linear, c.ffn = FfnKind::Linear;
  check_block(c, 2, 16);
  c.attn = AttnKind::NoOp, c.ffn = FfnKind::SwiGLU, c.F = 500;
  check_block(c, 2, 16);
  c = BlockConfig{};
  c.C = 1024, c.NH = 8, c.HS = 128, c.NKV = 8, c.F = 2816;
  check_block(c, 1, 128);

bf16_part:
  if (!g_bf16) return;
  std::printf("\n== CUDA bf16 against CPU bf16 ==\n");
  check_bf16_ops();
  c = BlockConfig{};
  c.C = 256, c.NH = 8, c.HS = 32, c.NKV = 2, c.F = 704;
  check_block_bf16(c, 2, 40);
  // a GQA layer's cached forward fuses differently per FFN kind: the other two
  c.ffn = FfnKind::Linear;
  check_block_bf16(c, 2, 16);
  c.ffn = FfnKind::NoOp;
  check_block_bf16(c, 3, 10);
  c.attn = AttnKind::Linear, c.ffn = FfnKind::Linear;
  check_block_bf16(c, 2, 16);
  c = BlockConfig{};
  c.C = 1024, c.NH = 8, c.HS = 128, c.NKV = 8, c.F = 2816;
  check_block_bf16(c, 1, 128);
}

// ---- benchmarks --------------------------------------------------------------------------------
struct Stat {
  double median, lo, hi;  // ms: median and the 10th/90th percentiles
};
Stat time_ms(const std::function<void()>& fn, int warmup, int repeats, const std::function<void()>& between = {}) {
  cudaStream_t s = cuda::stream();
  cudaEvent_t a, b;
  cudaEventCreate(&a), cudaEventCreate(&b);
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    if (between) between();
    cudaEventRecord(a, s);
    fn();
    cudaEventRecord(b, s);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  cudaEventDestroy(a), cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  auto q = [&](double f) { return t[std::min(t.size() - 1, (size_t)(f * (t.size() - 1) + 0.5))]; };
  return {q(0.5), q(0.1), q(0.9)};
}

FILE* json = nullptr;
bool first_json = true;
void emit(const char* group, const std::string& name0, const Stat& st, const std::string& extra_json) {
  const std::string name = name0 + g_tag;
  std::printf("  %-46s %9.4f ms  [%0.4f..%0.4f]  %s\n", name.c_str(), st.median, st.lo, st.hi, extra_json.c_str());
  std::fflush(stdout);
  if (!json) return;
  std::fprintf(json, "%s\n  {\"group\": \"%s\", \"name\": \"%s\", \"median_ms\": %.6f, \"p10_ms\": %.6f, \"p90_ms\": %.6f%s%s}",
               first_json ? "" : ",", group, name.c_str(), st.median, st.lo, st.hi, extra_json.empty() ? "" : ", ",
               extra_json.c_str());
  first_json = false;
}
std::string kv(const char* k, double v) {
  char b[64];
  std::snprintf(b, sizeof b, "\"%s\": %.4f", k, v);
  return b;
}

// --kernels: `run` repeated `iters` times under the CUPTI trace, printed per step beside the
// step's time by events (the gap is the GPU idle between kernels), kept for the JSON.
struct Breakdown {
  std::string workload;
  int iters;
  double step_ms;
  std::vector<tools::KernelTime> rows;
};
std::vector<Breakdown> g_breakdowns;
// `setup` runs first, inside the trace (for work that must follow its start, as a graph's
// instantiation does for its kernels to be recorded node by node).
void trace_breakdown(const std::string& workload, int iters, double step_ms, const std::function<void()>& run,
                     const std::function<void()>& setup = {}) {
  if (!g_kernels) return;
  std::string why;
  if (!tools::kernel_trace_start(&why)) {
    std::printf("  kernel breakdown of %s skipped: %s\n", workload.c_str(), why.c_str());
    return;
  }
  if (setup) setup();
  for (int i = 0; i < iters; ++i) run();
  Breakdown b{workload, iters, step_ms, tools::kernel_trace_stop()};
  double busy = 0;
  for (auto& r : b.rows) busy += r.total_ms / iters;
  std::printf("\n  kernels of %s, per step (%d traced; %.4f ms a step by events, %.4f ms of it in kernels and copies):\n",
              workload.c_str(), iters, step_ms, busy);
  std::printf("  %9s %7s %6s  %s\n", "ms", "share", "calls", "kernel");
  for (size_t i = 0; i < b.rows.size() && i < 25; ++i)
    std::printf("  %9.4f %6.1f%% %6.1f  %s\n", b.rows[i].total_ms / iters, 100.0 * b.rows[i].total_ms / iters / step_ms,
                (double)b.rows[i].calls / iters, b.rows[i].name.c_str());
  std::fflush(stdout);
  g_breakdowns.push_back(std::move(b));
}
std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if ((unsigned char)c >= 0x20) o += c;
  }
  return o;
}

// A buffer the size of L2 several times over, written between repeats to flush the cache.
struct L2Flush {
  Dev buf;
  explicit L2Flush(size_t bytes) : buf(bytes) {}
  void operator()() { cudaMemsetAsync(buf.p, 0, buf.bytes, cuda::stream()); }
};

// One block config, forward+backward (training) and decode steps captured in CUDA graphs, with
// activations in T (float, or bf16 for mixed precision: then weights and KV cache count 2 bytes
// in the bandwidth floor).
struct BlockShape {
  const char* name;
  int64_t C, NH, NKV, HS, F;
};
template <class T>
void bench_block(const BlockShape& bc, bool quick, int reps, double bw, double peak, const std::function<void()>& flush) {
  constexpr bool half = std::is_same_v<T, bf16>;
  const char* tag = half ? " [bf16]" : "";
  BlockConfig cfg;
  cfg.C = bc.C, cfg.NH = bc.NH, cfg.NKV = bc.NKV, cfg.HS = bc.HS, cfg.F = bc.F;
  Block blk(*GPU, cfg, half ? DType::BF16 : DType::F32);
  {
    auto h = randn(1 << 22, 0.02f);
    size_t n = blk.num_params();
    for (size_t off = 0; off < n; off += h.size())
      GPU->copy_to_device(blk.param_buffer()->f32(off), h.data(), std::min(h.size(), n - off) * 4);
    blk.weights_changed();
  }
  const double param_bytes = blk.num_params() * (double)sizeof(T);  // what a forward reads
  const int64_t Tmax = 8192 + 8;
  std::vector<float> cos, sin;
  rope_tables(Tmax, cfg.HS, cos, sin);
  Dev gc(cos), gs(sin);
  auto fill = [&](Dev& d, size_t n) {  // n random values of T
    auto h = randn(n);
    if constexpr (half) {
      auto h16 = round16(h);
      GPU->copy_to_device(d.p, h16.data(), n * 2);
    } else {
      GPU->copy_to_device(d.p, h.data(), n * 4);
    }
  };
  // Training: one sequence, forward + backward.
  if (!g_only_decode && (!quick || bc.C == 4096)) {
    const int64_t T_ = bc.C == 4096 ? 4096 : 2048;
    const size_t n = (size_t)T_ * cfg.C;
    Dev x(n * sizeof(T)), y(n * sizeof(T)), dx(n * sizeof(T));
    fill(x, n), fill(dx, n);
    BlockInputs in{1, T_, gc.f(), gs.f(), nullptr};
    blk.grad_buffer();
    Stat st = time_ms([&] {
      blk.forward((T*)y.p, (const T*)x.p, in, true);
      blk.backward((T*)dx.p, (const T*)y.p);
    }, 1, quick ? 3 : 8);
    const double flops = 6.0 * T_ * (blk.num_params()) + 3.0 * 4.0 * T_ * T_ * cfg.HS * cfg.NH / 2;
    emit("block", std::string(bc.name) + " block fwd+bwd T" + std::to_string(T_) + tag, st,
         kv("tok_per_s", T_ / (st.median * 1e-3)) + ", " + kv("TFLOPs", flops / (st.median * 1e-3) / 1e12));
    trace_breakdown(std::string(bc.name) + " block fwd+bwd T" + std::to_string(T_) + tag, 3, st.median, [&] {
      blk.forward((T*)y.p, (const T*)x.p, in, true);
      blk.backward((T*)dx.p, (const T*)y.p);
    });
  }
  // Decode: one step per sequence at cache length `past`, as a CUDA graph.
  for (int64_t B : {1, 64}) {
    const int64_t past = B == 1 ? 8192 : 1024, KV = cfg.NKV * cfg.HS;
    const int64_t Tm = past + 1;
    Dev kc((size_t)B * Tm * KV * sizeof(T)), vc((size_t)B * Tm * KV * sizeof(T)), x((size_t)B * cfg.C * sizeof(T)),
        y((size_t)B * cfg.C * sizeof(T));
    fill(x, (size_t)B * cfg.C);
    cudaMemsetAsync(kc.p, 0, kc.bytes, cuda::stream());
    cudaMemsetAsync(vc.p, 0, vc.bytes, cuda::stream());
    std::vector<int32_t> pos{(int32_t)past};
    Dev gpos(pos);
    BlockInputs in{B, 1, gc.f(), gs.f(), gpos.i()};
    auto step = [&] { blk.forward_cached((T*)y.p, (const T*)x.p, in, (T*)kc.p, (T*)vc.p, past, Tm); };
    step();  // warm-up: workspace allocated, bf16 weights made
    GPU->synchronize();
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    cudaStream_t s = cuda::stream();
    cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) {
      step();
      e = cudaStreamEndCapture(s, &graph);
    }
    if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
    if (e != cudaSuccess) {
      std::printf("  decode graph capture failed: %s\n", cudaGetErrorString(e));
      cuda::take_error();
      continue;
    }
    Stat st = time_ms([&] { cudaGraphLaunch(exec, s); }, 3, reps, flush);
    const double kv_bytes = 2.0 * B * (past + 1) * KV * sizeof(T);
    const double bw_floor = (param_bytes + kv_bytes) / (bw * 1e9) * 1e3;
    const double flops = 2.0 * B * blk.num_params() + 4.0 * B * (past + 1) * cfg.HS * cfg.NH;
    const double compute_floor = flops / (std::max(peak, 1.0) * 1e12) * 1e3;
    const double floor = std::max(bw_floor, compute_floor);
    emit("decode", std::string(bc.name) + " decode step B" + std::to_string(B) + " past" + std::to_string(past) + tag,
         st,
         kv("bw_floor_ms", bw_floor) + ", " + kv("compute_floor_ms", compute_floor) + ", " +
             kv("x_floor", st.median / floor) + ", " + kv("weight_bytes", param_bytes) + ", " + kv("kv_bytes", kv_bytes));
    // (a fresh instance of the graph, made while tracing, replayed back to back without the L2
    // flush of the timing above: the flush is not the step's)
    cudaGraphExec_t traced = nullptr;
    trace_breakdown(
        std::string(bc.name) + " decode step B" + std::to_string(B) + " past" + std::to_string(past) + tag, 20,
        st.median, [&] { cudaGraphLaunch(traced ? traced : exec, s); },
        [&] {
          if (cudaGraphInstantiate(&traced, graph, 0) != cudaSuccess) traced = nullptr;
        });
    if (traced) cudaGraphExecDestroy(traced);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  std::string err = cuda::take_error();
  if (!err.empty()) std::printf("  CUDA error during %s%s benchmarks: %s\n", bc.name, tag, err.c_str());
}

// Every product of an 8B decode step at batch 1 and 64 (fp32 and bf16 storage) against the copy
// bandwidth: batch 1 runs the few-rows kernels, batch 64 the tiled GEMM (split along K where its
// tiles leave SMs idle). Also run with --only-gemm, so the [gemm=own] rows show our kernels there.
void bench_decode_gemms(int reps, double bw, const std::function<void()>& flush) {
  const int64_t NH = 32, NKV = 8, HS = 128, QKV = (NH + 2 * NKV) * HS;
  // every product of an 8B decode step (out = in @ W^T, W [N, K]): few output columns per
  // weight byte (o, down) is where a few-rows kernel runs short of loads in flight
  struct Gv {
    const char* name;
    int64_t N, K;
  } gemvs[] = {{"qkv", QKV, 4096}, {"o", 4096, 4096}, {"gate|up", 2 * 14336, 4096}, {"down", 4096, 14336}};
  for (int64_t M : {1, 64})
    for (bool half : {false, true})
      for (const Gv& gv : gemvs) {
        if (half ? !g_bf16 : !g_f32) continue;
        const int64_t N = gv.N, K = gv.K;
        const size_t es = half ? 2 : 4;
        Dev W((size_t)N * K * es), X((size_t)M * K * es), Y((size_t)M * N * es);
        cudaMemsetAsync(W.p, 0, W.bytes, cuda::stream());
        cudaMemsetAsync(X.p, 0, X.bytes, cuda::stream());
        Stat st = time_ms([&] {
          if (half)
            GPU->ops_bf16.gemm(false, true, M, N, K, 1.f, (bf16*)X.p, K, (bf16*)W.p, K, 0.f, (bf16*)Y.p, N);
          else
            GPU->ops.gemm(false, true, M, N, K, 1.f, X.f(), K, W.f(), K, 0.f, Y.f(), N);
        }, 2, reps, flush);
        const double bytes = (double)W.bytes + X.bytes + Y.bytes;
        emit("op", std::string("gemv 8B ") + gv.name + " M" + std::to_string(M) + (half ? " [bf16]" : ""), st,
             kv("GBps", bytes / (st.median * 1e-3) / 1e9) + ", " +
                 kv("x_copy_bw", bw / (bytes / (st.median * 1e-3) / 1e9)));
      }
}

// The split-KV attention of a decode step over an 8B layer's cache (batch 1 past 8192, batch 64
// past 1024), against the copy bandwidth for the cache rows it reads. L2 flushed between.
template <class Flush>
void bench_decode_attention(int reps, double bw, const Flush& flush) {
  const int64_t NH = 32, NKV = 8, HS = 128, QKV = (NH + 2 * NKV) * HS;
  for (int64_t B : {1, 64})
    for (bool half : {false, true}) {
      if (half ? !g_bf16 : !g_f32) continue;
      const int64_t past = B == 1 ? 8192 : 1024, Tm = past + 1, KW = NKV * HS;
      const size_t es = half ? 2 : 4;
      Dev kc((size_t)B * Tm * KW * es), vc((size_t)B * Tm * KW * es), q((size_t)B * QKV * es), o((size_t)B * NH * HS * es);
      for (Dev* d : {&kc, &vc, &q}) cudaMemsetAsync(d->p, 0, d->bytes, cuda::stream());
      Stat st = time_ms([&] {
        if (half)
          GPU->ops_bf16.attention_cached_forward((bf16*)o.p, (bf16*)q.p, (bf16*)kc.p, (bf16*)vc.p, B, 1, NH, NKV, HS, QKV,
                                                 past, Tm);
        else
          GPU->ops.attention_cached_forward(o.f(), q.f(), kc.f(), vc.f(), B, 1, NH, NKV, HS, QKV, past, Tm);
      }, 2, reps, flush);
      const double bytes = 2.0 * B * (past + 1) * KW * es;
      emit("op", "decode attention 8B B" + std::to_string(B) + " past" + std::to_string(past) + (half ? " [bf16]" : ""), st,
           kv("GBps", bytes / (st.median * 1e-3) / 1e9) + ", " + kv("x_copy_bw", bw / (bytes / (st.median * 1e-3) / 1e9)));
    }
}

void run_benchmarks(bool quick, bool only_gemm, bool kernels_only) {
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  L2Flush l2((size_t)prop.l2CacheSize * 4);
  const std::function<void()> flush = [&] { l2(); };
  const int reps = quick ? 10 : 30;
  std::printf("\n== GPU benchmarks (CUDA events; median [p10..p90]) ==\n");

  // Copy bandwidth: the memory floor of everything below.
  const size_t copy_bytes = (size_t)1 << 31;
  Dev c1(copy_bytes), c2(copy_bytes);
  cudaMemsetAsync(c1.p, 1, copy_bytes, cuda::stream());
  Stat cs = time_ms([&] { cudaMemcpyAsync(c2.p, c1.p, copy_bytes, cudaMemcpyDeviceToDevice, cuda::stream()); }, 2, reps);
  const double bw = 2.0 * copy_bytes / (cs.median * 1e-3) / 1e9;  // GB/s, read + write
  emit("bandwidth", "device copy 2 GiB (read+write)", cs, kv("GBps", bw));

  // GEMM rate on block shapes (Llama-3.1-8B and 70B, 4096 tokens) and 8192^3.
  struct G {
    const char* name;
    int64_t M, N, K;
  } gemms[] = {{"gemm 8192^3", 8192, 8192, 8192},
               {"gemm 8B qkv 4096x6144x4096", 4096, 6144, 4096},
               {"gemm 8B gate|up 4096x28672x4096", 4096, 28672, 4096},
               {"gemm 8B down 4096x4096x14336", 4096, 4096, 14336},
               {"gemm 70B gate|up 4096x57344x8192", 4096, 57344, 8192}};
  double peak = 0;
  for (auto& g : gemms) {
    if (!g_f32) break;
    Dev A((size_t)g.M * g.K * 4), Bm((size_t)g.N * g.K * 4), Cm((size_t)g.M * g.N * 4);
    auto ha = randn(std::min<size_t>((size_t)g.M * g.K, 1 << 22));
    for (size_t off = 0; off < (size_t)g.M * g.K; off += ha.size())  // random data, not zeros
      GPU->copy_to_device(A.f() + off, ha.data(), std::min(ha.size(), (size_t)g.M * g.K - off) * 4);
    for (size_t off = 0; off < (size_t)g.N * g.K; off += ha.size())
      GPU->copy_to_device(Bm.f() + off, ha.data(), std::min(ha.size(), (size_t)g.N * g.K - off) * 4);
    Stat st = time_ms([&] { GPU->ops.gemm(false, true, g.M, g.N, g.K, 1.f, A.f(), g.K, Bm.f(), g.K, 0.f, Cm.f(), g.N); },
                      2, quick ? 5 : 10);
    double tf = 2.0 * g.M * g.N * g.K / (st.median * 1e-3) / 1e12;
    peak = std::max(peak, tf);
    emit("gemm", g.name, st, kv("TFLOPs", tf));
  }
  for (auto& g : gemms) {  // the same with bf16 storage (mixed precision)
    if (!g_bf16) break;
    Dev A((size_t)g.M * g.K * 2), Bm((size_t)g.N * g.K * 2), Cm((size_t)g.M * g.N * 2);
    auto ha = round16(randn(std::min<size_t>(std::max<size_t>((size_t)g.M, (size_t)g.N) * g.K, 1 << 22)));
    for (Dev* d : {&A, &Bm})
      for (size_t off = 0, n = d->bytes / 2; off < n; off += ha.size())
        GPU->copy_to_device((bf16*)d->p + off, ha.data(), std::min(ha.size(), n - off) * 2);
    Stat st = time_ms([&] {
      GPU->ops_bf16.gemm(false, true, g.M, g.N, g.K, 1.f, (bf16*)A.p, g.K, (bf16*)Bm.p, g.K, 0.f, (bf16*)Cm.p, g.N);
    }, 2, quick ? 5 : 10);
    double tf = 2.0 * g.M * g.N * g.K / (st.median * 1e-3) / 1e12;
    peak = std::max(peak, tf);
    emit("gemm", std::string(g.name) + " [bf16]", st, kv("TFLOPs", tf));
  }
  if (only_gemm || g_only_decode) {
    bench_decode_gemms(reps, bw, flush);
    if (only_gemm) return;
    bench_decode_attention(reps, bw, flush);
  }
  if (g_only_decode) {  // the decode steps of both blocks (the GEMM peak above sets their compute floor)
    for (const BlockShape& bc : {BlockShape{"llama-3.1-8b", 4096, 32, 8, 128, 14336},
                                 BlockShape{"llama-3.1-70b", 8192, 64, 8, 128, 28672}}) {
      if (g_f32) bench_block<float>(bc, quick, reps, bw, peak, flush);
      if (g_bf16) bench_block<bf16>(bc, quick, reps, bw, peak, flush);
    }
    return;
  }
  if (kernels_only) {  // --kernels: the 8B block in mixed precision, its breakdowns printed as it goes
    bench_block<bf16>({"llama-3.1-8b", 4096, 32, 8, 128, 14336}, true, reps, bw, peak, flush);
    return;
  }

  // Per-op times on Llama-3.1-8B shapes (4096 tokens).
  if (g_f32) {
    const int64_t T = 4096, NH = 32, NKV = 8, HS = 128, C = 4096, QKV = (NH + 2 * NKV) * HS;
    Dev qkv((size_t)T * QKV * 4), out((size_t)T * NH * HS * 4), lse((size_t)NH * T * 4), dout((size_t)T * NH * HS * 4),
        dqkv((size_t)T * QKV * 4);
    auto h = randn((size_t)T * QKV, 0.5f);
    GPU->copy_to_device(qkv.p, h.data(), qkv.bytes);
    GPU->copy_to_device(dout.p, h.data(), dout.bytes);
    float *q = qkv.f(), *k = q + NH * HS, *v = k + NKV * HS;
    const double flops_f = 4.0 * T * T * HS * NH / 2;  // causal: half of QK^T and PV
    Stat f = time_ms([&] { GPU->ops.attention_forward(out.f(), lse.f(), q, k, v, 1, T, NH, NKV, HS, QKV, QKV); }, 2, reps);
    emit("op", std::string("attention fwd 8B T4096 [") + cuda::attention_kernel_name(HS) + "]", f,
         kv("TFLOPs", flops_f / (f.median * 1e-3) / 1e12));
    Stat b = time_ms([&] {
      GPU->ops.attention_backward(dqkv.f(), dqkv.f() + NH * HS, dqkv.f() + (NH + NKV) * HS, dout.f(), q, k, v, out.f(),
                                  lse.f(), 1, T, NH, NKV, HS, QKV, QKV);
    }, 2, reps);
    emit("op", std::string("attention bwd 8B T4096 [") + cuda::attention_kernel_name(HS) + "]", b,
         kv("TFLOPs", 2.5 * flops_f / (b.median * 1e-3) / 1e12));
    Dev x((size_t)T * C * 4), w(C * 4), y((size_t)T * C * 4), r(T * 4);
    GPU->copy_to_device(x.p, h.data(), x.bytes);
    GPU->copy_to_device(w.p, h.data(), w.bytes);
    Stat rn = time_ms([&] { GPU->ops.rmsnorm_forward(y.f(), r.f(), x.f(), w.f(), T, C, 1e-5f); }, 2, reps, flush);
    emit("op", "rmsnorm fwd 4096x4096", rn, kv("GBps", 2.0 * T * C * 4 / (rn.median * 1e-3) / 1e9));
  }

  if (g_bf16) {  // the same attention on bf16 storage: tensor-core kernels reading and writing bf16
    const int64_t T = 4096, NH = 32, NKV = 8, HS = 128, QKV = (NH + 2 * NKV) * HS;
    const auto h = round16(randn((size_t)T * QKV, 0.5f));
    Dev16 qkv(h), out((size_t)T * NH * HS), dqkv((size_t)T * QKV);
    Dev16 dout(std::vector<bf16>(h.begin(), h.begin() + T * NH * HS));
    Dev lse((size_t)NH * T * 4);
    cudaMemsetAsync(dqkv.p(), 0, (size_t)T * QKV * 2, cuda::stream());
    const bf16 *q = qkv.p(), *k = q + NH * HS, *v = k + NKV * HS;
    const double flops_f = 4.0 * T * T * HS * NH / 2;
    Stat f = time_ms([&] { GPU->ops_bf16.attention_forward(out.p(), lse.f(), q, k, v, 1, T, NH, NKV, HS, QKV, QKV); },
                     2, reps);
    const std::string kname = cuda::attention_mma_selected() ? "mma" : cuda::attention_kernel_name(HS);
    emit("op", "attention fwd 8B T4096 [" + kname + "] [bf16]", f,
         kv("TFLOPs", flops_f / (f.median * 1e-3) / 1e12));
    Stat b = time_ms([&] {
      GPU->ops_bf16.attention_backward(dqkv.p(), dqkv.p() + NH * HS, dqkv.p() + (NH + NKV) * HS, dout.p(), q, k, v,
                                       out.p(), lse.f(), 1, T, NH, NKV, HS, QKV, QKV);
    }, 2, reps);
    emit("op", "attention bwd 8B T4096 [" + kname + "] [bf16]", b,
         kv("TFLOPs", 2.5 * flops_f / (b.median * 1e-3) / 1e12));
  }

  // The pieces of a decode step, each against the copy bandwidth (what the decode floor assumes):
  // the few-rows GEMM through the 8B weights (batch 1 and 64, fp32 and bf16 storage) and the
  // split-KV attention over the cache (the bytes of the cache rows read). L2 flushed between.
  bench_decode_gemms(reps, bw, flush);
  bench_decode_attention(reps, bw, flush);

  // Blocks: fp32 storage, then mixed precision (bf16 activations and weights).
  const BlockShape blocks[] = {{"llama-3.1-8b", 4096, 32, 8, 128, 14336}, {"llama-3.1-70b", 8192, 64, 8, 128, 28672}};
  for (auto& bc : blocks) {
    if (g_f32) bench_block<float>(bc, quick, reps, bw, peak, flush);
    if (g_bf16) bench_block<bf16>(bc, quick, reps, bw, peak, flush);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool bench = true, quick = false, only_gemm = false;
  const char* json_path = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--version")) {
      std::printf("puzzle_cuda_check (GEMM: %s)\n", cuda::gemm_kernel_name());
      return 0;
    }
    if (!std::strcmp(argv[i], "--no-bench")) bench = false;
    else if (!std::strcmp(argv[i], "--only-gemm")) only_gemm = true;
    else if (!std::strcmp(argv[i], "--kernels")) g_kernels = true;
    else if (!std::strcmp(argv[i], "--only-decode")) g_only_decode = true;
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--part") && i + 1 < argc && !std::strcmp(argv[i + 1], "f32")) g_bf16 = false, ++i;
    else if (!std::strcmp(argv[i], "--part") && i + 1 < argc && !std::strcmp(argv[i + 1], "bf16")) g_f32 = false, ++i;
    else if (!std::strcmp(argv[i], "--part") && i + 1 < argc && !std::strcmp(argv[i + 1], "all")) ++i;
    else if (!std::strcmp(argv[i], "--tag") && i + 1 < argc) g_tag = std::string(" [") + argv[++i] + "]";
    else {
      std::fprintf(stderr,
                   "usage: puzzle_cuda_check [--json FILE] [--no-bench] [--only-gemm|--only-decode] [--quick] [--part f32|bf16|all] "
                   "[--tag TAG]\n       puzzle_cuda_check --kernels [--json FILE]\n");
      return 2;
    }
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("no GPU: %s\n", e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports no devices");
    return 3;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  if (const std::string why = cuda::unsupported_device(prop.name, prop.major, prop.minor); !why.empty()) {
    std::printf("no usable GPU: %s\n", why.c_str());
    return 3;
  }
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver), cudaRuntimeGetVersion(&runtime);
  std::printf("device: %s, sm_%d%d, %d SMs, %.1f GiB, L2 %d MiB, driver %d.%d, runtime %d.%d, GEMM %s\n", prop.name,
              prop.major, prop.minor, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0,
              prop.l2CacheSize >> 20, driver / 1000, (driver % 1000) / 10, runtime / 1000, (runtime % 1000) / 10,
              cuda::gemm_kernel_name());
  GPU = &cuda::cuda_backend();
  if (json_path) {
    json = std::fopen(json_path, "w");
    std::fprintf(json, "{\"device\": \"%s\", \"sms\": %d, \"driver\": \"%d.%d\", \"gemm\": \"%s\", \"results\": [",
                 prop.name, prop.multiProcessorCount, driver / 1000, (driver % 1000) / 10, cuda::gemm_kernel_name());
  }
  if (g_kernels) {
    std::string why;
    if (!tools::kernel_trace_available(&why)) {
      std::printf("kernel breakdowns unavailable: %s\n", why.c_str());
      return 4;
    }
    g_f32 = false;  // the mixed-precision block only; no checks
    quick = true;
  } else {
    run_checks(quick);
  }
  int failed = 0;
  for (auto& r : results) failed += !r.pass;
  if (!g_kernels) std::printf("\nchecks: %zu passed, %d failed\n", results.size() - failed, failed);
  if (bench || g_kernels) run_benchmarks(quick, only_gemm, g_kernels);
  if (json) {
    std::fprintf(json, "\n], \"checks\": [");
    for (size_t i = 0; i < results.size(); ++i)
      std::fprintf(json, "%s\n  {\"name\": \"%s\", \"err\": %.3e, \"tol\": %.1e, \"pass\": %s}", i ? "," : "",
                   results[i].name.c_str(), std::isfinite(results[i].err) ? results[i].err : 1e300, results[i].tol,
                   results[i].pass ? "true" : "false");
    std::fprintf(json, "\n], \"kernels\": [");
    for (size_t i = 0; i < g_breakdowns.size(); ++i) {
      const Breakdown& b = g_breakdowns[i];
      std::fprintf(json, "%s\n  {\"workload\": \"%s\", \"iters\": %d, \"step_ms\": %.6f, \"rows\": [", i ? "," : "",
                   json_escape(b.workload).c_str(), b.iters, b.step_ms);
      for (size_t j = 0; j < b.rows.size(); ++j)
        std::fprintf(json, "%s{\"name\": \"%s\", \"calls\": %lld, \"ms\": %.6f}", j ? ", " : "",
                     json_escape(b.rows[j].name).c_str(), (long long)b.rows[j].calls, b.rows[j].total_ms);
      std::fprintf(json, "]}");
    }
    std::fprintf(json, "\n]}\n");
    std::fclose(json);
  }
  return failed ? 1 : 0;
}
