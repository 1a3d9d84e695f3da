// Emulated bf16 + nvcuda::wmma (m16n16k16) for the CPU emulator. A fragment holds 8 elements per
// lane; lane L's element i is tile element e = i*32 + L (row e/16, col e%16) -- deliberately not
// the hardware layout, so code that assumes a layout fails. mma_sync exchanges through a per-warp
// buffer with warp barriers; load/store touch only the lane's own elements (no implied sync).
#pragma once
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
struct __nv_bfloat16 { uint16_t b; };
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t u; std::memcpy(&u, &f, 4);
  __nv_bfloat16 h;
  if ((u & 0x7fffffffu) > 0x7f800000u) { h.b = 0x7fc0; return h; }
  u += 0x7fffu + ((u >> 16) & 1u);
  h.b = (uint16_t)(u >> 16);
  return h;
}
inline float __bfloat162float(__nv_bfloat16 h) { uint32_t u = (uint32_t)h.b << 16; float f; std::memcpy(&f, &u, 4); return f; }
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return __nv_bfloat162{__float2bfloat16(a), __float2bfloat16(b)}; }
inline float __low2float(__nv_bfloat162 v) { return __bfloat162float(v.x); }
inline float __high2float(__nv_bfloat162 v) { return __bfloat162float(v.y); }
inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 v) { return v.x; }
inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 v) { return v.y; }
inline int g_all[32][32];
inline bool __all_sync(unsigned mask, bool p) {
  assert(mask == 0xffffffffu);
  const int w = emu_tid() / 32, lane = emu_tid() % 32;
  g_all[w][lane] = p;
  g_warp_bar[w].wait();
  bool r = true;
  for (int i = 0; i < 32; ++i) r = r && g_all[w][i];
  g_warp_bar[w].wait();
  return r;
}
// The warp-collective multiplies compute a whole tile at once: cd (16 x C) += a (16 x 16) b (16 x C).
// The emulated GEMMs spend most of their time here, so where the CPU has AVX2 and FMA the rows
// are 8-wide fused multiply-adds (chosen at run time: the emulator is built without -m flags).
template <int C>
inline void emu_mma_rows_plain(const float (*a)[16], const float (*b)[C], float (*cd)[C]) {
  for (int r = 0; r < 16; ++r)
    for (int k = 0; k < 16; ++k)
      for (int c = 0; c < C; ++c) cd[r][c] += a[r][k] * b[k][c];
}
#if defined(__x86_64__)
template <int C>
__attribute__((target("avx2,fma"))) inline void emu_mma_rows_avx2(const float (*a)[16], const float (*b)[C], float (*cd)[C]) {
  static_assert(C == 8 || C == 16, "one or two vectors of columns");
  for (int r = 0; r < 16; ++r) {
    __m256 acc0 = _mm256_loadu_ps(cd[r]), acc1 = C == 16 ? _mm256_loadu_ps(cd[r] + 8) : _mm256_setzero_ps();
    for (int k = 0; k < 16; ++k) {
      const __m256 x = _mm256_broadcast_ss(&a[r][k]);
      acc0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[k]), acc0);
      if (C == 16) acc1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[k] + 8), acc1);
    }
    _mm256_storeu_ps(cd[r], acc0);
    if (C == 16) _mm256_storeu_ps(cd[r] + 8, acc1);
  }
}
inline const bool g_emu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
template <int C>
inline void emu_mma_rows(const float (*a)[16], const float (*b)[C], float (*cd)[C]) {
#if defined(__x86_64__)
  if (g_emu_avx2) return emu_mma_rows_avx2<C>(a, b, cd);
#endif
  emu_mma_rows_plain<C>(a, b, cd);
}
namespace nvcuda { namespace wmma {
struct row_major {}; struct col_major {};
struct matrix_a {}; struct matrix_b {}; struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "m16n16k16 only");
  static constexpr int num_elements = 8;
  T x[8];
};
// the lane is read once per call: with -fno-strict-aliasing every store through a fragment or a
// tile pointer would otherwise make the compiler reload the thread index
inline unsigned emu_lane() { return (unsigned)emu_tid() % 32u; }
inline unsigned emu_row(int i, unsigned lane) { return ((unsigned)i * 32u + lane) / 16u; }
inline unsigned emu_col(int i, unsigned lane) { return ((unsigned)i * 32u + lane) % 16u; }
inline void emu_check_ptr(const void* p, unsigned ldm, int esize) {
  const uintptr_t off = (uintptr_t)p - (uintptr_t)emu_dyn_smem;
  if (off % 32 != 0 || (ldm * esize) % 16 != 0) { std::fprintf(stderr, "wmma alignment: off %zu ldm %u\n", (size_t)off, ldm); std::abort(); }
}
template <class Use, class L>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, L>& f, const __nv_bfloat16* p, unsigned ldm) {
  emu_check_ptr(p, ldm, 2);
  const unsigned lane = emu_lane();
  for (int i = 0; i < 8; ++i) {
    const unsigned r = emu_row(i, lane), c = emu_col(i, lane);
    f.x[i] = std::is_same<L, row_major>::value ? p[r * ldm + c] : p[c * ldm + r];
  }
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm, layout_t l) {
  emu_check_ptr(p, ldm, 4);
  const unsigned lane = emu_lane();
  for (int i = 0; i < 8; ++i) {
    const unsigned r = emu_row(i, lane), c = emu_col(i, lane);
    f.x[i] = l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
  }
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t l) {
  emu_check_ptr(p, ldm, 4);
  const unsigned lane = emu_lane();
  for (int i = 0; i < 8; ++i) {
    const unsigned r = emu_row(i, lane), c = emu_col(i, lane);
    (l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[i];
  }
}
inline void fill_fragment(fragment<accumulator, 16, 16, 16, float>& f, float v) { for (auto& x : f.x) x = v; }
// Two exchange buffers per warp, alternating per call: a lane that reaches call n+2 has passed call
// n+1's barrier, so every lane has finished reading call n's buffer -- one warp barrier per
// mma_sync instead of two. The last lane to arrive multiplies the whole tile (a dense loop the
// compiler vectorises) before the others resume; the emulated GEMMs spend most of their time here.
struct EmuMmaTile { float a[16][16], b[16][16], cd[16][16]; };
inline EmuMmaTile g_mma[32][2];
inline void emu_mma_tile(EmuMmaTile& m) { emu_mma_rows<16>(m.a, m.b, m.cd); }
template <class LA, class LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA>& a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  const int w = emu_tid() / 32;
  const unsigned lane = emu_lane();
  EmuMmaTile& m = g_mma[w][emu_self().mma_parity];
  emu_self().mma_parity ^= 1;
  // lane L's element i is tile element i*32 + L, in row-major order
  float* a_ = &m.a[0][0] + lane;
  float* b_ = &m.b[0][0] + lane;
  float* cd = &m.cd[0][0] + lane;
  for (int i = 0; i < 8; ++i) {
    a_[i * 32] = __bfloat162float(a.x[i]);
    b_[i * 32] = __bfloat162float(b.x[i]);
    cd[i * 32] = c.x[i];
  }
  g_warp_bar[w].wait([&m] { emu_mma_tile(m); });
  for (int i = 0; i < 8; ++i) d.x[i] = cd[i * 32];  // d may alias c: c is in the buffer
}
}}  // namespace nvcuda::wmma
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return uint4{a, b, c, d}; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
#include "emu_mma.h"
