// Linear layer with HF's [out, in] weight layout, on top of gemm() (mirrors cpu/matmul.cpp):
//   forward:  out[N,OC] = inp[N,C] @ weight[OC,C]^T (+ bias[OC])
//   backward: dinp += dout @ weight; dweight += dout^T @ inp; dbias += column sums of dout
// Each gradient is accumulated only when its pointer is non-null.
#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kBiasThreads = 256;
constexpr int kMaxBiasRowBlocks = 1024;

// out[n, o] += bias[o]: threads along o (coalesced), blocks stride over the rows.
__global__ void add_bias_kernel(float* out, const float* __restrict__ bias, int64_t N, int64_t OC) {
  const int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= OC) return;
  const float b = bias[o];
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) out[n * OC + o] += b;
}

// dbias[o] += sum_n dout[n, o]. A block owns 32 columns: its 8 warps take every 8th row (each lane
// one column, so a warp reads 128 contiguous bytes per row), then the 8 partial sums are added
// in shared memory in a fixed order (deterministic, no atomics).
constexpr int kColSumCols = 32;
constexpr int kColSumSlices = 8;

__global__ void __launch_bounds__(kColSumCols* kColSumSlices)
    column_sum_accumulate_kernel(float* dbias, const float* __restrict__ dout, int64_t N, int64_t OC) {
  __shared__ float partial[kColSumSlices][kColSumCols];
  const int tx = threadIdx.x % kColSumCols, ty = threadIdx.x / kColSumCols;
  const int64_t o = (int64_t)blockIdx.x * kColSumCols + tx;
  float s = 0.f;
  if (o < OC) {
    const float* p = dout + o;
#pragma unroll 4
    for (int64_t n = ty; n < N; n += kColSumSlices) s += __ldg(p + n * OC);
  }
  partial[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && o < OC) {
    float total = 0.f;
#pragma unroll
    for (int t = 0; t < kColSumSlices; ++t) total += partial[t][tx];
    dbias[o] += total;
  }
}

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC) {
  gemm(false, true, N, OC, C, 1.f, inp, C, weight, C, 0.f, out, OC);
  if (bias && N > 0 && OC > 0) {
    const dim3 grid(blocks_for(OC, kBiasThreads), (unsigned)std::min<int64_t>(N, kMaxBiasRowBlocks));
    add_bias_kernel<<<grid, kBiasThreads, 0, stream()>>>(out, bias, N, OC);
    PUZZLE_CUDA_CHECK_LAUNCH("matmul_forward (bias)");
  }
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC) {
  if (dinp) gemm(false, false, N, C, OC, 1.f, dout, OC, weight, C, 1.f, dinp, C);    // dX += dY W
  if (dweight) gemm(true, false, OC, C, N, 1.f, dout, OC, inp, C, 1.f, dweight, C);  // dW += dY^T X
  if (dbias && N > 0 && OC > 0) {
    column_sum_accumulate_kernel<<<blocks_for(OC, kColSumCols), kColSumCols * kColSumSlices, 0, stream()>>>(
        dbias, dout, N, OC);
    PUZZLE_CUDA_CHECK_LAUNCH("matmul_backward (dbias)");
  }
}

}  // namespace puzzle::cuda
