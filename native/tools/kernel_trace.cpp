// CUPTI activity records summed by kernel name (kernel_trace.h).
#include "kernel_trace.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#ifdef PUZZLE_HAVE_CUPTI
#include <cuda_runtime.h>
#include <cupti.h>
#endif

namespace puzzle::tools {

std::string kernel_display_name(const char* mangled, size_t max_len) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  std::string s = status == 0 && d ? d.get() : mangled;
  // drop the parameter list: the ( that matches the final )
  if (!s.empty() && s.back() == ')') {
    int depth = 0;
    for (size_t i = s.size(); i-- > 0;) {
      if (s[i] == ')') ++depth;
      if (s[i] == '(' && --depth == 0) {
        s.erase(i);
        break;
      }
    }
  }
  for (const char* ns : {"(anonymous namespace)::", "puzzle::cuda::", "puzzle::", "cutlass::", "void "}) {
    for (size_t p; (p = s.find(ns)) != std::string::npos;) s.erase(p, std::strlen(ns));
  }
  if (s.size() > max_len) s = s.substr(0, max_len - 3) + "...";
  return s;
}

#ifdef PUZZLE_HAVE_CUPTI
namespace {

#if CUPTI_API_VERSION >= 130000
using KernelRec = CUpti_ActivityKernel10;
using MemcpyRec = CUpti_ActivityMemcpy6;
#else
using KernelRec = CUpti_ActivityKernel9;
using MemcpyRec = CUpti_ActivityMemcpy5;
#endif
using MemsetRec = CUpti_ActivityMemset4;

constexpr size_t kBufferBytes = 8u << 20;

std::mutex g_mutex;  // CUPTI may deliver buffers from its own thread
std::map<std::string, KernelTime> g_times;
std::map<std::string, std::string> g_names;  // mangled -> display (demangling is slow)
bool g_active = false;

void add(const std::string& name, uint64_t start, uint64_t end) {
  KernelTime& t = g_times[name];
  if (t.name.empty()) t.name = name;
  ++t.calls;
  t.total_ms += end > start ? (double)(end - start) * 1e-6 : 0.0;
}

const char* copy_kind(uint8_t k) {
  switch (k) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return "[memcpy HtoD]";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return "[memcpy DtoH]";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return "[memcpy DtoD]";
    default: return "[memcpy other]";
  }
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  // activity buffers must be 8-byte aligned
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  std::lock_guard<std::mutex> lock(g_mutex);
  CUpti_Activity* rec = nullptr;
  while (buffer && cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    switch (rec->kind) {
      case CUPTI_ACTIVITY_KIND_KERNEL:
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const auto* k = reinterpret_cast<const KernelRec*>(rec);
        const char* m = k->name ? k->name : "?";
        auto it = g_names.find(m);
        if (it == g_names.end()) it = g_names.emplace(m, kernel_display_name(m)).first;
        add(it->second, k->start, k->end);
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const auto* c = reinterpret_cast<const MemcpyRec*>(rec);
        add(copy_kind(c->copyKind), c->start, c->end);
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMSET: {
        const auto* s = reinterpret_cast<const MemsetRec*>(rec);
        add("[memset]", s->start, s->end);
        break;
      }
      default: break;
    }
  }
  std::free(buffer);
}

std::string cupti_error(CUptiResult r, const char* what) {
  const char* s = nullptr;
  cuptiGetResultString(r, &s);
  return std::string(what) + ": " + (s ? s : "CUPTI error " + std::to_string((int)r));
}

const CUpti_ActivityKind kKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                     CUPTI_ACTIVITY_KIND_MEMSET};

}  // namespace

bool kernel_trace_available(std::string*) { return true; }

bool kernel_trace_start(std::string* why) {
  static const CUptiResult registered = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
  if (registered != CUPTI_SUCCESS) return *why = cupti_error(registered, "cuptiActivityRegisterCallbacks"), false;
  cudaDeviceSynchronize();  // nothing queued before the start is counted
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_times.clear();
  }
  for (CUpti_ActivityKind k : kKinds) {
    const CUptiResult r = cuptiActivityEnable(k);
    if (r != CUPTI_SUCCESS) {
      for (CUpti_ActivityKind j : kKinds) cuptiActivityDisable(j);
      return *why = cupti_error(r, "cuptiActivityEnable"), false;
    }
  }
  g_active = true;
  return true;
}

std::vector<KernelTime> kernel_trace_stop() {
  if (!g_active) return {};
  cudaDeviceSynchronize();
  for (CUpti_ActivityKind k : kKinds) cuptiActivityDisable(k);
  cuptiActivityFlushAll(1);  // delivers every buffer, the incomplete ones included
  g_active = false;
  std::vector<KernelTime> out;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (auto& [name, t] : g_times) out.push_back(t);
    g_times.clear();
  }
  std::sort(out.begin(), out.end(), [](const KernelTime& a, const KernelTime& b) { return a.total_ms > b.total_ms; });
  return out;
}

#else  // no CUPTI in this build

bool kernel_trace_available(std::string* why) {
  *why = "built without CUPTI (CMake found no CUDA::cupti)";
  return false;
}
bool kernel_trace_start(std::string* why) { return kernel_trace_available(why); }
std::vector<KernelTime> kernel_trace_stop() { return {}; }

#endif

}  // namespace puzzle::tools
