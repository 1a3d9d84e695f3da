// The inference fusions of the backend contract on the CPU (puzzle/backend.h): the compositions
// that define them (compose_inference.h), through the finished op tables. A fused CPU version
// would save one pass over a few activation rows beside a product that streams every weight, so
// the CPU composes; the CUDA backend (cuda/norm_linear.cu) fuses a decode step's few rows.
#include "compose_inference.h"
#include "cpu/ops_cpu.h"
#include "puzzle/backend.h"

namespace puzzle::cpu {

void norm_linear_forward(float* out, float* ln, float* rstd, const float* x, const float* norm_weight,
                         const float* weight, const float* res, int64_t N, int64_t C, int64_t OC, float eps) {
  compose_norm_linear(cpu_backend().ops, host_copy, out, ln, rstd, x, norm_weight, weight, res, N, C, OC, eps);
}
void norm_swiglu_forward(float* out, float* ln, float* rstd, float* gu, const float* x, const float* norm_weight,
                         const float* weight, int64_t N, int64_t C, int64_t F, float eps) {
  compose_norm_swiglu(cpu_backend().ops, out, ln, rstd, gu, x, norm_weight, weight, N, C, F, eps);
}
void norm_linear_forward(bf16* out, bf16* ln, float* rstd, const bf16* x, const bf16* norm_weight, const bf16* weight,
                         const bf16* res, int64_t N, int64_t C, int64_t OC, float eps) {
  compose_norm_linear(cpu_backend().ops_bf16, host_copy, out, ln, rstd, x, norm_weight, weight, res, N, C, OC, eps);
}
void norm_swiglu_forward(bf16* out, bf16* ln, float* rstd, bf16* gu, const bf16* x, const bf16* norm_weight,
                         const bf16* weight, int64_t N, int64_t C, int64_t F, float eps) {
  compose_norm_swiglu(cpu_backend().ops_bf16, out, ln, rstd, gu, x, norm_weight, weight, N, C, F, eps);
}

void norm_qkv_rope_cache_forward(float* qkv, float* ln, float* rstd, float* k_cache, float* v_cache, const float* x,
                                 const float* norm_weight, const float* weight, const float* cos, const float* sin,
                                 const int32_t* pos, int64_t B, int64_t T, int64_t C, int64_t NH, int64_t NKV,
                                 int64_t HS, int64_t past, int64_t Tmax, float eps) {
  compose_norm_qkv_rope_cache(cpu_backend().ops, host_copy, qkv, ln, rstd, k_cache, v_cache, x, norm_weight, weight,
                              cos, sin, pos, B, T, C, NH, NKV, HS, past, Tmax, eps);
}
void norm_qkv_rope_cache_forward(bf16* qkv, bf16* ln, float* rstd, bf16* k_cache, bf16* v_cache, const bf16* x,
                                 const bf16* norm_weight, const bf16* weight, const float* cos, const float* sin,
                                 const int32_t* pos, int64_t B, int64_t T, int64_t C, int64_t NH, int64_t NKV,
                                 int64_t HS, int64_t past, int64_t Tmax, float eps) {
  compose_norm_qkv_rope_cache(cpu_backend().ops_bf16, host_copy, qkv, ln, rstd, k_cache, v_cache, x, norm_weight,
                              weight, cos, sin, pos, B, T, C, NH, NKV, HS, past, Tmax, eps);
}

}  // namespace puzzle::cpu
