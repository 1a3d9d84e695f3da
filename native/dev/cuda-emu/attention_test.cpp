// Tests of native/src/cuda/attention.cu in the CPU emulator (emu.h, emu_wmma.h; built and run by
// run.sh) against fp64 references: attention_forward, attention_backward (accumulating into a
// pre-filled fused QKV gradient, its pad columns checked untouched) and attention_cached_forward.
//   attention_test SET [SMEM_OPTIN [SMS]]
// SET picks the cases (see main); SMEM_OPTIN (default 232448, an H100/H200) and SMS stand in for
// the device attributes the host code reads, so 166912 exercises the sm_80 (A100) tile choices.
// PUZZLE_CUDA_ATTN=simt forces the fp32 kernels, as on the GPU. Tolerances: the fp32 kernels
// within 2e-5 (forward) / 5e-5 (backward) of max |ref| per element; the tensor-core ones (bf16
// operands, fp32 accumulation) within 2e-2 per element and 1e-2 relative L2 norm.
// Exit status 0 when every check passed.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "emu.h"
#include "emu_wmma.h"
#include "cuda/common.cuh"  // the entry points under test, as the kernels declare them

namespace puzzle::cuda {
cudaStream_t stream() { return nullptr; }
int g_errors = 0;
bool pdl_enabled() { return true; }  // the decode kernels go through cudaLaunchKernelEx with PDL
void record_error(cudaError_t e, const char* where) {
  if (e != cudaSuccess) { std::fprintf(stderr, "record_error %d at %s\n", e, where); ++g_errors; }
}
}  // namespace puzzle::cuda
using namespace puzzle::cuda;

static bool tc_active(int64_t HS) {
  const char* e = std::getenv("PUZZLE_CUDA_ATTN");
  return !(e && std::string(e) == "simt") && (HS == 64 || HS == 128);
}
static const float NaN = std::numeric_limits<float>::quiet_NaN();
static int failures = 0;
std::mt19937 rng(123);
static void fill(std::vector<float>& v, float sc = 1.f) {
  std::normal_distribution<float> n(0.f, sc);
  for (auto& x : v) x = n(rng);
}

// Fails when an element is off by more than tol * scale (+1e-6), or, for l2tol > 0, when the
// L2 error relative to |ref|_2 exceeds l2tol. scale = max|ref|; where that is below floor, both
// use floor instead (|ref|_2 -> floor * sqrt(n)): the scale of a gradient that is exactly 0 (dq,
// dk at T = 1) but is computed from O(1) operands.
static void check(const char* what, const std::vector<float>& got, const std::vector<double>& ref, double tol,
                  const std::string& ctx, double l2tol = 0, double floor = 0) {
  double maxref = 0, maxerr = 0;
  size_t bad = 0, worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) maxref = std::max(maxref, std::fabs(ref[i]));
  const double scale = std::max(maxref, floor);
  for (size_t i = 0; i < ref.size(); ++i) {
    double e = std::fabs((double)got[i] - ref[i]);
    if (!(e <= tol * scale + 1e-6)) { ++bad; if (!(e <= maxerr)) { maxerr = e; worst = i; } }
    else if (e > maxerr) { maxerr = e; worst = i; }
  }
  double n2 = 0, d2 = 0;
  for (size_t i = 0; i < ref.size(); ++i) { double e = (double)got[i] - ref[i]; n2 += e * e; d2 += ref[i] * ref[i]; }
  const double rel2 = std::sqrt(n2 / ((maxref < floor ? floor * floor * (double)ref.size() : d2) + 1e-300));
  const bool ok = bad == 0 && (l2tol <= 0 || rel2 <= l2tol);
  if (!ok) ++failures;
  std::printf("  %-4s %-6s maxerr %.3g (rel %.3g) maxref %.3g relL2 %.3g%s", ok ? "ok" : "FAIL", what, maxerr,
              maxerr / (scale + 1e-30), maxref, rel2, ok ? "\n" : "");
  if (!ok) std::printf("  bad=%zu worst idx %zu got %g ref %g [%s]\n", bad, worst, got[worst], ref[worst], ctx.c_str());
}

// ---------------- references (double)
struct Dims { int64_t B, T, NH, NKV, HS, qs, kvs; };

static void ref_forward(const Dims& d, const float* q, const float* k, const float* v, std::vector<double>& out,
                        std::vector<double>& lse, std::vector<double>* P /*[B,NH,T,T]*/) {
  const int64_t group = d.NH / d.NKV;
  const double scale = 1.0 / std::sqrt((double)d.HS);
  out.assign(d.B * d.T * d.NH * d.HS, 0);
  lse.assign(d.B * d.NH * d.T, 0);
  if (P) P->assign(d.B * d.NH * d.T * d.T, 0);
  std::vector<double> s(d.T);
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.NH; ++h) {
      int64_t g = h / group;
      for (int64_t i = 0; i < d.T; ++i) {
        double mx = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          double acc = 0;
          for (int64_t c = 0; c < d.HS; ++c)
            acc += (double)q[(b * d.T + i) * d.qs + h * d.HS + c] * k[(b * d.T + j) * d.kvs + g * d.HS + c];
          s[j] = acc * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= i; ++j) { s[j] = std::exp(s[j] - mx); sum += s[j]; }
        lse[(b * d.NH + h) * d.T + i] = mx + std::log(sum);
        for (int64_t j = 0; j <= i; ++j) {
          double p = s[j] / sum;
          if (P) (*P)[((b * d.NH + h) * d.T + i) * d.T + j] = p;
          for (int64_t c = 0; c < d.HS; ++c)
            out[((b * d.T + i) * d.NH + h) * d.HS + c] += p * v[(b * d.T + j) * d.kvs + g * d.HS + c];
        }
      }
    }
}

