// Emulated CUDA bf16 ops (and the templated fp32 GEMM) against the CPU backend's op tables; see run.sh.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "emu.h"
#include "emu_wmma.h"
#include "cpu/ops_cpu.h"
#include "cuda/common.cuh"
#include "puzzle/backend.h"
#include "puzzle/gemm.h"

namespace puzzle::cuda {
cudaStream_t stream() { return nullptr; }
int g_errors = 0;
bool pdl_enabled() { return true; }  // the kernels of the decode path go through cudaLaunchKernelEx with PDL
void record_error(cudaError_t e, const char* where) {
  if (e) std::fprintf(stderr, "CUDA error at %s\n", where), ++g_errors;
}
// The bf16 tensor-core forward, backward and decode kernels live in attention.cu and attention_mma.cu (tested by
// native/dev/cuda-emu/run.sh tc16, mma16, tcbwd16, mmabwd16, prefill16 and decode16): declining here sends the bf16 attention calls
// through the bridge, which is what this test checks.
bool attention_decode(bf16*, const bf16*, const bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t, int64_t,
                      int64_t, int64_t, int64_t) {
  return false;
}
bool attention_forward_tc(bf16*, float*, const bf16*, const bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t,
                          int64_t, int64_t, int64_t) {
  return false;
}
bool attention_backward_tc(float*, bf16*, bf16*, const bf16*, const bf16*, const bf16*, const bf16*, const bf16*,
                           const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t) {
  return false;
}
bool attention_forward_mma(bf16*, float*, const bf16*, const bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t) {
  return false;
}
bool attention_backward_mma(float*, bf16*, bf16*, const bf16*, const bf16*, const bf16*, const bf16*, const bf16*,
                            const float*, float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t) {
  return false;
}
void attention_backward_dot(float*, const bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t) {}
bool attention_cached_forward_tc(bf16*, const bf16*, const bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t,
                                 int64_t, int64_t, int64_t, int64_t) {
  return false;
}
bool attention_cached_forward_mma(bf16*, const bf16*, const bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t,
                                  int64_t, int64_t, int64_t, int64_t) {
  return false;
}
bool attention_mma_selected() { return true; }  // and still declined: the bridge
// fp32 attention "on the device" = the CPU kernels on host memory (the bridge is what is tested)
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  puzzle::cpu::attention_forward(out, lse, q, k, v, B, T, NH, NKV, HS, q_stride, kv_stride);
}
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, int64_t B, int64_t T, int64_t NH,
                        int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  puzzle::cpu::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, HS, q_stride, kv_stride);
}
void attention_cached_forward(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t B,
                              int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                              int64_t Tmax) {
  puzzle::cpu::attention_cached_forward(out, q, k_cache, v_cache, B, Tq, NH, NKV, HS, q_stride, past, Tmax);
}
}  // namespace puzzle::cuda

using puzzle::bf16;
namespace G = puzzle::cuda;
static const puzzle::OpsBf16& R() { return puzzle::cpu_backend().ops_bf16; }

std::mt19937_64 rng(99);
std::vector<float> randn(size_t n, float sc = 1.f, float shift = 0.f) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = shift + sc * d(rng);
  return v;
}
// bf16 storage at element offset `off` from an 8-byte boundary, padded with NaNs
struct H {
  std::vector<bf16> store;
  bf16* p;
  size_t n;
  H(const std::vector<float>& v, int off = 0) : store(v.size() + 8, puzzle::f32_to_bf16(NAN)), n(v.size()) {
    uintptr_t a = (uintptr_t)store.data();
    p = (bf16*)((a + 15) & ~(uintptr_t)15) + off;
    for (size_t i = 0; i < n; ++i) p[i] = puzzle::f32_to_bf16(v[i]);
  }
  H(size_t n_, int off = 0) : H(std::vector<float>(n_, NAN), off) {}
  std::vector<float> get() const {
    std::vector<float> r(n);
    for (size_t i = 0; i < n; ++i) r[i] = puzzle::bf16_to_f32(p[i]);
    return r;
  }
};
struct F {
  std::vector<float> store;
  float* p;
  size_t n;
  F(const std::vector<float>& v, int off = 0) : store(v.size() + 8, NAN), n(v.size()) {
    uintptr_t a = (uintptr_t)store.data();
    p = (float*)((a + 15) & ~(uintptr_t)15) + off;
    std::copy(v.begin(), v.end(), p);
  }
  std::vector<float> get() const { return std::vector<float>(p, p + n); }
};

