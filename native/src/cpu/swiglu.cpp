// SwiGLU on fused gate|up activations: out = silu(gate) * up.
#include "cpu/ops_cpu.h"

namespace puzzle::cpu {
namespace {

PUZZLE_MULTIVERSION
void swiglu_rows(float* out, const float* gu, int64_t n0, int64_t n1, int64_t F) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* g = gu + n * 2 * F;
    const float* u = g + F;
    float* o = out + n * F;
    for (int64_t f = 0; f < F; ++f) o[f] = g[f] / (1.f + fast_expf(-g[f])) * u[f];
  }
}

// d gate = dout * up * sig * (1 + g (1 - sig));  d up = dout * g * sig
PUZZLE_MULTIVERSION
void swiglu_backward_rows(float* dgu, const float* dout, const float* gu, int64_t n0, int64_t n1, int64_t F) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* g = gu + n * 2 * F;
    const float* u = g + F;
    const float* d = dout + n * F;
    float* dg = dgu + n * 2 * F;
    float* du = dg + F;
    for (int64_t f = 0; f < F; ++f) {
      float sig = 1.f / (1.f + fast_expf(-g[f]));
      dg[f] = d[f] * u[f] * sig * (1.f + g[f] * (1.f - sig));
      du[f] = d[f] * g[f] * sig;
    }
  }
}

}  // namespace

void swiglu_forward(float* out, const float* gu, int64_t N, int64_t F) {
  parallel_for(N, grain_rows(F), [&](int64_t n0, int64_t n1) { swiglu_rows(out, gu, n0, n1, F); });
}

void swiglu_backward(float* dgu, const float* dout, const float* gu, int64_t N, int64_t F) {
  parallel_for(N, grain_rows(F), [&](int64_t n0, int64_t n1) { swiglu_backward_rows(dgu, dout, gu, n0, n1, F); });
}

}  // namespace puzzle::cpu