// ---------------- forward test
static void test_forward(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t pad) {
  Dims d{B, T, NH, NKV, HS, 0, 0};
  const int64_t QKV = (NH + 2 * NKV) * HS + pad;
  d.qs = d.kvs = QKV;
  std::vector<float> qkv(B * T * QKV);
  fill(qkv);
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t c = (NH + 2 * NKV) * HS; c < QKV; ++c) qkv[r * QKV + c] = NaN;
  std::vector<float> out(B * T * NH * HS, NaN), lse(B * NH * T, NaN);
  const float *q = qkv.data(), *k = q + NH * HS, *v = k + NKV * HS;
  attention_forward(out.data(), lse.data(), q, k, v, B, T, NH, NKV, HS, QKV, QKV);
  std::vector<double> ro, rl;
  ref_forward(d, q, k, v, ro, rl, nullptr);
  char ctx[200];
  std::snprintf(ctx, sizeof ctx, "fwd B%ld T%ld NH%ld NKV%ld HS%ld pad%ld", B, T, NH, NKV, HS, pad);
  std::printf("%s\n", ctx);
  const double tol = tc_active(HS) ? 2e-2 : 2e-5, l2tol = tc_active(HS) ? 1e-2 : 0;
  check("out", out, ro, tol, ctx, l2tol, l2tol > 0 ? 1.0 : 0);
  check("lse", lse, rl, tol, ctx, l2tol, l2tol > 0 ? 1.0 : 0);  // lse near 0 at T = 1: scale 1
  for (auto x : out) if (!std::isfinite(x)) { std::printf("  FAIL non-finite out\n"); ++failures; break; }
}

// The tensor-core forward on bf16 storage (q, k, v read as bf16, out written as bf16): against the
// fp64 reference on the same (bf16) values, with the tensor-core tolerances.
static void test_forward16(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t pad, bool mma = false) {
  Dims d{B, T, NH, NKV, HS, 0, 0};
  const int64_t QKV = (NH + 2 * NKV) * HS + pad;
  d.qs = d.kvs = QKV;
  std::vector<float> qkv(B * T * QKV);
  fill(qkv);
  std::vector<puzzle::bf16> h(qkv.size());
  for (size_t i = 0; i < qkv.size(); ++i) h[i] = puzzle::f32_to_bf16(qkv[i]), qkv[i] = puzzle::bf16_to_f32(h[i]);
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t c = (NH + 2 * NKV) * HS; c < QKV; ++c) h[r * QKV + c] = puzzle::f32_to_bf16(NaN);
  std::vector<puzzle::bf16> out(B * T * NH * HS, puzzle::f32_to_bf16(NaN));
  std::vector<float> lse(B * NH * T, NaN);
  const puzzle::bf16 *q = h.data(), *k = q + NH * HS, *v = k + NKV * HS;
  const bool took = (mma ? attention_forward_mma : attention_forward_tc)(out.data(), lse.data(), q, k, v, B, T, NH, NKV,
                                                                        HS, QKV, QKV);
  std::vector<double> ro, rl;
  ref_forward(d, qkv.data(), qkv.data() + NH * HS, qkv.data() + (NH + NKV) * HS, ro, rl, nullptr);
  std::vector<float> got(out.size());
  for (size_t i = 0; i < out.size(); ++i) got[i] = puzzle::bf16_to_f32(out[i]);
  char ctx[200];
  std::snprintf(ctx, sizeof ctx, "fwd bf16%s B%ld T%ld NH%ld NKV%ld HS%ld pad%ld", mma ? " mma" : "", B, T, NH, NKV,
                HS, pad);
  std::printf("%s\n", ctx);
  if (!took) std::printf("  FAIL declined\n"), ++failures;
  check("out", got, ro, 2e-2, ctx, 1e-2, 1.0);
  check("lse", lse, rl, 2e-2, ctx, 1e-2, 1.0);
}

// ---------------- backward tests
// The reference gradients of a fused [B*T, QKV] q|k|v layout, added to init (the same layout):
// dq, dk, dv as mask bits 1, 2, 4 ask.
static std::vector<double> ref_backward(const Dims& d, const float* q, const float* k, const float* v,
                                        const std::vector<float>& dout, const std::vector<float>& init, int mask) {
  const int64_t B = d.B, T = d.T, NH = d.NH, NKV = d.NKV, HS = d.HS, QKV = d.qs;
  std::vector<double> ro, rl, P;
  ref_forward(d, q, k, v, ro, rl, &P);
  const int64_t group = NH / NKV;
  const double scale = 1.0 / std::sqrt((double)HS);
  std::vector<double> ref(init.begin(), init.end());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h) {
      int64_t g = h / group;
      for (int64_t i = 0; i < T; ++i) {
        const float* doi = &dout[((b * T + i) * NH + h) * HS];
        double D = 0;
        for (int64_t c = 0; c < HS; ++c) D += (double)doi[c] * ro[((b * T + i) * NH + h) * HS + c];
        for (int64_t j = 0; j <= i; ++j) {
          double p = P[((b * NH + h) * T + i) * T + j];
          double dp = 0;
          for (int64_t c = 0; c < HS; ++c) dp += (double)doi[c] * v[(b * T + j) * QKV + g * HS + c];
          double ds = p * (dp - D) * scale;
          for (int64_t c = 0; c < HS; ++c) {
            if (mask & 4) ref[(b * T + j) * QKV + (NH + NKV) * HS + g * HS + c] += p * doi[c];
            if (mask & 1) ref[(b * T + i) * QKV + h * HS + c] += ds * k[(b * T + j) * QKV + g * HS + c];
            if (mask & 2) ref[(b * T + j) * QKV + NH * HS + g * HS + c] += ds * q[(b * T + i) * QKV + h * HS + c];
          }
        }
      }
    }
  return ref;
}