int fails = 0, total = 0;
// max |got - want| / max |want| (NaN where want is NaN is fine)
void check(const std::string& name, const std::vector<float>& got, const std::vector<float>& want, double tol) {
  double md = 0, mw = 0;
  bool bad = got.size() != want.size();
  for (size_t i = 0; !bad && i < got.size(); ++i) {
    if (std::isnan(want[i])) { bad = bad || !std::isnan(got[i]); continue; }
    if (!std::isfinite(got[i])) { bad = true; break; }
    md = std::max(md, std::fabs((double)got[i] - want[i]));
    mw = std::max(mw, std::fabs((double)want[i]));
  }
  const double err = bad ? INFINITY : md / std::max(mw, 1e-30);
  const bool pass = err <= tol;
  fails += !pass, ++total;
  std::printf("  %-4s %-72s err %.2e tol %.0e\n", pass ? "ok" : "FAIL", name.c_str(), err, tol);
  std::fflush(stdout);
}
std::vector<float> concat(std::vector<float> a, const std::vector<float>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
const double ULP = 8e-3;  // two bf16 roundings' worth, relative to the largest element

void t_flat(int64_t n, int oa, int ob) {
  auto a = randn(n), b = randn(n), c0 = randn(n);
  H ga(a, oa), gb(b, ob), gc(c0, oa), go(n, oa), ra(a, oa), rb(b, ob), rc(c0, oa), ro(n, oa);
  G::add_forward(go.p, ga.p, gb.p, n);
  R().add_forward(ro.p, ra.p, rb.p, n);
  check("add n" + std::to_string(n) + " off" + std::to_string(oa) + "/" + std::to_string(ob), go.get(), ro.get(), 0);
  G::accumulate(gc.p, gb.p, n);
  R().accumulate(rc.p, rb.p, n);
  check("accumulate n" + std::to_string(n) + " off" + std::to_string(oa) + "/" + std::to_string(ob), gc.get(), rc.get(), 0);
  F f(a, ob);
  H g16(n, oa), r16(n, oa);
  G::to_bf16(g16.p, f.p, n);
  R().to_bf16(r16.p, f.p, n);
  check("to_bf16 n" + std::to_string(n), g16.get(), r16.get(), 0);
  F g32(std::vector<float>(n, NAN), ob);
  G::to_f32(g32.p, g16.p, n);
  check("to_f32 n" + std::to_string(n), g32.get(), r16.get(), 0);
}

void t_rmsnorm(int64_t N, int64_t C, int off, bool dinp) {
  auto x = randn(N * C), w = randn(C, 0.5f, 1.f), d = randn(N * C), dx0 = randn(N * C), dw0 = randn(C);
  H gx(x, off), gw(w, off), gd(d, off), gdx(dx0, off), go(N * C, off);
  H rx(x, off), rw(w, off), rd(d, off), rdx(dx0, off), ro(N * C, off);
  std::vector<float> grs(N), rrs(N), gdw = dw0, rdw = dw0;
  G::rmsnorm_forward(go.p, grs.data(), gx.p, gw.p, N, C, 1e-5f);
  R().rmsnorm_forward(ro.p, rrs.data(), rx.p, rw.p, N, C, 1e-5f);
  std::string s = " N" + std::to_string(N) + " C" + std::to_string(C) + " off" + std::to_string(off) + (dinp ? "" : " no-dinp");
  check("rmsnorm forward" + s, go.get(), ro.get(), ULP);
  // the CPU sums the C squares one after another (an error growing with C), the GPU as a tree
  const double sum_tol = std::max(1e-6, 1e-9 * (double)C);
  check("rmsnorm rstd" + s, grs, rrs, sum_tol);
  G::rmsnorm_backward(dinp ? gdx.p : nullptr, gdw.data(), gd.p, gx.p, gw.p, grs.data(), N, C);
  R().rmsnorm_backward(dinp ? rdx.p : nullptr, rdw.data(), rd.p, rx.p, rw.p, rrs.data(), N, C);
  check("rmsnorm dinp" + s, gdx.get(), rdx.get(), ULP);
  check("rmsnorm dweight (fp32)" + s, gdw, rdw, std::max(1e-5, sum_tol));
  if (C * 4 > 48 * 1024) {  // which path: the weight gradient in C floats of shared memory where granted
    const bool granted = C * 4 + 1024 <= g_emu_smem_optin, used = g_emu_max_smem_used >= (size_t)C * 4;
    check("rmsnorm dweight in shared memory exactly where granted" + s, {(float)used}, {(float)granted}, 0);
  }
}

void t_rope(int64_t B, int64_t T, int64_t NH, int64_t HS, int64_t stride, int off, bool inplace) {
  const int64_t h = HS / 2, P = 50;
  std::vector<float> cos(P * h), sin(P * h);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < h; ++i) cos[p * h + i] = std::cos(p * 0.1f * (i + 1)), sin[p * h + i] = std::sin(p * 0.1f * (i + 1));
  std::vector<int32_t> pos(T);
  for (auto& p : pos) p = (int32_t)(rng() % P);
  auto x = randn(B * T * stride);
  H gx(x, off), rx(x, off), go(x, off), ro(x, off);
  std::string s = " B" + std::to_string(B) + " T" + std::to_string(T) + " NH" + std::to_string(NH) + " HS" +
                  std::to_string(HS) + " stride" + std::to_string(stride) + " off" + std::to_string(off) + (inplace ? " in place" : "");
  G::rope_forward(inplace ? gx.p : go.p, gx.p, cos.data(), sin.data(), pos.data(), B, T, NH, HS, stride);
  R().rope_forward(inplace ? rx.p : ro.p, rx.p, cos.data(), sin.data(), pos.data(), B, T, NH, HS, stride);
  check("rope forward" + s, inplace ? gx.get() : go.get(), inplace ? rx.get() : ro.get(), ULP);
  G::rope_backward(gx.p, gx.p, cos.data(), sin.data(), pos.data(), B, T, NH, HS, stride);
  R().rope_backward(rx.p, rx.p, cos.data(), sin.data(), pos.data(), B, T, NH, HS, stride);
  check("rope backward" + s, gx.get(), rx.get(), ULP);
}

