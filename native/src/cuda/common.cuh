// Shared CUDA helpers and the declarations of every kernel entry point of the CUDA backend.
// Each function mirrors the CPU kernel of the same name (native/src/cpu/ops_cpu.h) and the op
// contract in puzzle/backend.h: same arguments, same layouts, same accumulate/write rules.
// All pointers are device pointers. Work is queued on the backend's one stream (stream());
// functions return without waiting, except those that return a value to the host.
// Storage is fp32 (Ops) or bf16 (OpsBf16: the overloads taking puzzle::bf16, mixed precision
// with fp32 statistics and weight gradients); matrix products run on the tensor cores with bf16
// operands and fp32 accumulation; reductions accumulate in fp32 (double for the two returned
// sums).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "puzzle/bf16.h"

namespace puzzle::cuda {

// The host's bf16 (an opaque 16-bit value) is CUDA's __nv_bfloat16 bit for bit.
using bf16x = __nv_bfloat16;
static_assert(sizeof(bf16x) == sizeof(bf16), "bf16 layouts differ");
inline const bf16x* dev(const bf16* p) { return reinterpret_cast<const bf16x*>(p); }
inline bf16x* dev(bf16* p) { return reinterpret_cast<bf16x*>(p); }

// The backend's stream (created on first use, non-blocking). Every launch goes on it, so a
// whole forward pass can be captured into a CUDA graph.
cudaStream_t stream();

// Records the first launch or runtime error seen (sticky, like CUDA's own), so host code that
// has no error channel (the op table returns void) can report it at the next synchronize.
void record_error(cudaError_t e, const char* where);
#define PUZZLE_CUDA_CHECK_LAUNCH(where) ::puzzle::cuda::record_error(cudaGetLastError(), where)

inline unsigned blocks_for(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

// The current device's attributes that grids and tiles are sized by, read once: its SM count
// (1 if the query fails) and the shared memory a block may opt in to (227 KiB on sm_90, 163 KiB
// on sm_80, 99 KiB on sm_86 / sm_89; 48 KiB, what every block gets, if the query fails).
inline int device_attribute_once(cudaDeviceAttr attr, int fallback) {
  int dev = 0, v = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, attr, dev) != cudaSuccess || v <= 0) {
    (void)cudaGetLastError();  // a failed query is not an error of the next launch
    return fallback;
  }
  return v;
}
inline int device_sm_count() {
  static const int n = device_attribute_once(cudaDevAttrMultiProcessorCount, 1);
  return n;
}
inline int device_smem_optin() {
  static const int n = device_attribute_once(cudaDevAttrMaxSharedMemoryPerBlockOptin, 48 * 1024);
  return n;
}

// Lets `kernel` launch with `bytes` of dynamic shared memory: true when that is within the 48 KiB
// every block gets or the device grants it (the attribute raised); false, nothing recorded, when
// it does not (the caller declines or refuses). Callers keep the result in a function-local
// static: once per kernel, never again during a graph capture.
template <class Kernel>
bool raise_smem_limit(Kernel* kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return true;
  if ((int64_t)bytes > device_smem_optin()) return false;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes) == cudaSuccess) return true;
  (void)cudaGetLastError();
  return false;
}

// Programmatic dependent launch (sm_90+; PUZZLE_CUDA_PDL=1 until a GPU run has timed it): a
// kernel launched with launch_pdl may start while the kernel before it on the stream is still
// finishing, so its launch and block scheduling hide behind that kernel's last wave instead of
// following it (a decode step is about a dozen short kernels back to back; in a CUDA graph the
// edges are captured as programmatic ones). The contract, for every kernel launched that way:
// pdl_wait() comes before its first global memory access, read or write (it returns once the
// kernels before it have completed and their writes are visible; a no-op when not launched with
// PDL or below sm_90). pdl_trigger() lets the next kernel launch early; it is called right after.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}
// backend_cuda.cu: PUZZLE_CUDA_PDL=1, an sm_90+ device and kernels built for it (read once).
bool pdl_enabled();
// The rule pdl_enabled() applies to what it queried (apart, so that tests can check it): the
// variable exactly "1", compute capability 9 or more, and a kernel of this module built as sm_90+
// binary from sm_90+ PTX (code JIT-compiled from sm_80 PTX has no griddepcontrol.wait).
inline bool pdl_allowed(const char* env, int cc_major, int binary_version, int ptx_version) {
  return env != nullptr && std::strcmp(env, "1") == 0 && cc_major >= 9 && binary_version >= 90 && ptx_version >= 90;
}
// kernel<<<grid, block, smem, stream()>>>(args...), with the programmatic-serialization
// attribute when pdl_enabled(); errors recorded under `where`. Only for kernels that begin with
// pdl_wait() (see above).
template <class... P, class... A>
void launch_pdl(const char* where, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, A&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream();
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  record_error(cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...), where);
  PUZZLE_CUDA_CHECK_LAUNCH(where);
}