// Compares a fused gradient slice by slice, each relative to the gradient itself (init
// subtracted), and checks the pad columns still hold sentinel. tc: the tensor-core tolerances.
static void check_grads(const Dims& d, const std::vector<float>& got, const std::vector<double>& ref,
                        const std::vector<float>& init, float sentinel, bool tc, const char* ctx) {
  const int64_t NH = d.NH, NKV = d.NKV, HS = d.HS, QKV = d.qs, rows = d.B * d.T;
  const char* names[4] = {"dq", "dk", "dv", "pad"};
  for (int part = 0; part < 4; ++part) {
    int64_t c0 = part == 0 ? 0 : part == 1 ? NH * HS : part == 2 ? (NH + NKV) * HS : (NH + 2 * NKV) * HS;
    int64_t c1 = part == 0 ? NH * HS : part == 1 ? (NH + NKV) * HS : part == 2 ? (NH + 2 * NKV) * HS : QKV;
    if (c1 == c0) continue;
    if (part == 3) {
      bool ok = true;
      for (int64_t row = 0; row < rows; ++row)
        for (int64_t c = c0; c < c1; ++c) ok = ok && got[row * QKV + c] == sentinel;
      std::printf("  %-4s pad untouched\n", ok ? "ok" : "FAIL");
      if (!ok) ++failures;
      continue;
    }
    std::vector<float> gd;
    std::vector<double> rd;
    for (int64_t row = 0; row < rows; ++row)
      for (int64_t c = c0; c < c1; ++c) {
        gd.push_back((float)((double)got[row * QKV + c] - init[row * QKV + c]));
        rd.push_back(ref[row * QKV + c] - init[row * QKV + c]);
      }
    if (tc)
      check(names[part], gd, rd, 2e-2, ctx, 1e-2, 1.0);
    else
      check(names[part], gd, rd, 5e-5, ctx);
  }
}

static void test_backward(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t pad, int mask) {
  Dims d{B, T, NH, NKV, HS, 0, 0};
  const int64_t QKV = (NH + 2 * NKV) * HS + pad;
  d.qs = d.kvs = QKV;
  std::vector<float> qkv(B * T * QKV);
  fill(qkv);
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t c = (NH + 2 * NKV) * HS; c < QKV; ++c) qkv[r * QKV + c] = NaN;
  const float *q = qkv.data(), *k = q + NH * HS, *v = k + NKV * HS;
  std::vector<float> out(B * T * NH * HS, NaN), lse(B * NH * T, NaN);
  attention_forward(out.data(), lse.data(), q, k, v, B, T, NH, NKV, HS, QKV, QKV);
  std::vector<float> dout(B * T * NH * HS);
  fill(dout);
  std::vector<float> dqkv(B * T * QKV);
  fill(dqkv, 0.5f);
  const float sentinel = 12345.f;
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t c = (NH + 2 * NKV) * HS; c < QKV; ++c) dqkv[r * QKV + c] = sentinel;
  std::vector<float> init = dqkv;
  float* dq = (mask & 1) ? dqkv.data() : nullptr;
  float* dk = (mask & 2) ? dqkv.data() + NH * HS : nullptr;
  float* dv = (mask & 4) ? dqkv.data() + (NH + NKV) * HS : nullptr;
  attention_backward(dq, dk, dv, dout.data(), q, k, v, out.data(), lse.data(), B, T, NH, NKV, HS, QKV, QKV);
  const std::vector<double> ref = ref_backward(d, q, k, v, dout, init, mask);
  char ctx[200];
  std::snprintf(ctx, sizeof ctx, "bwd B%ld T%ld NH%ld NKV%ld HS%ld pad%ld mask%d", B, T, NH, NKV, HS, pad, mask);
  std::printf("%s\n", ctx);
  // the tensor-core backward also gets the tensor-core forward's out and lse
  check_grads(d, dqkv, ref, init, sentinel, tc_active(HS), ctx);
}