void t_swiglu(int64_t N, int64_t F_, int off) {
  auto gu = randn(N * 2 * F_), d = randn(N * F_);
  H g(gu, off), r(gu, off), gd(d, off), rd(d, off), go(N * F_, off), ro(N * F_, off), gdg(N * 2 * F_, off), rdg(N * 2 * F_, off);
  G::swiglu_forward(go.p, g.p, N, F_);
  R().swiglu_forward(ro.p, r.p, N, F_);
  std::string s = " N" + std::to_string(N) + " F" + std::to_string(F_) + " off" + std::to_string(off);
  check("swiglu forward" + s, go.get(), ro.get(), ULP);
  G::swiglu_backward(gdg.p, gd.p, g.p, N, F_);
  R().swiglu_backward(rdg.p, rd.p, r.p, N, F_);
  check("swiglu backward" + s, gdg.get(), rdg.get(), ULP);
}

// rope_kv_cache_append on a fused qkv row against the CPU table (the values are copied, so the v
// cache matches to the bit), and the CPU's own fused op against rope_forward + a copy.
void t_kv(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tmax, bool with_pos) {
  const int64_t QKV = (NH + 2 * NKV) * HS, h = HS / 2, P = past + T + 3;
  std::vector<float> cos(P * h), sin(P * h);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < h; ++i) cos[p * h + i] = std::cos(p * 0.3f * (i + 1)), sin[p * h + i] = std::sin(p * 0.3f * (i + 1));
  std::vector<int32_t> pos(T);
  for (int64_t t = 0; t < T; ++t) pos[t] = (int32_t)(past + t);
  const int32_t* pp = with_pos ? pos.data() : nullptr;
  auto qkv = randn(B * T * QKV), k0 = randn(B * Tmax * NKV * HS), v0 = randn(B * Tmax * NKV * HS);
  H gq(qkv), gk(k0), gv(v0), rq(qkv), rk(k0), rv(v0), cq(qkv), ck(k0), cv(v0);
  G::rope_kv_cache_append(gq.p, gk.p, gv.p, cos.data(), sin.data(), pp, B, T, NH, NKV, HS, past, Tmax);
  R().rope_kv_cache_append(rq.p, rk.p, rv.p, cos.data(), sin.data(), pp, B, T, NH, NKV, HS, past, Tmax);
  std::string s = " B" + std::to_string(B) + " T" + std::to_string(T) + " NH" + std::to_string(NH) + " NKV" +
                  std::to_string(NKV) + " HS" + std::to_string(HS) + " past" + std::to_string(past) + (with_pos ? " pos" : "");
  check("rope+kv append qkv" + s, gq.get(), rq.get(), ULP);
  check("rope+kv append k cache" + s, gk.get(), rk.get(), ULP);
  check("rope+kv append v cache" + s, gv.get(), rv.get(), 0);
  // the composition the op stands for, on the CPU tables
  R().rope_forward(cq.p, cq.p, cos.data(), sin.data(), pp, B, T, NH + NKV, HS, QKV);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < NKV * HS; ++c) {
        const int64_t dst = (b * Tmax + past + t) * NKV * HS + c;
        ck.p[dst] = cq.p[(b * T + t) * QKV + NH * HS + c];
        cv.p[dst] = cq.p[(b * T + t) * QKV + (NH + NKV) * HS + c];
      }
  check("rope+kv append (CPU) = rope_forward + copy" + s, rq.get(), cq.get(), 0);
  check("rope+kv append (CPU) k, v = copies" + s, concat(rk.get(), rv.get()), concat(ck.get(), cv.get()), 0);
}

// add_rmsnorm_forward, in place (sum == a) as the block calls it and out of place, against the
// CPU table; the CPU table's fused op against add_forward + rmsnorm_forward (fp32 and bf16).
void t_add_rmsnorm(int64_t N, int64_t C, int off, bool inplace) {
  auto a = randn(N * C), b = randn(N * C, 0.5f), w = randn(C, 0.5f, 1.f);
  H ga(a, off), gb(b, off), gw(w, off), gs(N * C, off), go(N * C, off);
  H ra(a, off), rb(b, off), rw(w, off), rs(N * C, off), ro(N * C, off);
  std::vector<float> grs(N), rrs(N);
  G::add_rmsnorm_forward(inplace ? ga.p : gs.p, go.p, grs.data(), ga.p, gb.p, gw.p, N, C, 1e-5f);
  R().add_rmsnorm_forward(inplace ? ra.p : rs.p, ro.p, rrs.data(), ra.p, rb.p, rw.p, N, C, 1e-5f);
  std::string s = " N" + std::to_string(N) + " C" + std::to_string(C) + " off" + std::to_string(off) + (inplace ? " in place" : "");
  check("add+rmsnorm sum" + s, inplace ? ga.get() : gs.get(), inplace ? ra.get() : rs.get(), 0);
  check("add+rmsnorm forward" + s, go.get(), ro.get(), ULP);
  check("add+rmsnorm rstd" + s, grs, rrs, 1e-5);  // C squares summed in another order: ~sqrt(C) fp32 ulps
  // the CPU's bf16 op is add_forward + rmsnorm_forward by definition; its fp32 op fuses the rows
  H ca(a, off), cb(b, off), cs(N * C, off), co(N * C, off);
  std::vector<float> crs(N);
  R().add_forward(cs.p, ca.p, cb.p, N * C);
  R().rmsnorm_forward(co.p, crs.data(), cs.p, rw.p, N, C, 1e-5f);
  check("add+rmsnorm (CPU bf16) = add + rmsnorm" + s, concat(ro.get(), rrs), concat(co.get(), crs), 0);
  const auto& f = puzzle::cpu_backend().ops;
  std::vector<float> fs(N * C), fo(N * C), frs(N), us(N * C), uo(N * C), urs(N), fa = a;
  f.add_rmsnorm_forward(inplace ? fa.data() : fs.data(), fo.data(), frs.data(), fa.data(), b.data(), w.data(), N, C, 1e-5f);
  f.add_forward(us.data(), a.data(), b.data(), N * C);
  f.rmsnorm_forward(uo.data(), urs.data(), us.data(), w.data(), N, C, 1e-5f);
  check("add+rmsnorm (CPU fp32) = add + rmsnorm" + s, concat(concat(inplace ? fa : fs, fo), frs), concat(concat(us, uo), urs), 0);
}

