// Attention with bf16 storage (OpsBf16). The kernels that matter for speed read and write bf16
// themselves: for HS 64/128 the mma.sync forward and backward of attention_mma.cu and the same
// forward over a cache for a prefill of more than 16 queries, or with PUZZLE_CUDA_ATTN=wmma the
// three wmma kernels of attention.cu (attention_forward_tc, attention_backward_tc,
// attention_cached_forward_tc); for any head size the split-KV decode over a bf16 cache (up to
// 16 queries: attention_decode). The backward's dQ is summed over key tiles with fp32 atomics, so
// it goes to packed fp32 scratch here and is rounded into its bf16 slice once, after.
//
// Everything else (other head sizes, PUZZLE_CUDA_ATTN=simt) takes a bridge to the fp32 kernels:
// the bf16 column slices of q, k, v (and dout, out) are widened into packed fp32 scratch taken
// from the stream-ordered pool, the fp32 kernels run on it, and results are rounded back into
// their bf16 slices (gradients added to what is there, in fp32, as the contract's += asks). The
// numbers are those of the direct paths (the tensor-core kernels round their operands to bf16
// anyway); the cost is the copies.
//
// Scratch comes from cudaMallocAsync on stream(), which CUDA graphs capture as memory nodes.
#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/vec.cuh"

namespace puzzle::cuda {
namespace {

constexpr int kThreads = 256;

// out[r, c] (packed, row length cols) = in[r * stride + c], r < rows, c < cols; batch b offsets
// both by b * rows_per_batch rows of in (stride in_bstride) and of out.
__global__ void __launch_bounds__(kThreads)
    widen_rows_kernel(float* __restrict__ out, const bf16x* __restrict__ in, int64_t B, int64_t rows, int64_t cols,
                      int64_t stride, int64_t in_bstride) {
  for (int64_t b = blockIdx.z; b < B; b += gridDim.z)
    for (int64_t r = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; r < rows; r += (int64_t)gridDim.y * blockDim.y)
      for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (int64_t)gridDim.x * blockDim.x)
        out[(b * rows + r) * cols + c] = __bfloat162float(in[b * in_bstride + r * stride + c]);
}

// out[r * stride + c] = round(in[r, c] (+ out[r * stride + c] when accumulating)).
__global__ void __launch_bounds__(kThreads)
    narrow_rows_kernel(bf16x* __restrict__ out, const float* __restrict__ in, int64_t rows, int64_t cols,
                       int64_t stride, bool accumulate) {
  for (int64_t r = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; r < rows; r += (int64_t)gridDim.y * blockDim.y)
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (int64_t)gridDim.x * blockDim.x) {
      bf16x* p = out + r * stride + c;
      const float v = in[r * cols + c] + (accumulate ? __bfloat162float(*p) : 0.f);
      *p = __float2bfloat16_rn(v);
    }
}

// Packed fp32 scratch from the pool; freed in stream order when it goes out of scope.
struct Scratch {
  float* p = nullptr;
  explicit Scratch(int64_t n) {
    if (n > 0) record_error(cudaMallocAsync(reinterpret_cast<void**>(&p), (size_t)n * sizeof(float), stream()),
                            "attention (bf16) scratch");
  }
  ~Scratch() {
    if (p) record_error(cudaFreeAsync(p, stream()), "attention (bf16) scratch");
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

void widen(float* out, const bf16x* in, int64_t B, int64_t rows, int64_t cols, int64_t stride, int64_t in_bstride) {
  if (B <= 0 || rows <= 0 || cols <= 0) return;
  const Geometry g = geometry(B, rows, cols);
  widen_rows_kernel<<<g.grid, g.block, 0, stream()>>>(out, in, B, rows, cols, stride, in_bstride);
  PUZZLE_CUDA_CHECK_LAUNCH("attention (bf16) widen");
}
void widen(float* out, const bf16x* in, int64_t rows, int64_t cols, int64_t stride) {
  widen(out, in, 1, rows, cols, stride, 0);
}

void narrow(bf16x* out, const float* in, int64_t rows, int64_t cols, int64_t stride, bool accumulate) {
  if (rows <= 0 || cols <= 0) return;
  const Geometry g = geometry(rows, cols);
  narrow_rows_kernel<<<g.grid, g.block, 0, stream()>>>(out, in, rows, cols, stride, accumulate);
  PUZZLE_CUDA_CHECK_LAUNCH("attention (bf16) narrow");
}

}  // namespace

void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                       int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride) {
  if (attention_mma_selected() && attention_forward_mma(out, lse, q, k, v, B, T, NH, NKV, HS, q_stride, kv_stride))
    return;
  if (attention_forward_tc(out, lse, q, k, v, B, T, NH, NKV, HS, q_stride, kv_stride)) return;
  const int64_t N = B * T, QW = NH * HS, KW = NKV * HS;
  if (N <= 0) return;
  Scratch q32(N * QW), k32(N * KW), v32(N * KW), o32(N * QW);
  widen(q32.p, dev(q), N, QW, q_stride);
  widen(k32.p, dev(k), N, KW, kv_stride);
  widen(v32.p, dev(v), N, KW, kv_stride);
  attention_forward(o32.p, lse, q32.p, k32.p, v32.p, B, T, NH, NKV, HS, QW, KW);
  narrow(dev(out), o32.p, N, QW, QW, false);
}