// The tensor-core backward on bf16 storage: q, k, v, out, dout read as bf16; dk, dv added to
// their bf16 slices in place, dq summed in a packed fp32 buffer (as attention_bf16.cu does) and
// added to its bf16 slice here. Against the fp64 reference on the same (bf16) values, with out
// and lse from the bf16 tensor-core forward.
static void test_backward16(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t pad, int mask,
                            bool mma = false) {
  using puzzle::bf16;
  using puzzle::bf16_to_f32;
  using puzzle::f32_to_bf16;
  Dims d{B, T, NH, NKV, HS, 0, 0};
  const int64_t QKV = (NH + 2 * NKV) * HS + pad, QS = NH * HS;
  d.qs = d.kvs = QKV;
  auto rounded = [](std::vector<float>& x) {  // x rounded to bf16, and its bf16 copy
    std::vector<bf16> h(x.size());
    for (size_t i = 0; i < x.size(); ++i) h[i] = f32_to_bf16(x[i]), x[i] = bf16_to_f32(h[i]);
    return h;
  };
  std::vector<float> qkv(B * T * QKV);
  fill(qkv);
  std::vector<bf16> h = rounded(qkv);
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t c = (NH + 2 * NKV) * HS; c < QKV; ++c) h[r * QKV + c] = f32_to_bf16(NaN);
  const bf16 *q = h.data(), *k = q + NH * HS, *v = k + NKV * HS;
  std::vector<bf16> out(B * T * QS, f32_to_bf16(NaN));
  std::vector<float> lse(B * NH * T, NaN);
  if (!attention_forward_tc(out.data(), lse.data(), q, k, v, B, T, NH, NKV, HS, QKV, QKV)) {
    // the tensor-core forward does not fit this device (smallsmem): out and lse from the fp32 one
    std::vector<float> out32(out.size());
    attention_forward(out32.data(), lse.data(), qkv.data(), qkv.data() + NH * HS, qkv.data() + (NH + NKV) * HS, B, T, NH,
                      NKV, HS, QKV, QKV);
    for (size_t i = 0; i < out.size(); ++i) out[i] = f32_to_bf16(out32[i]);
  }
  std::vector<float> dout(B * T * QS);
  fill(dout);
  std::vector<bf16> dout16 = rounded(dout);
  std::vector<float> dqkv(B * T * QKV);
  fill(dqkv, 0.25f);
  const float sentinel = 12288.f;  // exact in bf16 (3 * 2^12)
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t c = (NH + 2 * NKV) * HS; c < QKV; ++c) dqkv[r * QKV + c] = sentinel;
  std::vector<bf16> g16 = rounded(dqkv);
  const std::vector<float> init = dqkv;
  std::vector<float> dq32((mask & 1) ? B * T * QS : 0, 0.f);
  bf16* dk = (mask & 2) ? g16.data() + NH * HS : nullptr;
  bf16* dv = (mask & 4) ? g16.data() + (NH + NKV) * HS : nullptr;
  bool took;
  if (mma) {  // attention_mma.cu, which runs the pre-pass D = rowsum(dout * out) into D first
    std::vector<float> D(B * NH * T, NaN);
    took = attention_backward_mma((mask & 1) ? dq32.data() : nullptr, dk, dv, dout16.data(), q, k, v, out.data(),
                                  lse.data(), D.data(), B, T, NH, NKV, HS, QKV, QKV);
  } else {
    took = attention_backward_tc((mask & 1) ? dq32.data() : nullptr, dk, dv, dout16.data(), q, k, v, out.data(),
                                 lse.data(), B, T, NH, NKV, HS, QKV, QKV);
  }
  for (int64_t r = 0; r < B * T && (mask & 1); ++r)  // the caller's one rounding of dq into its slice
    for (int64_t c = 0; c < QS; ++c)
      g16[r * QKV + c] = f32_to_bf16(bf16_to_f32(g16[r * QKV + c]) + dq32[r * QS + c]);
  std::vector<float> got(g16.size());
  for (size_t i = 0; i < g16.size(); ++i) got[i] = bf16_to_f32(g16[i]);
  const std::vector<double> ref =
      ref_backward(d, qkv.data(), qkv.data() + NH * HS, qkv.data() + (NH + NKV) * HS, dout, init, mask);
  char ctx[200];
  std::snprintf(ctx, sizeof ctx, "bwd bf16%s B%ld T%ld NH%ld NKV%ld HS%ld pad%ld mask%d", mma ? " mma" : "", B, T, NH,
                NKV, HS, pad, mask);
  std::printf("%s\n", ctx);
  if (!took) std::printf("  FAIL declined\n"), ++failures;
  check_grads(d, got, ref, init, sentinel, true, ctx);
}

// ---------------- cached test
static void test_cached(int64_t B, int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tmax,
                        int64_t pad, int sms) {
  (void)sms;
  sms = g_emu_sms;
  const int64_t QKV = (NH + 2 * NKV) * HS + pad, KVS = NKV * HS;
  std::vector<float> qkv(B * Tq * QKV);
  fill(qkv);
  std::vector<float> kc(B * Tmax * KVS), vc(B * Tmax * KVS);
  fill(kc);
  fill(vc);
  const int64_t nk = past + Tq;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = nk; t < Tmax; ++t)
      for (int64_t c = 0; c < KVS; ++c) kc[(b * Tmax + t) * KVS + c] = vc[(b * Tmax + t) * KVS + c] = NaN;
  // rows of the pad columns / other slices in q buffer: k, v columns of qkv are not read by the cached op
  for (int64_t r = 0; r < B * Tq; ++r)
    for (int64_t c = NH * HS; c < QKV; ++c) qkv[r * QKV + c] = NaN;
  std::vector<float> out(B * Tq * NH * HS, NaN);
  attention_cached_forward(out.data(), qkv.data(), kc.data(), vc.data(), B, Tq, NH, NKV, HS, QKV, past, Tmax);
  const int64_t group = NH / NKV;
  const double scale = 1.0 / std::sqrt((double)HS);
  std::vector<double> ref(out.size(), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t t = 0; t < Tq; ++t) {
        int64_t g = h / group, n = past + t + 1;
        std::vector<double> s(n);
        double mx = -1e300;
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (int64_t c = 0; c < HS; ++c)
            acc += (double)qkv[(b * Tq + t) * QKV + h * HS + c] * kc[(b * Tmax + j) * KVS + g * HS + c];
          s[j] = acc * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (auto& x : s) { x = std::exp(x - mx); sum += x; }
        for (int64_t j = 0; j < n; ++j)
          for (int64_t c = 0; c < HS; ++c)
            ref[((b * Tq + t) * NH + h) * HS + c] += s[j] / sum * vc[(b * Tmax + j) * KVS + g * HS + c];
      }
  char ctx[200];
  std::snprintf(ctx, sizeof ctx, "cached B%ld Tq%ld NH%ld NKV%ld HS%ld past%ld Tmax%ld pad%ld sms%d", B, Tq, NH, NKV,
                HS, past, Tmax, pad, sms);
  std::printf("%s\n", ctx);
  check("out", out, ref, 2e-5, ctx);
}