void t_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int ld_pad, float alpha, float beta) {
  const int64_t lda = (ta ? M : K) + ld_pad, ldb = (tb ? K : N) + ld_pad, ldc = N + ld_pad;
  const int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb, nc = M * ldc;
  auto a = randn(na), b = randn(nb), c = randn(nc);
  std::string s = std::string(ta ? "T" : "N") + (tb ? "T" : "N") + " M" + std::to_string(M) + " N" + std::to_string(N) +
                  " K" + std::to_string(K) + " ld+" + std::to_string(ld_pad) + " a" + std::to_string(alpha).substr(0, 3) +
                  " b" + std::to_string(beta).substr(0, 3);
  H ga(a), gb(b), gc(c), rc(c);
  G::gemm(ta, tb, M, N, K, alpha, ga.p, lda, gb.p, ldb, beta, gc.p, ldc);
  R().gemm(ta, tb, M, N, K, alpha, ga.p, lda, gb.p, ldb, beta, rc.p, ldc);
  check("gemm bf16 " + s, gc.get(), rc.get(), ULP);
  F gf(c), rf(c);
  G::gemm_f32out(ta, tb, M, N, K, alpha, ga.p, lda, gb.p, ldb, beta, gf.p, ldc);
  R().gemm_f32out(ta, tb, M, N, K, alpha, ga.p, lda, gb.p, ldb, beta, rf.p, ldc);
  check("gemm bf16->f32 " + s, gf.get(), rf.get(), 2e-5);
  F fa(a), fb(b), f32(c), r32(c);
  G::gemm(ta, tb, M, N, K, alpha, fa.p, lda, fb.p, ldb, beta, f32.p, ldc);
  puzzle::sgemm(ta, tb, M, N, K, alpha, fa.p, lda, fb.p, ldb, beta, r32.p, ldc, false);
  check("gemm fp32 " + s, f32.get(), r32.get(), 1e-2);
}

