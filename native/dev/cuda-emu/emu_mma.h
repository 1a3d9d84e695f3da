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

// The warp-collective ones use two buffers per warp alternating per call (as the shuffles do),
// so each needs one warp barrier: a lane that reaches call n+2 has passed call n+1's barrier,
// so every lane has finished reading call n's buffer.
// ldmatrix: the lanes post their row addresses; the last to arrive reads every lane's four
// registers out of shared memory at once (as the warp's one instruction does, so a lane that
// writes shared memory right after cannot change what another lane loads).
struct EmuLdsm { const __nv_bfloat16* rows[32]; uint32_t r[32][4]; };
inline EmuLdsm g_ldsm[32][2];
inline void emu_ldsm_gather(EmuLdsm& x, bool trans) {
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      uint16_t lo, hi;
      if (!trans) {
        const __nv_bfloat16* row = x.rows[i * 8 + lane / 4];
        lo = row[2 * (lane % 4)].b;
        hi = row[2 * (lane % 4) + 1].b;
      } else {
        lo = x.rows[i * 8 + 2 * (lane % 4)][lane / 4].b;
        hi = x.rows[i * 8 + 2 * (lane % 4) + 1][lane / 4].b;
      }
      x.r[lane][i] = (uint32_t)lo | (uint32_t)hi << 16;
    }
}
inline void emu_ldsm(uint32_t (&r)[4], const __nv_bfloat16* p, bool trans) {
  const int w = emu_tid() / 32, lane = emu_tid() % 32;
  const uintptr_t off = (uintptr_t)p - (uintptr_t)emu_dyn_smem;
  if (off % 16 != 0) { std::fprintf(stderr, "ldmatrix: row address at smem offset %zu, not 16-byte aligned\n", (size_t)off); std::abort(); }
  EmuLdsm& x = g_ldsm[w][emu_self().ldsm_parity];
  emu_self().ldsm_parity ^= 1;
  x.rows[lane] = p;
  g_warp_bar[w].wait([&x, trans] { emu_ldsm_gather(x, trans); });
  for (int i = 0; i < 4; ++i) r[i] = x.r[lane][i];
}
inline void ldsm_x4(uint32_t (&r)[4], const __nv_bfloat16* p) { emu_ldsm(r, p, false); }
inline void ldsm_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* p) { emu_ldsm(r, p, true); }

// m16n8k16: the lanes scatter A (16x16), B (16x8) and C (16x8) by the PTX layouts; the last to
// arrive multiplies the whole tile before the others gather D.
struct EmuMma16816 { float a[16][16], b[16][8], cd[16][8]; };
inline EmuMma16816 g_mma16816[32][2];
inline void emu_mma_16816_tile(EmuMma16816& m) { emu_mma_rows<8>(m.a, m.b, m.cd); }
inline void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const unsigned w = (unsigned)emu_tid() / 32u, lane = (unsigned)emu_tid() % 32u, g = lane / 4, t = lane % 4;
  EmuMma16816& m = g_mma16816[w][emu_self().mma16816_parity];
  emu_self().mma16816_parity ^= 1;
  for (int j = 0; j < 2; ++j) {
    m.a[g][2 * t + j] = emu_bf16_bits((a[0] >> (16 * j)) & 0xffff);
    m.a[g + 8][2 * t + j] = emu_bf16_bits((a[1] >> (16 * j)) & 0xffff);
    m.a[g][2 * t + 8 + j] = emu_bf16_bits((a[2] >> (16 * j)) & 0xffff);
    m.a[g + 8][2 * t + 8 + j] = emu_bf16_bits((a[3] >> (16 * j)) & 0xffff);
    m.b[2 * t + j][g] = emu_bf16_bits((b0 >> (16 * j)) & 0xffff);
    m.b[2 * t + 8 + j][g] = emu_bf16_bits((b1 >> (16 * j)) & 0xffff);
  }
  for (int i = 0; i < 4; ++i) m.cd[g + (i / 2) * 8][2 * t + (i % 2)] = d[i];
  g_warp_bar[w].wait([&m] { emu_mma_16816_tile(m); });
  for (int i = 0; i < 4; ++i) d[i] = m.cd[g + (i / 2) * 8][2 * t + (i % 2)];
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
