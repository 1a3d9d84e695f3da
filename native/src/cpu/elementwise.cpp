// Residual add, gradient accumulation and the KV-cache append (with the RoPE before it).
#include "cpu/ops_cpu.h"

namespace puzzle::cpu {

PUZZLE_MULTIVERSION
void add_range(float* out, const float* a, const float* b, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) out[i] = a[i] + b[i];
}

namespace {

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

// Two passes (the rotation, then the copy): on the CPU a decode step's qkv row is a few KiB that
// stay in cache, so fusing them would save nothing measurable.
void rope_kv_cache_append(float* qkv, float* k_cache, float* v_cache, const float* cos, const float* sin,
                          const int32_t* pos, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS, int64_t past,
                          int64_t Tmax) {
  const int64_t QKV = (NH + 2 * NKV) * HS, KV = NKV * HS;
  rope_forward(qkv, qkv, cos, sin, pos, B, T, NH + NKV, HS, QKV);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const float* row = qkv + (b * T + t) * QKV;
      const size_t dst = ((size_t)b * Tmax + past + t) * KV;
      std::memcpy(k_cache + dst, row + NH * HS, KV * sizeof(float));
      std::memcpy(v_cache + dst, row + (NH + NKV) * HS, KV * sizeof(float));
    }
}

}  // namespace puzzle::cpu
