// The bf16 op table on the CPU: each op widens its bf16 operands to fp32, runs the fp32 kernel
// and rounds the outputs once (see OpsBf16 in puzzle/backend.h). That is the definition the
// CUDA bf16 kernels are tested against, and it lets a bf16 block run (and be tested) on any
// machine. It is not a fast path: the copies cost more than the fp32 kernels save.
//
// Strided operands (q, k, v as column slices of a fused buffer) are widened over their whole
// span, and only their own columns are rounded back, so the other slices of the same buffer
// are never overwritten with stale copies.
#include <algorithm>
#include <vector>

#include "cpu/ops_cpu.h"
#include "puzzle/backend.h"
#include "puzzle/gemm.h"

namespace puzzle {
namespace {

using Vec = std::vector<float>;

// Elements a rows x cols slice with row stride `stride` spans.
int64_t span(int64_t rows, int64_t cols, int64_t stride) { return rows <= 0 || cols <= 0 ? 0 : (rows - 1) * stride + cols; }

void widen_into(float* out, const bf16* p, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) out[i] = bf16_to_f32(p[i]);
  });
}
Vec widen(const bf16* p, int64_t n) {
  Vec v((size_t)std::max<int64_t>(n, 0));
  if (p && n > 0) widen_into(v.data(), p, n);
  return v;
}
// Rounds rows x cols of `src` (row stride `stride`, same layout as dst) into dst.
void narrow_slice(bf16* dst, const float* src, int64_t rows, int64_t cols, int64_t stride) {
  parallel_for(rows, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < cols; ++c) dst[r * stride + c] = f32_to_bf16(src[r * stride + c]);
  });
}
void narrow(bf16* dst, const float* src, int64_t n) { narrow_slice(dst, src, 1, n, n); }

void to_bf16(bf16* out, const float* inp, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) out[i] = f32_to_bf16(inp[i]);
  });
}
void to_f32(float* out, const bf16* inp, int64_t n) { widen_into(out, inp, n); }

void rmsnorm_forward(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int64_t N, int64_t C, float eps) {
  Vec x = widen(inp, N * C), w = widen(weight, C), y((size_t)(N * C));
  cpu::rmsnorm_forward(y.data(), rstd, x.data(), w.data(), N, C, eps);
  narrow(out, y.data(), N * C);
}

void rmsnorm_backward(bf16* dinp, float* dweight, const bf16* dout, const bf16* inp, const bf16* weight,
                      const float* rstd, int64_t N, int64_t C) {
  Vec d = widen(dout, N * C), x = widen(inp, N * C), w = widen(weight, C), dx = widen(dinp, dinp ? N * C : 0);
  cpu::rmsnorm_backward(dinp ? dx.data() : nullptr, dweight, d.data(), x.data(), w.data(), rstd, N, C);
  if (dinp) narrow(dinp, dx.data(), N * C);
}

// op(X) is rows x cols; X is stored transposed when `trans`.
Vec widen_operand(const bf16* X, bool trans, int64_t rows, int64_t cols, int64_t ld) {
  return trans ? widen(X, span(cols, rows, ld)) : widen(X, span(rows, cols, ld));
}

void gemm_f32out(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
                 const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  Vec a = widen_operand(A, ta, M, K, lda), b = widen_operand(B, tb, K, N, ldb);
  sgemm(ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, C, ldc, true);
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda, const bf16* B,
          int64_t ldb, float beta, bf16* C, int64_t ldc) {
  const int64_t n = span(M, N, ldc);
  Vec c = beta != 0.f ? widen(C, n) : Vec((size_t)std::max<int64_t>(n, 0), 0.f);
  gemm_f32out(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, c.data(), ldc);
  narrow_slice(C, c.data(), M, N, ldc);
}

void rope_forward(bf16* out, const bf16* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                  int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  Vec x = widen(inp, span(B * T, NH * HS, stride));
  cpu::rope_forward(x.data(), x.data(), cos, sin, pos, B, T, NH, HS, stride);
  narrow_slice(out, x.data(), B * T, NH * HS, stride);
}
void rope_backward(bf16* dinp, const bf16* dout, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                   int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  Vec d = widen(dout, span(B * T, NH * HS, stride));
  cpu::rope_backward(d.data(), d.data(), cos, sin, pos, B, T, NH, HS, stride);
  narrow_slice(dinp, d.data(), B * T, NH * HS, stride);
}

void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                       int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  const int64_t N = B * T;
  Vec wq = widen(q, span(N, NH * HS, q_stride)), wk = widen(k, span(N, NKV * HS, kv_stride)),
      wv = widen(v, span(N, NKV * HS, kv_stride)), o((size_t)(N * NH * HS));
  cpu::attention_forward(o.data(), lse, wq.data(), wk.data(), wv.data(), B, T, NH, NKV, HS, q_stride, kv_stride);
  narrow(out, o.data(), N * NH * HS);
}

