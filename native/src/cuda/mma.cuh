// Warp-level tensor-core primitives with documented register layouts (PTX ISA: ldmatrix,
// mma.m16n8k16, cp.async), for kernels that keep tiles in registers between products, which
// nvcuda::wmma's opaque fragments do not allow (attention_mma.cu: softmax on the score
// accumulators, P reused as the A operand of P V). sm_80 and later.
//
// Layouts (g = lane / 4, t = lane % 4; a uint32 holds two bf16, the lower index in the low half):
//  * mma_16816: D[16x8] += A[16x16] B[16x8], fp32 accumulators.
//      A regs: a0 (row g, cols 2t..2t+1), a1 (row g+8, same cols), a2 (row g, cols 2t+8..),
//              a3 (row g+8, cols 2t+8..);  B regs: b0 (rows 2t..2t+1, col g), b1 (rows 2t+8.., col g);
//      D: d0, d1 (row g, cols 2t, 2t+1), d2, d3 (row g+8, same cols).
//  * ldsm_x4: four 8x8 bf16 matrices from shared memory; lanes 8i..8i+7 give the row addresses
//    (16-byte aligned) of matrix i; register i gets row g, cols 2t..2t+1 of matrix i, or with
//    _trans rows 2t..2t+1 of column g (the transpose).
//  * cp_async16: a 16-byte global -> shared copy that completes asynchronously; cp_async_commit
//    closes a group of them and cp_async_wait<N> waits until at most N groups are pending (for
//    the calling thread's copies only: a __syncthreads must follow before others read them).
// native/dev/cuda-emu/emu_mma.h implements the same functions, with these layouts, on the CPU.
#pragma once
#include <cstdint>

#include "cuda/common.cuh"

namespace puzzle::cuda {
#ifndef PUZZLE_CUDA_EMU

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16x* p) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
#endif
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const bf16x* p) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
#endif
}

__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

#endif  // PUZZLE_CUDA_EMU

// Two floats rounded to bf16 and packed (lo in the low half), as the A operand wants them.
__device__ __forceinline__ uint32_t pack_bf16x2(__nv_bfloat162 v) { return *reinterpret_cast<uint32_t*>(&v); }
// The two values of a packed pair, widened (x: the low half).
__device__ __forceinline__ float2 unpack_bf16x2(uint32_t u) {
  return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}

// One step of the online softmax over NS score tiles of a warp's 16 rows (mma_16816's D layout:
// this lane holds s[n][0..1] of row g and s[n][2..3] of row g + 8, base-2 scores already scaled
// and masked with -inf), FlashAttention-2's way: the rows' running maxima m0, m1 advance over the
// tile (a row's max over the 4 lanes of its group), c0, c1 are the factors that rescale what was
// accumulated before, P = exp2(s - max) is rounded to bf16 and packed straight into the A
// fragments of P V (score tiles 2p and 2p+1 are k-step p), and l0, l1 (this lane's part of the row
// sums) are rescaled and advanced by P as rounded, the weights that multiply V. A row with no
// visible key yet keeps m = -inf, and P and c are 0 for it.
template <int NS>
__device__ __forceinline__ void online_softmax_step(float (&s)[NS][4], float& m0, float& m1, float& l0, float& l1,
                                                    float& c0, float& c1, uint32_t (&pa)[NS / 2][4]) {
  float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
  for (int n = 0; n < NS; ++n) {
    mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
    mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
  }
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
  const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
  const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
  c0 = exp2f(m0 - mu0);
  c1 = exp2f(m1 - mu1);
  m0 = mn0;
  m1 = mn1;
  float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
  for (int n = 0; n < NS; ++n) {
    const __nv_bfloat162 p01 = __floats2bfloat162_rn(exp2f(s[n][0] - mu0), exp2f(s[n][1] - mu0));
    const __nv_bfloat162 p23 = __floats2bfloat162_rn(exp2f(s[n][2] - mu1), exp2f(s[n][3] - mu1));
    sum0 += __low2float(p01) + __high2float(p01);
    sum1 += __low2float(p23) + __high2float(p23);
    pa[n / 2][(n % 2) * 2] = pack_bf16x2(p01);
    pa[n / 2][(n % 2) * 2 + 1] = pack_bf16x2(p23);
  }
  l0 = l0 * c0 + sum0;
  l1 = l1 * c1 + sum1;
}

// The sum of v over the 4 lanes of a row group (a row's running sum at the end).
__device__ __forceinline__ float row_group_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

}  // namespace puzzle::cuda