// norm_linear_forward (res: 0 none, 1 its own matrix, 2 in place: out is res) and, with F > 0,
// norm_swiglu_forward (OC = 2F), against the CPU tables' compositions in bf16 and fp32. A few rows
// must take one fused launch (the dot kernels' norm, residual and SwiGLU); more rows compose.
// The fused bf16 op keeps the normalised rows and gate|up in fp32, where the composition rounds
// them: it is checked against the fp32 table on the same (bf16) values, rounded once at the end;
// the composed one against the bf16 table. fp32: the fused kernels sum in fp32 like the CPU; the
// composition's GEMM runs on bf16 tensor cores (gemm fp32's tolerance).
void t_norm_linear(int64_t N, int64_t C, int64_t OC, bool norm, int res, int64_t FF = 0, int off = 0) {
  const bool glu = FF > 0;
  const int64_t n_out = glu ? FF : OC, W_rows = glu ? 2 * FF : OC;
  auto x = randn(N * C), w = randn(C, 0.5f, 1.f), W = randn(W_rows * C, 1.f / std::sqrt((float)C)), r = randn(N * n_out);
  std::string s = " N" + std::to_string(N) + " C" + std::to_string(C) + (glu ? " F" + std::to_string(FF) : " OC" + std::to_string(OC)) +
                  (norm ? " norm" : "") + (res == 1 ? " res" : res == 2 ? " res in place" : "") + " off" + std::to_string(off);
  const char* what = glu ? "norm+swiglu" : "norm+linear";
  {  // bf16
    H gx(x, off), gw(w, off), gW(W, off), gr(r, off), go(res == 2 ? r : std::vector<float>(N * n_out, NAN), off);
    H rx(x, off), rw(w, off), rW(W, off), rr(r, off), ro(res == 2 ? r : std::vector<float>(N * n_out, NAN), off);
    H gln(N * C), rln(N * C), ggu(N * 2 * std::max<int64_t>(FF, 1)), rgu(N * 2 * std::max<int64_t>(FF, 1));
    std::vector<float> grs(N), rrs(N);
    const long before = g_emu_pdl_launches;
    if (glu) {
      G::norm_swiglu_forward(go.p, gln.p, grs.data(), ggu.p, gx.p, norm ? gw.p : nullptr, gW.p, N, C, FF, 1e-5f);
      R().norm_swiglu_forward(ro.p, rln.p, rrs.data(), rgu.p, rx.p, norm ? rw.p : nullptr, rW.p, N, C, FF, 1e-5f);
    } else {
      const bf16* gres = res == 1 ? gr.p : res == 2 ? go.p : nullptr;
      const bf16* rres = res == 1 ? rr.p : res == 2 ? ro.p : nullptr;
      G::norm_linear_forward(go.p, gln.p, grs.data(), gx.p, norm ? gw.p : nullptr, gW.p, gres, N, C, OC, 1e-5f);
      R().norm_linear_forward(ro.p, rln.p, rrs.data(), rx.p, norm ? rw.p : nullptr, rW.p, rres, N, C, OC, 1e-5f);
    }
    const long launches = g_emu_pdl_launches - before;
    const bool fused = N <= 16 && (norm || !glu);
    if (fused) {  // the fp32 math on the bf16 values, rounded once
      const auto& f = puzzle::cpu_backend().ops;
      auto x16 = gx.get(), w16 = gw.get(), W16 = gW.get();
      std::vector<float> o32 = res == 2 ? H(r).get() : std::vector<float>(N * n_out), r16 = gr.get(), ln(N * C), gu(N * 2 * FF + 1), rs(N);
      if (glu)
        f.norm_swiglu_forward(o32.data(), ln.data(), rs.data(), gu.data(), x16.data(), norm ? w16.data() : nullptr, W16.data(), N, C, FF, 1e-5f);
      else
        f.norm_linear_forward(o32.data(), ln.data(), rs.data(), x16.data(), norm ? w16.data() : nullptr, W16.data(),
                              res == 1 ? r16.data() : res == 2 ? o32.data() : nullptr, N, C, OC, 1e-5f);
      check(std::string(what) + " bf16 (fused) = fp32 math rounded once" + s, go.get(), H(o32).get(), ULP);
      check(std::string(what) + " bf16 is one launch" + s, {(float)launches}, {1.f}, 0);
    } else {
      check(std::string(what) + " bf16 (composed)" + s, go.get(), ro.get(), ULP);
    }
  }
  {  // fp32
    const auto& f = puzzle::cpu_backend().ops;
    F gx(x, off), gw(w, off), gW(W, off), gr(r, off), go(res == 2 ? r : std::vector<float>(N * n_out, NAN), off);
    F ro(res == 2 ? r : std::vector<float>(N * n_out, NAN), off);
    std::vector<float> gln(N * C), rln(N * C), ggu(N * 2 * std::max<int64_t>(FF, 1)), rgu(ggu.size()), grs(N), rrs(N);
    if (glu) {
      G::norm_swiglu_forward(go.p, gln.data(), grs.data(), ggu.data(), gx.p, norm ? gw.p : nullptr, gW.p, N, C, FF, 1e-5f);
      f.norm_swiglu_forward(ro.p, rln.data(), rrs.data(), rgu.data(), gx.p, norm ? gw.p : nullptr, gW.p, N, C, FF, 1e-5f);
    } else {
      const float* gres = res == 1 ? gr.p : res == 2 ? go.p : nullptr;
      const float* rres = res == 1 ? gr.p : res == 2 ? ro.p : nullptr;
      G::norm_linear_forward(go.p, gln.data(), grs.data(), gx.p, norm ? gw.p : nullptr, gW.p, gres, N, C, OC, 1e-5f);
      f.norm_linear_forward(ro.p, rln.data(), rrs.data(), gx.p, norm ? gw.p : nullptr, gW.p, rres, N, C, OC, 1e-5f);
    }
    check(std::string(what) + " fp32" + s, go.get(), ro.get(), N <= 16 && (norm || !glu) ? 2e-5 : 1e-2);
  }
}

