// Rotary position embedding, HF rotate-half layout (mirrors cpu/rope.cpp):
//   out[i]   = x[i] cos - sign x[i+h] sin
//   out[i+h] = x[i+h] cos + sign x[i] sin        (h = HS/2, i < h; sign -1 for the backward)
// One thread owns W pairs (i .. i+W-1, i+h .. i+h+W-1) and loads all of them before it stores,
// so out == inp (in place) is safe: no other thread touches those elements. x is fp32 or bf16 (E);
// the cos/sin tables are fp32.
#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/vec.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kThreads = 256;

// Unit = (token (b, t), head, W consecutive pair indices j .. j+W-1).
template <int W, class E>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(E* out, const E* inp, const float* __restrict__ cos, const float* __restrict__ sin,
                const int32_t* __restrict__ pos, int64_t B, int64_t T, unsigned NH, int64_t HS, int64_t stride,
                float sign) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  const int64_t h = HS / 2;
  const unsigned hw = (unsigned)(h / W), per_row = NH * hw;
  for (int64_t b = blockIdx.z; b < B; b += gridDim.z)
    for (int64_t t = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; t < T; t += (int64_t)gridDim.y * blockDim.y) {
      const int64_t p = pos ? (int64_t)pos[t] : t;
      const float* crow = cos + p * h;
      const float* srow = sin + p * h;
      const int64_t row = (b * T + t) * stride;
      for (unsigned u = blockIdx.x * blockDim.x + threadIdx.x; u < per_row; u += gridDim.x * blockDim.x) {
        const unsigned head = u / hw, j = (u - head * hw) * W;
        const int64_t off = row + (int64_t)head * HS + j;
        float x1[W], x2[W], c[W], s[W];
        ld<W>(x1, inp + off);
        ld<W>(x2, inp + off + h);
        ld<W>(c, crow + j);
        ld<W>(s, srow + j);
        float o1[W], o2[W];
#pragma unroll
        for (int k = 0; k < W; ++k) {
          o1[k] = x1[k] * c[k] - sign * x2[k] * s[k];
          o2[k] = x2[k] * c[k] + sign * x1[k] * s[k];
        }
        st<W>(out + off, o1);
        st<W>(out + off + h, o2);
      }
    }
}

template <class E>
void rope(E* out, const E* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B, int64_t T,
          int64_t NH, int64_t HS, int64_t stride, float sign, const char* name) {
  const int64_t h = HS / 2;
  if (B <= 0 || T <= 0 || NH <= 0 || h <= 0) return;
  const bool vec = h % 4 == 0 && stride % 4 == 0 && vec_aligned(out) && vec_aligned(inp) && aligned16(cos) &&
                   aligned16(sin);
  if (vec) {
    const Geometry g = geometry(B, T, NH * (h / 4));
    launch_pdl(name, rope_kernel<4, E>, g.grid, g.block, 0, out, inp, cos, sin, pos, B, T, (unsigned)NH, HS, stride, sign);
  } else {
    const Geometry g = geometry(B, T, NH * h);
    launch_pdl(name, rope_kernel<1, E>, g.grid, g.block, 0, out, inp, cos, sin, pos, B, T, (unsigned)NH, HS, stride, sign);
  }
}

}  // namespace

void rope_forward(float* out, const float* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                  int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  rope(out, inp, cos, sin, pos, B, T, NH, HS, stride, 1.f, "rope_forward");
}

void rope_backward(float* dinp, const float* dout, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                   int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  rope(dinp, dout, cos, sin, pos, B, T, NH, HS, stride, -1.f, "rope_backward");
}

void rope_forward(bf16* out, const bf16* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                  int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  rope(dev(out), dev(inp), cos, sin, pos, B, T, NH, HS, stride, 1.f, "rope_forward");
}

void rope_backward(bf16* dinp, const bf16* dout, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                   int64_t T, int64_t NH, int64_t HS, int64_t stride) {
  rope(dev(dinp), dev(dout), cos, sin, pos, B, T, NH, HS, stride, -1.f, "rope_backward");
}

}  // namespace puzzle::cuda
