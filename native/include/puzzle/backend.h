// The backend contract. A backend is "fill in this table": memory, copies, synchronisation,
// timing, and the op table. The CPU backend is always present; the CUDA backend lives in its
// own shared object (puzzle_cuda.so) and hands out the same table.
//
// Letters used throughout (llm.c style):
//   N  rows (tokens) = B * T        B batch, T sequence length
//   C  channels (hidden size)       OC output channels of a linear layer
//   NH query heads, NKV key/value heads (NH % NKV == 0), HS head size
//   F  FFN intermediate width       V  vocabulary size
// Layouts are row-major. Linear weights use Hugging Face's [out, in] layout.
// Backward functions ACCUMULATE into every gradient they write (+=), so residual branches and
// shared parameters need no extra adds; the caller zeroes gradients when a step begins.
// A null gradient pointer means "not needed" (a frozen parameter, or an input with no grad).
#pragma once
#include <cstddef>
#include <cstdint>

#include "puzzle/bf16.h"

namespace puzzle {

struct Ops {
  // ---- embedding: out[N,C] = table[ids[n], :]
  void (*embedding_forward)(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C);
  void (*embedding_backward)(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C);

  // ---- RMSNorm: out = inp * rstd * weight, rstd[N] saved for backward
  void (*rmsnorm_forward)(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps);
  void (*rmsnorm_backward)(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                           const float* rstd, int64_t N, int64_t C);
  // residual add fused with the norm that follows it: sum = a + b, then out = RMSNorm(sum) as
  // above (of sum as stored). sum may be a or b (in place); out aliases nothing.
  void (*add_rmsnorm_forward)(float* sum, float* out, float* rstd, const float* a, const float* b, const float* weight,
                              int64_t N, int64_t C, float eps);

  // ---- linear: out[N,OC] = inp[N,C] @ weight[OC,C]^T (+ bias[OC])
  void (*matmul_forward)(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                         int64_t OC);
  void (*matmul_backward)(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, int64_t N, int64_t C, int64_t OC);

