#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <sys/stat.h>

#include "puzzle/cuda_module.h"

namespace puzzle {
namespace {

// The module's C entry points (see native/src/cuda/module.cu).
using ProbeFn = int (*)(char* desc, int desc_len);
using RmsnormFn = int (*)(float*, const float*, const float*, long, long, float, char*, int);
using BackendFn = const Backend* (*)();
using TakeErrorFn = int (*)(char* err, int err_len);
using TableSizeFn = size_t (*)();

struct Module {
  void* handle = nullptr;
  ProbeFn probe = nullptr;
  RmsnormFn rmsnorm = nullptr;
  BackendFn backend = nullptr;
  TakeErrorFn take_error = nullptr;
  CudaStatus status;
};

std::string module_path() {
  if (const char* env = std::getenv("PUZZLE_CUDA_MODULE")) return env;
  Dl_info info{};
  if (dladdr((void*)&cuda_probe, &info) && info.dli_fname) {
    std::string self = info.dli_fname;
    auto slash = self.rfind('/');
    return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/puzzle_cuda.so";
  }
  return "puzzle_cuda.so";
}

Module& module() {
  static Module m;
  static std::once_flag once;
  std::call_once(once, [] {
    std::string path = module_path();
    struct stat st {};
    m.status.module_built = stat(path.c_str(), &st) == 0;
    if (!m.status.module_built) {
      m.status.reason = "no CUDA module (built without nvcc): " + path + " not found";
      return;
    }
    m.handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!m.handle) {
      const char* err = dlerror();
      m.status.reason = std::string("CUDA module failed to load: ") + (err ? err : "unknown error");
      return;
    }
    m.status.module_loaded = true;
    m.probe = (ProbeFn)dlsym(m.handle, "puzzle_cuda_probe");
    m.rmsnorm = (RmsnormFn)dlsym(m.handle, "puzzle_cuda_rmsnorm_forward_host");
    m.backend = (BackendFn)dlsym(m.handle, "puzzle_cuda_backend");
    m.take_error = (TakeErrorFn)dlsym(m.handle, "puzzle_cuda_take_error");
    if (!m.probe) {
      m.status.reason = "CUDA module has no puzzle_cuda_probe symbol";
      return;
    }
    // A module from another version of puzzle has another op table: calling into it would jump
    // to the wrong functions, so it is refused here, with what to do.
    const auto table_size = (TableSizeFn)dlsym(m.handle, "puzzle_cuda_table_size");
    if (!table_size || table_size() != sizeof(Backend)) {
      m.status.reason = "CUDA module " + path + " was built from another version of puzzle (" +
                        (table_size ? "an op table of " + std::to_string(table_size()) + " bytes, this addon's has " +
                                          std::to_string(sizeof(Backend)) : std::string("no puzzle_cuda_table_size")) +
                        "): rebuild it with this checkout (npm run build:native)";
      return;
    }
    char desc[512] = {0};
    m.status.device_count = m.probe(desc, sizeof desc);
    m.status.reason = desc;
  });
  return m;
}

}  // namespace

const CudaStatus& cuda_probe() { return module().status; }

const Backend* cuda_backend(std::string* why) {
  Module& m = module();
  if (m.status.device_count <= 0) {
    if (why) *why = m.status.reason;
    return nullptr;
  }
  if (!m.backend || !m.take_error) {
    if (why) *why = "the CUDA module has no puzzle_cuda_backend/puzzle_cuda_take_error (built by an older version?)";
    return nullptr;
  }
  return m.backend();
}

std::string cuda_take_error() {
  Module& m = module();
  if (!m.take_error) return "";
  char err[512] = {0};
  return m.take_error(err, sizeof err) != 0 ? std::string(err) : std::string();
}

std::string cuda_rmsnorm_forward_host(float* out, const float* inp, const float* weight, long N, long C, float eps) {
  Module& m = module();
  if (m.status.device_count <= 0 || !m.rmsnorm) return "no GPU: " + m.status.reason;
  char err[512] = {0};
  if (m.rmsnorm(out, inp, weight, N, C, eps, err, sizeof err) != 0) return err;
  return "";
}

}  // namespace puzzle