void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                        const bf16* out, const float* lse, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS,
                        int64_t q_stride, int64_t kv_stride) {
  const int64_t N = B * T, QW = NH * HS, KW = NKV * HS;
  if (N <= 0 || (dq == nullptr && dk == nullptr && dv == nullptr)) return;
  // dQ is summed over key tiles in fp32 either way, then rounded into its slice once
  Scratch dq32(dq != nullptr ? N * QW : 0);
  if (dq != nullptr)
    record_error(cudaMemsetAsync(dq32.p, 0, (size_t)N * QW * sizeof(float), stream()), "attention (bf16) zero");
  bool done = false;
  if (attention_mma_selected() && (HS == 64 || HS == 128)) {
    Scratch D(N * NH);  // rowsum(dout * out) [B, NH, T], computed there if its kernel runs
    done = attention_backward_mma(dq32.p, dk, dv, dout, q, k, v, out, lse, D.p, B, T, NH, NKV, HS, q_stride,
                                  kv_stride);
  }
  if (!done &&
      !attention_backward_tc(dq32.p, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, HS, q_stride, kv_stride)) {
    Scratch q32(N * QW), k32(N * KW), v32(N * KW), o32(N * QW), d32(N * QW), dk32(dk != nullptr ? N * KW : 0),
        dv32(dv != nullptr ? N * KW : 0);
    widen(q32.p, dev(q), N, QW, q_stride);
    widen(k32.p, dev(k), N, KW, kv_stride);
    widen(v32.p, dev(v), N, KW, kv_stride);
    widen(o32.p, dev(out), N, QW, QW);
    widen(d32.p, dev(dout), N, QW, QW);
    if (dk != nullptr)
      record_error(cudaMemsetAsync(dk32.p, 0, (size_t)N * KW * sizeof(float), stream()), "attention (bf16) zero");
    if (dv != nullptr)
      record_error(cudaMemsetAsync(dv32.p, 0, (size_t)N * KW * sizeof(float), stream()), "attention (bf16) zero");
    attention_backward(dq32.p, dk32.p, dv32.p, d32.p, q32.p, k32.p, v32.p, o32.p, lse, B, T, NH, NKV, HS, QW, KW);
    if (dk != nullptr) narrow(dev(dk), dk32.p, N, KW, kv_stride, true);
    if (dv != nullptr) narrow(dev(dv), dv32.p, N, KW, kv_stride, true);
  }
  if (dq != nullptr) narrow(dev(dq), dq32.p, N, QW, q_stride, true);
}

void attention_cached_forward(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, int64_t B,
                              int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                              int64_t Tmax) {
  if (attention_decode(out, q, k_cache, v_cache, B, Tq, NH, NKV, HS, q_stride, past, Tmax)) return;
  if (attention_mma_selected() &&
      attention_cached_forward_mma(out, q, k_cache, v_cache, B, Tq, NH, NKV, HS, q_stride, past, Tmax))
    return;
  if (attention_cached_forward_tc(out, q, k_cache, v_cache, B, Tq, NH, NKV, HS, q_stride, past, Tmax)) return;
  const int64_t QW = NH * HS, KW = NKV * HS, rows = past + Tq;  // cache rows the queries can see
  if (B <= 0 || Tq <= 0) return;
  Scratch q32(B * Tq * QW), k32(B * rows * KW), v32(B * rows * KW), o32(B * Tq * QW);
  widen(q32.p, dev(q), B * Tq, QW, q_stride);
  widen(k32.p, dev(k_cache), B, rows, KW, KW, Tmax * KW);
  widen(v32.p, dev(v_cache), B, rows, KW, KW, Tmax * KW);
  attention_cached_forward(o32.p, q32.p, k32.p, v32.p, B, Tq, NH, NKV, HS, QW, past, rows);
  narrow(dev(out), o32.p, B * Tq, QW, QW, false);
}

}  // namespace puzzle::cuda
