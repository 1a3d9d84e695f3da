// AVX2/FMA SGEMM: packing routines, the 6x16 micro-kernel and the few-row path (compiled with
// -mavx2 -mfma; the fallback for x86-64 CPUs without AVX-512).
// Everything here is in an anonymous namespace; the only external symbol is avx2_kernels().
// Empty on non-x86 targets (CMake compiles every cpu/*.cpp; gemm.cpp only calls in on x86-64).
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstdint>

#include "cpu/gemm_kernels.h"

// GCC 12 flags the _mm*_undefined_*() idiom inside the intrinsic headers as uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace puzzle::gemm_detail {
namespace {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// Lane mask for maskload/maskstore: lanes [0, n) active.
inline __m256i lane_mask8(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n > 8 ? 8 : n)), idx);
}

inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; ++g) {
    __m256d t0 = _mm256_castps_pd(t[4 * g]), t1 = _mm256_castps_pd(t[4 * g + 1]);
    __m256d t2 = _mm256_castps_pd(t[4 * g + 2]), t3 = _mm256_castps_pd(t[4 * g + 3]);
    u[4 * g + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2));
    u[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2));
    u[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3));
    u[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3));
  }
  // u[4g + j] lane L (128-bit) holds column 4L + j of rows 4g .. 4g+3.
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

// dst[kk*P + r] = src[r*ld + kk] for r < w, 0 for w <= r < P.
template <int P>
void pack_panel_t(const float* src, int64_t ld, int64_t w, int64_t k, float* dst) {
  constexpr int G = (P + 7) / 8;
  for (int64_t k0 = 0; k0 < k; k0 += 8) {
    const int64_t kr = imin(8, k - k0);
    const __m256i km = lane_mask8(kr);
    for (int g = 0; g < G; ++g) {
      const int r0 = g * 8;
      const int gw = P - r0 < 8 ? P - r0 : 8;
      __m256 r[8];
      for (int i = 0; i < 8; ++i) {
        if (i < gw && r0 + i < w)
          r[i] = kr == 8 ? _mm256_loadu_ps(src + (r0 + i) * ld + k0) : _mm256_maskload_ps(src + (r0 + i) * ld + k0, km);
        else
          r[i] = _mm256_setzero_ps();
      }
      transpose8(r);
      float* d = dst + k0 * P + r0;
      if (gw == 8) {
        for (int j = 0; j < kr; ++j) _mm256_storeu_ps(d + j * P, r[j]);
      } else {
        const __m256i gm = lane_mask8(gw);
        for (int j = 0; j < kr; ++j) _mm256_maskstore_ps(d + j * P, gm, r[j]);
      }
    }
  }
}

// dst[kk*P + c] = src[kk*ld + c] for c < w, 0 for w <= c < P.
template <int P>
void pack_panel_n(const float* src, int64_t ld, int64_t w, int64_t k, float* dst) {
  if (w == P) {
    for (int64_t kk = 0; kk < k; ++kk)
      for (int c = 0; c < P; ++c) dst[kk * P + c] = src[kk * ld + c];
    return;
  }
  for (int64_t kk = 0; kk < k; ++kk)
    for (int c = 0; c < P; ++c) dst[kk * P + c] = c < w ? src[kk * ld + c] : 0.f;
}

template <int MR>
void pack_a(bool transA, const float* A, int64_t lda, int64_t m, int64_t k, float* dst) {
  for (int64_t i = 0; i < m; i += MR, dst += MR * k) {
    const int64_t w = imin(MR, m - i);
    if (transA)
      pack_panel_n<MR>(A + i, lda, w, k, dst);
    else
      pack_panel_t<MR>(A + i * lda, lda, w, k, dst);
  }
}

template <int NR>
void pack_b(bool transB, const float* B, int64_t ldb, int64_t k, int64_t n, float* dst) {
  for (int64_t j = 0; j < n; j += NR, dst += NR * k) {
    const int64_t w = imin(NR, n - j);
    if (transB)
      pack_panel_t<NR>(B + j * ldb, ldb, w, k, dst);
    else
      pack_panel_n<NR>(B + j, ldb, w, k, dst);
  }
}

