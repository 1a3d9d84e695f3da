// Where a GPU workload spends its time, kernel by kernel: CUPTI's activity API (what Nsight
// Systems and torch.profiler read) records the GPU start and end of every kernel, memcpy and
// memset run between start() and stop(), graph-launched ones included; stop() sums them by name.
// For puzzle_cuda_check --kernels (benchmarks/gpu/check.sh), so that one GPU run says which
// kernels a block step or a decode step loses its time in. Built where CMake finds CUPTI
// (PUZZLE_HAVE_CUPTI); elsewhere available() says why not and nothing is recorded.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace puzzle::tools {

struct KernelTime {
  std::string name;     // demangled, namespaces and parameter list dropped; "[memcpy DtoD]" etc.
  int64_t calls = 0;
  double total_ms = 0;  // summed GPU durations
};

// True when this build records kernels; otherwise false with the reason in *why.
bool kernel_trace_available(std::string* why);

// Starts recording (false, with the reason in *why, if CUPTI refuses). One trace at a time.
bool kernel_trace_start(std::string* why);

// Waits for the GPU, stops recording and returns the kernels since start, longest total first.
std::vector<KernelTime> kernel_trace_stop();

// The readable form of a (mangled) kernel name: demangled, without namespaces or parameters,
// at most max_len characters (test/cuda/kernel-names.test.ts checks the shortening).
std::string kernel_display_name(const char* mangled, size_t max_len = 120);

}  // namespace puzzle::tools
