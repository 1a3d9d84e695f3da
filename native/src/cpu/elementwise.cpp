// Residual add and gradient accumulation.
#include "cpu/ops_cpu.h"

namespace puzzle::cpu {
namespace {

PUZZLE_MULTIVERSION
void add_range(float* out, const float* a, const float* b, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) out[i] = a[i] + b[i];
}

PUZZLE_MULTIVERSION
void acc_range(float* out, const float* a, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) out[i] += a[i];
}

}  // namespace

void add_forward(float* out, const float* a, const float* b, int64_t n) {
  parallel_for(n, 1 << 15, [&](int64_t i0, int64_t i1) { add_range(out, a, b, i0, i1); });
}

void accumulate(float* out, const float* a, int64_t n) {
  parallel_for(n, 1 << 15, [&](int64_t i0, int64_t i1) { acc_range(out, a, i0, i1); });
}

}  // namespace puzzle::cpu
