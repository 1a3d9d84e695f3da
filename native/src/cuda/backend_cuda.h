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

// Why a device of compute capability major.minor cannot run the kernels ("" when it can): they
// are built for sm_80 and sm_90 (bf16 tensor cores, cp.async, ldmatrix), so an older part would
// fail its first launch with "no kernel image". The module's probe, puzzle_cuda_check and
// puzzle_cuda_profile refuse such a device with this reason.
std::string unsupported_device(const char* name, int major, int minor);

}  // namespace puzzle::cuda
