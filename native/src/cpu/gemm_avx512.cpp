// AVX-512 SGEMM: packing routines, micro-kernels and the few-row path (compiled with
// -mavx512f/bw/vl/dq -mfma).
// Everything here is in an anonymous namespace; the only external symbol is avx512_kernels().
// Empty on non-x86 targets (CMake compiles every cpu/*.cpp; gemm.cpp only calls in on x86-64).
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstdint>

#include "cpu/gemm_kernels.h"

// GCC 12 flags the _mm512_undefined_ps() idiom inside the intrinsic headers as uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace puzzle::gemm_detail {
namespace {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline __mmask16 lane_mask(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

// Floats ahead of the current position that the pack loops prefetch.
constexpr int kPackAhead = 64;

// In-register transpose of a 16x16 block: r[i] lane j  ->  r[j] lane i.
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {
    __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]);
    __m512d t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  // u[4g + j] lane L holds column 4L + j of rows 4g .. 4g+3.
  for (int j = 0; j < 4; ++j) {
    __m512 s0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44);
    __m512 s1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
    __m512 s2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
    __m512 s3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
    r[j] = _mm512_shuffle_f32x4(s0, s2, 0x88);
    r[4 + j] = _mm512_shuffle_f32x4(s0, s2, 0xDD);
    r[8 + j] = _mm512_shuffle_f32x4(s1, s3, 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(s1, s3, 0xDD);
  }
}

// Panel of width P from `w` (<= P) source rows that run along k: dst[kk*P + r] = src[r*ld + kk],
// zero for w <= r < P.
template <int P>
void pack_panel_t(const float* src, int64_t ld, int64_t w, int64_t k, float* dst) {
  constexpr int G = (P + 15) / 16;
  for (int64_t k0 = 0; k0 < k; k0 += 16) {
    const int64_t kr = imin(16, k - k0);
    const __mmask16 km = lane_mask(kr);
    for (int g = 0; g < G; ++g) {
      const int r0 = g * 16;
      const int gw = P - r0 < 16 ? P - r0 : 16;  // lanes of this group in the panel
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        if (i < gw && r0 + i < w) _mm_prefetch((const char*)(src + (r0 + i) * ld + k0 + kPackAhead), _MM_HINT_T0);
      }
      for (int i = 0; i < 16; ++i) {
        if (i < gw && r0 + i < w)
          r[i] = kr == 16 ? _mm512_loadu_ps(src + (r0 + i) * ld + k0)
                          : _mm512_maskz_loadu_ps(km, src + (r0 + i) * ld + k0);
        else
          r[i] = _mm512_setzero_ps();
      }
      transpose16(r);
      float* d = dst + k0 * P + r0;
      if (gw == 16) {
        for (int j = 0; j < kr; ++j) _mm512_storeu_ps(d + j * P, r[j]);
      } else {
        const __mmask16 gm = lane_mask(gw);
        for (int j = 0; j < kr; ++j) _mm512_mask_storeu_ps(d + j * P, gm, r[j]);
      }
    }
  }
}

// Panels of width P from a source whose rows run along the panels (op(X) not transposed in the
// packed direction): panel p gets dst[p*P*k + kk*P + c] = src[kk*ld + p*P + c], zero past n.
// Row by row over all panels, so every source row is read as one contiguous stream.
template <int P>
void pack_panels_n(const float* src, int64_t ld, int64_t n, int64_t k, float* dst) {
  constexpr int G = (P + 15) / 16;
  constexpr int GL = P - 16 * (G - 1);  // lanes in the last 16-group of a panel
  constexpr int KB = 8;                 // rows per sweep: 8 read streams, one write stream at a time
  const int64_t full = n / P, rem = n - full * P;
  const __mmask16 ml = lane_mask(GL);
  for (int64_t k0 = 0; k0 < k; k0 += KB) {
    const int64_t k1 = imin(k, k0 + KB);
    for (int64_t p = 0; p < full; ++p) {
      const float* s = src + k0 * ld + p * P;
      float* d = dst + p * P * k + k0 * P;
      for (int64_t kk = k0; kk < k1; ++kk, s += ld, d += P) {
        _mm_prefetch((const char*)(s + KB * ld), _MM_HINT_T0);
        if (P > 16) _mm_prefetch((const char*)(s + KB * ld + 16), _MM_HINT_T0);
        if (P > 32) _mm_prefetch((const char*)(s + KB * ld + 32), _MM_HINT_T0);
        for (int g = 0; g + 1 < G; ++g) _mm512_storeu_ps(d + 16 * g, _mm512_loadu_ps(s + 16 * g));
        const int g = G - 1;
        if (GL == 16)
          _mm512_storeu_ps(d + 16 * g, _mm512_loadu_ps(s + 16 * g));
        else if (kk * P + 16 * G <= k1 * P)  // spills only into slots of rows kk+1 .. < k1, written next
          _mm512_storeu_ps(d + 16 * g, _mm512_maskz_loadu_ps(ml, s + 16 * g));
        else
          _mm512_mask_storeu_ps(d + 16 * g, ml, _mm512_maskz_loadu_ps(ml, s + 16 * g));
      }
    }
    if (rem) {
      const float* s = src + k0 * ld + full * P;
      float* d = dst + full * P * k + k0 * P;
      for (int64_t kk = k0; kk < k1; ++kk, s += ld, d += P)
        for (int g = 0; g < G; ++g) {
          const int gw = g + 1 < G ? 16 : GL;
          int64_t valid = rem - 16 * g;
          valid = valid < 0 ? 0 : (valid > gw ? gw : valid);
          _mm512_mask_storeu_ps(d + 16 * g, lane_mask(gw), _mm512_maskz_loadu_ps(lane_mask(valid), s + 16 * g));
        }
    }
  }
}

