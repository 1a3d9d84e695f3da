// Rotary position embedding in HF's rotate-half layout:
//   out[i]      = x[i] cos - x[i+h] sin
//   out[i+h]    = x[i+h] cos + x[i] sin          (h = HS/2, i < h)
// The backward applies the transposed rotation. Frequency tables (including llama3
// rope_scaling) are built by the caller; here cos/sin[p, i] are looked up by position.
#include "cpu/ops_cpu.h"

namespace puzzle::cpu {
namespace {

PUZZLE_MULTIVERSION
void rotate(float* out, const float* inp, const float* cos, const float* sin, const int32_t* pos, int64_t r0,
            int64_t r1, int64_t T, int64_t NH, int64_t HS, int64_t stride, float sign) {
  int64_t h = HS / 2;
  for (int64_t r = r0; r < r1; ++r) {  // r = b*T + t
    int64_t t = r % T;
    int64_t p = pos ? pos[t] : t;
    const float* c = cos + p * h;
    const float* s = sin + p * h;
    for (int64_t head = 0; head < NH; ++head) {
      const float* x = inp + r * stride + head * HS;
      float* o = out + r * stride + head * HS;
      for (int64_t i = 0; i < h; ++i) {
        float x1 = x[i], x2 = x[i + h];
        o[i] = x1 * c[i] - sign * x2 * s[i];
        o[i + h] = x2 * c[i] + sign * x1 * s[i];
      }
    }
  }
}

}  // namespace

void rope_forward(float* out, const float* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                  int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  parallel_for(B * T, grain_rows(NH * HS), [&](int64_t r0, int64_t r1) {
    rotate(out, inp, cos, sin, pos, r0, r1, T, NH, HS, stride, 1.f);
  });
}

void rope_backward(float* dinp, const float* dout, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                   int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  parallel_for(B * T, grain_rows(NH * HS), [&](int64_t r0, int64_t r1) {
    rotate(dinp, dout, cos, sin, pos, r0, r1, T, NH, HS, stride, -1.f);
  });
}

}  // namespace puzzle::cpu