// Sum over a thread block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
// float for activations, double for the reductions returned to the host.
template <class T>
__device__ inline T block_sum(T v) {
  __shared__ T warp_sums[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // warp_sums may still be read by a previous call
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  const int nwarps = blockDim.x / 32;
  v = lane < nwarps ? warp_sums[lane] : T(0);
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  return v;
}

__device__ inline float block_max(float v) {
  __shared__ float warp_max[32];
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) warp_max[warp] = v;
  __syncthreads();
  const int nwarps = blockDim.x / 32;
  v = lane < nwarps ? warp_max[lane] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
  return v;
}

// ---- elementwise.cu / embedding.cu / rmsnorm.cu / rope.cu / swiglu.cu / losses.cu / adamw.cu
void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C);
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C);
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C);
void rope_forward(float* out, const float* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                  int64_t T, int64_t NH, int64_t HS, int64_t stride);
void rope_backward(float* dinp, const float* dout, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                   int64_t T, int64_t NH, int64_t HS, int64_t stride);
void swiglu_forward(float* out, const float* gu, int64_t N, int64_t F);
void swiglu_backward(float* dgu, const float* dout, const float* gu, int64_t N, int64_t F);
void add_forward(float* out, const float* a, const float* b, int64_t n);
void accumulate(float* out, const float* a, int64_t n);
void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V);
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse, const int32_t* targets, int64_t N,
                            int64_t V, float scale);
void kl_forward(float* losses, const float* teacher, const float* student, int64_t N, int64_t V);
void kl_backward(float* dstudent, const float* teacher, const float* student, int64_t N, int64_t V, float scale);
void cosine_forward(float* losses, const float* x, const float* y, int64_t N, int64_t C);
void cosine_backward(float* dx, const float* x, const float* y, int64_t N, int64_t C, float scale);
double nmse_forward(const float* x, const float* y, int64_t n);  // synchronises
void nmse_backward(float* dx, const float* x, const float* y, int64_t n, float scale);
double sum_squares(const float* x, int64_t n);  // synchronises
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float grad_scale, int64_t t);
// RoPE on the q and k heads of a fused qkv[B,T,(NH+2NKV)*HS] in place, and its keys/values
// appended to the caches [B,Tmax,NKV*HS] at rows past .. past+T-1: one launch for both.
void rope_kv_cache_append(float* qkv, float* k_cache, float* v_cache, const float* cos, const float* sin,
                          const int32_t* pos, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t past,
                          int64_t Tmax);
// sum = a + b, then out = RMSNorm(sum): the residual add and the next norm in one pass
void add_rmsnorm_forward(float* sum, float* out, float* rstd, const float* a, const float* b, const float* weight,
                         int64_t N, int64_t C, float eps);

// ---- gemm.cu / matmul.cu
// C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C, row-major with row strides (see
// puzzle/gemm.h); beta == 0 overwrites C.
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
const char* gemm_kernel_name();  // "cublas", "puzzle-mma-bf16" or "puzzle-wmma-bf16" (for reports)
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC);
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC);

// gemm.cu: the few-rows dot kernels with the inference fusions (for norm_linear.cu): out[N,OC] =
// res + RMSNorm?(x; nw) @ W[OC,C]^T (nw null: no norm; res null: none; out may be res), or with
// F > 0 out[N,F] = SwiGLU(RMSNorm(x; nw) @ W[2F,C]^T). One launch; false, nothing queued, where those
// kernels do not take the shape (N > 16 or N over the output columns, SwiGLU without a norm or with
// a residual) or PUZZLE_CUDA_GEMM=cublas.
bool small_linear_fused(float* out, const float* x, const float* nw, const float* W, const float* res, int64_t N,
                        int64_t C, int64_t OC, int64_t F, float eps);
bool small_linear_fused(bf16* out, const bf16* x, const bf16* nw, const bf16* W, const bf16* res, int64_t N, int64_t C,
                        int64_t OC, int64_t F, float eps);
