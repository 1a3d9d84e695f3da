// The rest of the CUDA runtime API the host code of native/src/cuda uses (backend_cuda.cu,
// module.cu, the scratch buffers), for building the whole module under the emulator
// (module/build.sh). Device memory is host memory and every launch runs to completion before it
// returns, so copies are memcpy and synchronisation has nothing to wait for. One device, one
// stream; the stream handle is a dummy. Included at the end of emu.h.
#pragma once
#include <cstdlib>
#include <unistd.h>
#include <chrono>

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
// Taken with the launch lock: a copy issued from one host thread must not interleave with a
// kernel another thread is running, as both would be ordered on the one CUDA stream.
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t = nullptr) {
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return cudaErrorInvalidValue;
#ifdef EMU_DEVICE_POINTERS
  // each side must be what the kind says (cudaMemcpyDefault infers it, as with unified addressing)
  const bool want_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool want_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind != cudaMemcpyDefault && (emu_is_device(dst) != want_dst || emu_is_device(src) != want_src))
    return cudaErrorInvalidValue;
#else
  (void)kind;
#endif
  if (g_emu_capture) {
    g_emu_capture->nodes.push_back([dst, src, bytes] { std::memcpy(dst, src, bytes); });
    return cudaSuccess;
  }
  std::lock_guard<std::mutex> l(g_emu_launch_mu);
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind k) {
  return cudaMemcpyAsync(dst, src, bytes, k);
}

constexpr unsigned cudaStreamDefault = 0x00, cudaStreamNonBlocking = 0x01;
inline char g_emu_stream_obj;  // what the one stream's handle points at (non-null, like a real one)
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = &g_emu_stream_obj;
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
// Launches are synchronous, so there is nothing to wait for; a sticky error (EMU_DEVICE_POINTERS)
// comes back here and from every later call, as a GPU's does.
#ifdef EMU_DEVICE_POINTERS
inline cudaError_t cudaGetLastError() { return (cudaError_t)g_emu_sticky; }
#else
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
#endif
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaGetLastError(); }
inline cudaError_t cudaDeviceSynchronize() { return cudaGetLastError(); }

// The pool only exists to be configured: cudaMallocAsync is malloc.
struct EmuMemPool {};
typedef EmuMemPool* cudaMemPool_t;
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold = 4 };
inline EmuMemPool g_emu_pool;
inline cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* p, int) {
  *p = &g_emu_pool;
  return cudaSuccess;
}
inline cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return cudaSuccess; }
inline cudaError_t cudaMemPoolTrimTo(cudaMemPool_t, size_t) { return cudaSuccess; }

inline cudaError_t cudaMalloc(void** p, size_t bytes) { return cudaMallocAsync(p, bytes, nullptr); }
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {  // as cuda_runtime.h's typed overload
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
inline cudaError_t cudaFree(void* p) { return cudaFreeAsync(p, nullptr); }

inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidValue; }
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;
  int major, minor;
  int multiProcessorCount;
  int warpSize;
  int maxThreadsPerBlock;
  int l2CacheSize;
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return cudaErrorInvalidValue;
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "CUDA emulator (CPU)");
  p->totalGlobalMem = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);  // "device" memory is RAM
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = (size_t)g_emu_smem_optin;
  const int cc = emu_sm();  // EMU_SM: for tests of what older parts are told
  p->major = cc / 10;
  p->minor = cc % 10;
  p->multiProcessorCount = g_emu_sms;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->l2CacheSize = 1 << 20;  // what a profiler flushes between repeats: small, the emulator's time is the CPU's
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 0;  // no driver: the probe's description reads "driver 0.0"
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}

// ---- graphs: a capture records the stream's work (emu.h); instantiating hands the nodes and the
// memory allocated during the capture to the executable graph; a launch replays the nodes in order.
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
typedef EmuGraph* cudaGraph_t;
typedef EmuGraph* cudaGraphExec_t;
inline void emu_graph_free(EmuGraph* g) {
  for (void* p : g->owned) emu_free_device(p);
  delete g;
}
inline cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
  if (g_emu_capture) return cudaErrorInvalidValue;  // one capture at a time
  g_emu_capture = new EmuGraph;
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* g) {
  if (!g_emu_capture) return cudaErrorInvalidValue;
  *g = g_emu_capture;
  g_emu_capture = nullptr;
  return cudaGetLastError();
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long) {
  *exec = new EmuGraph{g->nodes, std::move(g->owned)};
  g->owned.clear();
  return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  emu_graph_free(g);
  return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t g) {
  emu_graph_free(g);
  return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t g, cudaStream_t) {
  if (g_emu_capture) return cudaErrorInvalidValue;
  for (auto& node : g->nodes) node();
  return cudaGetLastError();
}

// ---- events: launches are synchronous, so an event records the host clock when it is reached
// (timings are the emulator's, not a GPU's)
struct EmuEvent { std::chrono::steady_clock::time_point t; };
typedef EmuEvent* cudaEvent_t;
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new EmuEvent{std::chrono::steady_clock::now()};
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = nullptr) {
  if (g_emu_capture) return cudaErrorInvalidValue;  // not recorded into graphs here
  e->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaGetLastError(); }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}