template <int MR>
void pack_a(bool transA, const float* A, int64_t lda, int64_t m, int64_t k, float* dst) {
  if (transA) {
    pack_panels_n<MR>(A, lda, m, k, dst);
    return;
  }
  for (int64_t i = 0; i < m; i += MR, dst += MR * k) pack_panel_t<MR>(A + i * lda, lda, imin(MR, m - i), k, dst);
}

template <int NR>
void pack_b(bool transB, const float* B, int64_t ldb, int64_t k, int64_t n, float* dst) {
  if (!transB) {
    pack_panels_n<NR>(B, ldb, n, k, dst);
    return;
  }
  for (int64_t j = 0; j < n; j += NR, dst += NR * k) pack_panel_t<NR>(B + j * ldb, ldb, imin(NR, n - j), k, dst);
}

// MR x (16*NV) micro-tile: C[0:m, 0:n] = beta*C + alpha * sum_k A(:,k) B(k,:).
template <int MR, int NV>
void micro(int64_t k, const float* __restrict A, const float* __restrict B, float* C, int64_t ldc, int64_t m,
           int64_t n, float alpha, float beta) {
  __m512 c[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[i][v] = _mm512_setzero_ps();

  // The C tile is only touched after the k loop: start fetching its lines now.
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm_prefetch((const char*)(C + i * ldc + 16 * v), _MM_HINT_T0);

#pragma GCC unroll 4
  for (int64_t kk = 0; kk < k; ++kk) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(B + 16 * v);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(A[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[i][v] = _mm512_fmadd_ps(a, b[v], c[i][v]);
    }
    A += MR;
    B += 16 * NV;
  }

  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (m == MR && n == 16 * NV) {
    if (beta == 0.f) {
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) _mm512_storeu_ps(C + i * ldc + 16 * v, _mm512_mul_ps(va, c[i][v]));
    } else if (beta == 1.f) {
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          float* p = C + i * ldc + 16 * v;
          _mm512_storeu_ps(p, _mm512_fmadd_ps(va, c[i][v], _mm512_loadu_ps(p)));
        }
    } else {
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          float* p = C + i * ldc + 16 * v;
          _mm512_storeu_ps(p, _mm512_fmadd_ps(va, c[i][v], _mm512_mul_ps(vb, _mm512_loadu_ps(p))));
        }
    }
    return;
  }
  __mmask16 mk[NV];
  for (int v = 0; v < NV; ++v) {
    int64_t w = n - 16 * v;
    mk[v] = w <= 0 ? (__mmask16)0 : lane_mask(w);
  }
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* p = C + i * ldc + 16 * v;
      __m512 r = _mm512_mul_ps(va, c[i][v]);
      if (beta != 0.f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk[v], p), r);
      _mm512_mask_storeu_ps(p, mk[v], r);
    }
  }
}

