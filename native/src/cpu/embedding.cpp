// Embedding lookup and its gradient (scatter-add into the table).
#include "cpu/ops_cpu.h"

namespace puzzle::cpu {

void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C) {
  parallel_for(N, 64, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) std::memcpy(out + n * C, table + (int64_t)ids[n] * C, C * sizeof(float));
  });
}

// Threads own disjoint column ranges, so repeated ids never race.
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C) {
  parallel_for(C, 64, [&](int64_t c0, int64_t c1) {
    for (int64_t n = 0; n < N; ++n) {
      float* d = dtable + (int64_t)ids[n] * C;
      const float* g = dout + n * C;
      for (int64_t c = c0; c < c1; ++c) d[c] += g[c];
    }
  });
}

}  // namespace puzzle::cpu
