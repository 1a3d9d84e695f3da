// Run-time CPU feature detection; kernels pick their path from this, never from build flags.
#pragma once
#include <string>

namespace puzzle {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512bf16 = false;
  std::string model;
};

const CpuFeatures& cpu_features();
// "avx512" | "avx2" | "scalar": the widest path this CPU runs. PUZZLE_ISA=avx2|scalar caps it.
const char* cpu_isa();

}  // namespace puzzle