template <int MR, int NV>
void macro(int64_t m, int64_t n, int64_t k, const float* Ap, const float* Bp, float* C, int64_t ldc, float alpha,
           float beta) {
  constexpr int NR = 16 * NV;
  for (int64_t j = 0; j < n; j += NR) {
    const float* b = Bp + j * k;
    const int64_t nw = imin(NR, n - j);
    for (int64_t i = 0; i < m; i += MR)
      micro<MR, NV>(k, Ap + i * k, b, C + i * ldc + j, ldc, imin(MR, m - i), nw, alpha, beta);
  }
}

// ---- small-M path: no packing of B, each element of op(B) is read once per 4 rows of C.
// op(A)(i,k) = A[i*a_rs + k*a_cs], op(B)(k,j) = B[k*b_rs + j*b_cs], C(i,j) = C[i*c_rs + j*c_cs].

inline void store_scalar(float* c, float v, float alpha, float beta) {
  *c = beta == 0.f ? alpha * v : alpha * v + beta * *c;
}

// op(B) columns contiguous along k (b_rs == 1): dot products of the MB rows of Ak with 4 columns at a time.
template <int MB>
void small_dot(int64_t N, int64_t K, float alpha, const float* Ak, const float* B, int64_t b_cs, float beta,
               float* C, int64_t c_rs, int64_t c_cs) {
  const int64_t K16 = K & ~int64_t(15);
  const __mmask16 kt = lane_mask(K - K16);
  for (int64_t j = 0; j < N; j += 4) {
    const int64_t nj = imin(4, N - j);
    const float* b[4];
    for (int jj = 0; jj < 4; ++jj) b[jj] = B + (j + (jj < nj ? jj : nj - 1)) * b_cs;
    __m512 acc[MB][4];
    for (int i = 0; i < MB; ++i)
      for (int jj = 0; jj < 4; ++jj) acc[i][jj] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K16; k += 16) {
      __m512 bv[4];
      for (int jj = 0; jj < 4; ++jj) bv[jj] = _mm512_loadu_ps(b[jj] + k);
      for (int i = 0; i < MB; ++i) {
        const __m512 a = _mm512_loadu_ps(Ak + i * K + k);
        for (int jj = 0; jj < 4; ++jj) acc[i][jj] = _mm512_fmadd_ps(a, bv[jj], acc[i][jj]);
      }
    }
    if (K16 < K) {
      __m512 bv[4];
      for (int jj = 0; jj < 4; ++jj) bv[jj] = _mm512_maskz_loadu_ps(kt, b[jj] + K16);
      for (int i = 0; i < MB; ++i) {
        const __m512 a = _mm512_maskz_loadu_ps(kt, Ak + i * K + K16);
        for (int jj = 0; jj < 4; ++jj) acc[i][jj] = _mm512_fmadd_ps(a, bv[jj], acc[i][jj]);
      }
    }
    for (int i = 0; i < MB; ++i)
      for (int jj = 0; jj < nj; ++jj)
        store_scalar(C + i * c_rs + (j + jj) * c_cs, _mm512_reduce_add_ps(acc[i][jj]), alpha, beta);
  }
}

// op(B) rows contiguous along n (b_cs == 1): rows of C built 64 columns at a time from broadcasts of Ak.
template <int MB>
void small_axpy(int64_t N, int64_t K, float alpha, const float* Ak, const float* B, int64_t b_rs, float beta,
                float* C, int64_t c_rs, int64_t c_cs) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int64_t j = 0; j < N; j += 64) {
    const int64_t nw = imin(64, N - j);
    __mmask16 mk[4];
    for (int v = 0; v < 4; ++v) mk[v] = nw - 16 * v <= 0 ? (__mmask16)0 : lane_mask(nw - 16 * v);
    __m512 acc[MB][4];
    for (int i = 0; i < MB; ++i)
      for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_setzero_ps();
    const float* bp = B + j;
    if (nw == 64) {
      for (int64_t k = 0; k < K; ++k, bp += b_rs) {
        _mm_prefetch((const char*)(bp + 8 * b_rs), _MM_HINT_T0);
        _mm_prefetch((const char*)(bp + 8 * b_rs + 32), _MM_HINT_T0);
        __m512 bv[4];
        for (int v = 0; v < 4; ++v) bv[v] = _mm512_loadu_ps(bp + 16 * v);
        for (int i = 0; i < MB; ++i) {
          const __m512 a = _mm512_set1_ps(Ak[i * K + k]);
          for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_fmadd_ps(a, bv[v], acc[i][v]);
        }
      }
    } else {
      for (int64_t k = 0; k < K; ++k, bp += b_rs) {
        __m512 bv[4];
        for (int v = 0; v < 4; ++v) bv[v] = _mm512_maskz_loadu_ps(mk[v], bp + 16 * v);
        for (int i = 0; i < MB; ++i) {
          const __m512 a = _mm512_set1_ps(Ak[i * K + k]);
          for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_fmadd_ps(a, bv[v], acc[i][v]);
        }
      }
    }
    for (int i = 0; i < MB; ++i) {
      if (c_cs == 1) {
        for (int v = 0; v < 4; ++v) {
          if (!mk[v]) break;
          float* p = C + i * c_rs + j + 16 * v;
          __m512 r = _mm512_mul_ps(va, acc[i][v]);
          if (beta != 0.f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk[v], p), r);
          _mm512_mask_storeu_ps(p, mk[v], r);
        }
      } else {
        alignas(64) float t[64];
        for (int v = 0; v < 4; ++v) _mm512_store_ps(t + 16 * v, acc[i][v]);
        for (int64_t jj = 0; jj < nw; ++jj) store_scalar(C + i * c_rs + (j + jj) * c_cs, t[jj], alpha, beta);
      }
    }
  }
}

