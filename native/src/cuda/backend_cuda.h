// The CUDA backend's host-side entry points (plain C++: included by host code that links the
// kernels directly, like native/tools/cuda_check.cpp, and by module.cu).
#pragma once
#include <string>

#include "puzzle/backend.h"

namespace puzzle::cuda {

// The op table; every pointer it takes is device memory. Valid once a device answers.
const Backend& cuda_backend();

// The first CUDA error recorded since the last call ("" when none), and clears it. Ops return
// void, so errors surface here, checked after a synchronize.
std::string take_error();

}  // namespace puzzle::cuda