  // ---- general strided GEMM (see puzzle/gemm.h), for slices of fused weights
  void (*gemm)(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

  // ---- RoPE, HF rotate-half layout, on x[B,T,NH,HS] with tables cos/sin[P, HS/2] and
  // positions pos[T] (row index into the tables; null means 0..T-1). `stride` is the distance in
  // floats between consecutive tokens (NH*HS when packed; larger inside a fused QKV buffer).
  // Unlike other backward ops these two WRITE their output, and may run in place (out == inp).
  void (*rope_forward)(float* out, const float* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                       int64_t T, int64_t NH, int64_t HS, int64_t stride);
  void (*rope_backward)(float* dinp, const float* dout, const float* cos, const float* sin, const int32_t* pos,
                        int64_t B, int64_t T, int64_t NH, int64_t HS, int64_t stride);

  // ---- causal grouped-query attention, softmax scale 1/sqrt(HS).
  // q[B,T,NH,HS], k,v[B,T,NKV,HS] -> out[B,T,NH,HS]; lse[B,NH,T] (log-sum-exp per query) saved.
  // Row strides (in floats) let q, k, v be column slices of one fused QKV buffer.
  void (*attention_forward)(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B,
                            int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
  void (*attention_backward)(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                             const float* v, const float* out, const float* lse, int64_t B, int64_t T, int64_t NH,
                             int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);

  // ---- attention for inference over a KV cache: the Tq queries q[B,Tq,NH,HS] sit at positions
  // past .. past+Tq-1 and attend causally to cache rows 0 .. past+t of k/v[B,Tmax,NKV,HS]
  // (which already hold the new keys and values). q_stride as above; no lse is kept.
  void (*attention_cached_forward)(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t B,
                                   int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                                   int64_t Tmax);

  // ---- KV cache, with the rotation before it: RoPE (as rope_forward) in place on the NH query
  // and NKV key heads of a fused qkv[B,T,(NH+2*NKV)*HS] (keys at column NH*HS, values at
  // (NH+NKV)*HS), then the rotated keys and the values copied into the caches [B,Tmax,NKV*HS] at
  // rows past..past+T-1. One op, so that a decode step rotates and appends in one pass.
  void (*rope_kv_cache_append)(float* qkv, float* k_cache, float* v_cache, const float* cos, const float* sin,
                               const int32_t* pos, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS,
                               int64_t past, int64_t Tmax);

  // ---- SwiGLU on the fused gate|up activations gu[N, 2F] (gate in columns [0,F), up in [F,2F)):
  // out[N,F] = silu(gate) * up. The backward WRITES dgu (every element of it is produced once).
  void (*swiglu_forward)(float* out, const float* gu, int64_t N, int64_t F);
  void (*swiglu_backward)(float* dgu, const float* dout, const float* gu, int64_t N, int64_t F);

  // ---- inference fusions (a cached forward keeps nothing for backward). Each equals the
  // composition of the ops above that its comment writes out; a backend fuses where that pays
  // (CUDA: a few rows, where every product streams its weights once and each launch saved is
  // latency saved in a decode step), else composes.
  // norm_linear_forward: out[N,OC] = res + RMSNorm(x; norm_weight) @ weight[OC,C]^T, where a null
  //   norm_weight takes x itself and a null res adds nothing. out may be res (in place); it
  //   aliases nothing else. ln[N,C] and rstd[N] are scratch a composing backend may write.
  void (*norm_linear_forward)(float* out, float* ln, float* rstd, const float* x, const float* norm_weight,
                              const float* weight, const float* res, int64_t N, int64_t C, int64_t OC, float eps);
  // norm_swiglu_forward: out[N,F] = SwiGLU(RMSNorm(x; norm_weight) @ weight[2F,C]^T), the gate in
  //   weight rows [0,F) and up in [F,2F) (as swiglu_forward's gu); ln[N,C], rstd[N], gu[N,2F] scratch.
  void (*norm_swiglu_forward)(float* out, float* ln, float* rstd, float* gu, const float* x, const float* norm_weight,
                              const float* weight, int64_t N, int64_t C, int64_t F, float eps);
  // norm_qkv_rope_cache_forward: a cached step's attention input, norm_linear_forward(qkv, ln, rstd,
  //   x, norm_weight, weight, null, B*T, C, (NH+2*NKV)*HS, eps) then rope_kv_cache_append(qkv,
  //   k_cache, v_cache, cos, sin, pos, B, T, NH, NKV, HS, past, Tmax): qkv[B*T,(NH+2*NKV)*HS] ends
  //   as that pair leaves it (q and k rotated) and the caches hold the new rotated keys and values.
  void (*norm_qkv_rope_cache_forward)(float* qkv, float* ln, float* rstd, float* k_cache, float* v_cache,
                                      const float* x, const float* norm_weight, const float* weight, const float* cos,
                                      const float* sin, const int32_t* pos, int64_t B, int64_t T, int64_t C,
                                      int64_t NH, int64_t NKV, int64_t HS, int64_t past, int64_t Tmax, float eps);

  // ---- elementwise: out = a + b (residual); out += a (gradient accumulation)
  void (*add_forward)(float* out, const float* a, const float* b, int64_t n);
  void (*accumulate)(float* out, const float* a, int64_t n);

  // ---- losses. Per-row values are written to losses[N]; the backward multiplies by `scale`
  // (1/count for a mean). Targets equal to -100 are ignored (loss 0, no gradient).
  // cross-entropy of logits[N,V] against targets[N]; lse[N] saved for backward.
  void (*cross_entropy_forward)(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                                int64_t V);
  void (*cross_entropy_backward)(float* dlogits, const float* logits, const float* lse, const int32_t* targets,
                                 int64_t N, int64_t V, float scale);
  // KL(teacher || student) per row, from two logit sets; the gradient flows to the student only.
  void (*kl_forward)(float* losses, const float* teacher, const float* student, int64_t N, int64_t V);
  void (*kl_backward)(float* dstudent, const float* teacher, const float* student, int64_t N, int64_t V, float scale);
  // 1 - cos(x[n], y[n]) per row; the gradient flows to x only.
  void (*cosine_forward)(float* losses, const float* x, const float* y, int64_t N, int64_t C);
  void (*cosine_backward)(float* dx, const float* x, const float* y, int64_t N, int64_t C, float scale);
  // normalised MSE: sum((x-y)^2) / sum(y^2) over n elements, returned; gradient flows to x.
  double (*nmse_forward)(const float* x, const float* y, int64_t n);
  void (*nmse_backward)(float* dx, const float* x, const float* y, int64_t n, float scale);

  // ---- optimiser. sum of squares for global-norm clipping; AdamW with decoupled weight decay.
  // grad_scale multiplies the gradient first (the clipping factor); t is the 1-based step.
  double (*sum_squares)(const float* x, int64_t n);
  void (*adamw_update)(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                       float beta2, float eps, float weight_decay, float grad_scale, int64_t t);
};

// The same block ops with bf16 storage for activations and weights (mixed precision): inputs and
// outputs named like the fp32 ops are bf16; per-row statistics (rstd, lse), RoPE tables and
// weight gradients stay fp32 (weight gradients accumulate into the fp32 gradient buffer that
// sits beside the fp32 master weights). Math runs in fp32 and each output is rounded once, so a
// bf16 op equals its fp32 counterpart on the widened inputs up to fp32 summation order and that
// final rounding. Accumulating outputs (+=) are read, added in fp32 and rounded again.
struct OpsBf16 {
  // conversions (weights' bf16 copies; block inputs and outputs)
  void (*to_bf16)(bf16* out, const float* inp, int64_t n);
  void (*to_f32)(float* out, const bf16* inp, int64_t n);

  void (*rmsnorm_forward)(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int64_t N, int64_t C,
                          float eps);
  void (*rmsnorm_backward)(bf16* dinp, float* dweight, const bf16* dout, const bf16* inp, const bf16* weight,
                           const float* rstd, int64_t N, int64_t C);
  // sum is rounded to bf16 and the norm is taken of the rounded sum (as add_forward + rmsnorm_forward)
  void (*add_rmsnorm_forward)(bf16* sum, bf16* out, float* rstd, const bf16* a, const bf16* b, const bf16* weight,
                              int64_t N, int64_t C, float eps);
  // C = alpha op(A) op(B) + beta C with bf16 operands and fp32 accumulation; gemm writes bf16 C,
  // gemm_f32out fp32 C (weight gradients).
  void (*gemm)(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
               const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc);
  void (*gemm_f32out)(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
                      int64_t lda, const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc);
  void (*rope_forward)(bf16* out, const bf16* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                       int64_t T, int64_t NH, int64_t HS, int64_t stride);
  void (*rope_backward)(bf16* dinp, const bf16* dout, const float* cos, const float* sin, const int32_t* pos,
                        int64_t B, int64_t T, int64_t NH, int64_t HS, int64_t stride);
  void (*attention_forward)(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                            int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
  void (*attention_backward)(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                             const bf16* v, const bf16* out, const float* lse, int64_t B, int64_t T, int64_t NH,
                             int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
  void (*attention_cached_forward)(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, int64_t B,
                                   int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                                   int64_t Tmax);
  void (*rope_kv_cache_append)(bf16* qkv, bf16* k_cache, bf16* v_cache, const float* cos, const float* sin,
                               const int32_t* pos, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS,
                               int64_t past, int64_t Tmax);
  void (*swiglu_forward)(bf16* out, const bf16* gu, int64_t N, int64_t F);
  void (*swiglu_backward)(bf16* dgu, const bf16* dout, const bf16* gu, int64_t N, int64_t F);
  // the inference fusions above; a fusing backend keeps ln, gu and the product before the
  // rotation in fp32 (no rounding between the norm, the product and the gate or the rotation), so
  // it may differ from the composition by that rounding
  void (*norm_linear_forward)(bf16* out, bf16* ln, float* rstd, const bf16* x, const bf16* norm_weight,
                              const bf16* weight, const bf16* res, int64_t N, int64_t C, int64_t OC, float eps);
  void (*norm_swiglu_forward)(bf16* out, bf16* ln, float* rstd, bf16* gu, const bf16* x, const bf16* norm_weight,
                              const bf16* weight, int64_t N, int64_t C, int64_t F, float eps);
  void (*norm_qkv_rope_cache_forward)(bf16* qkv, bf16* ln, float* rstd, bf16* k_cache, bf16* v_cache, const bf16* x,
                                      const bf16* norm_weight, const bf16* weight, const float* cos, const float* sin,
                                      const int32_t* pos, int64_t B, int64_t T, int64_t C, int64_t NH, int64_t NKV,
                                      int64_t HS, int64_t past, int64_t Tmax, float eps);
  void (*add_forward)(bf16* out, const bf16* a, const bf16* b, int64_t n);
  void (*accumulate)(bf16* out, const bf16* a, int64_t n);
};

struct Backend {
  const char* name;
  void* (*alloc)(size_t bytes);  // returns null on failure
  void (*free)(void* ptr);
  void (*memset_zero)(void* dst, size_t bytes);
  void (*copy_to_device)(void* dst, const void* host_src, size_t bytes);
  void (*copy_to_host)(void* host_dst, const void* src, size_t bytes);
  void (*copy_device)(void* dst, const void* src, size_t bytes);
  void (*synchronize)();
  double (*now_ms)();  // a timestamp after all queued work has finished
  Ops ops;
  OpsBf16 ops_bf16;
};

const Backend& cpu_backend();

}  // namespace puzzle
