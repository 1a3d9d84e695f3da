#include "puzzle/cpu_features.h"

#include <cstdlib>
#include <cstring>
#include <fstream>

namespace puzzle {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
#endif
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) f.model = line.substr(pos + 2);
      break;
    }
    if (line.rfind("flags", 0) == 0 && line.find(" f16c") != std::string::npos) f.f16c = true;
  }
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static CpuFeatures f = detect();
  return f;
}

const char* cpu_isa() {
  static const char* isa = [] {
    const CpuFeatures& f = cpu_features();
    const char* cap = std::getenv("PUZZLE_ISA");
    bool allow512 = !cap || std::strcmp(cap, "avx512") == 0;
    bool allow2 = allow512 || (cap && std::strcmp(cap, "avx2") == 0);
    if (allow512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma) return "avx512";
    if (allow2 && f.avx2 && f.fma) return "avx2";
    return "scalar";
  }();
  return isa;
}

}  // namespace puzzle