// norm + q|k|v product + RoPE + cache append: qkv and both caches (whose other rows must keep what
// they held) against the composition, positions given or (pos null) the defaults t
void t_qkv_rope(int64_t B, int64_t T, int64_t C, int64_t NH, int64_t NKV, int64_t HS, int64_t past, bool use_pos,
                int off = 0) {
  const int64_t h = HS / 2, N = B * T, QKV = (NH + 2 * NKV) * HS, KW = NKV * HS, Tmax = past + T + 2, P = past + T + 1;
  std::vector<float> cos(P * h), sin(P * h);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < h; ++i)
      cos[p * h + i] = std::cos(p * std::pow(0.5f, (float)i)), sin[p * h + i] = std::sin(p * std::pow(0.5f, (float)i));
  std::vector<int32_t> pos(T);
  for (int64_t t = 0; t < T; ++t) pos[t] = (int32_t)(past + t + 1);  // not t, so that a default would show
  const int32_t* pp = use_pos ? pos.data() : nullptr;
  auto x = randn(N * C), w = randn(C, 0.5f, 1.f), W = randn(QKV * C, 1.f / std::sqrt((float)C));
  auto k0 = randn(B * Tmax * KW), v0 = randn(B * Tmax * KW);
  std::string s = " B" + std::to_string(B) + " T" + std::to_string(T) + " C" + std::to_string(C) + " NH" +
                  std::to_string(NH) + " NKV" + std::to_string(NKV) + " HS" + std::to_string(HS) + " past" +
                  std::to_string(past) + (use_pos ? "" : " default positions") + " off" + std::to_string(off);
  const bool fused = N <= 16 && HS % 2 == 0;
  const auto& f = puzzle::cpu_backend().ops;
  {  // bf16
    H gx(x, off), gw(w, off), gW(W, off), gq(N * QKV, off), gk(k0, off), gv(v0, off), gln(N * C);
    H rx(x, off), rw(w, off), rW(W, off), rq(N * QKV, off), rk(k0, off), rv(v0, off), rln(N * C);
    std::vector<float> grs(N), rrs(N);
    const long before = g_emu_pdl_launches;
    G::norm_qkv_rope_cache_forward(gq.p, gln.p, grs.data(), gk.p, gv.p, gx.p, gw.p, gW.p, cos.data(), sin.data(), pp,
                                   B, T, C, NH, NKV, HS, past, Tmax, 1e-5f);
    const long launches = g_emu_pdl_launches - before;
    if (fused) {  // the fp32 math on the bf16 values, rounded once
      auto x16 = gx.get(), w16 = gw.get(), W16 = gW.get(), kc = H(k0).get(), vc = H(v0).get();
      std::vector<float> q32(N * QKV), ln(N * C), rs(N);
      f.norm_qkv_rope_cache_forward(q32.data(), ln.data(), rs.data(), kc.data(), vc.data(), x16.data(), w16.data(),
                                    W16.data(), cos.data(), sin.data(), pp, B, T, C, NH, NKV, HS, past, Tmax, 1e-5f);
      check("norm+qkv+rope+append bf16 (fused) qkv = fp32 math rounded once" + s, gq.get(), H(q32).get(), ULP);
      check("norm+qkv+rope+append bf16 (fused) k cache" + s, gk.get(), H(kc).get(), ULP);
      check("norm+qkv+rope+append bf16 (fused) v cache" + s, gv.get(), H(vc).get(), ULP);
      check("norm+qkv+rope+append bf16 is one launch" + s, {(float)launches}, {1.f}, 0);
    } else {
      R().norm_qkv_rope_cache_forward(rq.p, rln.p, rrs.data(), rk.p, rv.p, rx.p, rw.p, rW.p, cos.data(), sin.data(), pp,
                                      B, T, C, NH, NKV, HS, past, Tmax, 1e-5f);
      check("norm+qkv+rope+append bf16 (composed) qkv" + s, gq.get(), rq.get(), ULP);
      check("norm+qkv+rope+append bf16 (composed) caches" + s, concat(gk.get(), gv.get()), concat(rk.get(), rv.get()), ULP);
    }
  }
  {  // fp32
    F gx(x, off), gw(w, off), gW(W, off), gq(std::vector<float>(N * QKV, NAN), off), gk(k0, off), gv(v0, off);
    F rq(std::vector<float>(N * QKV, NAN), off), rk(k0, off), rv(v0, off);
    std::vector<float> gln(N * C), rln(N * C), grs(N), rrs(N);
    G::norm_qkv_rope_cache_forward(gq.p, gln.data(), grs.data(), gk.p, gv.p, gx.p, gw.p, gW.p, cos.data(), sin.data(),
                                   pp, B, T, C, NH, NKV, HS, past, Tmax, 1e-5f);
    f.norm_qkv_rope_cache_forward(rq.p, rln.data(), rrs.data(), rk.p, rv.p, gx.p, gw.p, gW.p, cos.data(), sin.data(),
                                  pp, B, T, C, NH, NKV, HS, past, Tmax, 1e-5f);
    const double tol = fused ? 2e-5 : 1e-2;
    check("norm+qkv+rope+append fp32 qkv" + s, gq.get(), rq.get(), tol);
    check("norm+qkv+rope+append fp32 caches" + s, concat(gk.get(), gv.get()), concat(rk.get(), rv.get()), tol);
  }
}

void t_attention(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
  const int64_t QKV = (NH + 2 * NKV) * HS, N = B * T, QW = NH * HS;
  auto qkv = randn(N * QKV), dout = randn(N * QW), d0 = randn(N * QKV, 0.1f);
  H q(qkv), go(N * QW), ro(N * QW), gd(dout), gdq(d0), rdq(d0);
  std::vector<float> glse(B * NH * T), rlse(B * NH * T);
  std::string s = " B" + std::to_string(B) + " T" + std::to_string(T) + " NH" + std::to_string(NH) + " NKV" +
                  std::to_string(NKV) + " HS" + std::to_string(HS);
  G::attention_forward(go.p, glse.data(), q.p, q.p + QW, q.p + QW + NKV * HS, B, T, NH, NKV, HS, QKV, QKV);
  R().attention_forward(ro.p, rlse.data(), q.p, q.p + QW, q.p + QW + NKV * HS, B, T, NH, NKV, HS, QKV, QKV);
  check("attention forward (bf16 bridge)" + s, go.get(), ro.get(), ULP);
  check("attention lse" + s, glse, rlse, 1e-6);
  G::attention_backward(gdq.p, gdq.p + QW, gdq.p + QW + NKV * HS, gd.p, q.p, q.p + QW, q.p + QW + NKV * HS, ro.p,
                        rlse.data(), B, T, NH, NKV, HS, QKV, QKV);
  R().attention_backward(rdq.p, rdq.p + QW, rdq.p + QW + NKV * HS, gd.p, q.p, q.p + QW, q.p + QW + NKV * HS, ro.p,
                         rlse.data(), B, T, NH, NKV, HS, QKV, QKV);
  check("attention backward dq|dk|dv (accumulated, fused slices)" + s, gdq.get(), rdq.get(), ULP);
  // cached: the first T-1 rows in a longer cache, the last token as the query
  const int64_t Tmax = T + 3, past = T - 1, KW = NKV * HS;
  auto kc = randn(B * Tmax * KW), vc = randn(B * Tmax * KW);
  H gk(kc), gv(vc), gco(B * QW), rco(B * QW);
  H q1(randn(B * QKV));
  G::attention_cached_forward(gco.p, q1.p, gk.p, gv.p, B, 1, NH, NKV, HS, QKV, past, Tmax);
  R().attention_cached_forward(rco.p, q1.p, gk.p, gv.p, B, 1, NH, NKV, HS, QKV, past, Tmax);
  check("attention cached forward (bf16 bridge)" + s, gco.get(), rco.get(), ULP);
}

