// Residual add and gradient accumulation (mirrors cpu/elementwise.cpp), for fp32 and bf16 storage
// (E), and the fp32 <-> bf16 conversions of mixed precision. The KV-cache append is in rope.cu.
// Flat ops split the range into a scalar head (up to the first vector boundary), a vector body
// and a scalar tail, when all arrays share the same alignment; otherwise all scalar.
#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/vec.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride loops beyond this

unsigned grid_for(int64_t units) {
  return (unsigned)std::max<int64_t>(1, std::min<int64_t>((units + kThreads - 1) / kThreads, kMaxBlocks));
}

__device__ __forceinline__ int64_t global_tid() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t global_stride() { return (int64_t)gridDim.x * blockDim.x; }

template <class E>
__global__ void __launch_bounds__(kThreads) add_kernel(E* out, const E* a, const E* b, int64_t n, bool vec) {
  split_apply(out, n, vec, global_tid(), global_stride(), [&](int64_t i, auto w) {
    constexpr int W = decltype(w)::value;
    float x[W], y[W];
    ld<W>(x, a + i);
    ld<W>(y, b + i);
#pragma unroll
    for (int k = 0; k < W; ++k) x[k] = x[k] + y[k];
    st<W>(out + i, x);
  });
}

template <class E>
__global__ void __launch_bounds__(kThreads) accumulate_kernel(E* out, const E* a, int64_t n, bool vec) {
  pdl_wait();  // launched with launch_pdl (cuda/common.cuh): before any global access
  pdl_trigger();
  split_apply(out, n, vec, global_tid(), global_stride(), [&](int64_t i, auto w) {
    constexpr int W = decltype(w)::value;
    float x[W], y[W];
    ld<W>(x, out + i);
    ld<W>(y, a + i);
#pragma unroll
    for (int k = 0; k < W; ++k) x[k] += y[k];
    st<W>(out + i, x);
  });
}

// out[i] = In -> Out conversion of inp[i]; vectors of 4 when both bases are vector-aligned.
template <class Out, class In>
__global__ void __launch_bounds__(kThreads) convert_kernel(Out* __restrict__ out, const In* __restrict__ inp, int64_t n,
                                                           bool vec) {
  const int64_t nvec = vec ? n / 4 : 0;
  for (int64_t j = global_tid(); j < nvec; j += global_stride()) {
    float v[4];
    ld<4>(v, inp + 4 * j);
    st<4>(out + 4 * j, v);
  }
  for (int64_t i = 4 * nvec + global_tid(); i < n; i += global_stride()) {
    float v[1];
    ld<1>(v, inp + i);
    st<1>(out + i, v);
  }
}

template <class E>
void add_t(E* out, const E* a, const E* b, int64_t n) {
  if (n <= 0) return;
  const bool vec = vec_coaligned(out, a) && vec_coaligned(out, b);
  add_kernel<E><<<grid_for(vec ? n / 4 + 1 : n), kThreads, 0, stream()>>>(out, a, b, n, vec);
  PUZZLE_CUDA_CHECK_LAUNCH("add_forward");
}

template <class E>
void accumulate_t(E* out, const E* a, int64_t n) {
  if (n <= 0) return;
  const bool vec = vec_coaligned(out, a);
  launch_pdl("accumulate", accumulate_kernel<E>, grid_for(vec ? n / 4 + 1 : n), kThreads, 0, out, a, n, vec);
}

template <class Out, class In>
void convert_t(Out* out, const In* inp, int64_t n, const char* name) {
  if (n <= 0) return;
  const bool vec = vec_aligned(out) && vec_aligned(inp);
  convert_kernel<Out, In><<<grid_for(vec ? n / 4 + 1 : n), kThreads, 0, stream()>>>(out, inp, n, vec);
  PUZZLE_CUDA_CHECK_LAUNCH(name);
}

}  // namespace

void add_forward(float* out, const float* a, const float* b, int64_t n) { add_t(out, a, b, n); }
void add_forward(bf16* out, const bf16* a, const bf16* b, int64_t n) { add_t(dev(out), dev(a), dev(b), n); }
void accumulate(float* out, const float* a, int64_t n) { accumulate_t(out, a, n); }
void accumulate(bf16* out, const bf16* a, int64_t n) { accumulate_t(dev(out), dev(a), n); }

void to_bf16(bf16* out, const float* inp, int64_t n) { convert_t(dev(out), inp, n, "to_bf16"); }
void to_f32(float* out, const bf16* inp, int64_t n) { convert_t(out, dev(inp), n, "to_f32"); }

}  // namespace puzzle::cuda
