// Embedding lookup and its gradient (mirrors cpu/embedding.cpp). The backward scatter-adds with
// atomics (ids may repeat), so the summation order of repeated ids is not fixed.
#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/vec.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kThreads = 256;

// One unit = W consecutive columns of one row.
template <int W>
__global__ void __launch_bounds__(kThreads) embedding_forward_kernel(float* __restrict__ out,
                                                                     const int32_t* __restrict__ ids,
                                                                     const float* __restrict__ table, int64_t N,
                                                                     int64_t C) {
  const int64_t U = C / W;
  for (int64_t n = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; n < N; n += (int64_t)gridDim.y * blockDim.y)
    for (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < U; u += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = u * W;
    const float* src = table + (int64_t)ids[n] * C + c;
    float* dst = out + n * C + c;
    if constexpr (W == 4) {
      *reinterpret_cast<float4*>(dst) = *reinterpret_cast<const float4*>(src);
    } else {
      *dst = *src;
    }
  }
}

template <int W>
__global__ void __launch_bounds__(kThreads) embedding_backward_kernel(float* __restrict__ dtable,
                                                                      const float* __restrict__ dout,
                                                                      const int32_t* __restrict__ ids, int64_t N,
                                                                      int64_t C) {
  const int64_t U = C / W;
  for (int64_t n = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; n < N; n += (int64_t)gridDim.y * blockDim.y)
    for (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < U; u += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = u * W;
    float* d = dtable + (int64_t)ids[n] * C + c;
    const float* g = dout + n * C + c;
    if constexpr (W == 4) {
      const float4 v = *reinterpret_cast<const float4*>(g);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      atomicAdd(reinterpret_cast<float4*>(d), v);  // one vector reduction (sm_90+)
#else
      atomicAdd(d + 0, v.x);
      atomicAdd(d + 1, v.y);
      atomicAdd(d + 2, v.z);
      atomicAdd(d + 3, v.w);
#endif
    } else {
      atomicAdd(d, *g);
    }
  }
}

}  // namespace

void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C) {
  if (N <= 0 || C <= 0) return;
  if (C % 4 == 0 && aligned16(out) && aligned16(table)) {
    const Geometry g = geometry(N, C / 4);
    embedding_forward_kernel<4><<<g.grid, g.block, 0, stream()>>>(out, ids, table, N, C);
  } else {
    const Geometry g = geometry(N, C);
    embedding_forward_kernel<1><<<g.grid, g.block, 0, stream()>>>(out, ids, table, N, C);
  }
  PUZZLE_CUDA_CHECK_LAUNCH("embedding_forward");
}

void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C) {
  if (!dtable || N <= 0 || C <= 0) return;
  if (C % 4 == 0 && aligned16(dtable) && aligned16(dout)) {
    const Geometry g = geometry(N, C / 4);
    embedding_backward_kernel<4><<<g.grid, g.block, 0, stream()>>>(dtable, dout, ids, N, C);
  } else {
    const Geometry g = geometry(N, C);
    embedding_backward_kernel<1><<<g.grid, g.block, 0, stream()>>>(dtable, dout, ids, N, C);
  }
  PUZZLE_CUDA_CHECK_LAUNCH("embedding_backward");
}

}  // namespace puzzle::cuda
