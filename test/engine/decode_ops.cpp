// The ops a GQA + SwiGLU block calls for one step with a KV cache (test/engine/decode-ops.test.ts):
// every op of the bf16 and fp32 tables a block forward can call, and the backend's device copy and
// memset, counted on a copy of the CPU backend (its fused ops compose through the uncounted
// table). On CUDA each call is one kernel launch for a few rows (the fused ops compose past 16;
// split-K would add a reduce), so this is what a decode step launches on any backend.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "puzzle/backend.h"
#include "puzzle/block.h"

using namespace puzzle;
static std::map<std::string, int> calls;
static const Backend& cpu() { return cpu_backend(); }
#define COUNT(table, op) b.table.op = [](auto... a) { ++calls[#op]; cpu().table.op(a...); }

// one line: the ops called, by name, and their total
static void print(const char* what) {
  int total = 0;
  std::printf("%s:", what);
  for (auto& [k, v] : calls) std::printf(" %s=%d", k.c_str(), v), total += v;
  std::printf(" total=%d\n", total);
}

int main() {
  static Backend b = cpu();
  COUNT(ops, rmsnorm_forward); COUNT(ops, add_rmsnorm_forward); COUNT(ops, matmul_forward); COUNT(ops, gemm);
  COUNT(ops, rope_forward); COUNT(ops, rope_kv_cache_append); COUNT(ops, attention_cached_forward);
  COUNT(ops, swiglu_forward); COUNT(ops, add_forward); COUNT(ops, accumulate);
  COUNT(ops, norm_linear_forward); COUNT(ops, norm_swiglu_forward);
  COUNT(ops_bf16, rmsnorm_forward); COUNT(ops_bf16, add_rmsnorm_forward); COUNT(ops_bf16, gemm);
  COUNT(ops_bf16, rope_forward); COUNT(ops_bf16, rope_kv_cache_append); COUNT(ops_bf16, attention_cached_forward);
  COUNT(ops_bf16, swiglu_forward); COUNT(ops_bf16, add_forward); COUNT(ops_bf16, accumulate);
  COUNT(ops_bf16, norm_linear_forward); COUNT(ops_bf16, norm_swiglu_forward);
  b.copy_device = [](void* d, const void* s, size_t n) { ++calls["copy_device"]; cpu().copy_device(d, s, n); };
  b.memset_zero = [](void* d, size_t n) { ++calls["memset_zero"]; cpu().memset_zero(d, n); };
  BlockConfig cfg;
  cfg.C = 32, cfg.NH = 4, cfg.HS = 8, cfg.NKV = 2, cfg.F = 48;
  for (DType dt : {DType::F32, DType::BF16}) {
    Block blk(b, cfg, dt);
    const int64_t B = 2, P = 16, Tp = 3, W = cfg.NKV * cfg.HS;
    std::vector<float> cs(P * cfg.HS / 2, 1.f), sn(P * cfg.HS / 2, 0.f);
    std::vector<int32_t> pos = {0, 1, 2};
    auto step = [&](auto* out, const auto* x, auto* kc, auto* vc, int64_t T, int64_t past) {
      BlockInputs in{B, T, cs.data(), sn.data(), pos.data() + past};
      blk.forward_cached(out, x, in, kc, vc, past, P);
    };
    auto run = [&](auto zero) {
      using E = decltype(zero);
      std::vector<E> x(B * Tp * cfg.C, zero), y(B * Tp * cfg.C, zero), kc(B * P * W, zero), vc(B * P * W, zero);
      calls.clear();
      step(y.data(), x.data(), kc.data(), vc.data(), 2, 0);  // a prefill of 2 tokens
      print(dt == DType::F32 ? "f32 prefill" : "bf16 prefill");
      calls.clear();
      step(y.data(), x.data(), kc.data(), vc.data(), 1, 2);  // then one decode step
      print(dt == DType::F32 ? "f32 decode" : "bf16 decode");
    };
    if (dt == DType::F32) run(0.f); else run(bf16{});
  }
}
