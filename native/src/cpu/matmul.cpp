// Linear layer with HF's [out, in] weight layout, on top of sgemm.
#include "cpu/ops_cpu.h"

namespace puzzle::cpu {

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC) {
  sgemm(false, true, N, OC, C, 1.f, inp, C, weight, C, 0.f, out, OC);
  if (bias)
    parallel_for(N, grain_rows(OC), [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t o = 0; o < OC; ++o) out[n * OC + o] += bias[o];
    });
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC) {
  if (dinp) sgemm(false, false, N, C, OC, 1.f, dout, OC, weight, C, 1.f, dinp, C);      // dX += dY W
  if (dweight) sgemm(true, false, OC, C, N, 1.f, dout, OC, inp, C, 1.f, dweight, C);    // dW += dY^T X
  if (dbias)
    parallel_for(OC, 64, [&](int64_t o0, int64_t o1) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = o0; o < o1; ++o) dbias[o] += dout[n * OC + o];
    });
}

}  // namespace puzzle::cpu