// ---------------- bf16 decode: the split-KV kernel reading bf16 q and caches, writing bf16 out;
// against fp64 on the same (bf16) values, within the output's bf16 rounding (6e-3 of max |ref|).
// prefill: the tensor-core forward over the cache instead (attention_cached_forward_tc, more
// queries), with the tensor-core tolerances.
static void test_decode16(int64_t B, int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tmax,
                          int64_t pad, bool prefill = false, bool mma = false) {
  using puzzle::bf16;
  const int64_t QKV = (NH + 2 * NKV) * HS + pad, KVS = NKV * HS;
  auto rnd = [](size_t n) {
    std::vector<float> f(n);
    fill(f);
    std::vector<bf16> h(n);
    for (size_t i = 0; i < n; ++i) h[i] = puzzle::f32_to_bf16(f[i]);
    return h;
  };
  auto qkv = rnd(B * Tq * QKV), kc = rnd(B * Tmax * KVS), vc = rnd(B * Tmax * KVS);
  const bf16 nan = puzzle::f32_to_bf16(NaN);
  for (int64_t b = 0; b < B; ++b)  // rows past the visible cache must never be read
    for (int64_t t = past + Tq; t < Tmax; ++t)
      for (int64_t c = 0; c < KVS; ++c) kc[(b * Tmax + t) * KVS + c] = vc[(b * Tmax + t) * KVS + c] = nan;
  std::vector<bf16> out(B * Tq * NH * HS, nan);
  const bool took = (!prefill ? attention_decode : mma ? attention_cached_forward_mma : attention_cached_forward_tc)(
      out.data(), qkv.data(), kc.data(),
                                                                               vc.data(), B, Tq, NH, NKV, HS, QKV, past,
                                                                               Tmax);
  auto f = [](bf16 x) { return (double)puzzle::bf16_to_f32(x); };
  const int64_t group = NH / NKV;
  const double scale = 1.0 / std::sqrt((double)HS);
  std::vector<double> ref(out.size(), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t t = 0; t < Tq; ++t) {
        const int64_t g = h / group, n = past + t + 1;
        std::vector<double> sc(n);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (int64_t c = 0; c < HS; ++c) acc += f(qkv[(b * Tq + t) * QKV + h * HS + c]) * f(kc[(b * Tmax + j) * KVS + g * HS + c]);
          sc[j] = acc * scale, mx = std::max(mx, sc[j]);
        }
        for (auto& x : sc) x = std::exp(x - mx), sum += x;
        for (int64_t j = 0; j < n; ++j)
          for (int64_t c = 0; c < HS; ++c) ref[((b * Tq + t) * NH + h) * HS + c] += sc[j] / sum * f(vc[(b * Tmax + j) * KVS + g * HS + c]);
      }
  std::vector<float> got(out.size());
  for (size_t i = 0; i < out.size(); ++i) got[i] = puzzle::bf16_to_f32(out[i]);
  char ctx[200];
  std::snprintf(ctx, sizeof ctx, "bf16 %s B%ld Tq%ld NH%ld NKV%ld HS%ld past%ld pad%ld", !prefill ? "decode" : mma ? "cached prefill mma" : "cached prefill",
                (long)B, (long)Tq, (long)NH, (long)NKV, (long)HS, (long)past, (long)pad);
  std::printf("%s\n", ctx);
  if (!took) std::printf("  FAIL declined\n"), ++failures;
  if (prefill)
    check("out", got, ref, 2e-2, ctx, 1e-2, 1.0);
  else
    check("out", got, ref, 6e-3, ctx);
}

