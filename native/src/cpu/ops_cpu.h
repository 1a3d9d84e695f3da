// Declarations of the CPU kernels that fill the backend's op table (see puzzle/backend.h for
// the meaning of every argument).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/kernel_util.h"
#include "puzzle/bf16.h"
#include "puzzle/gemm.h"
#include "puzzle/threadpool.h"

namespace puzzle::cpu {

void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C);
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C);
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C);
void add_rmsnorm_forward(float* sum, float* out, float* rstd, const float* a, const float* b, const float* weight,
                         int64_t N, int64_t C, float eps);
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC);
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC);
void rope_forward(float* out, const float* inp, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                  int64_t T, int64_t NH, int64_t HS, int64_t stride);
void rope_backward(float* dinp, const float* dout, const float* cos, const float* sin, const int32_t* pos, int64_t B,
                   int64_t T, int64_t NH, int64_t HS, int64_t stride);
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, int64_t B, int64_t T, int64_t NH,
                        int64_t NKV, int64_t HS, int64_t q_stride, int64_t kv_stride);
void attention_cached_forward(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t B,
                              int64_t Tq, int64_t NH, int64_t NKV, int64_t HS, int64_t q_stride, int64_t past,
                              int64_t Tmax);
void rope_kv_cache_append(float* qkv, float* k_cache, float* v_cache, const float* cos, const float* sin,
                          const int32_t* pos, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t past,
                          int64_t Tmax);
void swiglu_forward(float* out, const float* gu, int64_t N, int64_t F);
void swiglu_backward(float* dgu, const float* dout, const float* gu, int64_t N, int64_t F);
// norm_linear.cpp: the inference fusions, as the compositions that define them (fp32 and bf16)
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
void add_forward(float* out, const float* a, const float* b, int64_t n);
// out[i] = a[i] + b[i] for i in [i0, i1), on the calling thread (add_forward's chunk; the fused
// add + RMSNorm's row)
void add_range(float* out, const float* a, const float* b, int64_t i0, int64_t i1);
void accumulate(float* out, const float* a, int64_t n);
void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V);
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse, const int32_t* targets, int64_t N,
                            int64_t V, float scale);
void kl_forward(float* losses, const float* teacher, const float* student, int64_t N, int64_t V);
void kl_backward(float* dstudent, const float* teacher, const float* student, int64_t N, int64_t V, float scale);
void cosine_forward(float* losses, const float* x, const float* y, int64_t N, int64_t C);
void cosine_backward(float* dx, const float* x, const float* y, int64_t N, int64_t C, float scale);
double nmse_forward(const float* x, const float* y, int64_t n);
void nmse_backward(float* dx, const float* x, const float* y, int64_t n, float scale);
double sum_squares(const float* x, int64_t n);
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float grad_scale, int64_t t);

// Rows per parallel chunk so that a chunk holds about `work` floats of work.
inline int64_t grain_rows(int64_t row_len, int64_t work = 16384) {
  return std::max<int64_t>(1, work / std::max<int64_t>(1, row_len));
}

}  // namespace puzzle::cpu