// The mma.sync kernel (gemm_mma.cu) for bf16 operands: strides a multiple of 8 (ld+pad with
// K, M or N + pad = 0 mod 8), ragged edges in every dimension (a partial k chunk: K 70 in a row
// of 72), K past several pipeline stages, beta; BN 128 below one tile per SM (8 SMs here), BN
// 256 at and above it (M 264, N 1032: 15 tiles; M 256, N 2048: 16); split-K below 8 tiles
void t_gemm_mma() {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      t_gemm(ta, tb, 136, 144, 160, 0, 1.f, 0.f);
      t_gemm(ta, tb, 134, 150, 70, 2, 0.5f, 1.f);
    }
  t_gemm(false, false, 264, 1032, 40, 0, 1.f, 1.f);
  t_gemm(true, true, 256, 2048, 48, 0, 1.f, 0.f);
  // split-K (fewer 128 x 128 tiles than SMs, K of at least 8 k-tiles): the first split call takes
  // the scratch buffer, which is how this test knows the split path ran
  G::gemm_mma_trim_scratch();
  const long allocs = g_emu_allocs;
  t_gemm(false, true, 200, 300, 300, 4, 1.f, 0.f);  // 6 tiles, 10 k-tiles: 2 spans of 5
  check("gemm split-K took its scratch", {(float)(g_emu_allocs > allocs)}, {1.f}, 0.f);
  // 2 tiles, 32 k-tiles: 8 spans of 4, the last ragged (K 1006 ends in a partial chunk), ragged
  // M and N, alpha and beta, all four transposes; the scalar reduce (N % 4 != 0)
  for (bool ta : {false, true})
    for (bool tb : {false, true}) t_gemm(ta, tb, 70, 142, 1006, 2, 0.5f, 1.f);
  t_gemm(false, true, 40, 256, 512, 0, 1.f, 0.f);   // 4 spans, the float4 reduce, pair stores
  t_gemm(false, true, 33, 201, 264, 0, 1.f, 1.f);   // odd N and ldc: single stores; spans of 5 and 4
}

void t_fusions() {
  // the inference fusions: one row on the one-row dot kernel (n under 2 blocks per SM: 480 columns,
  // 240 SwiGLU pairs) with 16-byte loads (C 264) and without (C 1001, an odd offset), and on the dot
  // kernel (OC 600, F 300; C 1001: 16-byte staging and its one-at-a-time tail); 3, 5 and 16 rows,
  // the norm over three chunks of staged X (16 rows: C 1100 in chunks of 512), threads whose
  // staging crosses rows (16 x 264), a ragged last warp (F 33); every residual form; 20 rows compose
  t_norm_linear(1, 264, 70, true, 0);
  t_norm_linear(1, 1001, 70, true, 1);
  t_norm_linear(1, 264, 40, true, 0, 0, 1);
  t_norm_linear(1, 264, 600, true, 2);
  t_norm_linear(1, 1001, 600, true, 0);  // the dot kernel's 16-byte staging with a ragged row end
  t_norm_linear(1, 264, 600, false, 2);
  t_norm_linear(3, 300, 70, true, 1);
  t_norm_linear(5, 264, 48, false, 1);
  t_norm_linear(16, 1100, 40, true, 2);
  t_norm_linear(20, 264, 70, true, 1);
  t_norm_linear(20, 264, 70, false, 2);
  t_norm_linear(1, 264, 0, true, 0, 100);
  t_norm_linear(1, 1001, 0, true, 0, 100, 1);
  t_norm_linear(1, 264, 0, true, 0, 300);
  t_norm_linear(4, 1100, 0, true, 0, 40);
  t_norm_linear(16, 264, 0, true, 0, 33);
  t_norm_linear(2, 264, 0, false, 0, 24);  // SwiGLU without a norm: composed
  t_norm_linear(20, 264, 0, true, 0, 48);
  // norm + q|k|v + RoPE + append: one row on the one-row kernel (8B-like heads at C 264, 16-byte
  // loads; an odd offset and C without them) and on the dot kernel, 2, 3 (B 1 x T 3) and 16 rows (B 4 x T 4, a prefill)
  // on the dot kernel, a head size whose pairs straddle warps (HS 6: 3 pairs, 2 per warp), MHA and
  // one KV head, default positions; 20 rows compose
  t_qkv_rope(1, 1, 264, 8, 2, 32, 5, true);
  t_qkv_rope(1, 1, 1001, 4, 1, 16, 0, true, 1);
  t_qkv_rope(1, 1, 264, 16, 8, 16, 4, true);  // 256 pairs: one row on the dot kernel
  t_qkv_rope(2, 1, 264, 4, 4, 16, 7, true);
  t_qkv_rope(1, 3, 300, 6, 3, 6, 2, false);
  t_qkv_rope(4, 4, 264, 4, 2, 8, 3, true);
  t_qkv_rope(2, 10, 264, 4, 2, 8, 1, true);
}

