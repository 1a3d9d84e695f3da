// Private interface between the GEMM driver (gemm.cpp, baseline ISA) and the ISA-specific
// packing / micro-kernel translation units (gemm_avx512.cpp, gemm_avx2.cpp).
//
// The driver owns the loops over the cache blocks, the pack buffers and the threading; an ISA unit
// only exports plain functions (through the tables below), so no inline function or template
// compiled with wide-ISA flags can be shared with a baseline translation unit.
//
// Packed layouts (mr/nr = micro-tile rows/columns):
//   A panel p (rows p*mr ..) at Ap + p*mr*k, element (i, kk) at kk*mr + i % mr, zero-padded to mr rows.
//   B panel q (cols q*nr ..) at Bp + q*nr*k, element (kk, j) at kk*nr + j % nr, zero-padded to nr cols.
#pragma once
#include <cstdint>

namespace puzzle::gemm_detail {

struct PackedKernel {
  const char* name;
  int mr, nr;      // micro-tile
  int mc, kc, nc;  // cache-block caps: A block mc x kc (L2), B block kc x nc (L3; the driver also caps it
                   // at a few MiB); the driver splits M, K, N into equal blocks no larger than these
  // Packs op(A)[0:m, 0:k] into ceil(m/mr) panels. A points at op(A)(0, 0) as stored:
  // op(A)(i, kk) = transA ? A[kk * lda + i] : A[i * lda + kk].
  void (*pack_a)(bool transA, const float* A, int64_t lda, int64_t m, int64_t k, float* dst);
  // Packs op(B)[0:k, 0:n] into ceil(n/nr) panels; op(B)(kk, j) = transB ? B[j * ldb + kk] : B[kk * ldb + j].
  void (*pack_b)(bool transB, const float* B, int64_t ldb, int64_t k, int64_t n, float* dst);
  // C[0:m, 0:n] = beta * C + alpha * Ap @ Bp (beta == 0 overwrites C), over all micro-tiles.
  void (*macro)(int64_t m, int64_t n, int64_t k, const float* Ap, const float* Bp, float* C, int64_t ldc,
                float alpha, float beta);
  // Few-row path without packing B (decode-time GEMMs, GEMV-like shapes): any m, rows taken 4 at a
  // time (AVX2: 2), each group streaming op(B) once.
  // op(A)(i,kk) = A[i*a_rs + kk*a_cs], op(B)(kk,j) = B[kk*b_rs + j*b_cs], C(i,j) = C[i*c_rs + j*c_cs];
  // needs b_rs == 1 or b_cs == 1. scratch: 4*k floats. beta == 0 overwrites C.
  void (*small)(int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t a_rs, int64_t a_cs,
                const float* B, int64_t b_rs, int64_t b_cs, float beta, float* C, int64_t c_rs, int64_t c_cs,
                float* scratch);
};

// Kernel tables (first entry = default). Count is written to *n. Defined only on x86-64 builds
// (the ISA translation units compile to nothing elsewhere).
const PackedKernel* avx512_kernels(int* n);
const PackedKernel* avx2_kernels(int* n);

// Lab hook: selects entry `index` of the current ISA's table and overrides its blocking
// (values <= 0 keep the table's). Returns the active kernel's name. Not thread-safe; call before use.
const char* sgemm_select_kernel(int index, int mc, int kc, int nc);
// Number of entries in the current ISA's table (0 on the portable path).
int sgemm_kernel_count();

}  // namespace puzzle::gemm_detail
