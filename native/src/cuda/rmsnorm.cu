// RMSNorm (Llama), mirrors cpu/rmsnorm.cpp:
//   forward:  r = 1 / sqrt(mean(x^2) + eps);  out = x * r * w;  rstd[n] = r
//             (add_rmsnorm_forward: x = a + b, stored to sum first)
//   backward: dx += r * w * g - x * (r^3 / C) * sum(g * w * x);  dw += sum_n g * x * r
// One block per row (grid-stride over rows). The weight gradient is summed per block in shared
// memory (each thread owns the same columns on every row, so no shared atomics), then stored as
// the block's row of a partial-sum buffer [blocks][C], whose rows a second kernel adds into
// dweight: 16 atomics a column instead of one a block (8 blocks an SM: 1056 on an H200, each
// adding its C sums into the same C floats, had the backward at 0.11 ms for a 4096 x 4096 bf16
// row set, 3.5x its 134 MB (x, dout, dx read and written) over the copy bandwidth;
// benchmarks/results/gpu-h200-2026-11-30-b.md; the atomics' share of that is not measured).
// Without the buffer (its allocation failed) the blocks add their sums with atomics, as before.
// Activations and the weight are fp32 or bf16 (E); rstd and the weight gradient are fp32 in both.
#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/vec.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kDefaultSmem = 48 * 1024;
constexpr int64_t kStaticSmemSlack = 1024;

// The forward's blocks for a few rows (a decode step: one row a token): up to 1024 threads, so
// that each thread loads one or two vectors of its row instead of a chain of four or more, one
// after another (a row of 4096 is 1024 units of 4: one load each instead of four in a row).
constexpr int kFewRowsThreads = 1024;

// Threads per row block: enough for one unit each up to `cap`, a multiple of 32.
int row_threads(int64_t units, int cap = kThreads) {
  const int64_t t = (units + 31) / 32 * 32;
  return (int)std::max<int64_t>(32, std::min<int64_t>(cap, t));
}

// kAdd: the row is first sum = a + b (stored, then normalised as stored: rounded for bf16), so
// the residual add before a norm costs no pass of its own. Each thread re-reads only the elements
// it wrote itself (the same units in both loops), and sum may be a or b: hence no __restrict__ on
// those three.
template <int W, bool kAdd, class E>
__global__ void __launch_bounds__(kFewRowsThreads)
    rmsnorm_forward_kernel(E* __restrict__ out, float* __restrict__ rstd, E* sum, const E* a, const E* b,
                           const E* __restrict__ weight, int64_t N, int64_t C, float eps) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  const int64_t U = C / W;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const E* x = (kAdd ? sum : a) + n * C;
    float ss = 0.f;
    for (int64_t u = threadIdx.x; u < U; u += blockDim.x) {
      float xv[W];
      ld<W>(xv, a + n * C + u * W);
      if constexpr (kAdd) {
        float bv[W];
        ld<W>(bv, b + n * C + u * W);
#pragma unroll
        for (int k = 0; k < W; ++k) xv[k] = as_stored<E>(xv[k] + bv[k]);
        st<W>(sum + n * C + u * W, xv);
      }
#pragma unroll
      for (int k = 0; k < W; ++k) ss += xv[k] * xv[k];
    }
    ss = block_sum(ss);
    const float r = 1.0f / sqrtf(ss / (float)C + eps);
    if (threadIdx.x == 0 && rstd) rstd[n] = r;
    E* o = out + n * C;
    for (int64_t u = threadIdx.x; u < U; u += blockDim.x) {
      float xv[W], wv[W], ov[W];
      ld<W>(xv, x + u * W);
      ld<W>(wv, weight + u * W);
#pragma unroll
      for (int k = 0; k < W; ++k) ov[k] = xv[k] * r * wv[k];
      st<W>(o + u * W, ov);
    }
  }
}