int main() {
  // OPS_ONLY=tsan: the kernels with cp.async stages, shared atomics and the most barriers, the
  // mma.sync GEMM's and the fused dot kernels' (run.sh's TSan pass)
  if (const char* only = std::getenv("OPS_ONLY"); only && std::string(only) == "tsan") {
    t_gemm_mma();
    t_fusions();
    G::gemm_mma_trim_scratch();
    std::printf("%d/%d passed, %d failed; scratch allocs %ld frees %ld\n", total - fails, total, fails, g_emu_allocs,
                g_emu_frees);
    return fails || G::g_errors || g_emu_allocs != g_emu_frees ? 1 : 0;
  }
  for (int64_t n : {1, 7, 64, 1001})
    for (int oa : {0, 1, 3}) t_flat(n, oa, oa);
  t_flat(515, 1, 2);
  t_rmsnorm(5, 256, 0, true);
  t_rmsnorm(7, 1000, 1, true);
  t_rmsnorm(3, 48, 0, false);
  // more rows than blocks (8 SMs: 64 blocks of up to 3 rows, their partial sums added in 16 chunks
  // of 4), and one row (one block: its sums added with atomics, no partial-sum buffer)
  t_rmsnorm(150, 256, 0, true);
  t_rmsnorm(1, 256, 0, true);
  // the weight gradient in shared memory past the 48 KiB default (C 20000: 80 KiB, the limit
  // raised), and past all the device grants (C 60000: 240 KiB, the two-kernel path instead)
  t_rmsnorm(3, 20000, 0, true);
  t_rmsnorm(2, 60000, 0, true);
  t_rope(2, 5, 3, 16, 3 * 16 + 8, 0, true);
  t_rope(1, 4, 2, 6, 12, 1, false);
  t_swiglu(3, 64, 0);
  t_swiglu(2, 33, 1);
  t_kv(2, 3, 4, 2, 16, 5, 10, true);   // vector path (HS/2 % 4 == 0)
  t_kv(1, 2, 3, 1, 6, 0, 4, false);    // scalar path, default positions
  t_kv(3, 1, 8, 1, 32, 7, 9, true);    // a decode step: one token, one KV head
  t_add_rmsnorm(5, 256, 0, true);
  t_add_rmsnorm(3, 1000, 1, false);    // scalar path (odd offset)
  t_add_rmsnorm(2, 4096, 0, false);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      t_gemm(ta, tb, 130, 140, 70, 0, 1.f, 0.f);
      t_gemm(ta, tb, 129, 131, 33, 3, 0.5f, 1.f);
      t_gemm(ta, tb, 1, 300, 70, 1, 1.f, 1.f);
      t_gemm(ta, tb, 200, 5, 40, 0, 1.f, 0.f);
    }
  t_gemm_mma();
  // the few-rows dot kernel's 16-byte weight loads (8 bf16 per lane): K past one vector sweep
  // (256 values), a ragged tail, row strides that allow 16-byte loads and ones that do not
  t_gemm(false, true, 3, 70, 300, 0, 1.f, 0.f);
  t_gemm(false, true, 9, 33, 517, 0, 1.f, 1.f);
  t_gemm(false, true, 2, 40, 264, 0, 1.f, 0.f);
  t_gemm(false, true, 4, 24, 268, 4, 1.f, 0.f);
  t_gemm(false, true, 1, 20, 130, 2, 1.f, 0.f);
  // one row (decode): the one-row dot kernel below 2 blocks of the dot kernel per SM (8 SMs
  // here: n <= 480), vector loads with a ragged tail (K 1001, row stride 1008) and beta; the dot
  // kernel above that
  t_gemm(false, true, 1, 70, 1001, 7, 1.f, 1.f);
  t_gemm(false, true, 1, 480, 264, 0, 0.5f, 0.f);
  t_gemm(false, true, 1, 600, 64, 0, 1.f, 0.f);
  // X staged with 16-byte loads (stage_x): a ragged row end (one row, K 1001), 16 rows over three
  // chunks of 512 with a ragged last one (K 1100, row stride 1104), and the axpy kernel's X (op(B)^T
  // rows, K 1003, stride 1008)
  t_gemm(false, true, 1, 600, 1001, 0, 1.f, 0.f);
  t_gemm(false, true, 16, 40, 1100, 4, 1.f, 1.f);
  t_gemm(true, true, 150, 3, 1003, 5, 1.f, 0.f);
  t_fusions();
  t_attention(2, 9, 4, 2, 16);
  t_attention(1, 5, 2, 2, 8);
  G::gemm_mma_trim_scratch();  // the kept split-K buffer; anything else left is a leak
  check("launch_pdl asked for programmatic serialization", {(float)(g_emu_pdl_launches > 0)}, {1.f}, 0.f);
  {  // the rule behind pdl_enabled() (this test's own pdl_enabled() says yes, to reach launch_pdl's PDL path)
    using G::pdl_allowed;
    const bool rule[] = {pdl_allowed("1", 9, 90, 90),  pdl_allowed("1", 10, 100, 90), !pdl_allowed(nullptr, 9, 90, 90),
                         !pdl_allowed("0", 9, 90, 90), !pdl_allowed("11", 9, 90, 90), !pdl_allowed("1", 8, 90, 90),
                         !pdl_allowed("1", 9, 80, 90), !pdl_allowed("1", 9, 90, 80)};
    std::vector<float> got;
    for (bool r : rule) got.push_back(r);
    check("pdl_allowed: PUZZLE_CUDA_PDL=1, sm_90+ device, sm_90+ binary and PTX", got, std::vector<float>(got.size(), 1.f), 0.f);
  }
  std::printf("%d/%d passed, %d failed; scratch allocs %ld frees %ld\n", total - fails, total, fails, g_emu_allocs, g_emu_frees);
  return fails || G::g_errors || g_emu_allocs != g_emu_frees ? 1 : 0;
}
