// Losses on rows of logits or hidden states (mirrors cpu/losses.cpp).
//   cross-entropy: loss = lse(x) - x[target] (target -100: loss 0, no gradient); lse saved
//   KL(teacher || student) per row; gradient to the student only
//   cosine: 1 - cos(x, y) per row (torch's eps); gradient to x only
//   nmse: sum((x-y)^2) / sum(y^2), returned as a double; gradient to x only
// Row ops run one block per row (the cross-entropy backward several blocks per row). Rows are
// split into a scalar head up to the first 16-byte boundary, a float4 body and a scalar tail, so
// any row length and offset vectorises, provided the arrays of one op share their alignment
// mod 16 (checked on the host; all scalar otherwise).
// The log-sum-exp is computed in one pass with a running (max, sum) per thread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>

#include "cuda/common.cuh"
#include "cuda/vec.cuh"

namespace puzzle::cuda {
namespace {

constexpr int32_t kIgnore = -100;
constexpr int kThreads = 256;
constexpr double kCosEps = 1e-8;     // as torch.nn.functional.cosine_similarity
constexpr int kRedBlocks = 1024;     // partial sums of the double reductions (nmse)
constexpr int64_t kMaxRowBlocks = 1 << 20;

unsigned row_grid(int64_t N) { return (unsigned)std::min<int64_t>(N, kMaxRowBlocks); }

// Threads for a row of `len` floats: a power of two >= len/4, between 32 and kThreads.
int row_threads(int64_t len) {
  int t = 32;
  while (t < kThreads && 4 * (int64_t)t < len) t *= 2;
  return t;
}

// Running log-sum-exp state: m = max so far, s = sum of exp(x - m).
__device__ __forceinline__ void online_add(float& m, float& s, float x) {
  if (x > m) {
    s = s * expf(m - x) + 1.f;  // m = -inf: s is 0 and expf(-inf) = 0
    m = x;
  } else if (m != -INFINITY) {  // m = -inf here means x = -inf too: adds exp(-inf) = 0
    s += expf(x - m);
  }
}

// Block-wide log-sum-exp from every thread's (m, s); every thread gets it.
__device__ __forceinline__ float block_lse(float m, float s) {
  const float M = block_max(m);
  const float part = m == -INFINITY ? 0.f : s * expf(m - M);
  return M + logf(block_sum(part));
}

// ---- cross-entropy ---------------------------------------------------------------------------
__global__ void __launch_bounds__(kThreads)
    ce_forward_kernel(float* __restrict__ losses, float* __restrict__ lse, const float* __restrict__ logits,
                      const int32_t* __restrict__ targets, int64_t N, int64_t V) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* x = logits + n * V;
    float m = -INFINITY, s = 0.f;
    split_apply(x, V, true, threadIdx.x, blockDim.x, [&](int64_t i, auto w) {
      constexpr int W = decltype(w)::value;
      float v[W];
      ld<W>(v, x + i);
#pragma unroll
      for (int k = 0; k < W; ++k) online_add(m, s, v[k]);
    });
    const float l = block_lse(m, s);
    if (threadIdx.x == 0) {
      if (lse) lse[n] = l;
      const int32_t tgt = targets[n];
      // A target outside [0, V) other than -100 is a caller error: NaN, not an out-of-bounds read.
      losses[n] = tgt == kIgnore ? 0.f : (tgt >= 0 && tgt < V ? l - x[tgt] : NAN);
    }
  }
}

// grid.x walks rows, grid.y splits a row into chunks.
__global__ void __launch_bounds__(kThreads)
    ce_backward_kernel(float* __restrict__ dlogits, const float* __restrict__ logits, const float* __restrict__ lse,
                       const int32_t* __restrict__ targets, int64_t N, int64_t V, float scale, bool vec) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const int32_t tgt = targets[n];
    if (tgt == kIgnore) continue;
    const float l = lse[n];
    const float* x = logits + n * V;
    float* d = dlogits + n * V;
    split_apply(x, V, vec, (int64_t)blockIdx.y * blockDim.x + threadIdx.x, (int64_t)gridDim.y * blockDim.x,
                [&](int64_t i, auto w) {
                  constexpr int W = decltype(w)::value;
                  float xv[W], dv[W];
                  ld<W>(xv, x + i);
                  ld<W>(dv, d + i);
#pragma unroll
                  for (int k = 0; k < W; ++k) {
                    float t = dv[k] + scale * expf(xv[k] - l);
                    if (i + k == tgt) t -= scale;
                    dv[k] = t;
                  }
                  st<W>(d + i, dv);
                });
  }
}

