// Minimal CUDA emulation for testing kernels on a machine without a GPU (see run.sh and
// ops/run.sh): each CUDA thread is an OS thread (a fiber with EMU_FIBERS, module/build.sh's
// choice: much faster, invisible to sanitizers); __syncthreads is a block barrier, warp shuffles
// exchange through a per-warp buffer guarded by per-warp barriers (warps are runs of 32 threads
// in CUDA's linear thread order, blocks may be 1-, 2- or 3-dimensional). A thread that returns
// leaves its barriers, as on the GPU. Blocks run one after another. Dynamic shared memory is an
// exact-size heap block filled with NaN (ASan catches out-of-bounds use, NaN shows reads of
// never-written shared memory); static __shared__ arrays are function statics. Because barriers
// are the only synchronisation between the threads of a block, TSan reports a shared-memory race
// where a __syncthreads/__syncwarp is missing. convert.sh rewrites a .cu file's launches into
// emu_launch and its include of cuda/common.cuh into this header, emu_wmma.h and then the real
// common.cuh (stubs/ stands in for the CUDA headers it includes); the runtime calls are stubs
// (emu_runtime.h: the rest of the runtime API, for building the whole module, module/build.sh).
// Launches hold one global lock, as if on one stream, since block state lives in globals.
#pragma once
#include <math.h>
#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#ifdef EMU_FIBERS
#include <sys/mman.h>
#include <ucontext.h>
#endif
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#define PUZZLE_CUDA_EMU 1  // cuda/mma.cuh leaves its primitives to emu_mma.h
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
template <class T>
T __ldg(const T* p) { return *p; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }
inline float2 make_float2(float a, float b) { return float2{a, b}; }
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3_ { unsigned x, y, z; };
inline thread_local uint3_ blockIdx;
inline dim3 blockDim, gridDim;

// What belongs to one CUDA thread: its index, the parities of the double-buffered warp exchanges
// (emu.h's shuffles, emu_wmma.h's mma_sync) and its cp.async queues (emu_mma.h), issued and
// committed. Fresh for every CUDA thread (a pool thread or fiber plays many).
struct EmuCopy { void* d; const void* s; };
struct EmuSelf {
  uint3_ tid{};
  int shfl_parity = 0, mma_parity = 0, mma16816_parity = 0, ldsm_parity = 0;
  std::vector<EmuCopy> cp_open;
  std::deque<std::vector<EmuCopy>> cp_groups;
  // fresh state, keeping the containers' memory (a std::deque allocates even when empty, and
  // every CUDA thread of every block starts here)
  void reset() {
    tid = {};
    shfl_parity = mma_parity = mma16816_parity = ldsm_parity = 0;
    cp_open.clear();
    cp_groups.clear();
  }
};
#ifdef EMU_FIBERS
// EMU_FIBERS (module/build.sh): a block's CUDA threads are fibers (ucontext) on the launching OS
// thread, switched only at barriers -- far cheaper than OS threads blocking on condition
// variables, which dominated whole-model runs. No sanitizer sees fibers: the kernel tests
// (run.sh, ops/run.sh) keep OS threads.
inline EmuSelf* g_emu_self = nullptr;  // the running fiber's
inline EmuSelf& emu_self() { return *g_emu_self; }
inline int emu_fiber_current();
inline void emu_fiber_ready(int id);
inline void emu_fiber_block();
#else
inline thread_local EmuSelf g_emu_self;
inline EmuSelf& emu_self() { return g_emu_self; }
#endif
#define threadIdx (emu_self().tid)

