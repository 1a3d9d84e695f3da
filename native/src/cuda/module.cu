// C entry points of puzzle_cuda.so, resolved by native/src/cuda_loader.cpp with dlsym.
#include <cstdio>
#include <cstring>
#include <string>

#include "cuda/backend_cuda.h"
#include "cuda/common.cuh"

namespace {
int report(char* buf, int len, const std::string& msg) {
  std::snprintf(buf, len, "%s", msg.c_str());
  return -1;
}
}  // namespace

extern "C" int puzzle_cuda_probe(char* desc, int desc_len) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    std::snprintf(desc, desc_len, "no GPU: %s", cudaGetErrorString(e));
    return 0;
  }
  if (count == 0) {
    std::snprintf(desc, desc_len, "no GPU: the driver reports no devices");
    return 0;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const std::string unsupported = puzzle::cuda::unsupported_device(prop.name, prop.major, prop.minor);
  if (!unsupported.empty()) {
    std::snprintf(desc, desc_len, "no usable GPU: %s; use device 'cpu'", unsupported.c_str());
    return 0;
  }
  int driver = 0;
  cudaDriverGetVersion(&driver);
  std::snprintf(desc, desc_len, "%s (sm_%d%d, %.1f GiB, driver %d.%d, %s)", prop.name, prop.major, prop.minor,
                prop.totalGlobalMem / 1073741824.0, driver / 1000, (driver % 1000) / 10,
                puzzle::cuda::gemm_kernel_name());
  return count;
}

// The size of the op table this module was built with: the loader refuses a module whose table
// differs from its own (one built from another version of puzzle), before any op is called.
extern "C" size_t puzzle_cuda_table_size() { return sizeof(puzzle::Backend); }

// The backend's op table (device pointers throughout). Call only after a probe found a device.
extern "C" const puzzle::Backend* puzzle_cuda_backend() { return &puzzle::cuda::cuda_backend(); }

// Copies the first recorded CUDA error into err and clears it; returns 0 when there was none.
extern "C" int puzzle_cuda_take_error(char* err, int err_len) {
  std::string e = puzzle::cuda::take_error();
  if (e.empty()) return 0;
  return report(err, err_len, e);
}

// RMSNorm forward on host data (a round trip through the device), kept for the addon's
// smallest end-to-end check.
extern "C" int puzzle_cuda_rmsnorm_forward_host(float* out, const float* inp, const float* weight, long N, long C,
                                                float eps, char* err, int err_len) {
  const puzzle::Backend& be = puzzle::cuda::cuda_backend();
  const size_t xb = (size_t)N * C * sizeof(float), wb = (size_t)C * sizeof(float);
  float* d_out = (float*)be.alloc(xb);
  float* d_inp = (float*)be.alloc(xb);
  float* d_w = (float*)be.alloc(wb);
  float* d_rstd = (float*)be.alloc((size_t)N * sizeof(float));
  if (!d_out || !d_inp || !d_w || !d_rstd) {
    be.free(d_out), be.free(d_inp), be.free(d_w), be.free(d_rstd);
    return report(err, err_len, "out of GPU memory");
  }
  be.copy_to_device(d_inp, inp, xb);
  be.copy_to_device(d_w, weight, wb);
  be.ops.rmsnorm_forward(d_out, d_rstd, d_inp, d_w, N, C, eps);
  be.copy_to_host(out, d_out, xb);
  be.free(d_out), be.free(d_inp), be.free(d_w), be.free(d_rstd);
  be.synchronize();
  std::string e = puzzle::cuda::take_error();
  if (!e.empty()) return report(err, err_len, e);
  return 0;
}