// ---- KL(teacher || student) ------------------------------------------------------------------
// Both rows' log-sum-exp in one pass (every thread of the block gets them).
__device__ __forceinline__ void row_lse2(const float* t, const float* s, int64_t V, bool vec, float& tl, float& sl) {
  float tm = -INFINITY, ts = 0.f, sm = -INFINITY, ss = 0.f;
  split_apply(t, V, vec, threadIdx.x, blockDim.x, [&](int64_t i, auto w) {
    constexpr int W = decltype(w)::value;
    float tv[W], sv[W];
    ld<W>(tv, t + i);
    ld<W>(sv, s + i);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      online_add(tm, ts, tv[k]);
      online_add(sm, ss, sv[k]);
    }
  });
  tl = block_lse(tm, ts);
  sl = block_lse(sm, ss);
}

__global__ void __launch_bounds__(kThreads) kl_forward_kernel(float* __restrict__ losses,
                                                              const float* __restrict__ teacher,
                                                              const float* __restrict__ student, int64_t N, int64_t V,
                                                              bool vec) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* t = teacher + n * V;
    const float* s = student + n * V;
    float tl, sl;
    row_lse2(t, s, V, vec, tl, sl);
    float acc = 0.f;
    split_apply(t, V, vec, threadIdx.x, blockDim.x, [&](int64_t i, auto w) {
      constexpr int W = decltype(w)::value;
      float tv[W], sv[W];
      ld<W>(tv, t + i);
      ld<W>(sv, s + i);
#pragma unroll
      for (int k = 0; k < W; ++k) {
        const float lp = tv[k] - tl;
        acc += expf(lp) * (lp - (sv[k] - sl));
      }
    });
    acc = block_sum(acc);
    if (threadIdx.x == 0) losses[n] = acc;
  }
}

__global__ void __launch_bounds__(kThreads)
    kl_backward_kernel(float* __restrict__ dstudent, const float* __restrict__ teacher,
                       const float* __restrict__ student, int64_t N, int64_t V, float scale, bool vec) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* t = teacher + n * V;
    const float* s = student + n * V;
    float* d = dstudent + n * V;
    float tl, sl;
    row_lse2(t, s, V, vec, tl, sl);
    split_apply(t, V, vec, threadIdx.x, blockDim.x, [&](int64_t i, auto w) {
      constexpr int W = decltype(w)::value;
      float tv[W], sv[W], dv[W];
      ld<W>(tv, t + i);
      ld<W>(sv, s + i);
      ld<W>(dv, d + i);
#pragma unroll
      for (int k = 0; k < W; ++k) dv[k] += scale * (expf(sv[k] - sl) - expf(tv[k] - tl));
      st<W>(d + i, dv);
    });
  }
}

// ---- cosine ----------------------------------------------------------------------------------
__device__ __forceinline__ void row_dots3(const float* x, const float* y, int64_t C, bool vec, float& xy, float& xx,
                                          float& yy) {
  float a = 0.f, b = 0.f, c = 0.f;
  split_apply(x, C, vec, threadIdx.x, blockDim.x, [&](int64_t i, auto w) {
    constexpr int W = decltype(w)::value;
    float xv[W], yv[W];
    ld<W>(xv, x + i);
    ld<W>(yv, y + i);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      a += xv[k] * yv[k];
      b += xv[k] * xv[k];
      c += yv[k] * yv[k];
    }
  });
  xy = block_sum(a);
  xx = block_sum(b);
  yy = block_sum(c);
}

__global__ void __launch_bounds__(kThreads) cosine_forward_kernel(float* __restrict__ losses,
                                                                  const float* __restrict__ x,
                                                                  const float* __restrict__ y, int64_t N, int64_t C,
                                                                  bool vec) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    float xy, xx, yy;
    row_dots3(x + n * C, y + n * C, C, vec, xy, xx, yy);
    if (threadIdx.x == 0) {
      const double denom = sqrt(fmax((double)xx * yy, kCosEps * kCosEps));
      losses[n] = (float)(1.0 - xy / denom);
    }
  }
}