#include <atomic>
#if defined(EMU_FIBERS)
// one OS thread runs the block: a barrier parks its fiber until the last arrival readies them all
struct EmuBarrier {
  int n = 0, count = 0;
  std::vector<int> waiting;
  void init(int n_) { n = n_, count = 0, waiting.clear(); }
  void release() {
    count = 0;
    for (int id : waiting) emu_fiber_ready(id);
    waiting.clear();
  }
  void wait() {
    wait([] {});
  }
  // The last thread to arrive runs `last` before any waiter resumes: a warp-collective operation
  // (mma_sync) is computed once for the warp instead of once per lane.
  template <class F>
  void wait(F&& last) {
    if (++count == n) {
      last();
      return release();
    }
    waiting.push_back(emu_fiber_current());
    emu_fiber_block();
  }
  void drop() {
    if (--n > 0 && count == n) release();
  }
};
#elif defined(EMU_ATOMIC_BARRIER)
// HB edges only through the barrier itself: arrivals are a release RMW chain on count, the last
// arriver publishes gen with a release store, waiters acquire gen.
struct EmuBarrier {
  std::atomic<int> count{0};
  std::atomic<long> gen{0};
  int n = 0;
  void init(int n_) { n = n_; count.store(0); gen.store(0); }
  void wait() { wait([] {}); }
  template <class F>
  void wait(F&& last) {
    long g = gen.load(std::memory_order_acquire);
    if (count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      last();  // after every arrival (acq_rel chain), before the release of gen
      count.store(0, std::memory_order_relaxed);
      gen.store(g + 1, std::memory_order_release);
      gen.notify_all();
    } else {
      gen.wait(g, std::memory_order_acquire);
      while (gen.load(std::memory_order_acquire) == g) gen.wait(g, std::memory_order_acquire);
    }
  }
  // not supported with the atomic variant: kernels whose threads return early need the default
  void drop() { std::abort(); }
};
#else
struct EmuBarrier {
  std::mutex m;
  std::condition_variable cv;
  int n = 0, count = 0;
  long gen = 0;
  void init(int n_) { n = n_; count = 0; gen = 0; }
  void wait() { wait([] {}); }
  template <class F>
  void wait(F&& last) {
    std::unique_lock<std::mutex> l(m);
    long g = gen;
    if (++count == n) { last(); count = 0; ++gen; cv.notify_all(); }
    else cv.wait(l, [&] { return gen != g; });
  }
  // a thread that has returned: later phases wait for one fewer (and this one may complete one)
  void drop() {
    std::lock_guard<std::mutex> l(m);
    if (--n > 0 && count == n) { count = 0; ++gen; cv.notify_all(); }
  }
};
#endif
inline EmuBarrier g_block_bar;
inline EmuBarrier g_warp_bar[32];
// Per warp, two exchange buffers alternating per call (wide enough for float and double): a lane
// that reaches call n+2 has passed call n+1's barrier, so every lane has read call n's buffer --
// one warp barrier per shuffle instead of two.
inline double g_shfl[32][2][32];
inline void* emu_dyn_smem = nullptr;
inline long g_syncs = 0;

