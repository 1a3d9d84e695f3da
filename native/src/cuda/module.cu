// C entry points of puzzle_cuda.so, resolved by native/src/cuda_loader.cpp with dlsym.
#include <cstdio>
#include <cstring>

#include "cuda/common.cuh"

namespace {
int report(char* buf, int len, const char* what, cudaError_t e) {
  std::snprintf(buf, len, "%s: %s", what, cudaGetErrorString(e));
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
  int driver = 0;
  cudaDriverGetVersion(&driver);
  std::snprintf(desc, desc_len, "%s (sm_%d%d, %.1f GiB, driver %d.%d)", prop.name, prop.major, prop.minor,
                prop.totalGlobalMem / 1073741824.0, driver / 1000, (driver % 1000) / 10);
  return count;
}

extern "C" int puzzle_cuda_rmsnorm_forward_host(float* out, const float* inp, const float* weight, long N, long C,
                                                float eps, char* err, int err_len) {
  float *d_out = nullptr, *d_inp = nullptr, *d_w = nullptr;
  size_t xb = (size_t)N * C * sizeof(float), wb = (size_t)C * sizeof(float);
  cudaError_t e;
  if ((e = cudaMalloc(&d_out, xb)) != cudaSuccess) return report(err, err_len, "cudaMalloc", e);
  cudaMalloc(&d_inp, xb);
  cudaMalloc(&d_w, wb);
  cudaMemcpy(d_inp, inp, xb, cudaMemcpyHostToDevice);
  cudaMemcpy(d_w, weight, wb, cudaMemcpyHostToDevice);
  puzzle::cuda::rmsnorm_forward(d_out, nullptr, d_inp, d_w, N, C, eps, 0);
  e = cudaMemcpy(out, d_out, xb, cudaMemcpyDeviceToHost);
  cudaFree(d_out);
  cudaFree(d_inp);
  cudaFree(d_w);
  if (e != cudaSuccess) return report(err, err_len, "rmsnorm_forward", e);
  return 0;
}