template <int MR, int NV>
void micro(int64_t k, const float* __restrict A, const float* __restrict B, float* C, int64_t ldc, int64_t m,
           int64_t n, float alpha, float beta) {
  __m256 c[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[i][v] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t kk = 0; kk < k; ++kk) {
    __m256 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm256_load_ps(B + 8 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(A + i);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[i][v] = _mm256_fmadd_ps(a, b[v], c[i][v]);
    }
    A += MR;
    B += 8 * NV;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (m == MR && n == 8 * NV) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* p = C + i * ldc + 8 * v;
        __m256 r = _mm256_mul_ps(va, c[i][v]);
        if (beta != 0.f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(p), r);
        _mm256_storeu_ps(p, r);
      }
    return;
  }
  __m256i mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = lane_mask8(n - 8 * v < 0 ? 0 : n - 8 * v);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* p = C + i * ldc + 8 * v;
      __m256 r = _mm256_mul_ps(va, c[i][v]);
      if (beta != 0.f) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(p, mk[v]), r);
      _mm256_maskstore_ps(p, mk[v], r);
    }
  }
}

template <int MR, int NV>
void macro(int64_t m, int64_t n, int64_t k, const float* Ap, const float* Bp, float* C, int64_t ldc, float alpha,
           float beta) {
  constexpr int NR = 8 * NV;
  for (int64_t j = 0; j < n; j += NR) {
    const float* b = Bp + j * k;
    const int64_t nw = imin(NR, n - j);
    for (int64_t i = 0; i < m; i += MR)
      micro<MR, NV>(k, Ap + i * k, b, C + i * ldc + j, ldc, imin(MR, m - i), nw, alpha, beta);
  }
}

// ---- small-M path (see PackedKernel::small): rows of C two at a time, op(B) read once per pair.

inline float hsum8(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

inline void store_scalar(float* c, float v, float alpha, float beta) {
  *c = beta == 0.f ? alpha * v : alpha * v + beta * *c;
}

template <int MB>
void small_dot(int64_t N, int64_t K, float alpha, const float* Ak, const float* B, int64_t b_cs, float beta,
               float* C, int64_t c_rs, int64_t c_cs) {
  const int64_t K8 = K & ~int64_t(7);
  const __m256i kt = lane_mask8(K - K8);
  for (int64_t j = 0; j < N; j += 4) {
    const int64_t nj = imin(4, N - j);
    const float* b[4];
    for (int jj = 0; jj < 4; ++jj) b[jj] = B + (j + (jj < nj ? jj : nj - 1)) * b_cs;
    __m256 acc[MB][4];
    for (int i = 0; i < MB; ++i)
      for (int jj = 0; jj < 4; ++jj) acc[i][jj] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K8; k += 8) {
      __m256 bv[4];
      for (int jj = 0; jj < 4; ++jj) bv[jj] = _mm256_loadu_ps(b[jj] + k);
      for (int i = 0; i < MB; ++i) {
        const __m256 a = _mm256_loadu_ps(Ak + i * K + k);
        for (int jj = 0; jj < 4; ++jj) acc[i][jj] = _mm256_fmadd_ps(a, bv[jj], acc[i][jj]);
      }
    }
    if (K8 < K) {
      __m256 bv[4];
      for (int jj = 0; jj < 4; ++jj) bv[jj] = _mm256_maskload_ps(b[jj] + K8, kt);
      for (int i = 0; i < MB; ++i) {
        const __m256 a = _mm256_maskload_ps(Ak + i * K + K8, kt);
        for (int jj = 0; jj < 4; ++jj) acc[i][jj] = _mm256_fmadd_ps(a, bv[jj], acc[i][jj]);
      }
    }
    for (int i = 0; i < MB; ++i)
      for (int jj = 0; jj < nj; ++jj) store_scalar(C + i * c_rs + (j + jj) * c_cs, hsum8(acc[i][jj]), alpha, beta);
  }
}