// kDW: accumulate the weight gradient in dynamic shared memory (C floats) and at the end store it
// to row blockIdx.x of dw_part, or (dw_part null) add it to dweight with atomics. dinp may be null
// (then only the weight gradient is produced).
template <int W, bool kDW, class E>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_backward_kernel(E* __restrict__ dinp, float* __restrict__ dweight, float* __restrict__ dw_part,
                            const E* __restrict__ dout, const E* __restrict__ inp, const E* __restrict__ weight,
                            const float* __restrict__ rstd, int64_t N, int64_t C) {
  extern __shared__ float4 dw_smem4[];
  float* dw_s = reinterpret_cast<float*>(dw_smem4);
  const int64_t U = C / W;
  if constexpr (kDW) {
    const float zero[W] = {};
    for (int64_t u = threadIdx.x; u < U; u += blockDim.x) st<W>(dw_s + u * W, zero);
  }
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const E* x = inp + n * C;
    const E* g = dout + n * C;
    const float r = rstd[n];
    float dot = 0.f;
    for (int64_t u = threadIdx.x; u < U; u += blockDim.x) {
      float xv[W], gv[W], wv[W];
      ld<W>(xv, x + u * W);
      ld<W>(gv, g + u * W);
      ld<W>(wv, weight + u * W);
#pragma unroll
      for (int k = 0; k < W; ++k) dot += gv[k] * wv[k] * xv[k];
    }
    dot = block_sum(dot);
    const float kk = dot * r * r * r / (float)C;
    for (int64_t u = threadIdx.x; u < U; u += blockDim.x) {
      float xv[W], gv[W];
      ld<W>(xv, x + u * W);
      ld<W>(gv, g + u * W);
      if (dinp) {
        float wv[W], dv[W];
        ld<W>(wv, weight + u * W);
        E* dx = dinp + n * C + u * W;
        ld<W>(dv, dx);
#pragma unroll
        for (int k = 0; k < W; ++k) dv[k] += r * wv[k] * gv[k] - kk * xv[k];
        st<W>(dx, dv);
      }
      if constexpr (kDW) {
        float acc[W];
        ld<W>(acc, dw_s + u * W);
#pragma unroll
        for (int k = 0; k < W; ++k) acc[k] += gv[k] * xv[k] * r;
        st<W>(dw_s + u * W, acc);
      }
    }
  }
  if constexpr (kDW) {
    // Each thread reads back only the slots it wrote itself: no barrier needed.
    float* row = dw_part != nullptr ? dw_part + (int64_t)blockIdx.x * C : nullptr;
    for (int64_t u = threadIdx.x; u < U; u += blockDim.x) {
      float acc[W];
      ld<W>(acc, dw_s + u * W);
      if (row != nullptr) {
        st<W>(row + u * W, acc);
      } else {
#pragma unroll
        for (int k = 0; k < W; ++k) atomicAdd(dweight + u * W + k, acc[k]);
      }
    }
  }
}

// dweight[c] += the sum of rows [g0, g1) of part[G][C] for column c: one thread per column of a
// chunk of rows (blockIdx.y), coalesced along the row; a column gets one atomic per chunk.
__global__ void __launch_bounds__(kThreads)
    rmsnorm_dweight_rows_kernel(float* __restrict__ dweight, const float* __restrict__ part, int64_t G, int64_t C,
                                int64_t rows_per_chunk) {
  const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int64_t g0 = (int64_t)blockIdx.y * rows_per_chunk, g1 = g0 + rows_per_chunk < G ? g0 + rows_per_chunk : G;
  float acc = 0.f;
  for (int64_t g = g0; g < g1; ++g) acc += part[g * C + c];
  if (g0 < g1) atomicAdd(dweight + c, acc);
}

// Fallback for a C too wide for shared memory: one thread per column over a chunk of rows.
template <class E>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_dweight_columns_kernel(float* __restrict__ dweight, const E* __restrict__ dout,
                                   const E* __restrict__ inp, const float* __restrict__ rstd, int64_t N, int64_t C,
                                   int64_t rows_per_chunk) {
  const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int64_t n0 = (int64_t)blockIdx.y * rows_per_chunk, n1 = n0 + rows_per_chunk < N ? n0 + rows_per_chunk : N;
  float acc = 0.f;
  for (int64_t n = n0; n < n1; ++n) {
    float g[1], x[1];
    ld<1>(g, dout + n * C + c);
    ld<1>(x, inp + n * C + c);
    acc += g[0] * x[0] * rstd[n];
  }
  if (n0 < n1) atomicAdd(dweight + c, acc);
}

