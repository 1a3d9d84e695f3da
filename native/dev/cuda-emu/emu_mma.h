// Emulated warp primitives of native/src/cuda/mma.cuh (ldmatrix, mma.m16n8k16 on bf16, cp.async)
// with the register layouts the PTX ISA documents, for the CPU emulator. The warp-collective
// ones exchange through per-warp buffers between warp barriers, like the shuffles of emu.h.
// cp.async is deferred: a copy lands only when its thread's cp_async_wait<N> completes its group,
// so a read before the wait (or a wait that keeps the wrong group pending) sees the NaN that
// fills fresh shared memory, and TSan sees the late write.
#pragma once
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>
inline float emu_bf16_bits(uint32_t h) { uint32_t u = h << 16; float f; std::memcpy(&f, &u, 4); return f; }

inline const __nv_bfloat16* g_ldsm[32][32];
inline void emu_ldsm(uint32_t (&r)[4], const __nv_bfloat16* p, bool trans) {
  const int w = emu_tid() / 32, lane = emu_tid() % 32;
  const uintptr_t off = (uintptr_t)p - (uintptr_t)emu_dyn_smem;
  if (off % 16 != 0) { std::fprintf(stderr, "ldmatrix: row address at smem offset %zu, not 16-byte aligned\n", (size_t)off); std::abort(); }
  g_ldsm[w][lane] = p;
  g_warp_bar[w].wait();
  for (int i = 0; i < 4; ++i) {
    uint16_t lo, hi;
    if (!trans) {
      const __nv_bfloat16* row = g_ldsm[w][i * 8 + lane / 4];
      lo = row[2 * (lane % 4)].b;
      hi = row[2 * (lane % 4) + 1].b;
    } else {
      lo = g_ldsm[w][i * 8 + 2 * (lane % 4)][lane / 4].b;
      hi = g_ldsm[w][i * 8 + 2 * (lane % 4) + 1][lane / 4].b;
    }
    r[i] = (uint32_t)lo | (uint32_t)hi << 16;
  }
  g_warp_bar[w].wait();
}
inline void ldsm_x4(uint32_t (&r)[4], const __nv_bfloat16* p) { emu_ldsm(r, p, false); }
inline void ldsm_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* p) { emu_ldsm(r, p, true); }

inline float g_mma_a[32][16][16], g_mma_b[32][16][8];
inline void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const int w = emu_tid() / 32, lane = emu_tid() % 32, g = lane / 4, t = lane % 4;
  for (int j = 0; j < 2; ++j) {
    g_mma_a[w][g][2 * t + j] = emu_bf16_bits((a[0] >> (16 * j)) & 0xffff);
    g_mma_a[w][g + 8][2 * t + j] = emu_bf16_bits((a[1] >> (16 * j)) & 0xffff);
    g_mma_a[w][g][2 * t + 8 + j] = emu_bf16_bits((a[2] >> (16 * j)) & 0xffff);
    g_mma_a[w][g + 8][2 * t + 8 + j] = emu_bf16_bits((a[3] >> (16 * j)) & 0xffff);
    g_mma_b[w][2 * t + j][g] = emu_bf16_bits((b0 >> (16 * j)) & 0xffff);
    g_mma_b[w][2 * t + 8 + j][g] = emu_bf16_bits((b1 >> (16 * j)) & 0xffff);
  }
  g_warp_bar[w].wait();
  float res[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + (i / 2) * 8, col = 2 * t + (i % 2);
    float acc = d[i];
    for (int k = 0; k < 16; ++k) acc += g_mma_a[w][row][k] * g_mma_b[w][k][col];
    res[i] = acc;
  }
  g_warp_bar[w].wait();
  for (int i = 0; i < 4; ++i) d[i] = res[i];
}

// a CUDA thread's copies: emu_self().cp_open (issued, not yet committed) and .cp_groups
// (committed, not yet complete); those it never waits for die with it, as on the GPU
inline void cp_async16(void* d, const void* s) {
  const uintptr_t off = (uintptr_t)d - (uintptr_t)emu_dyn_smem;
  if (off % 16 != 0 || (uintptr_t)s % 16 != 0) { std::fprintf(stderr, "cp.async: misaligned 16-byte copy\n"); std::abort(); }
  emu_self().cp_open.push_back({d, s});
}
inline void cp_async_commit() {
  EmuSelf& me = emu_self();
  me.cp_groups.push_back(std::move(me.cp_open));
  me.cp_open.clear();
}
template <int N>
inline void cp_async_wait() {
  auto& groups = emu_self().cp_groups;
  while (groups.size() > (size_t)N) {
    for (auto& c : groups.front()) std::memcpy(c.d, c.s, 16);
    groups.pop_front();
  }
}
