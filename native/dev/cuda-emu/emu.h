// Minimal CUDA emulation for testing kernels on a machine without a GPU (see run.sh): each CUDA
// thread is an OS thread; __syncthreads is a block barrier, warp shuffles exchange through a
// per-warp buffer guarded by per-warp barriers. Blocks run one after another. Dynamic shared
// memory is an exact-size heap block filled with NaN (ASan catches out-of-bounds use, NaN shows
// reads of never-written shared memory). Because barriers are the only synchronisation between
// the threads of a block, TSan reports a shared-memory race where a __syncthreads/__syncwarp is
// missing. Only what native/src/cuda/attention.cu uses is provided (the kernel launch syntax is
// rewritten to emu_launch by convert.sh; the runtime calls are stubs).
#pragma once
#include <math.h>
#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)

struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }
inline float2 make_float2(float a, float b) { return float2{a, b}; }
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3_ { unsigned x, y, z; };
inline thread_local uint3_ threadIdx;
inline thread_local uint3_ blockIdx;
inline dim3 blockDim, gridDim;

#include <atomic>
#ifdef EMU_ATOMIC_BARRIER
// HB edges only through the barrier itself: arrivals are a release RMW chain on count, the last
// arriver publishes gen with a release store, waiters acquire gen.
struct EmuBarrier {
  std::atomic<int> count{0};
  std::atomic<long> gen{0};
  int n = 0;
  void init(int n_) { n = n_; count.store(0); gen.store(0); }
  void wait() {
    long g = gen.load(std::memory_order_acquire);
    if (count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      count.store(0, std::memory_order_relaxed);
      gen.store(g + 1, std::memory_order_release);
      gen.notify_all();
    } else {
      gen.wait(g, std::memory_order_acquire);
      while (gen.load(std::memory_order_acquire) == g) gen.wait(g, std::memory_order_acquire);
    }
  }
};
#else
struct EmuBarrier {
  std::mutex m;
  std::condition_variable cv;
  int n = 0, count = 0;
  long gen = 0;
  void init(int n_) { n = n_; count = 0; gen = 0; }
  void wait() {
    std::unique_lock<std::mutex> l(m);
    long g = gen;
    if (++count == n) { count = 0; ++gen; cv.notify_all(); }
    else cv.wait(l, [&] { return gen != g; });
  }
};
#endif
inline EmuBarrier g_block_bar;
inline EmuBarrier g_warp_bar[32];
inline float g_shfl[32][32];
inline void* emu_dyn_smem = nullptr;
inline long g_syncs = 0;

inline void __syncthreads() { g_block_bar.wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { g_warp_bar[threadIdx.x / 32].wait(); }
inline float __shfl_xor_sync(unsigned mask, float v, int o) {
  assert(mask == 0xffffffffu);
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  g_shfl[w][lane] = v;
  g_warp_bar[w].wait();
  float r = g_shfl[w][lane ^ o];
  g_warp_bar[w].wait();
  return r;
}
// A relaxed atomic read-modify-write: no happens-before edge between threads (a mutex here would
// let TSan treat everything before one thread's atomicAdd as ordered before another's).
inline float atomicAdd(float* p, float v) {
  std::atomic_ref<float> a(*p);
  float old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
  }
  return old;
}

// ---- runtime API subset
typedef int cudaError_t;
enum : int { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInvalidConfiguration = 9 };
typedef void* cudaStream_t;
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
inline const char* cudaGetErrorString(cudaError_t) { return "emu error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline int g_emu_sms = 8, g_emu_smem_optin = 232448;
inline size_t g_emu_max_attr = 0;
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrMultiProcessorCount ? g_emu_sms : g_emu_smem_optin;
  return cudaSuccess;
}
template <class F>
cudaError_t cudaFuncSetAttribute(F*, cudaFuncAttribute, int v) {
  if (v > g_emu_smem_optin) return cudaErrorInvalidValue;
  g_emu_max_attr = std::max(g_emu_max_attr, (size_t)v);
  return cudaSuccess;
}
inline bool g_emu_capturing = false;
inline long g_emu_allocs = 0, g_emu_frees = 0;
inline cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus* s) {
  *s = g_emu_capturing ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
inline cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) {
  *p = std::malloc(bytes);
  // poison scratch so unwritten parts show up
  for (size_t i = 0; i < bytes / 4; ++i) ((float*)*p)[i] = std::numeric_limits<float>::quiet_NaN();
  ++g_emu_allocs;
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { std::free(p); ++g_emu_frees; return cudaSuccess; }

namespace puzzle::cuda {
cudaStream_t stream();
void record_error(cudaError_t e, const char* where);
#define PUZZLE_CUDA_CHECK_LAUNCH(where) ::puzzle::cuda::record_error(cudaGetLastError(), where)
inline unsigned blocks_for(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }
}  // namespace puzzle::cuda

// ---- launches
inline size_t g_emu_max_smem_used = 0;
inline long g_emu_blocks = 0;
template <class K>
struct EmuLaunch {
  dim3 g, b;
  size_t smem;
  K* k;
  template <class... A>
  void operator()(A... args) {
    assert(b.y == 1 && b.z == 1 && b.x % 32 == 0);
    blockDim = b;
    gridDim = g;
    g_emu_max_smem_used = std::max(g_emu_max_smem_used, smem);
    if (smem > 48 * 1024 && smem > g_emu_max_attr) { std::fprintf(stderr, "smem %zu above attribute\n", smem); std::abort(); }
    for (unsigned bz = 0; bz < g.z; ++bz)
      for (unsigned by = 0; by < g.y; ++by)
        for (unsigned bx = 0; bx < g.x; ++bx) {
          ++g_emu_blocks;
          void* sm = smem ? std::malloc(smem) : nullptr;  // exact size, for ASan
          assert(((uintptr_t)sm % 16) == 0);
          for (size_t i = 0; i < smem / 4; ++i) ((float*)sm)[i] = std::numeric_limits<float>::quiet_NaN();
          emu_dyn_smem = sm;
          g_block_bar.init(b.x);
          for (unsigned w = 0; w < b.x / 32; ++w) g_warp_bar[w].init(32);
          std::vector<std::thread> th;
          th.reserve(b.x);
          for (unsigned t = 0; t < b.x; ++t)
            th.emplace_back([=, this] {
              threadIdx = {t, 0, 0};
              blockIdx = {bx, by, bz};
              k(args...);
            });
          for (auto& x : th) x.join();
          std::free(sm);
        }
  }
};
template <class K>
EmuLaunch<K> emu_launch(dim3 g, dim3 b, size_t smem, cudaStream_t, K* k) {
  return EmuLaunch<K>{g, b, smem, k};
}
