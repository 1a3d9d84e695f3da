// SwiGLU on fused gate|up activations gu[N, 2F] (mirrors cpu/swiglu.cpp):
//   out = silu(gate) * up;  d gate = dout * up * sig * (1 + g (1 - sig));  d up = dout * g * sig
// The backward WRITES dgu. Storage is fp32 or bf16 (E), the math fp32.
#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/vec.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kThreads = 256;

// Unit = (row n, W consecutive columns f .. f+W-1 of F).
template <int W, class E>
__global__ void __launch_bounds__(kThreads) swiglu_forward_kernel(E* __restrict__ out, const E* __restrict__ gu,
                                                                  int64_t N, int64_t F) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  const int64_t U = F / W;
  for (int64_t n = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; n < N; n += (int64_t)gridDim.y * blockDim.y)
    for (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < U; u += (int64_t)gridDim.x * blockDim.x) {
    const int64_t f = u * W;
    const E* g = gu + n * 2 * F + f;
    float gv[W], uv[W], o[W];
    ld<W>(gv, g);
    ld<W>(uv, g + F);
#pragma unroll
    for (int k = 0; k < W; ++k) o[k] = silu_mul(gv[k], uv[k]);
    st<W>(out + n * F + f, o);
  }
}

template <int W, class E>
__global__ void __launch_bounds__(kThreads) swiglu_backward_kernel(E* __restrict__ dgu, const E* __restrict__ dout,
                                                                   const E* __restrict__ gu, int64_t N, int64_t F) {
  const int64_t U = F / W;
  for (int64_t n = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; n < N; n += (int64_t)gridDim.y * blockDim.y)
    for (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < U; u += (int64_t)gridDim.x * blockDim.x) {
    const int64_t f = u * W;
    const E* g = gu + n * 2 * F + f;
    float gv[W], uv[W], dv[W], dg[W], du[W];
    ld<W>(gv, g);
    ld<W>(uv, g + F);
    ld<W>(dv, dout + n * F + f);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float sig = 1.f / (1.f + expf(-gv[k]));
      dg[k] = dv[k] * uv[k] * sig * (1.f + gv[k] * (1.f - sig));
      du[k] = dv[k] * gv[k] * sig;
    }
    E* d = dgu + n * 2 * F + f;
    st<W>(d, dg);
    st<W>(d + F, du);
  }
}

template <class E>
void forward_t(E* out, const E* gu, int64_t N, int64_t F) {
  if (N <= 0 || F <= 0) return;
  if (F % 4 == 0 && vec_aligned(out) && vec_aligned(gu)) {
    const Geometry g = geometry(N, F / 4);
    launch_pdl("swiglu_forward", swiglu_forward_kernel<4, E>, g.grid, g.block, 0, out, gu, N, F);
  } else {
    const Geometry g = geometry(N, F);
    launch_pdl("swiglu_forward", swiglu_forward_kernel<1, E>, g.grid, g.block, 0, out, gu, N, F);
  }
}

template <class E>
void backward_t(E* dgu, const E* dout, const E* gu, int64_t N, int64_t F) {
  if (!dgu || N <= 0 || F <= 0) return;
  if (F % 4 == 0 && vec_aligned(dgu) && vec_aligned(dout) && vec_aligned(gu)) {
    const Geometry g = geometry(N, F / 4);
    swiglu_backward_kernel<4, E><<<g.grid, g.block, 0, stream()>>>(dgu, dout, gu, N, F);
  } else {
    const Geometry g = geometry(N, F);
    swiglu_backward_kernel<1, E><<<g.grid, g.block, 0, stream()>>>(dgu, dout, gu, N, F);
  }
  PUZZLE_CUDA_CHECK_LAUNCH("swiglu_backward");
}

}  // namespace

void swiglu_forward(float* out, const float* gu, int64_t N, int64_t F) { forward_t(out, gu, N, F); }
void swiglu_forward(bf16* out, const bf16* gu, int64_t N, int64_t F) { forward_t(dev(out), dev(gu), N, F); }
void swiglu_backward(float* dgu, const float* dout, const float* gu, int64_t N, int64_t F) {
  backward_t(dgu, dout, gu, N, F);
}
void swiglu_backward(bf16* dgu, const bf16* dout, const bf16* gu, int64_t N, int64_t F) {
  backward_t(dgu ? dev(dgu) : nullptr, dev(dout), dev(gu), N, F);
}

}  // namespace puzzle::cuda