// d(1 - cos)/dx = -(y / (|x||y|) - cos * x / |x|^2)
__global__ void __launch_bounds__(kThreads) cosine_backward_kernel(float* __restrict__ dx,
                                                                   const float* __restrict__ x,
                                                                   const float* __restrict__ y, int64_t N, int64_t C,
                                                                   float scale, bool vec) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* xr = x + n * C;
    const float* yr = y + n * C;
    float* d = dx + n * C;
    float xy, xx, yy;
    row_dots3(xr, yr, C, vec, xy, xx, yy);
    const double prod = (double)xx * yy;
    const bool clamped = prod <= kCosEps * kCosEps;  // cos = xy / eps, linear in x
    float a, b;
    if (clamped) {
      a = (float)(-scale / kCosEps);
      b = 0.f;
    } else {
      const double denom = sqrt(prod);
      a = (float)(-scale / denom);
      b = (float)(scale * (xy / denom) / xx);
    }
    split_apply(xr, C, vec, threadIdx.x, blockDim.x, [&](int64_t i, auto w) {
      constexpr int W = decltype(w)::value;
      float xv[W], yv[W], dv[W];
      ld<W>(xv, xr + i);
      ld<W>(yv, yr + i);
      ld<W>(dv, d + i);
#pragma unroll
      for (int k = 0; k < W; ++k) dv[k] += clamped ? a * yv[k] : a * yv[k] + b * xv[k];
      st<W>(d + i, dv);
    });
  }
}

// ---- nmse --------------------------------------------------------------------------------------
// Per-block double partial sums: den_part[block] = sum y^2, num_part[block] = sum (x-y)^2 (kNum).
template <bool kNum>
__global__ void __launch_bounds__(kThreads)
    nmse_partial_kernel(double* __restrict__ den_part, double* __restrict__ num_part, const float* __restrict__ x,
                        const float* __restrict__ y, int64_t n, bool vec) {
  double den = 0.0, num = 0.0;
  split_apply(y, n, vec, (int64_t)blockIdx.x * blockDim.x + threadIdx.x, (int64_t)gridDim.x * blockDim.x,
              [&](int64_t i, auto w) {
                constexpr int W = decltype(w)::value;
                float yv[W];
                ld<W>(yv, y + i);
#pragma unroll
                for (int k = 0; k < W; ++k) den += (double)yv[k] * yv[k];
                if constexpr (kNum) {
                  float xv[W];
                  ld<W>(xv, x + i);
#pragma unroll
                  for (int k = 0; k < W; ++k) {
                    const double d = (double)xv[k] - yv[k];
                    num += d * d;
                  }
                }
              });
  den = block_sum<double>(den);
  if (threadIdx.x == 0) den_part[blockIdx.x] = den;
  if constexpr (kNum) {
    num = block_sum<double>(num);
    if (threadIdx.x == 0) num_part[blockIdx.x] = num;
  }
}

// out[j] = sum of part[j * kRedBlocks + b] over b < count, for j < nsums (one block, fixed order).
__global__ void __launch_bounds__(kThreads) finish_kernel(double* __restrict__ out, const double* __restrict__ part,
                                                          int count, int nsums) {
  for (int j = 0; j < nsums; ++j) {
    double acc = 0.0;
    for (int b = threadIdx.x; b < count; b += blockDim.x) acc += part[j * kRedBlocks + b];
    acc = block_sum<double>(acc);
    if (threadIdx.x == 0) out[j] = acc;
  }
}

__global__ void __launch_bounds__(kThreads)
    nmse_backward_kernel(float* __restrict__ dx, const float* __restrict__ x, const float* __restrict__ y, int64_t n,
                         float scale, const double* __restrict__ den, bool vec) {
  const float k2 = (float)(2.0 * (double)scale / *den);
  split_apply(dx, n, vec, (int64_t)blockIdx.x * blockDim.x + threadIdx.x, (int64_t)gridDim.x * blockDim.x,
              [&](int64_t i, auto w) {
                constexpr int W = decltype(w)::value;
                float dv[W], xv[W], yv[W];
                ld<W>(dv, dx + i);
                ld<W>(xv, x + i);
                ld<W>(yv, y + i);
#pragma unroll
                for (int k = 0; k < W; ++k) dv[k] += k2 * (xv[k] - yv[k]);
                st<W>(dx + i, dv);
              });
}

// Device scratch for the nmse reductions: [0] sum y^2, [1] sum (x-y)^2, then kRedBlocks partials
// of each. Allocated once, kept; the mutex keeps one host thread's launches together.
std::mutex g_scratch_mu;
double* scratch() {
  static double* p = [] {
    double* q = nullptr;
    cudaError_t e = cudaMalloc(&q, (2 + 2 * kRedBlocks) * sizeof(double));
    if (e != cudaSuccess) {
      record_error(e, "losses scratch (cudaMalloc)");
      q = nullptr;
    }
    return q;
  }();
  return p;
}

}  // namespace

void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V) {
  if (N <= 0 || V <= 0) return;
  ce_forward_kernel<<<row_grid(N), kThreads, 0, stream()>>>(losses, lse, logits, targets, N, V);
  PUZZLE_CUDA_CHECK_LAUNCH("cross_entropy_forward");
}

