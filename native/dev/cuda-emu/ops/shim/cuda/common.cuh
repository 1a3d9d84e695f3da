// Host emulation of the CUDA bits the kernels use: one block at a time, one std::thread per CUDA
// thread, a real barrier for __syncthreads and the warp shuffles; then the real
// native/src/cuda/common.cuh on top (stream() and record_error() come from the test driver).
#pragma once
#include <barrier>
#include <cassert>
#include <limits>
#include <type_traits>
#include <algorithm>
#include "puzzle/bf16.h"
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

struct alignas(16) float4 { float x, y, z, w; };
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct __nv_bfloat16 { uint16_t b; };
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u; std::memcpy(&u, &f, 4);
  __nv_bfloat16 h;
  if ((u & 0x7fffffffu) > 0x7f800000u) { h.b = (uint16_t)((u >> 16) | 0x40u); return h; }
  u += 0x7fffu + ((u >> 16) & 1u);
  h.b = (uint16_t)(u >> 16);
  return h;
}
inline float __bfloat162float(__nv_bfloat16 h) { uint32_t u = (uint32_t)h.b << 16; float f; std::memcpy(&f, &u, 4); return f; }
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return __nv_bfloat162{__float2bfloat16_rn(a), __float2bfloat16_rn(b)}; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
template <class T> T __ldg(const T* p) { return *p; }
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint3e { unsigned x, y, z; };
inline thread_local uint3e threadIdx;
inline uint3e blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* g_bar = nullptr;
inline std::vector<float4> g_dyn_smem;
inline std::mutex g_atomic_mu;
inline long g_launches = 0;

inline void __syncthreads() { g_bar->arrive_and_wait(); }
// Warp-level sync is emulated with the block barrier: valid for kernels whose warps all reach
// the same warp-level calls (true for the GEMM and the elementwise kernels tested here).
inline void __syncwarp(unsigned = 0xffffffffu) { __syncthreads(); }
template <class T>
T __shfl_xor_sync(unsigned, T v, int o) {
  static T buf[1024];
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  buf[t] = v;
  __syncthreads();
  T r = buf[t ^ (unsigned)o];
  __syncthreads();
  return r;
}
inline float atomicAdd(float* p, float v) {
  std::lock_guard<std::mutex> l(g_atomic_mu);
  float o = *p;
  *p = o + v;
  return o;
}
inline float4 atomicAdd(float4* p, float4 v) {
  if (((uintptr_t)p & 15) != 0) { std::fprintf(stderr, "misaligned float4 atomic\n"); std::abort(); }
  std::lock_guard<std::mutex> l(g_atomic_mu);
  float4 o = *p;
  p->x += v.x, p->y += v.y, p->z += v.z, p->w += v.w;
  return o;
}

typedef int cudaError_t;
typedef void* cudaStream_t;
enum { cudaSuccess = 0, cudaMemcpyDeviceToHost = 2, cudaDevAttrMultiProcessorCount = 16,
       cudaDevAttrMaxSharedMemoryPerBlockOptin = 97, cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
inline int g_sm_count = 3;
inline int g_smem_optin = 64 * 1024;
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t) { return "error"; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return 0; }
inline cudaError_t cudaDeviceGetAttribute(int* v, int attr, int) {
  *v = attr == cudaDevAttrMultiProcessorCount ? g_sm_count : g_smem_optin;
  return 0;
}
template <class F>
cudaError_t cudaFuncSetAttribute(F, int, int v) { return v <= g_smem_optin ? 0 : 1; }
inline cudaError_t cudaMalloc(double** p, size_t b) { *p = (double*)std::aligned_alloc(256, (b + 255) / 256 * 256); return 0; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t b, int, cudaStream_t) { std::memcpy(d, s, b); return 0; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return 0; }
inline long g_emu_allocs = 0, g_emu_frees = 0;
inline cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) {
  *p = std::malloc(bytes);
  for (size_t i = 0; i < bytes / 4; ++i) ((float*)*p)[i] = std::numeric_limits<float>::quiet_NaN();
  ++g_emu_allocs;
  return *p ? 0 : 2;
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { std::free(p); ++g_emu_frees; return 0; }
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t b, cudaStream_t) { std::memset(p, v, b); return 0; }