template <int MB>
void small_axpy(int64_t N, int64_t K, float alpha, const float* Ak, const float* B, int64_t b_rs, float beta,
                float* C, int64_t c_rs, int64_t c_cs) {
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  for (int64_t j = 0; j < N; j += 32) {
    const int64_t nw = imin(32, N - j);
    __m256i mk[4];
    for (int v = 0; v < 4; ++v) mk[v] = lane_mask8(nw - 8 * v < 0 ? 0 : nw - 8 * v);
    __m256 acc[MB][4];
    for (int i = 0; i < MB; ++i)
      for (int v = 0; v < 4; ++v) acc[i][v] = _mm256_setzero_ps();
    const float* bp = B + j;
    for (int64_t k = 0; k < K; ++k, bp += b_rs) {
      __m256 bv[4];
      if (nw == 32)
        for (int v = 0; v < 4; ++v) bv[v] = _mm256_loadu_ps(bp + 8 * v);
      else
        for (int v = 0; v < 4; ++v) bv[v] = _mm256_maskload_ps(bp + 8 * v, mk[v]);
      for (int i = 0; i < MB; ++i) {
        const __m256 a = _mm256_broadcast_ss(Ak + i * K + k);
        for (int v = 0; v < 4; ++v) acc[i][v] = _mm256_fmadd_ps(a, bv[v], acc[i][v]);
      }
    }
    for (int i = 0; i < MB; ++i) {
      if (c_cs == 1) {
        for (int v = 0; v < 4 && 8 * v < nw; ++v) {
          float* p = C + i * c_rs + j + 8 * v;
          __m256 r = _mm256_mul_ps(va, acc[i][v]);
          if (beta != 0.f) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(p, mk[v]), r);
          _mm256_maskstore_ps(p, mk[v], r);
        }
      } else {
        alignas(32) float t[32];
        for (int v = 0; v < 4; ++v) _mm256_store_ps(t + 8 * v, acc[i][v]);
        for (int64_t jj = 0; jj < nw; ++jj) store_scalar(C + i * c_rs + (j + jj) * c_cs, t[jj], alpha, beta);
      }
    }
  }
}

template <int MB>
void small_rows(int64_t N, int64_t K, float alpha, const float* A, int64_t a_rs, int64_t a_cs, const float* B,
                int64_t b_rs, int64_t b_cs, float beta, float* C, int64_t c_rs, int64_t c_cs, float* Ak) {
  for (int i = 0; i < MB; ++i)
    for (int64_t k = 0; k < K; ++k) Ak[i * K + k] = A[i * a_rs + k * a_cs];
  if (b_rs == 1)
    small_dot<MB>(N, K, alpha, Ak, B, b_cs, beta, C, c_rs, c_cs);
  else
    small_axpy<MB>(N, K, alpha, Ak, B, b_rs, beta, C, c_rs, c_cs);
}

void small_m(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t a_rs, int64_t a_cs,
             const float* B, int64_t b_rs, int64_t b_cs, float beta, float* C, int64_t c_rs, int64_t c_cs,
             float* scratch) {
  for (int64_t i = 0; i < M; i += 2) {
    if (M - i >= 2)
      small_rows<2>(N, K, alpha, A + i * a_rs, a_rs, a_cs, B, b_rs, b_cs, beta, C + i * c_rs, c_rs, c_cs, scratch);
    else
      small_rows<1>(N, K, alpha, A + i * a_rs, a_rs, a_cs, B, b_rs, b_cs, beta, C + i * c_rs, c_rs, c_cs, scratch);
  }
}

const PackedKernel kKernels[] = {
    {"avx2 6x16", 6, 16, 144, 256, 4096, &pack_a<6>, &pack_b<16>, &macro<6, 2>, &small_m},
};

}  // namespace

const PackedKernel* avx2_kernels(int* n) {
  *n = (int)(sizeof(kKernels) / sizeof(kKernels[0]));
  return kKernels;
}

}  // namespace puzzle::gemm_detail
#endif  // x86-64
