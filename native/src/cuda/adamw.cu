// AdamW with decoupled weight decay (torch.optim.AdamW semantics) and the squared norm used for
// global-norm clipping (mirrors cpu/adamw.cpp). sum_squares squares and sums in double (each
// square of a float is exact in double), per-block partials then one block in a fixed order:
// deterministic, and accurate to double rounding.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>

#include "cuda/common.cuh"
#include "cuda/vec.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRedBlocks = 1024;

__global__ void __launch_bounds__(kThreads) sumsq_partial_kernel(double* __restrict__ part,
                                                                 const float* __restrict__ x, int64_t n) {
  double acc = 0.0;
  split_apply(x, n, true, (int64_t)blockIdx.x * blockDim.x + threadIdx.x, (int64_t)gridDim.x * blockDim.x,
              [&](int64_t i, auto w) {
                constexpr int W = decltype(w)::value;
                float v[W];
                ld<W>(v, x + i);
#pragma unroll
                for (int k = 0; k < W; ++k) acc += (double)v[k] * v[k];
              });
  acc = block_sum<double>(acc);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

// out[0] = sum of part[0 .. count) (one block, fixed order).
__global__ void __launch_bounds__(kThreads) sumsq_finish_kernel(double* __restrict__ out,
                                                                const double* __restrict__ part, int count) {
  double acc = 0.0;
  for (int b = threadIdx.x; b < count; b += blockDim.x) acc += part[b];
  acc = block_sum<double>(acc);
  if (threadIdx.x == 0) out[0] = acc;
}

__global__ void __launch_bounds__(kThreads)
    adamw_kernel(float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ m,
                 float* __restrict__ v, int64_t n, float lr, float beta1, float beta2, float eps, float decay,
                 float grad_scale, float bc1, float bc2, bool vec) {
  split_apply(param, n, vec, (int64_t)blockIdx.x * blockDim.x + threadIdx.x, (int64_t)gridDim.x * blockDim.x,
              [&](int64_t i, auto w) {
                constexpr int W = decltype(w)::value;
                float p[W], g[W], mv[W], vv[W];
                ld<W>(p, param + i);
                ld<W>(g, grad + i);
                ld<W>(mv, m + i);
                ld<W>(vv, v + i);
#pragma unroll
                for (int k = 0; k < W; ++k) {
                  const float gi = g[k] * grad_scale;
                  const float mi = beta1 * mv[k] + (1.f - beta1) * gi;
                  const float vi = beta2 * vv[k] + (1.f - beta2) * gi * gi;
                  mv[k] = mi;
                  vv[k] = vi;
                  const float pi = p[k] * decay;
                  p[k] = pi - lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
                }
                st<W>(m + i, mv);
                st<W>(v + i, vv);
                st<W>(param + i, p);
              });
}

// Device scratch for sum_squares: [0] the sum, then kRedBlocks partials. Allocated once, kept.
std::mutex g_scratch_mu;
double* scratch() {
  static double* p = [] {
    double* q = nullptr;
    cudaError_t e = cudaMalloc(&q, (1 + kRedBlocks) * sizeof(double));
    if (e != cudaSuccess) {
      record_error(e, "sum_squares scratch (cudaMalloc)");
      q = nullptr;
    }
    return q;
  }();
  return p;
}

}  // namespace

double sum_squares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  std::lock_guard<std::mutex> lock(g_scratch_mu);
  double* s = scratch();
  if (!s) return NAN;
  const unsigned G = flat_grid(n / 4 + 1, kRedBlocks);
  sumsq_partial_kernel<<<G, kThreads, 0, stream()>>>(s + 1, x, n);
  PUZZLE_CUDA_CHECK_LAUNCH("sum_squares partials");
  sumsq_finish_kernel<<<1, kThreads, 0, stream()>>>(s, s + 1, (int)G);
  PUZZLE_CUDA_CHECK_LAUNCH("sum_squares finish");
  double h = 0.0;
  record_error(cudaMemcpyAsync(&h, s, sizeof h, cudaMemcpyDeviceToHost, stream()), "sum_squares copy");
  record_error(cudaStreamSynchronize(stream()), "sum_squares synchronize");
  return h;
}

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float grad_scale, int64_t t) {
  if (n <= 0) return;
  const float bc1 = 1.f - (float)std::pow((double)beta1, (double)t);
  const float bc2 = 1.f - (float)std::pow((double)beta2, (double)t);
  const float decay = 1.f - lr * weight_decay;
  const bool vec = coaligned(param, grad) && coaligned(param, m) && coaligned(param, v);
  adamw_kernel<<<flat_grid(vec ? n / 4 + 1 : n, 1 << 16), kThreads, 0, stream()>>>(
      param, grad, m, v, n, lr, beta1, beta2, eps, decay, grad_scale, bc1, bc2, vec);
  PUZZLE_CUDA_CHECK_LAUNCH("adamw_update");
}

}  // namespace puzzle::cuda