void cross_entropy_backward(float* dlogits, const float* logits, const float* lse, const int32_t* targets, int64_t N,
                            int64_t V, float scale) {
  if (!dlogits || N <= 0 || V <= 0) return;
  const bool vec = coaligned(dlogits, logits);
  // about 4 float4 per thread per chunk
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(65535, (V + 16 * kThreads - 1) / (16 * kThreads)));
  const dim3 grid(row_grid(N), (unsigned)chunks);
  ce_backward_kernel<<<grid, kThreads, 0, stream()>>>(dlogits, logits, lse, targets, N, V, scale, vec);
  PUZZLE_CUDA_CHECK_LAUNCH("cross_entropy_backward");
}

void kl_forward(float* losses, const float* teacher, const float* student, int64_t N, int64_t V) {
  if (N <= 0 || V <= 0) return;
  kl_forward_kernel<<<row_grid(N), kThreads, 0, stream()>>>(losses, teacher, student, N, V,
                                                            coaligned(teacher, student));
  PUZZLE_CUDA_CHECK_LAUNCH("kl_forward");
}

void kl_backward(float* dstudent, const float* teacher, const float* student, int64_t N, int64_t V, float scale) {
  if (!dstudent || N <= 0 || V <= 0) return;
  const bool vec = coaligned(teacher, student) && coaligned(teacher, dstudent);
  kl_backward_kernel<<<row_grid(N), kThreads, 0, stream()>>>(dstudent, teacher, student, N, V, scale, vec);
  PUZZLE_CUDA_CHECK_LAUNCH("kl_backward");
}

void cosine_forward(float* losses, const float* x, const float* y, int64_t N, int64_t C) {
  if (N <= 0 || C <= 0) return;
  cosine_forward_kernel<<<row_grid(N), row_threads(C), 0, stream()>>>(losses, x, y, N, C, coaligned(x, y));
  PUZZLE_CUDA_CHECK_LAUNCH("cosine_forward");
}

void cosine_backward(float* dx, const float* x, const float* y, int64_t N, int64_t C, float scale) {
  if (!dx || N <= 0 || C <= 0) return;
  const bool vec = coaligned(x, y) && coaligned(x, dx);
  cosine_backward_kernel<<<row_grid(N), row_threads(C), 0, stream()>>>(dx, x, y, N, C, scale, vec);
  PUZZLE_CUDA_CHECK_LAUNCH("cosine_backward");
}

double nmse_forward(const float* x, const float* y, int64_t n) {
  if (n <= 0) return NAN;  // the CPU's 0 / 0
  std::lock_guard<std::mutex> lock(g_scratch_mu);
  double* s = scratch();
  if (!s) return NAN;
  const bool vec = coaligned(x, y);
  const unsigned G = flat_grid(vec ? n / 4 + 1 : n, kRedBlocks);
  nmse_partial_kernel<true><<<G, kThreads, 0, stream()>>>(s + 2, s + 2 + kRedBlocks, x, y, n, vec);
  PUZZLE_CUDA_CHECK_LAUNCH("nmse_forward partials");
  finish_kernel<<<1, kThreads, 0, stream()>>>(s, s + 2, (int)G, 2);
  PUZZLE_CUDA_CHECK_LAUNCH("nmse_forward finish");
  double h[2] = {0.0, 0.0};
  record_error(cudaMemcpyAsync(h, s, sizeof h, cudaMemcpyDeviceToHost, stream()), "nmse_forward copy");
  record_error(cudaStreamSynchronize(stream()), "nmse_forward synchronize");
  return h[1] / h[0];
}

void nmse_backward(float* dx, const float* x, const float* y, int64_t n, float scale) {
  if (!dx || n <= 0) return;
  std::lock_guard<std::mutex> lock(g_scratch_mu);
  double* s = scratch();
  if (!s) return;
  const unsigned G = flat_grid(n / 4 + 1, kRedBlocks);
  nmse_partial_kernel<false><<<G, kThreads, 0, stream()>>>(s + 2, nullptr, nullptr, y, n, true);
  PUZZLE_CUDA_CHECK_LAUNCH("nmse_backward partials");
  finish_kernel<<<1, kThreads, 0, stream()>>>(s, s + 2, (int)G, 1);
  PUZZLE_CUDA_CHECK_LAUNCH("nmse_backward finish");
  const bool vec = coaligned(dx, x) && coaligned(dx, y);
  nmse_backward_kernel<<<flat_grid(vec ? n / 4 + 1 : n, 1 << 16), kThreads, 0, stream()>>>(dx, x, y, n, scale, s,
                                                                                           vec);
  PUZZLE_CUDA_CHECK_LAUNCH("nmse_backward");
}

}  // namespace puzzle::cuda
