// Causal grouped-query attention, tiled over query rows so no T x T matrix is held for a head:
// a tile of QB queries sees keys [0, q1) only. Scores, softmax and the weighted sum use sgemm on
// strided views, so q/k/v may be column slices of one fused QKV activation buffer.
// Forward saves lse (log-sum-exp of each query's scaled scores); backward recomputes P from it.
#include "cpu/ops_cpu.h"

namespace puzzle::cpu {
namespace {

constexpr int64_t QB = 64;  // query rows per tile

// Per-thread scratch that is grown, never freed: the VM pays more for page faults than for math.
float* scratch(int slot, size_t floats) {
  thread_local std::vector<float> bufs[3];
  if (bufs[slot].size() < floats) bufs[slot].resize(floats);
  return bufs[slot].data();
}

// Row-wise causal softmax of S[rows, ncols] (query i = q0 + r sees keys j <= i); writes lse
// when asked.
PUZZLE_MULTIVERSION
void softmax_rows(float* S, int64_t ld, int64_t rows, int64_t q0, float* lse) {
  for (int64_t r = 0; r < rows; ++r) {
    float* s = S + r * ld;
    int64_t n = q0 + r + 1;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) mx = s[j] > mx ? s[j] : mx;
    float sum = 0.f;
    for (int64_t j = 0; j < n; ++j) {
      float e = fast_expf(s[j] - mx);
      s[j] = e;
      sum += e;
    }
    float inv = 1.f / sum;
    for (int64_t j = 0; j < n; ++j) s[j] *= inv;
    for (int64_t j = n; j < ld; ++j) s[j] = 0.f;
    if (lse) lse[r] = mx + std::log(sum);
  }
}

// P = exp(S - lse) on the causal part, 0 above the diagonal.
PUZZLE_MULTIVERSION
void probs_from_lse(float* S, int64_t ld, int64_t rows, int64_t q0, const float* lse) {
  for (int64_t r = 0; r < rows; ++r) {
    float* s = S + r * ld;
    int64_t n = q0 + r + 1;
    float l = lse[r];
    for (int64_t j = 0; j < n; ++j) s[j] = fast_expf(s[j] - l);
    for (int64_t j = n; j < ld; ++j) s[j] = 0.f;
  }
}

// dS = P * (dP - D), D = rowsum(dO * O) over the head dimension; written over dP.
PUZZLE_MULTIVERSION
void softmax_backward_rows(float* dP, const float* P, int64_t ld, int64_t rows, const float* dO, const float* O,
                           int64_t o_ld, int64_t HS) {
  for (int64_t r = 0; r < rows; ++r) {
    float D = 0.f;
    for (int64_t d = 0; d < HS; ++d) D += dO[r * o_ld + d] * O[r * o_ld + d];
    float* dp = dP + r * ld;
    const float* p = P + r * ld;
    for (int64_t j = 0; j < ld; ++j) dp[j] = p[j] * (dp[j] - D);
  }
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  const int64_t group = NH / NKV, o_stride = NH * HS;
  const float scale = 1.f / std::sqrt((float)HS);
  parallel_for(B * NH, 1, [&](int64_t i0, int64_t i1) {
    float* S = scratch(0, (size_t)QB * T);
    for (int64_t i = i0; i < i1; ++i) {
      int64_t b = i / NH, h = i % NH, g = h / group;
      const float* qh = q + b * T * q_stride + h * HS;
      const float* kh = k + b * T * kv_stride + g * HS;
      const float* vh = v + b * T * kv_stride + g * HS;
      float* oh = out + b * T * o_stride + h * HS;
      float* lh = lse + (b * NH + h) * T;
      for (int64_t q0 = 0; q0 < T; q0 += QB) {
        int64_t rows = std::min(QB, T - q0), nk = q0 + rows;
        sgemm(false, true, rows, nk, HS, scale, qh + q0 * q_stride, q_stride, kh, kv_stride, 0.f, S, nk, false);
        softmax_rows(S, nk, rows, q0, lh + q0);
        sgemm(false, false, rows, HS, nk, 1.f, S, nk, vh, kv_stride, 0.f, oh + q0 * o_stride, o_stride, false);
      }
    }
  });
}

void attention_cached_forward(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t B,
                              int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                              int64_t Tmax) {
  const int64_t group = NH / NKV, o_stride = NH * HS, kv_stride = NKV * HS;
  const float scale = 1.f / std::sqrt((float)HS);
  parallel_for(B * NH, 1, [&](int64_t i0, int64_t i1) {
    float* S = scratch(0, (size_t)QB * (past + Tq));
    for (int64_t i = i0; i < i1; ++i) {
      int64_t b = i / NH, h = i % NH, g = h / group;
      const float* qh = q + b * Tq * q_stride + h * HS;
      const float* kh = k_cache + b * Tmax * kv_stride + g * HS;
      const float* vh = v_cache + b * Tmax * kv_stride + g * HS;
      float* oh = out + b * Tq * o_stride + h * HS;
      for (int64_t q0 = 0; q0 < Tq; q0 += QB) {
        int64_t rows = std::min(QB, Tq - q0), nk = past + q0 + rows;
        sgemm(false, true, rows, nk, HS, scale, qh + q0 * q_stride, q_stride, kh, kv_stride, 0.f, S, nk, false);
        softmax_rows(S, nk, rows, past + q0, nullptr);
        sgemm(false, false, rows, HS, nk, 1.f, S, nk, vh, kv_stride, 0.f, oh + q0 * o_stride, o_stride, false);
      }
    }
  });
}

// Work is split over (batch, KV head) so each task owns its dK/dV rows; the query heads of a
// group run inside the task.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, int64_t B, int64_t T, int64_t NH,
                        int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  const int64_t group = NH / NKV, o_stride = NH * HS;
  const float scale = 1.f / std::sqrt((float)HS);
  parallel_for(B * NKV, 1, [&](int64_t i0, int64_t i1) {
    float* P = scratch(0, (size_t)QB * T);
    float* dP = scratch(1, (size_t)QB * T);
    for (int64_t i = i0; i < i1; ++i) {
      int64_t b = i / NKV, g = i % NKV;
      const float* kh = k + b * T * kv_stride + g * HS;
      const float* vh = v + b * T * kv_stride + g * HS;
      float* dkh = dk + b * T * kv_stride + g * HS;
      float* dvh = dv + b * T * kv_stride + g * HS;
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const float* qh = q + b * T * q_stride + h * HS;
        float* dqh = dq + b * T * q_stride + h * HS;
        const float* oh = out + b * T * o_stride + h * HS;
        const float* doh = dout + b * T * o_stride + h * HS;
        const float* lh = lse + (b * NH + h) * T;
        for (int64_t q0 = 0; q0 < T; q0 += QB) {
          int64_t rows = std::min(QB, T - q0), nk = q0 + rows;
          const float* qt = qh + q0 * q_stride;
          const float* dot = doh + q0 * o_stride;
          sgemm(false, true, rows, nk, HS, scale, qt, q_stride, kh, kv_stride, 0.f, P, nk, false);
          probs_from_lse(P, nk, rows, q0, lh + q0);
          // dV += P^T dO
          sgemm(true, false, nk, HS, rows, 1.f, P, nk, dot, o_stride, 1.f, dvh, kv_stride, false);
          // dP = dO V^T, then dS = P (dP - D)
          sgemm(false, true, rows, nk, HS, 1.f, dot, o_stride, vh, kv_stride, 0.f, dP, nk, false);
          softmax_backward_rows(dP, P, nk, rows, dot, oh + q0 * o_stride, o_stride, HS);
          // dQ += scale dS K ; dK += scale dS^T Q
          sgemm(false, false, rows, HS, nk, scale, dP, nk, kh, kv_stride, 1.f, dqh + q0 * q_stride, q_stride, false);
          sgemm(true, false, nk, HS, rows, scale, dP, nk, qt, q_stride, 1.f, dkh, kv_stride, false);
        }
      }
    }
  });
}

}  // namespace puzzle::cpu