template <class... P, class... A>
void emu_launch(dim3 grid, dim3 block, size_t smem, cudaStream_t, void (*k)(P...), A... args) {
  static_assert(sizeof...(P) == sizeof...(A));
  ++g_launches;
  const unsigned nt = block.x * block.y * block.z;
  if (nt == 0 || nt > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
    std::fprintf(stderr, "bad launch config grid %u %u %u block %u %u %u\n", grid.x, grid.y, grid.z, block.x, block.y, block.z);
    std::abort();
  }
  if (smem > 48 * 1024 && smem > (size_t)g_smem_optin) { std::fprintf(stderr, "too much smem\n"); std::abort(); }
  gridDim = grid, blockDim = block;
  g_dyn_smem.assign(smem / 16 + 1, float4{NAN, NAN, NAN, NAN});  // garbage: kernels must initialise
  std::vector<std::thread> th;
  th.reserve(nt);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = {bx, by, bz};
        std::barrier<> bar(nt);
        g_bar = &bar;
        th.clear();
        for (unsigned t = 0; t < nt; ++t)
          th.emplace_back([&, t] {
            threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            k(static_cast<P>(args)...);
            g_bar->arrive_and_drop();
          });
        for (auto& x : th) x.join();
      }
}

// ---- nvcuda::wmma m16n16k16 bf16 (from the attention emulator; lane L's element i is tile
// element i*32+L, deliberately not the hardware layout). Warp exchange through the block barrier.
namespace nvcuda { namespace wmma {
struct row_major {}; struct col_major {};
struct matrix_a {}; struct matrix_b {}; struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment { static constexpr int num_elements = 8; T x[8]; };
inline int emu_row(int i) { return (i * 32 + (int)(threadIdx.x % 32)) / 16; }
inline int emu_col(int i) { return (i * 32 + (int)(threadIdx.x % 32)) % 16; }
inline void emu_check_ptr(const void* p, unsigned ldm, int esize) {
  if ((uintptr_t)p % 32 != 0 || (ldm * esize) % 16 != 0) { std::fprintf(stderr, "wmma alignment\n"); std::abort(); }
}
template <class Use, class L>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, L>& f, const __nv_bfloat16* p, unsigned ldm) {
  emu_check_ptr(p, ldm, 2);
  for (int i = 0; i < 8; ++i) {
    const int r = emu_row(i), c = emu_col(i);
    f.x[i] = std::is_same<L, row_major>::value ? p[r * ldm + c] : p[c * ldm + r];
  }
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t l) {
  emu_check_ptr(p, ldm, 4);
  for (int i = 0; i < 8; ++i) {
    const int r = emu_row(i), c = emu_col(i);
    (l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[i];
  }
}
inline void fill_fragment(fragment<accumulator, 16, 16, 16, float>& f, float v) { for (auto& x : f.x) x = v; }
inline float g_mma[32][3][16][16];
template <class LA, class LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA>& a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  const int w = threadIdx.x / 32;
  for (int i = 0; i < 8; ++i) {
    const int r = emu_row(i), cc = emu_col(i);
    g_mma[w][0][r][cc] = __bfloat162float(a.x[i]);
    g_mma[w][1][r][cc] = __bfloat162float(b.x[i]);
    g_mma[w][2][r][cc] = c.x[i];
  }
  __syncthreads();
  float res[8];
  for (int i = 0; i < 8; ++i) {
    const int r = emu_row(i), cc = emu_col(i);
    float acc = g_mma[w][2][r][cc];
    for (int kk = 0; kk < 16; ++kk) acc += g_mma[w][0][r][kk] * g_mma[w][1][kk][cc];
    res[i] = acc;
  }
  __syncthreads();
  for (int i = 0; i < 8; ++i) d.x[i] = res[i];
}
}}  // namespace nvcuda::wmma

#include "../../../../../src/cuda/common.cuh"
