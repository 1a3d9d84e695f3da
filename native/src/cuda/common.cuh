// Shared CUDA helpers.
#pragma once
#include <cuda_runtime.h>

namespace puzzle::cuda {

// Sum over a thread block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ inline float block_sum(float v) {
  __shared__ float warp_sums[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  const int nwarps = blockDim.x / 32;
  v = lane < nwarps ? warp_sums[lane] : 0.f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  __syncthreads();
  return v;
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, long N, long C, float eps,
                     cudaStream_t stream);

}  // namespace puzzle::cuda