void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                        const bf16* out, const float* lse, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS,
                        int64_t q_stride, int64_t kv_stride) {
  const int64_t N = B * T, nq = span(N, NH * HS, q_stride), nkv = span(N, NKV * HS, kv_stride);
  Vec wq = widen(q, nq), wk = widen(k, nkv), wv = widen(v, nkv), wo = widen(out, N * NH * HS),
      wd = widen(dout, N * NH * HS), gq = widen(dq, nq), gk = widen(dk, nkv), gv = widen(dv, nkv);
  cpu::attention_backward(gq.data(), gk.data(), gv.data(), wd.data(), wq.data(), wk.data(), wv.data(), wo.data(), lse,
                          B, T, NH, NKV, HS, q_stride, kv_stride);
  narrow_slice(dq, gq.data(), N, NH * HS, q_stride);
  narrow_slice(dk, gk.data(), N, NKV * HS, kv_stride);
  narrow_slice(dv, gv.data(), N, NKV * HS, kv_stride);
}

void attention_cached_forward(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, int64_t B,
                              int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                              int64_t Tmax) {
  const int64_t ncache = B * Tmax * NKV * HS;
  Vec wq = widen(q, span(B * Tq, NH * HS, q_stride)), wk = widen(k_cache, ncache), wv = widen(v_cache, ncache),
      o((size_t)(B * Tq * NH * HS));
  cpu::attention_cached_forward(o.data(), wq.data(), wk.data(), wv.data(), B, Tq, NH, NKV, HS, q_stride, past, Tmax);
  narrow(out, o.data(), B * Tq * NH * HS);
}

// The rotation as rope_forward (rounded once), then a copy: exact in any dtype, so no widening.
void rope_kv_cache_append(bf16* qkv, bf16* k_cache, bf16* v_cache, const float* cos, const float* sin,
                          const int32_t* pos, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t past,
                          int64_t Tmax) {
  const int64_t W = NKV * HS, QKV = (NH + 2 * NKV) * HS;
  rope_forward(qkv, qkv, cos, sin, pos, B, T, NH + NKV, HS, QKV);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const bf16* row = qkv + (b * T + t) * QKV;
      const int64_t dst = (b * Tmax + past + t) * W;
      std::copy(row + NH * HS, row + NH * HS + W, k_cache + dst);
      std::copy(row + (NH + NKV) * HS, row + (NH + NKV) * HS + W, v_cache + dst);
    }
}

void swiglu_forward(bf16* out, const bf16* gu, int64_t N, int64_t F) {
  Vec g = widen(gu, N * 2 * F), o((size_t)(N * F));
  cpu::swiglu_forward(o.data(), g.data(), N, F);
  narrow(out, o.data(), N * F);
}
void swiglu_backward(bf16* dgu, const bf16* dout, const bf16* gu, int64_t N, int64_t F) {
  Vec g = widen(gu, N * 2 * F), d = widen(dout, N * F), dg((size_t)(N * 2 * F));
  cpu::swiglu_backward(dg.data(), d.data(), g.data(), N, F);
  narrow(dgu, dg.data(), N * 2 * F);
}

void add_forward(bf16* out, const bf16* a, const bf16* b, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) out[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
  });
}
void accumulate(bf16* out, const bf16* a, int64_t n) { add_forward(out, out, a, n); }

void add_rmsnorm_forward(bf16* sum, bf16* out, float* rstd, const bf16* a, const bf16* b, const bf16* weight,
                         int64_t N, int64_t C, float eps) {
  add_forward(sum, a, b, N * C);
  rmsnorm_forward(out, rstd, sum, weight, N, C, eps);
}

}  // namespace

OpsBf16 cpu_ops_bf16() {
  OpsBf16 o{};
  o.to_bf16 = to_bf16;
  o.to_f32 = to_f32;
  o.rmsnorm_forward = rmsnorm_forward;
  o.rmsnorm_backward = rmsnorm_backward;
  o.add_rmsnorm_forward = add_rmsnorm_forward;
  o.gemm = gemm;
  o.gemm_f32out = gemm_f32out;
  o.rope_forward = rope_forward;
  o.rope_backward = rope_backward;
  o.attention_forward = attention_forward;
  o.attention_backward = attention_backward;
  o.attention_cached_forward = attention_cached_forward;
  o.rope_kv_cache_append = rope_kv_cache_append;
  o.swiglu_forward = swiglu_forward;
  o.swiglu_backward = swiglu_backward;
  o.add_forward = add_forward;
  o.accumulate = accumulate;
  o.norm_linear_forward = cpu::norm_linear_forward;
  o.norm_swiglu_forward = cpu::norm_swiglu_forward;
  o.norm_qkv_rope_cache_forward = cpu::norm_qkv_rope_cache_forward;
  return o;
}

}  // namespace puzzle
