// The ops a block of each kind calls for one step with a KV cache (test/engine/decode-ops.test.ts):
// every op of the bf16 and fp32 tables a block forward can call, and the backend's device copy and
// memset, counted on a copy of the CPU backend (its fused ops compose through the uncounted
// table). On CUDA each call is one kernel launch for a few rows (the fused ops compose past 16;
// split-K would add a reduce), so this is what a decode step launches on any backend.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
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
  COUNT(ops, norm_linear_forward); COUNT(ops, norm_swiglu_forward); COUNT(ops, norm_qkv_rope_cache_forward);
  COUNT(ops_bf16, rmsnorm_forward); COUNT(ops_bf16, add_rmsnorm_forward); COUNT(ops_bf16, gemm);
  COUNT(ops_bf16, rope_forward); COUNT(ops_bf16, rope_kv_cache_append); COUNT(ops_bf16, attention_cached_forward);
  COUNT(ops_bf16, swiglu_forward); COUNT(ops_bf16, add_forward); COUNT(ops_bf16, accumulate);
  COUNT(ops_bf16, norm_linear_forward); COUNT(ops_bf16, norm_swiglu_forward); COUNT(ops_bf16, norm_qkv_rope_cache_forward);
  b.copy_device = [](void* d, const void* s, size_t n) { ++calls["copy_device"]; cpu().copy_device(d, s, n); };
  b.memset_zero = [](void* d, size_t n) { ++calls["memset_zero"]; cpu().memset_zero(d, n); };
  const char* attn_names[] = {"gqa", "linear", "noop"};
  const char* ffn_names[] = {"swiglu", "linear", "noop"};
  for (AttnKind ak : {AttnKind::GQA, AttnKind::Linear, AttnKind::NoOp})
    for (FfnKind fk : {FfnKind::SwiGLU, FfnKind::Linear, FfnKind::NoOp}) {
      BlockConfig cfg;
      cfg.C = 32, cfg.NH = 4, cfg.HS = 8, cfg.NKV = 2, cfg.F = 48, cfg.attn = ak, cfg.ffn = fk;
      const std::string kind = std::string(attn_names[(int)ak]) + "+" + ffn_names[(int)fk];
      const bool gqa = ak == AttnKind::GQA;
      for (DType dt : {DType::F32, DType::BF16}) {
        Block blk(b, cfg, dt);
        {  // weights and inputs that are not zero, so that the in-place comparison below means something
          float* p = static_cast<float*>(blk.param_buffer()->ptr);
          for (int64_t i = 0; i < blk.num_params(); ++i) p[i] = 0.2f * std::sin(0.7f * (float)i) + (i % 7 == 0 ? 1.f : 0.f);
          blk.weights_changed();
        }
        const int64_t B = 2, P = 16, Tp = 3, W = cfg.NKV * cfg.HS;
        std::vector<float> cs(P * cfg.HS / 2), sn(P * cfg.HS / 2);
        for (size_t i = 0; i < cs.size(); ++i) cs[i] = std::cos(0.1f * (float)i), sn[i] = std::sin(0.1f * (float)i);
        std::vector<int32_t> pos = {0, 1, 2};
        auto step = [&](auto* out, const auto* x, auto* kc, auto* vc, int64_t T, int64_t past) {
          BlockInputs in{B, T, cs.data(), sn.data(), pos.data() + past};
          blk.forward_cached(out, x, in, gqa ? kc : nullptr, gqa ? vc : nullptr, past, P);
        };
        const std::string what = kind + (dt == DType::F32 ? " f32" : " bf16");
        auto run = [&](auto zero) {
          using E = decltype(zero);
          std::vector<E> x(B * Tp * cfg.C, zero), y(B * Tp * cfg.C, zero), kc(B * P * W, zero), vc(B * P * W, zero);
          for (size_t i = 0; i < x.size(); ++i) {
            const float v = std::cos(0.3f * (float)i);
            if constexpr (std::is_same_v<E, float>) x[i] = v; else x[i] = f32_to_bf16(v);
          }
          calls.clear();
          step(y.data(), x.data(), kc.data(), vc.data(), 2, 0);  // a prefill of 2 tokens
          print((what + " prefill").c_str());
          calls.clear();
          auto kc2 = kc, vc2 = vc;
          step(y.data(), x.data(), kc.data(), vc.data(), 1, 2);  // then one decode step
          print((what + " decode").c_str());
          // the same step in place (out == x): where x1 lives must keep every product from
          // writing an input other than its residual
          std::vector<E> z = x;
          step(z.data(), z.data(), kc2.data(), vc2.data(), 1, 2);
          const size_t cache = kc.size() * sizeof(E), row = (size_t)(B * cfg.C) * sizeof(E);
          const bool same = std::memcmp(kc2.data(), kc.data(), cache) == 0 && std::memcmp(vc2.data(), vc.data(), cache) == 0 &&
                            std::memcmp(z.data(), y.data(), row) == 0;
          std::printf("%s in place: %s\n", what.c_str(), same ? "same" : "DIFFERENT");
        };
        if (dt == DType::F32) run(0.f); else run(bf16{});
      }
    }
}