int main(int argc, char** argv) {
  std::string which = argc > 1 ? argv[1] : "all";
  if (argc > 2) g_emu_smem_optin = std::atoi(argv[2]);
  if (argc > 3) g_emu_sms = std::atoi(argv[3]);
  if (which == "tc") {
    test_forward(1, 1, 1, 1, 64, 0);
    test_forward(1, 1, 2, 1, 128, 0);
    test_forward(2, 70, 4, 2, 64, 0);
    test_forward(1, 130, 4, 1, 64, 1);     // misaligned stride: scalar loads
    test_forward(1, 300, 2, 2, 128, 0);    // 3 query tiles, partial last
    test_forward(2, 256, 8, 2, 128, 0);    // exact tiles, group 4
    test_forward(1, 200, 2, 1, 128, 3);    // misaligned, group 2
    test_forward(1, 129, 2, 2, 64, 0);
  }
  if (which == "tcbwd") {  // tensor-core backward (HS 64: key tile 128 on sm_90 sizes, 64 with 166912)
    test_backward(1, 1, 2, 1, 64, 0, 7);
    test_backward(1, 1, 2, 2, 128, 0, 7);
    test_backward(1, 63, 4, 2, 64, 0, 7);
    test_backward(1, 63, 2, 1, 128, 1, 7);    // misaligned strides: scalar loads
    test_backward(1, 130, 4, 1, 64, 0, 7);    // group 4
    test_backward(2, 130, 4, 4, 128, 0, 7);   // NKV = NH
    test_backward(1, 300, 4, 2, 128, 0, 7);   // 5 query tiles, partial last
    test_backward(1, 300, 2, 2, 64, 3, 7);    // misaligned
    test_backward(1, 130, 4, 2, 128, 0, 1);   // dq only
    test_backward(1, 130, 4, 2, 64, 0, 6);    // dk, dv only
    test_backward(1, 192, 2, 1, 64, 0, 2);    // exact tiles, dk only
  }
  if (which == "tcbwd-small") {  // a quicker subset (TSan; at @101376 HS 128 stages dQ in halves)
    test_backward(1, 130, 2, 1, 64, 0, 7);
    test_backward(1, 130, 4, 2, 128, 1, 7);
  }
  if (which == "fwd" || which == "all") {
    test_forward(1, 1, 1, 1, 32, 0);
    test_forward(2, 70, 4, 2, 32, 0);
    test_forward(1, 130, 4, 1, 64, 0);
    test_forward(1, 65, 2, 2, 128, 0);
    test_forward(1, 100, 2, 1, 48, 1);   // misaligned stride, padded head size
    test_forward(1, 64, 3, 3, 16, 3);
    test_forward(1, 40, 2, 1, 80, 0);
    test_forward(1, 70, 2, 2, 256, 0);
    test_forward(1, 33, 2, 1, 18, 2);    // HS not a multiple of 4
    test_forward(1, 129, 6, 2, 96, 0);
  }
  if (which == "bwd" || which == "all") {
    test_backward(1, 1, 1, 1, 32, 0, 7);
    test_backward(2, 70, 4, 2, 32, 0, 7);
    test_backward(1, 130, 4, 1, 64, 0, 7);
    test_backward(1, 100, 2, 1, 48, 1, 7);
    test_backward(1, 65, 2, 2, 128, 0, 7);
    test_backward(1, 70, 2, 1, 256, 0, 7);
    test_backward(1, 33, 6, 3, 18, 2, 7);
    test_backward(1, 50, 2, 1, 64, 0, 1);
    test_backward(1, 50, 2, 1, 64, 0, 6);
    test_backward(1, 50, 2, 1, 64, 0, 2);
    test_backward(1, 97, 4, 2, 96, 0, 5);
  }
  if (which == "bwd80") {  // with PUZZLE_CUDA_ATTN=simt and 166912: the SIMT sm_80 fallback for HS 128
    test_backward(1, 130, 4, 2, 128, 0, 7);
    test_backward(1, 70, 2, 2, 112, 1, 7);
  }
  if (which == "cached" || which == "all") {
    test_cached(1, 1, 4, 2, 32, 0, 8, 0, 8);
    test_cached(1, 1, 4, 2, 64, 300, 400, 0, 8);
    test_cached(2, 1, 8, 2, 128, 1000, 1100, 0, 8);
    test_cached(1, 1, 4, 4, 128, 77, 100, 1, 132);    // misaligned q stride, nsplit 1? (base 4)
    test_cached(1, 3, 4, 1, 64, 200, 300, 0, 8);      // multi-query, R = 12
    test_cached(1, 5, 8, 1, 48, 150, 160, 0, 8);      // R = 40 -> 3 chunks
    test_cached(1, 1, 20, 1, 256, 500, 600, 0, 8);    // R = 20 -> 2 chunks, HS 256
    test_cached(2, 16, 4, 2, 32, 40, 64, 2, 8);       // Tq = 16 decode path, misaligned
    test_cached(1, 17, 4, 2, 64, 100, 200, 0, 8);     // tiled path with past
    test_cached(1, 70, 4, 1, 128, 0, 80, 0, 8);       // prefill past 0
    test_cached(1, 40, 2, 2, 80, 33, 80, 1, 8);       // tiled, past not a tile multiple
    test_cached(3, 1, 2, 1, 16, 31, 32, 0, 2);
    test_cached(1, 2, 2, 1, 128, 4000, 4100, 0, 132);
    test_cached(1, 1, 4, 1, 64, 8100, 8200, 0, 132);   // 64 partitions: combine over 2 warps
  }
  if (which == "tc16") {  // the tensor-core forward on bf16 q, k, v and out
    test_forward16(1, 1, 2, 1, 64, 0);
    test_forward16(2, 70, 4, 2, 64, 0);
    test_forward16(1, 130, 4, 1, 64, 1);    // q/kv stride not a multiple of 4: scalar loads
    test_forward16(1, 200, 2, 2, 128, 0);
    test_forward16(1, 129, 4, 2, 128, 3);
    std::vector<puzzle::bf16> o(1), x(1);
    std::vector<float> l(1);
    if (attention_forward_tc(o.data(), l.data(), x.data(), x.data(), x.data(), 1, 1, 1, 1, 32, 96, 96))
      std::printf("  FAIL HS 32 must be declined\n"), ++failures;
  }
  if (which == "mma16" || which == "mma16-small") {  // attention_mma.cu: mma.sync, ldmatrix, cp.async stages
    test_forward16(1, 1, 2, 1, 64, 0, true);
    test_forward16(1, 130, 4, 2, 128, 0, true);   // 2 query tiles, 3 key tiles: both stages reused
    test_decode16(2, 70, 4, 2, 64, 33, 120, 1, true, true);  // over a cache: past 33, q misaligned
    if (which == "mma16") {
      test_forward16(2, 70, 4, 2, 64, 0, true);
      test_forward16(1, 130, 4, 1, 64, 1, true);  // rows not 16-byte aligned: element copies
      test_forward16(1, 300, 2, 2, 128, 0, true); // partial last tiles, 5 key tiles
      test_forward16(1, 256, 4, 2, 128, 0, true); // exact tiles, group 2
      test_forward16(1, 129, 4, 4, 128, 3, true);
      test_decode16(1, 130, 4, 1, 128, 100, 240, 0, true, true);  // 2 query tiles after 100 cached rows
      test_decode16(1, 17, 2, 2, 64, 0, 17, 0, true, true);       // a fresh cache, Tmax = the rows
    }
    std::vector<puzzle::bf16> o(1), x(1);
    std::vector<float> l(1);
    if (attention_forward_mma(o.data(), l.data(), x.data(), x.data(), x.data(), 1, 1, 1, 1, 32, 96, 96))
      std::printf("  FAIL HS 32 must be declined\n"), ++failures;
  }
  if (which == "mmabwd16" || which == "mmabwd16-small") {  // the mma.sync backward of attention_mma.cu
    test_backward16(1, 1, 2, 1, 64, 0, 7, true);
    test_backward16(1, 200, 4, 2, 128, 0, 7, true);  // 2 key blocks, 4 query steps per head: stages reused
    if (which == "mmabwd16") {
      test_backward16(1, 63, 2, 1, 128, 1, 7, true);   // rows not 16-byte aligned: element copies
      test_backward16(2, 130, 4, 4, 64, 0, 7, true);   // NKV = NH
      test_backward16(1, 300, 4, 1, 64, 3, 7, true);   // group 4, misaligned, partial tiles
      test_backward16(1, 256, 2, 2, 128, 0, 7, true);  // exact tiles
      test_backward16(1, 130, 4, 2, 128, 0, 1, true);  // dq only
      test_backward16(1, 130, 4, 2, 64, 0, 6, true);   // dk, dv only
    }
    std::vector<float> g(1), l(1);
    std::vector<puzzle::bf16> x(1);
    if (attention_backward_mma(g.data(), x.data(), x.data(), x.data(), x.data(), x.data(), x.data(), x.data(), l.data(),
                               l.data(), 1, 1, 1, 1, 32, 96, 96))
      std::printf("  FAIL HS 32 must be declined\n"), ++failures;
  }
  if (which == "tcbwd16") {  // the tensor-core backward on bf16 storage (dq via fp32, dk/dv in place)
    test_backward16(1, 1, 2, 1, 64, 0, 7);
    test_backward16(1, 63, 4, 2, 64, 0, 7);
    test_backward16(1, 63, 2, 1, 128, 1, 7);   // q/kv stride not a multiple of 4: scalar loads
    test_backward16(2, 130, 4, 4, 128, 0, 7);  // NKV = NH
    test_backward16(1, 300, 4, 2, 128, 0, 7);  // partial last tiles
    test_backward16(1, 130, 4, 1, 64, 3, 7);   // group 4, misaligned
    test_backward16(1, 130, 4, 2, 128, 0, 1);  // dq only
    test_backward16(1, 130, 4, 2, 64, 0, 6);   // dk, dv only
    std::vector<float> g(1), l(1);
    std::vector<puzzle::bf16> x(1);
    if (attention_backward_tc(g.data(), x.data(), x.data(), x.data(), x.data(), x.data(), x.data(), x.data(),
                              l.data(), 1, 1, 1, 1, 32, 96, 96))
      std::printf("  FAIL HS 32 must be declined\n"), ++failures;
  }
  if (which == "smallsmem") {  // run at @101376: the 99 KiB of opt-in shared memory of sm_86 / sm_89 parts
    // HS 128: the mma kernels do not fit and decline (the bf16 callers then take the others);
    // the tensor-core forward takes 32-key tiles (71 KiB) and the tensor-core backward stages dQ
    // one fragment at a time (97.5 KiB), on fp32 and bf16 storage; the SIMT forward of HS 256
    // takes 32x32 tiles, its backward 16x16 (69 KiB). HS 64: every kernel fits and runs.
    test_forward(1, 130, 4, 2, 128, 0);
    test_forward(1, 200, 2, 1, 128, 3);      // misaligned, group 2, a partial last key tile
    test_forward16(1, 130, 4, 2, 128, 0);
    test_forward16(1, 129, 4, 2, 128, 3);
    test_decode16(1, 70, 4, 1, 128, 100, 200, 0, true);   // prefill over a cache (tensor-core forward)
    test_forward(1, 70, 2, 1, 256, 0);
    test_backward(1, 70, 2, 1, 256, 0, 7);
    test_backward(2, 37, 4, 2, 200, 1, 7);  // HS 200 padded to 256, misaligned: scalar loads
    test_backward(1, 130, 4, 2, 128, 0, 7);
    test_backward(2, 40, 2, 1, 128, 1, 7);   // misaligned: scalar loads
    test_backward(1, 130, 4, 2, 128, 0, 1);  // dq only
    test_backward16(1, 130, 4, 2, 128, 0, 7);
    test_backward16(1, 63, 2, 1, 128, 1, 7);
    test_cached(1, 40, 2, 2, 128, 33, 80, 0, 8);
    test_forward16(1, 130, 4, 2, 64, 0);
    test_forward16(1, 130, 4, 2, 64, 0, true);
    test_backward16(1, 130, 4, 2, 64, 0, 7);
    test_backward16(1, 130, 4, 2, 64, 0, 7, true);
    std::vector<puzzle::bf16> o(130 * 8 * 128), x(130 * 8 * 128);
    std::vector<float> l(130 * 8), g(130 * 8 * 128);
    if (attention_forward_mma(o.data(), l.data(), x.data(), x.data(), x.data(), 1, 2, 1, 1, 128, 128, 128))
      std::printf("  FAIL HS 128 mma forward must be declined at this shared memory\n"), ++failures;
    if (attention_cached_forward_mma(o.data(), x.data(), x.data(), x.data(), 1, 17, 1, 1, 128, 128, 0, 17))
      std::printf("  FAIL HS 128 mma prefill must be declined at this shared memory\n"), ++failures;
    std::vector<float> D(2, NaN);  // the pre-pass must not run for a declined call
    if (attention_backward_mma(g.data(), x.data(), x.data(), x.data(), x.data(), x.data(), x.data(), x.data(), l.data(),
                               D.data(), 1, 2, 1, 1, 128, 128, 128))
      std::printf("  FAIL HS 128 mma backward must be declined at this shared memory\n"), ++failures;
    if (!std::isnan(D[0]) || !std::isnan(D[1]))
      std::printf("  FAIL a declined mma backward ran its pre-pass\n"), ++failures;
    // HS 256 backward: 16 x 16 tiles fit (69 KiB), so it runs, no error recorded (its numbers:
    // the test_backward cases above), where 32 x 32 (142 KiB) would have been refused
    std::vector<float> f(2 * 256, 1.f), df(2 * 256, 0.f), lse2(2, 0.f);
    const int errors = g_errors;
    attention_backward(df.data(), df.data(), df.data(), f.data(), f.data(), f.data(), f.data(), f.data(), lse2.data(), 1, 2,
                       1, 1, 256, 256, 256);
    if (g_errors != errors)
      std::printf("  FAIL HS 256 backward: %d errors recorded, expected none\n", g_errors - errors), ++failures;
    g_errors = errors;
  }
  if (which == "prefill16") {  // bf16 cached prefill on the tensor-core forward (queries at past..)
    test_decode16(1, 17, 4, 2, 64, 0, 40, 0, true);       // a fresh cache, rows past 17 never read
    test_decode16(1, 70, 4, 1, 128, 100, 200, 0, true);   // after a prompt: 2 key tiles of past
    test_decode16(2, 130, 4, 2, 64, 33, 170, 1, true);    // 2 query tiles, past not a tile multiple, q misaligned
    test_decode16(1, 40, 2, 2, 128, 0, 40, 3, true);      // Tmax = the visible rows
    std::vector<puzzle::bf16> o(1), q(1);
    if (attention_cached_forward_tc(o.data(), q.data(), q.data(), q.data(), 1, 17, 1, 1, 32, 96, 0, 17))
      std::printf("  FAIL HS 32 must be declined\n"), ++failures;
  }
  // bf16 caches read directly (vector and scalar loads, multi-query, splits); the partitions merged
  // by the last one of each chunk (decode16), or by the combine kernel (decode16-kernel)
  if (which == "decode16-kernel") setenv("PUZZLE_CUDA_DECODE_COMBINE", "kernel", 1);
  if (which == "decode16-mma") setenv("PUZZLE_CUDA_DECODE", "mma", 1);  // the tensor-core decode
  if (which == "decode16" || which == "decode16-kernel" || which == "decode16-mma") {
    const long allocs0 = g_emu_allocs;
    test_decode16(1, 1, 4, 2, 32, 0, 8, 0);
    test_decode16(1, 1, 4, 2, 64, 300, 400, 0);
    test_decode16(2, 1, 8, 2, 128, 1000, 1100, 0);
    test_decode16(1, 1, 4, 4, 128, 77, 100, 1);  // q stride not a multiple of 4
    test_decode16(1, 3, 4, 1, 64, 200, 300, 0);
    test_decode16(1, 5, 8, 1, 48, 150, 160, 0);
    test_decode16(2, 16, 4, 2, 32, 40, 64, 2);
    test_decode16(1, 2, 2, 1, 38, 60, 70, 0);    // HS % 4 != 0: scalar cache loads
    // the streamed kernel (HS 64 / 128, aligned rows): group 8 over 3 sequences, a cache row count
    // off the tile size; 16 queries of 4 heads = 4 row chunks, causal rows inside partitions; a
    // cache too short for a split (one partition, one tile, the last row repeated)
    test_decode16(3, 1, 16, 2, 128, 517, 600, 0);
    test_decode16(1, 16, 4, 1, 128, 100, 130, 1);
    test_decode16(2, 4, 8, 4, 64, 250, 260, 0);
    test_decode16(1, 1, 2, 1, 128, 5, 8, 0);
    std::vector<puzzle::bf16> o(1), q(1);
    if (attention_decode(o.data(), q.data(), q.data(), q.data(), 1, 17, 1, 1, 32, 96, 0, 17))
      std::printf("  FAIL 17 queries must be declined\n"), ++failures;
    // the partitions' scratch, and for decode16 the merge counters too
    if (g_emu_allocs - allocs0 != (which == "decode16-kernel" ? 1 : 2))
      std::printf("  FAIL %ld allocations: the merge path is not the one this set asks for\n", g_emu_allocs - allocs0),
          ++failures;
  }
  if (which == "project") {  // the shapes of native/tools/cuda_check.cpp
    test_backward(2, 77, 8, 2, 32, 0, 7);
    test_backward(1, 300, 4, 4, 64, 0, 7);
    test_backward(1, 130, 4, 1, 128, 0, 7);
    test_backward(2, 65, 6, 3, 48, 0, 7);
    test_backward(1, 1, 2, 1, 16, 0, 7);
    test_cached(2, 1, 8, 2, 32, 100, 128, 0, 0);
    test_cached(1, 1, 32, 8, 128, 5000, 8192, 0, 0);
    test_cached(3, 17, 4, 2, 64, 0, 40, 0, 0);
    test_cached(64, 1, 8, 1, 128, 511, 600, 0, 0);
  }
  if (which == "capture") {  // inside a stream capture: temporary scratch, freed in stream order
    g_emu_capturing = true;
    test_backward(1, 70, 4, 2, 64, 0, 7);
    test_cached(1, 1, 4, 2, 128, 1000, 1100, 0, 8);
    g_emu_capturing = false;
    long a = g_emu_allocs, f = g_emu_frees;
    std::printf("capture: allocs %ld frees %ld %s\n", a, f, a == 2 && f == 2 ? "ok" : "FAIL");
    if (!(a == 2 && f == 2)) ++failures;
    test_backward(1, 70, 4, 2, 64, 0, 7);      // persistent buffer: 1 alloc
    test_backward(2, 200, 4, 2, 64, 0, 7);     // fits the 1 MiB minimum: reuse
    test_cached(2, 1, 32, 8, 128, 8000, 8001, 0, 132);  // 33 partitions, 1.05 MiB: free + alloc,
                                                        // and the merge counters (kept: 1 alloc)
    std::printf("persistent: allocs %ld frees %ld %s\n", g_emu_allocs - a, g_emu_frees - f,
                g_emu_allocs - a == 3 && g_emu_frees - f == 1 ? "ok" : "FAIL");
    if (!(g_emu_allocs - a == 3 && g_emu_frees - f == 1)) ++failures;
  }
  std::printf("%s: %d failures, %d recorded errors, blocks %ld, max smem %zu, allocs %ld frees %ld\n",
              failures || g_errors ? "FAILED" : "PASSED", failures, g_errors, g_emu_blocks, g_emu_max_smem_used,
              g_emu_allocs, g_emu_frees);
  return failures || g_errors;
}