template <int MB>
void small_rows(int64_t N, int64_t K, float alpha, const float* A, int64_t a_rs, int64_t a_cs, const float* B,
                int64_t b_rs, int64_t b_cs, float beta, float* C, int64_t c_rs, int64_t c_cs, float* Ak) {
  for (int i = 0; i < MB; ++i) {
    const float* a = A + i * a_rs;
    float* d = Ak + i * K;
    if (a_cs == 1)
      for (int64_t k = 0; k < K; ++k) d[k] = a[k];
    else
      for (int64_t k = 0; k < K; ++k) d[k] = a[k * a_cs];
  }
  if (b_rs == 1)
    small_dot<MB>(N, K, alpha, Ak, B, b_cs, beta, C, c_rs, c_cs);
  else
    small_axpy<MB>(N, K, alpha, Ak, B, b_rs, beta, C, c_rs, c_cs);
}

void small_m(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t a_rs, int64_t a_cs,
             const float* B, int64_t b_rs, int64_t b_cs, float beta, float* C, int64_t c_rs, int64_t c_cs,
             float* scratch) {
  for (int64_t i = 0; i < M; i += 4) {
    const float* a = A + i * a_rs;
    float* c = C + i * c_rs;
    switch (imin(4, M - i)) {
      case 1: small_rows<1>(N, K, alpha, a, a_rs, a_cs, B, b_rs, b_cs, beta, c, c_rs, c_cs, scratch); break;
      case 2: small_rows<2>(N, K, alpha, a, a_rs, a_cs, B, b_rs, b_cs, beta, c, c_rs, c_cs, scratch); break;
      case 3: small_rows<3>(N, K, alpha, a, a_rs, a_cs, B, b_rs, b_cs, beta, c, c_rs, c_cs, scratch); break;
      default: small_rows<4>(N, K, alpha, a, a_rs, a_cs, B, b_rs, b_cs, beta, c, c_rs, c_cs, scratch); break;
    }
  }
}

template <int MR, int NV>
constexpr PackedKernel make(const char* name, int mc, int kc, int nc) {
  return PackedKernel{name, MR, 16 * NV, mc, kc, nc, &pack_a<MR>, &pack_b<16 * NV>, &macro<MR, NV>, &small_m};
}

// Entry 0 is the engine's kernel; the others are kept for gemm_lab --kernel comparisons.
// Blocking (measured on Zen 5, 48 KiB L1d / 1 MiB L2 per core): kc = 1024 (both micro-panels then
// stream from L2; a long k loop amortises the C tile's load/store), mc = 144 (A block 576 KiB in
// L2), nc capped by the driver so a packed B block stays within a few MiB of L3.
const PackedKernel kKernels[] = {
    make<6, 4>("avx512 6x64", 144, 1024, 4096),
    make<12, 2>("avx512 12x32", 144, 1024, 4096),
    make<14, 2>("avx512 14x32", 140, 1024, 4096),
    make<8, 3>("avx512 8x48", 144, 1024, 4080),
};

}  // namespace

const PackedKernel* avx512_kernels(int* n) {
  *n = (int)(sizeof(kKernels) / sizeof(kKernels[0]));
  return kKernels;
}

}  // namespace puzzle::gemm_detail
#endif  // x86-64
