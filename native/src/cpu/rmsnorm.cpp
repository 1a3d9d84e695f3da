// RMSNorm (Llama): out = x * rsqrt(mean(x^2) + eps) * weight, computed in fp32 like HF.
#include "cpu/ops_cpu.h"

namespace puzzle::cpu {
namespace {

PUZZLE_MULTIVERSION
void rmsnorm_rows(float* out, float* rstd, const float* inp, const float* weight, int64_t n0, int64_t n1, int64_t C,
                  float eps) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* x = inp + n * C;
    float ss = 0.f;
    for (int64_t c = 0; c < C; ++c) ss += x[c] * x[c];
    float r = 1.0f / std::sqrt(ss / (float)C + eps);
    rstd[n] = r;
    float* o = out + n * C;
    for (int64_t c = 0; c < C; ++c) o[c] = x[c] * r * weight[c];
  }
}

// dx = r * (w*g) - x * r^3 / C * sum(w*g*x);  dw_partial += g * x * r
PUZZLE_MULTIVERSION
void rmsnorm_backward_rows(float* dinp, float* dweight_partial, const float* dout, const float* inp,
                           const float* weight, const float* rstd, int64_t n0, int64_t n1, int64_t C) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* x = inp + n * C;
    const float* g = dout + n * C;
    float r = rstd[n];
    float dot = 0.f;
    for (int64_t c = 0; c < C; ++c) dot += g[c] * weight[c] * x[c];
    float k = dot * r * r * r / (float)C;
    if (dinp) {
      float* dx = dinp + n * C;
      for (int64_t c = 0; c < C; ++c) dx[c] += r * weight[c] * g[c] - k * x[c];
    }
    if (dweight_partial)
      for (int64_t c = 0; c < C; ++c) dweight_partial[c] += g[c] * x[c] * r;
  }
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps) {
  parallel_for(N, grain_rows(C), [&](int64_t n0, int64_t n1) { rmsnorm_rows(out, rstd, inp, weight, n0, n1, C, eps); });
}

// Row by row, the sum and then its norm while the row is in cache; the same arithmetic as
// add_forward followed by rmsnorm_forward.
void add_rmsnorm_forward(float* sum, float* out, float* rstd, const float* a, const float* b, const float* weight,
                         int64_t N, int64_t C, float eps) {
  parallel_for(N, grain_rows(C), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      add_range(sum, a, b, n * C, (n + 1) * C);
      rmsnorm_rows(out, rstd, sum, weight, n, n + 1, C, eps);
    }
  });
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C) {
  // Each thread sums its rows' weight gradient privately; partials are added in thread order,
  // so results do not depend on scheduling.
  int nt = num_threads();
  std::vector<float> partial(dweight ? (size_t)nt * C : 0, 0.f);
  parallel_run([&](int tid, int nthreads) {
    int64_t n0 = N * tid / nthreads, n1 = N * (tid + 1) / nthreads;
    rmsnorm_backward_rows(dinp, dweight ? partial.data() + (size_t)tid * C : nullptr, dout, inp, weight, rstd, n0, n1,
                          C);
  });
  if (dweight)
    for (int t = 0; t < nt; ++t)
      for (int64_t c = 0; c < C; ++c) dweight[c] += partial[(size_t)t * C + c];
}

}  // namespace puzzle::cpu