// qkv[B*T,(NH+2NKV)*HS] = RMSNorm(x; nw) @ W^T, then q and k rotated and the new keys and values
// appended to the caches (norm_qkv_rope_cache_forward, puzzle/backend.h): one launch of the dot
// kernels; false, nothing queued, where they do not take it (more than 16 rows, no norm, an odd
// head size) or PUZZLE_CUDA_GEMM=cublas.
bool small_qkv_rope_fused(float* qkv, float* k_cache, float* v_cache, const float* x, const float* nw, const float* W,
                          const float* cos, const float* sin, const int32_t* pos, int64_t B, int64_t T, int64_t C,
                          int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tmax, float eps);
bool small_qkv_rope_fused(bf16* qkv, bf16* k_cache, bf16* v_cache, const bf16* x, const bf16* nw, const bf16* W,
                          const float* cos, const float* sin, const int32_t* pos, int64_t B, int64_t T, int64_t C,
                          int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tmax, float eps);
// norm_linear.cu: Ops::norm_linear_forward, norm_swiglu_forward, norm_qkv_rope_cache_forward
void norm_linear_forward(float* out, float* ln, float* rstd, const float* x, const float* norm_weight,
                         const float* weight, const float* res, int64_t N, int64_t C, int64_t OC, float eps);
void norm_swiglu_forward(float* out, float* ln, float* rstd, float* gu, const float* x, const float* norm_weight,
                         const float* weight, int64_t N, int64_t C, int64_t F, float eps);
void norm_linear_forward(bf16* out, bf16* ln, float* rstd, const bf16* x, const bf16* norm_weight, const bf16* weight,
                         const bf16* res, int64_t N, int64_t C, int64_t OC, float eps);
void norm_swiglu_forward(bf16* out, bf16* ln, float* rstd, bf16* gu, const bf16* x, const bf16* norm_weight,
                         const bf16* weight, int64_t N, int64_t C, int64_t F, float eps);
void norm_qkv_rope_cache_forward(float* qkv, float* ln, float* rstd, float* k_cache, float* v_cache, const float* x,
                                 const float* norm_weight, const float* weight, const float* cos, const float* sin,
                                 const int32_t* pos, int64_t B, int64_t T, int64_t C, int64_t NH, int64_t NKV,
                                 int64_t HS, int64_t past, int64_t Tmax, float eps);
void norm_qkv_rope_cache_forward(bf16* qkv, bf16* ln, float* rstd, bf16* k_cache, bf16* v_cache, const bf16* x,
                                 const bf16* norm_weight, const bf16* weight, const float* cos, const float* sin,
                                 const int32_t* pos, int64_t B, int64_t T, int64_t C, int64_t NH, int64_t NKV,
                                 int64_t HS, int64_t past, int64_t Tmax, float eps);

// ---- the bf16 (mixed precision) overloads, same semantics as above (see OpsBf16 in puzzle/backend.h)
void to_bf16(bf16* out, const float* inp, int64_t n);
void to_f32(float* out, const bf16* inp, int64_t n);
void rmsnorm_forward(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int64_t N, int64_t C, float eps);
void rmsnorm_backward(bf16* dinp, float* dweight, const bf16* dout, const bf16* inp, const bf16* weight,
                      const float* rstd, int64_t N, int64_t C);
void rope_forward(bf16* out, const bf16* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                  int64_t T, int64_t NH, int64_t HS, int64_t stride);
void rope_backward(bf16* dinp, const bf16* dout, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                   int64_t T, int64_t NH, int64_t HS, int64_t stride);
void swiglu_forward(bf16* out, const bf16* gu, int64_t N, int64_t F);
void swiglu_backward(bf16* dgu, const bf16* dout, const bf16* gu, int64_t N, int64_t F);
void add_forward(bf16* out, const bf16* a, const bf16* b, int64_t n);
void accumulate(bf16* out, const bf16* a, int64_t n);
void rope_kv_cache_append(bf16* qkv, bf16* k_cache, bf16* v_cache, const float* cos, const float* sin,
                          const int32_t* pos, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t past,
                          int64_t Tmax);
void add_rmsnorm_forward(bf16* sum, bf16* out, float* rstd, const bf16* a, const bf16* b, const bf16* weight,
                         int64_t N, int64_t C, float eps);
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
          const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc);
void gemm_f32out(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
                 const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc);