template <int W, class E>
void launch_backward(E* dinp, float* dweight, const E* dout, const E* inp, const E* weight, const float* rstd,
                     int64_t N, int64_t C) {
  const int threads = row_threads(C / W);
  const int64_t smem = C * (int64_t)sizeof(float);
  // The kernel also has static shared memory (block_sum's 128 bytes): keep a margin under what a
  // block may have. The limit is raised once, to all the device grants (a cap, not an allocation:
  // each launch takes its own C floats), so no later call, e.g. during a graph capture, sets it.
  static const int64_t cap = [] {
    const int64_t most = device_smem_optin() - kStaticSmemSlack;
    return raise_smem_limit(rmsnorm_backward_kernel<W, true, E>, (size_t)most) ? most : kDefaultSmem - kStaticSmemSlack;
  }();
  const bool fused_dw = dweight != nullptr && smem <= cap;
  if (fused_dw) {
    // Enough blocks to fill the device, each summing its rows' weight gradient; the partial sums
    // are added by a second kernel (stream-ordered scratch: captured graphs own theirs).
    const int64_t G = std::min<int64_t>(N, 8 * (int64_t)device_sm_count());
    void* part = nullptr;
    if (G > 1 && cudaMallocAsync(&part, (size_t)(G * C) * sizeof(float), stream()) != cudaSuccess) {
      (void)cudaGetLastError();  // the atomics need no buffer
      part = nullptr;
    }
    rmsnorm_backward_kernel<W, true, E><<<(unsigned)G, threads, (size_t)smem, stream()>>>(
        dinp, dweight, static_cast<float*>(part), dout, inp, weight, rstd, N, C);
    PUZZLE_CUDA_CHECK_LAUNCH("rmsnorm_backward");
    if (part != nullptr) {
      const int64_t chunks = std::min<int64_t>(G, 16);
      const dim3 grid((unsigned)((C + kThreads - 1) / kThreads), (unsigned)chunks);
      rmsnorm_dweight_rows_kernel<<<grid, kThreads, 0, stream()>>>(dweight, static_cast<const float*>(part), G, C,
                                                                  (G + chunks - 1) / chunks);
      PUZZLE_CUDA_CHECK_LAUNCH("rmsnorm_backward dweight");
      record_error(cudaFreeAsync(part, stream()), "rmsnorm_backward");
    }
    return;
  }
  if (dinp) {
    const unsigned grid = (unsigned)std::min<int64_t>(N, 1 << 20);
    rmsnorm_backward_kernel<W, false, E><<<grid, threads, 0, stream()>>>(dinp, nullptr, nullptr, dout, inp, weight,
                                                                         rstd, N, C);
    PUZZLE_CUDA_CHECK_LAUNCH("rmsnorm_backward");
  }
  if (dweight) {
    const int64_t chunks = std::min<int64_t>(65535, (N + 63) / 64);
    const int64_t rows_per_chunk = (N + chunks - 1) / chunks;
    const dim3 grid((unsigned)((C + kThreads - 1) / kThreads), (unsigned)chunks);
    rmsnorm_dweight_columns_kernel<E><<<grid, kThreads, 0, stream()>>>(dweight, dout, inp, rstd, N, C, rows_per_chunk);
    PUZZLE_CUDA_CHECK_LAUNCH("rmsnorm_backward dweight");
  }
}

template <bool kAdd, class E>
void forward_t(E* out, float* rstd, E* sum, const E* a, const E* b, const E* weight, int64_t N, int64_t C, float eps,
               const char* name) {
  if (N <= 0 || C <= 0) return;
  const unsigned grid = (unsigned)std::min<int64_t>(N, 1 << 20);
  const bool vec = C % 4 == 0 && vec_aligned(out) && vec_aligned(a) && vec_aligned(weight) &&
                   (!kAdd || (vec_aligned(b) && vec_aligned(sum)));
  // many rows: blocks of up to 256 threads, several per SM, hide each other's latency; a few rows
  // (under two blocks per SM) take wider blocks instead
  const int cap = N < 2 * (int64_t)device_sm_count() ? kFewRowsThreads : kThreads;
  if (vec)
    launch_pdl(name, rmsnorm_forward_kernel<4, kAdd, E>, grid, row_threads(C / 4, cap), 0, out, rstd, sum, a, b, weight,
               N, C, eps);
  else
    launch_pdl(name, rmsnorm_forward_kernel<1, kAdd, E>, grid, row_threads(C, cap), 0, out, rstd, sum, a, b, weight, N,
               C, eps);
}

template <class E>
void backward_t(E* dinp, float* dweight, const E* dout, const E* inp, const E* weight, const float* rstd, int64_t N,
                int64_t C) {
  if ((!dinp && !dweight) || N <= 0 || C <= 0) return;
  if (C % 4 == 0 && vec_aligned(dout) && vec_aligned(inp) && vec_aligned(weight) && (!dinp || vec_aligned(dinp)))
    launch_backward<4>(dinp, dweight, dout, inp, weight, rstd, N, C);
  else
    launch_backward<1>(dinp, dweight, dout, inp, weight, rstd, N, C);
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps) {
  forward_t<false>(out, rstd, (float*)nullptr, inp, (const float*)nullptr, weight, N, C, eps, "rmsnorm_forward");
}
void rmsnorm_forward(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int64_t N, int64_t C, float eps) {
  forward_t<false>(dev(out), rstd, (bf16x*)nullptr, dev(inp), (const bf16x*)nullptr, dev(weight), N, C, eps,
                   "rmsnorm_forward");
}
void add_rmsnorm_forward(float* sum, float* out, float* rstd, const float* a, const float* b, const float* weight,
                         int64_t N, int64_t C, float eps) {
  forward_t<true>(out, rstd, sum, a, b, weight, N, C, eps, "add_rmsnorm_forward");
}
void add_rmsnorm_forward(bf16* sum, bf16* out, float* rstd, const bf16* a, const bf16* b, const bf16* weight,
                         int64_t N, int64_t C, float eps) {
  forward_t<true>(dev(out), rstd, dev(sum), dev(a), dev(b), dev(weight), N, C, eps, "add_rmsnorm_forward");
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C) {
  backward_t(dinp, dweight, dout, inp, weight, rstd, N, C);
}
void rmsnorm_backward(bf16* dinp, float* dweight, const bf16* dout, const bf16* inp, const bf16* weight,
                      const float* rstd, int64_t N, int64_t C) {
  backward_t(dinp ? dev(dinp) : nullptr, dweight, dev(dout), dev(inp), dev(weight), rstd, N, C);
}

}  // namespace puzzle::cuda
