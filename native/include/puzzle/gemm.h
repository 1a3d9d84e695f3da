// Single-precision GEMM, row-major: C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C.
// op(X) is X or X^T; lda/ldb/ldc are row strides in floats of the matrices as stored.
// beta == 0 overwrites C (NaNs in C are not propagated).
// `parallel` spreads the work over the engine's pool; kernels that already run inside a
// parallel region pass false.
#pragma once
#include <cstdint>

namespace puzzle {

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool parallel = true);

// Plain triple-loop reference (the spec the fast paths are tested against).
void sgemm_reference(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Name of the GEMM kernel chosen for this CPU (for diagnostics).
const char* sgemm_kernel_name();

}  // namespace puzzle
