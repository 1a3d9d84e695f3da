// RMSNorm forward on the GPU: one block per row, fp32 math (mirrors src/cpu/rmsnorm.cpp).
#include "cuda/common.cuh"

namespace puzzle::cuda {

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* inp, const float* weight, long C,
                                       float eps) {
  const long row = blockIdx.x;
  const float* x = inp + row * C;
  float ss = 0.f;
  for (long c = threadIdx.x; c < C; c += blockDim.x) ss += x[c] * x[c];
  ss = block_sum(ss);
  float r = rsqrtf(ss / (float)C + eps);
  if (threadIdx.x == 0 && rstd) rstd[row] = r;
  for (long c = threadIdx.x; c < C; c += blockDim.x) out[row * C + c] = x[c] * r * weight[c];
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, long N, long C, float eps,
                     cudaStream_t stream) {
  rmsnorm_forward_kernel<<<N, 256, 0, stream>>>(out, rstd, inp, weight, C, eps);
}

}  // namespace puzzle::cuda