// gemm_mma.cu: the same for bf16 operands on mma.sync with cp.async stages (what gemm() runs for
// large bf16 shapes without cuBLAS); false, nothing queued, unless A and B are 16-byte aligned with
// row strides a multiple of 8 and M, N, K fit an int.
bool gemm_mma(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const bf16x* A, int64_t lda,
              const bf16x* B, int64_t ldb, float beta, bf16x* C, int64_t ldc);
bool gemm_mma(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const bf16x* A, int64_t lda,
              const bf16x* B, int64_t ldb, float beta, float* C, int64_t ldc);
// Frees the split-K partial-sum buffer gemm_mma keeps between calls (tests check with it that
// nothing else was left allocated; the next split-K call allocates again).
void gemm_mma_trim_scratch();
// attention.cu: the tensor-core forward reading and writing bf16 directly (HS 64/128 unless
// PUZZLE_CUDA_ATTN=simt; returns false, queuing nothing, otherwise).
bool attention_forward_tc(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                          int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
// attention_mma.cu: the same forward on mma.sync with register-resident scores and cp.async
// double buffering (HS 64/128; false, nothing queued, otherwise). attention_forward (bf16)
// takes it when attention_mma_selected() (unless PUZZLE_CUDA_ATTN=wmma or simt).
bool attention_forward_mma(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                           int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
// attention_mma.cu: the same over a bf16 cache (as attention_cached_forward_tc below).
bool attention_cached_forward_mma(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, int64_t B,
                                  int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                                  int64_t Tmax);
bool attention_mma_selected();
// attention_mma.cu: the matching backward (HS 64/128; false, nothing queued, otherwise): dk, dv
// added (+=) to their bf16 slices, dQ added to dq32 (fp32, packed [B*T, NH*HS]), as
// attention_backward_tc. D: B * NH * T floats of scratch, where it writes the pre-pass
// rowsum(dout * out) (attention_backward_dot) once it knows its kernel runs here, so a call it
// declines costs no pre-pass.
bool attention_backward_mma(float* dq32, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                            const bf16* v, const bf16* out, const float* lse, float* D, int64_t B, int64_t T,
                            int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
// attention.cu: D[b, h, t] = sum over the head of dout * out (the backward's pre-pass), bf16 in.
void attention_backward_dot(float* D, const bf16* dout, const bf16* out, int64_t B, int64_t T, int64_t NH,
                            int64_t HS);
// attention.cu: the tensor-core backward reading bf16 directly (same condition; false, nothing
// queued, otherwise): dk, dv added (+=) to their bf16 slices, each sum rounded once; dQ added to
// dq32, fp32 packed [B*T, NH*HS] (key tiles sum into it with atomics: the caller rounds it into
// its bf16 slice once, after).
bool attention_backward_tc(float* dq32, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                           const bf16* v, const bf16* out, const float* lse, int64_t B, int64_t T, int64_t NH,
                           int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
// attention.cu: the tensor-core forward over a bf16 cache (a prefill of Tq queries at positions
// past.., keys 0..past+Tq-1 of caches [B, Tmax, NKV*HS]; no lse). Same condition as
// attention_forward_tc; false, nothing queued, otherwise.
bool attention_cached_forward_tc(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, int64_t B,
                                 int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                                 int64_t Tmax);
// attention.cu: the split-KV decode reading a bf16 cache directly, for Tq <= 16 queries (returns
// false, queuing nothing, for more: the caller takes another path).
bool attention_decode(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, int64_t B, int64_t Tq,
                      int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past, int64_t Tmax);
// attention_bf16.cu
void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                       int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                        const bf16* out, const float* lse, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS,
                        int64_t q_stride, int64_t kv_stride);
void attention_cached_forward(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, int64_t B,
                              int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                              int64_t Tmax);

// ---- attention.cu (flash style: tiled, online softmax, no T x T matrix in memory)
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, int64_t B, int64_t T, int64_t NH,
                        int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
void attention_cached_forward(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t B,
                              int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                              int64_t Tmax);
// The kernels attention_forward and attention_backward use for head size HS: "tensor-core" (bf16
// operands, fp32 accumulation; HS 64 and 128, unless PUZZLE_CUDA_ATTN=simt) or "simt" (fp32).
// Decode (a few queries over a cache) is the split-KV SIMT kernel in any case.
const char* attention_kernel_name(int64_t HS);

}  // namespace puzzle::cuda
