// The CUDA backend lives in its own shared object (puzzle_cuda.so, next to the addon), loaded
// only on request, so the addon never needs libcudart or a driver to load.
#pragma once
#include <string>
#include <vector>

#include "puzzle/backend.h"

namespace puzzle {

struct CudaStatus {
  bool module_built = false;   // the build produced puzzle_cuda.so
  bool module_loaded = false;  // dlopen succeeded
  int device_count = 0;        // devices the driver reports
  std::string reason;          // why CUDA is unavailable, or the device description
};

// Loads the module (once) and asks the driver for devices. Never throws.
const CudaStatus& cuda_probe();

// The module's op table (device pointers throughout), or null with *why set when no device
// answers. The table lives as long as the process.
const Backend* cuda_backend(std::string* why);

// The first CUDA error recorded since the last call ("" when none), and clears it. The op
// table returns void: callers synchronize, then ask here.
std::string cuda_take_error();

// Runs the module's RMSNorm forward kernel on host data (a round trip through the device).
// Returns an empty string on success, else the reason.
std::string cuda_rmsnorm_forward_host(float* out, const float* inp, const float* weight, long N, long C, float eps);

}  // namespace puzzle
