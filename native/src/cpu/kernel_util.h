// Helpers shared by the CPU kernels (baseline-ISA translation units only).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

// Elementwise loops are compiled three times and the widest the CPU runs is picked at load time
// (GCC function multiversioning), so the shipped binary needs nothing beyond baseline x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PUZZLE_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PUZZLE_MULTIVERSION
#endif

namespace puzzle {

// exp(x) for float, branch-free so loops around it vectorise; relative error ~2e-7 on the
// range softmax needs, exact 0 below -87.
static inline float fast_expf(float x) {
  const float lo = -87.3365447f, hi = 88.3762626f;
  float xc = x < lo ? lo : (x > hi ? hi : x);
  // round to nearest by the 1.5*2^23 trick (vectorises on every ISA, unlike nearbyint)
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  float y = p * scale;
  return x < lo ? 0.0f : y;
}

}  // namespace puzzle
