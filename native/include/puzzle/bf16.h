// bfloat16 storage: the top 16 bits of an IEEE float. Kernels compute in fp32 and round once
// when they store (round to nearest even, NaN kept a quiet NaN), so a bf16 op equals its fp32 op
// on the widened inputs, rounded. Host code sees an opaque 16-bit value; CUDA code reinterprets
// it as __nv_bfloat16 (same size and bits).
#pragma once
#include <cstdint>
#include <cstring>

namespace puzzle {

struct bf16 {
  uint16_t bits;
};
static_assert(sizeof(bf16) == 2, "bf16 must be 16 bits");

inline float bf16_to_f32(bf16 h) {
  const uint32_t u = (uint32_t)h.bits << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline bf16 f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{(uint16_t)((u >> 16) | 0x40u)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                                 // round to nearest even
  return bf16{(uint16_t)(u >> 16)};
}

}  // namespace puzzle