// CUDA's linear thread index within the block (warps are its runs of 32)
inline int emu_tid() { return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)); }
inline void __syncthreads() { g_block_bar.wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { g_warp_bar[emu_tid() / 32].wait(); }
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int o) {
  static_assert(sizeof(T) <= sizeof(double), "shuffle of a wider type");
  assert(mask == 0xffffffffu);
  const int w = emu_tid() / 32, lane = emu_tid() % 32;
  double* buf = g_shfl[w][emu_self().shfl_parity];
  emu_self().shfl_parity ^= 1;
  std::memcpy(&buf[lane], &v, sizeof(T));
  g_warp_bar[w].wait();
  T r;
  std::memcpy(&r, &buf[lane ^ o], sizeof(T));
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

inline unsigned atomicAdd(unsigned* p, unsigned v) {
  return std::atomic_ref<unsigned>(*p).fetch_add(v, std::memory_order_relaxed);
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
// ld.global.cg: a load that bypasses L1 (no L1 here)
inline float __ldcg(const float* p) { return *p; }

// ---- runtime API subset
typedef int cudaError_t;
enum : int { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInvalidConfiguration = 9,
             cudaErrorIllegalAddress = 700 };
typedef void* cudaStream_t;
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16, cudaDevAttrComputeCapabilityMajor = 75,
                      cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error (emulator)";
    case cudaErrorInvalidValue: return "invalid argument (emulator)";
    case cudaErrorMemoryAllocation: return "out of memory (emulator)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (emulator)";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered (emulator: a kernel was given a pointer that is not device memory)";
    default: return "emu error";
  }
}
inline cudaError_t cudaGetLastError();  // emu_runtime.h
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline int g_emu_sms = 8, g_emu_smem_optin = 232448;
inline size_t g_emu_max_attr = 0;
// EMU_SM (e.g. 75): the compute capability reported (90 otherwise)
inline int emu_sm() {
  const char* sm = std::getenv("EMU_SM");
  return sm && std::atoi(sm) > 0 ? std::atoi(sm) : 90;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrMultiProcessorCount ? g_emu_sms
       : a == cudaDevAttrComputeCapabilityMajor ? emu_sm() / 10
                                                : g_emu_smem_optin;
  return cudaSuccess;
}
// The architecture a kernel was built for: the emulator runs the source, so what EMU_SM reports.
struct cudaFuncAttributes {
  int binaryVersion, ptxVersion;
};
template <class F>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, F*) {
  a->binaryVersion = a->ptxVersion = emu_sm();
  return cudaSuccess;
}
template <class F>
cudaError_t cudaFuncSetAttribute(F*, cudaFuncAttribute, int v) {
  if (v > g_emu_smem_optin) return cudaErrorInvalidValue;
  g_emu_max_attr = std::max(g_emu_max_attr, (size_t)v);
  return cudaSuccess;
}
// Stream capture (emu_runtime.h): while a graph is being captured, launches, copies and memsets
// are recorded as nodes instead of run, and memory allocated for the capture (the graph's own,
// as cudaMallocAsync inside a capture is on a GPU) lives as long as the graph that owns it.
struct EmuGraph {
  std::vector<std::function<void()>> nodes;
  std::vector<void*> owned;
};
inline EmuGraph* g_emu_capture = nullptr;
// Set by the kernel tests (attention_test.cpp "capture") to have the code under test see a
// capture in progress while its launches still run at once, so results can be checked directly.
inline bool g_emu_capturing = false;
inline long g_emu_allocs = 0, g_emu_frees = 0;
inline cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus* s) {
  *s = g_emu_capture || g_emu_capturing ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
// One launch (or copy, or memset) at a time, like one stream: the module may be called from
// several host threads, and a block's state lives in the globals above.
inline std::mutex g_emu_launch_mu;
inline std::mutex g_emu_count_mu;
// EMU_DEVICE_POINTERS (module/build.sh): device memory is host memory here, so code that hands a
// kernel or a copy the wrong kind of pointer would still work; with it, allocations are
// registered and kernel arguments, copies and memsets are checked against the registry. A
// violation fails as the GPU would, with a sticky illegal-address error (the kernel does not
// run). The kernel tests pass host arrays to kernels directly and leave this off.
#ifdef EMU_DEVICE_POINTERS
#include <map>
inline std::map<uintptr_t, size_t> g_emu_device_allocs;  // base -> bytes, under g_emu_count_mu
inline int g_emu_sticky = cudaSuccess;
inline const char* g_emu_sticky_what = "";
inline bool emu_is_device(const void* p) {
  std::lock_guard<std::mutex> l(g_emu_count_mu);
  auto it = g_emu_device_allocs.upper_bound((uintptr_t)p);
  if (it == g_emu_device_allocs.begin()) return false;
  --it;
  return (uintptr_t)p < it->first + std::max<size_t>(it->second, 1);
}
inline void emu_fault(const char* what) {
  std::fprintf(stderr, "CUDA emulator: %s\n", what);
  if (g_emu_sticky == cudaSuccess) g_emu_sticky = cudaErrorIllegalAddress, g_emu_sticky_what = what;
}
#endif
inline cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) {
  *p = std::malloc(bytes ? bytes : 1);
  if (!*p) return cudaErrorMemoryAllocation;
  if (g_emu_capture) g_emu_capture->owned.push_back(*p);
  // poison scratch so unwritten parts show up
  for (size_t i = 0; i < bytes / 4; ++i) ((float*)*p)[i] = std::numeric_limits<float>::quiet_NaN();
  std::lock_guard<std::mutex> l(g_emu_count_mu);
  ++g_emu_allocs;
#ifdef EMU_DEVICE_POINTERS
  g_emu_device_allocs[(uintptr_t)*p] = bytes;
#endif
  return cudaSuccess;
}
inline cudaError_t emu_free_device(void* p);
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) {
  // freed inside the capture that allocated it: the graph's memory, released with the graph
  if (g_emu_capture && std::find(g_emu_capture->owned.begin(), g_emu_capture->owned.end(), p) != g_emu_capture->owned.end())
    return cudaSuccess;
  return emu_free_device(p);
}
inline cudaError_t emu_free_device(void* p) {
#ifdef EMU_DEVICE_POINTERS
  if (p) {
    std::lock_guard<std::mutex> l(g_emu_count_mu);
    if (!g_emu_device_allocs.erase((uintptr_t)p)) return cudaErrorInvalidValue;  // not a device allocation's base
  }
#endif
  std::free(p);
  std::lock_guard<std::mutex> l(g_emu_count_mu);
  ++g_emu_frees;
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t) {
#ifdef EMU_DEVICE_POINTERS
  if (bytes && !emu_is_device(p)) return cudaErrorInvalidValue;
#endif
  if (g_emu_capture) {
    g_emu_capture->nodes.push_back([p, v, bytes] { std::memset(p, v, bytes); });
    return cudaSuccess;
  }
  std::lock_guard<std::mutex> l(g_emu_launch_mu);
  std::memset(p, v, bytes);
  return cudaSuccess;
}

// ---- launches
#ifdef EMU_FIBERS
// Fiber t plays CUDA thread t of each block on the launching OS thread: it runs until it waits at
// a barrier (parked until the last arrival readies it) or returns; the scheduler resumes ready
// fibers in the order they became ready. Stacks are kept across blocks and launches.
#if defined(__x86_64__)
// Our own context switch: the callee-saved registers and the stack pointer. ucontext's
// swapcontext also saves and restores the signal mask, two system calls per switch, which made it
// most of the cost. Weak, since every translation unit that includes this emits it.
extern "C" void emu_ctx_switch(void** save_sp, void* load_sp);
__asm__(".text\n.weak emu_ctx_switch\n.type emu_ctx_switch,@function\nemu_ctx_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n.size emu_ctx_switch, .-emu_ctx_switch\n");
struct EmuCtx {
  void* sp = nullptr;
};
// A fresh context whose first switch "returns" into entry, with the stack aligned as for a call.
inline void emu_ctx_start(EmuCtx& c, char* stack, size_t size, void (*entry)()) {
  void** sp = (void**)(((uintptr_t)(stack + size)) & ~(uintptr_t)15);
  *--sp = nullptr;  // entry's return address: it never returns
  *--sp = (void*)entry;
  for (int i = 0; i < 6; ++i) *--sp = nullptr;  // rbp, rbx, r12-r15
  c.sp = sp;
}
inline void emu_ctx_swap(EmuCtx& from, EmuCtx& to) { emu_ctx_switch(&from.sp, to.sp); }
#else
struct EmuCtx {
  ucontext_t uc;
};
inline void emu_ctx_start(EmuCtx& c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
inline void emu_ctx_swap(EmuCtx& from, EmuCtx& to) { swapcontext(&from.uc, &to.uc); }
#endif
struct EmuThreads {
  static constexpr size_t kStack = 256 * 1024;
  struct Fiber {
    EmuCtx ctx;
    EmuSelf self;
    char* stack = nullptr;
    bool done = false;
  };
  std::vector<Fiber> fibers;
  EmuCtx sched;
  // Ready fibers, first in first out: a ring over 1024 slots (a fiber is in it at most once, and a
  // block has at most 1024 threads). A std::deque allocated a chunk every 128 wake-ups.
  struct Ready {
    int slot[1024];
    unsigned head = 0, tail = 0;
    bool empty() const { return head == tail; }
    void push_back(int id) { slot[tail++ % 1024] = id; }
    int pop_front() { return slot[head++ % 1024]; }
  } ready;
  int cur = -1;
  std::function<void(unsigned)> body;
  static void trampoline() {
    EmuThreads& p = emu_threads_instance();
    const int id = p.cur;
    p.body((unsigned)id);
    p.fibers[id].done = true;
    p.switch_away(id);  // for good: this stack is started afresh for the next block
  }
  // Leaves fiber `id` (blocked or done) straight for the next ready fiber, or for the scheduler
  // when none is ready: one switch instead of two through the scheduler.
  void switch_away(int id) {
    if (ready.empty()) return emu_ctx_swap(fibers[id].ctx, sched);
    cur = ready.pop_front();
    g_emu_self = &fibers[cur].self;
    emu_ctx_swap(fibers[id].ctx, fibers[cur].ctx);
  }
  static EmuThreads& emu_threads_instance();
  void run(unsigned nt, std::function<void(unsigned)> f) {
    body = std::move(f);
    if (fibers.size() < nt) fibers.resize(nt);
    for (unsigned t = 0; t < nt; ++t) {
      Fiber& fb = fibers[t];
      if (!fb.stack) {
        void* m = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) { std::fprintf(stderr, "emulator: no memory for a fiber stack\n"); std::abort(); }
        fb.stack = (char*)m;
      }
      emu_ctx_start(fb.ctx, fb.stack, kStack, &EmuThreads::trampoline);
      fb.done = false;
      ready.push_back((int)t);
    }
    EmuSelf* outer = g_emu_self;
    while (!ready.empty()) {
      cur = ready.pop_front();
      g_emu_self = &fibers[cur].self;
      emu_ctx_swap(sched, fibers[cur].ctx);
    }
    g_emu_self = outer;
    cur = -1;
    for (unsigned t = 0; t < nt; ++t)
      if (!fibers[t].done) { std::fprintf(stderr, "emulator: CUDA thread %u never passed a barrier (deadlock)\n", t); std::abort(); }
  }
};
inline EmuThreads& EmuThreads::emu_threads_instance() {
  static EmuThreads pool;
  return pool;
}
inline int emu_fiber_current() { return EmuThreads::emu_threads_instance().cur; }
inline void emu_fiber_ready(int id) { EmuThreads::emu_threads_instance().ready.push_back(id); }
inline void emu_fiber_block() {
  EmuThreads& p = EmuThreads::emu_threads_instance();
  p.switch_away(p.cur);  // resumed later by whoever set cur and g_emu_self to this fiber
}
inline EmuThreads& emu_threads() { return EmuThreads::emu_threads_instance(); }
#else
// The OS threads that play a block's CUDA threads, kept across blocks and launches: creating
// hundreds of threads per block dominated whole-model runs (module/build.sh). Thread t of the
// pool plays CUDA thread t of each block; the launcher waits until all nt have returned.
struct EmuThreads {
  std::mutex m;
  std::condition_variable start, done;
  std::vector<std::thread> threads;
  std::function<void(unsigned)> body;
  long gen = 0;
  unsigned active = 0, remaining = 0;
  bool stop = false;
  void loop(unsigned id) {
    long seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(m);
        start.wait(l, [&] { return stop || gen != seen; });
        if (stop) return;
        seen = gen;
        if (id >= active) continue;
      }
      body(id);  // set before gen moved on, and not reset until every active thread is done
      std::lock_guard<std::mutex> l(m);
      if (--remaining == 0) done.notify_all();
    }
  }
  void run(unsigned nt, std::function<void(unsigned)> f) {
    {
      std::lock_guard<std::mutex> l(m);
      while (threads.size() < nt) threads.emplace_back([this, id = (unsigned)threads.size()] { loop(id); });
      body = std::move(f);
      active = remaining = nt;
      ++gen;
    }
    start.notify_all();
    std::unique_lock<std::mutex> l(m);
    done.wait(l, [&] { return remaining == 0; });
  }
  ~EmuThreads() {
    {
      std::lock_guard<std::mutex> l(m);
      stop = true;
    }
    start.notify_all();
    for (auto& t : threads) t.join();
  }
};
inline EmuThreads& emu_threads() {
  static EmuThreads pool;
  return pool;
}
#endif
#ifdef EMU_PROFILE
#include <chrono>
#include <map>
#include <typeinfo>
// EMU_PROFILE: per kernel signature, launches, blocks, CUDA threads and wall time, printed at exit
struct EmuProfile {
  struct Row { long launches = 0, blocks = 0, threads = 0; double ms = 0; };
  std::map<std::string, Row> rows;
  ~EmuProfile() {
    std::vector<std::pair<std::string, Row>> v(rows.begin(), rows.end());
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.ms > b.second.ms; });
    for (auto& [k, r] : v)
      std::fprintf(stderr, "%9.1f ms %6ld launches %8ld blocks %10ld threads  %s\n", r.ms, r.launches, r.blocks, r.threads, k.c_str());
  }
};
inline EmuProfile g_emu_profile;
#endif
inline size_t g_emu_max_smem_used = 0;
inline long g_emu_blocks = 0;
template <class T>
const void* emu_pointer(T v) {
  if constexpr (std::is_pointer_v<T>) return (const void*)v;
  else return nullptr;
}
template <class K>
struct EmuLaunch {
  dim3 g, b;
  size_t smem;
  K* k;
  template <class... A>
  void operator()(A... args) {
#ifdef EMU_DEVICE_POINTERS
    bool host_arg = false;
    ((host_arg = host_arg || (emu_pointer(args) && !emu_is_device(emu_pointer(args)))), ...);
    if (host_arg) return emu_fault("a kernel argument is not device memory (an illegal address on a GPU); the kernel did not run");
#endif
    if (g_emu_capture) {  // recorded with its arguments, run at each replay of the graph
      g_emu_capture->nodes.push_back([self = *this, args...]() mutable { self.run(args...); });
      return;
    }
    run(args...);
  }
  template <class... A>
  void run(A... args) {
    std::lock_guard<std::mutex> lock(g_emu_launch_mu);
    const unsigned nt = b.x * b.y * b.z;
    if (nt == 0 || nt > 1024 || nt % 32 != 0 || g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 || g.z > 65535) {
      std::fprintf(stderr, "bad launch: grid %u %u %u, block %u %u %u\n", g.x, g.y, g.z, b.x, b.y, b.z);
      std::abort();
    }
    blockDim = b;
    gridDim = g;
#ifdef EMU_PROFILE
    const auto t0 = std::chrono::steady_clock::now();
    struct Done {
      std::chrono::steady_clock::time_point t0;
      EmuProfile::Row& r;
      ~Done() { r.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); }
    } done{t0, g_emu_profile.rows[typeid(K).name()]};
    done.r.launches++, done.r.blocks += (long)g.x * g.y * g.z, done.r.threads += (long)g.x * g.y * g.z * nt;
#endif
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
          g_block_bar.init(nt);
          for (unsigned w = 0; w < nt / 32; ++w) g_warp_bar[w].init(32);
          emu_threads().run(nt, [&](unsigned t) {
            emu_self().reset();  // a pool thread or fiber starts as a fresh CUDA thread
            threadIdx = {t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
            blockIdx = {bx, by, bz};
            k(args...);
            g_warp_bar[t / 32].drop();  // returned: no longer part of its warp's or block's barriers
            g_block_bar.drop();
          });
          std::free(sm);
        }
  }
};
template <class K>
EmuLaunch<K> emu_launch(dim3 g, dim3 b, size_t smem, cudaStream_t, K* k) {
  return EmuLaunch<K>{g, b, smem, k};
}
// cudaLaunchKernelEx (cuda/common.cuh's launch_pdl): a launch like any other here; the
// programmatic-serialization attribute is accepted and, one launch at a time, has nothing to
// relax. Counted, so tests can tell that the PDL path ran.
enum cudaLaunchAttributeID { cudaLaunchAttributeProgrammaticStreamSerialization = 3 };
union cudaLaunchAttributeValue {
  int programmaticStreamSerializationAllowed;
};
struct cudaLaunchAttribute {
  cudaLaunchAttributeID id;
  cudaLaunchAttributeValue val;
};
struct cudaLaunchConfig_t {
  dim3 gridDim, blockDim;
  size_t dynamicSmemBytes;
  cudaStream_t stream;
  cudaLaunchAttribute* attrs;
  unsigned numAttrs;
};
inline long g_emu_pdl_launches = 0;
template <class... P, class... A>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* c, void (*k)(P...), A&&... args) {
  for (unsigned i = 0; i < c->numAttrs; ++i)
    if (c->attrs[i].id == cudaLaunchAttributeProgrammaticStreamSerialization &&
        c->attrs[i].val.programmaticStreamSerializationAllowed) {
      std::lock_guard<std::mutex> l(g_emu_count_mu);
      ++g_emu_pdl_launches;
    }
  emu_launch(c->gridDim, c->blockDim, c->dynamicSmemBytes, c->stream, k)(static_cast<P>(args)...);
  return cudaSuccess;
}
#include "emu_runtime.h"
