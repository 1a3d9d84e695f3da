// The CPU backend: a caching allocator and the op table.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cpu/ops_cpu.h"
#include "puzzle/backend.h"

namespace puzzle {

OpsBf16 cpu_ops_bf16();  // ops_bf16.cpp

namespace {

// Freed blocks are kept by exact size and handed out again: training repeats the same shapes
// every step, and on this class of VM returning memory to the OS and faulting it back in costs
// more than the math. The cache is capped (PUZZLE_CPU_CACHE_MB, default 4096).
class CachingAllocator {
 public:
  void* alloc(size_t bytes) {
    size_t size = round(bytes);
    {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        sizes_[p] = size;
        return p;
      }
    }
    void* p = std::aligned_alloc(64, size);
    if (!p) {
      release_cache();
      p = std::aligned_alloc(64, size);
      if (!p) return nullptr;
    }
    std::lock_guard<std::mutex> lk(mu_);
    sizes_[p] = size;
    return p;
  }

  void free(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lk(mu_);
    auto it = sizes_.find(p);
    if (it == sizes_.end()) return;
    size_t size = it->second;
    sizes_.erase(it);
    if (cached_ + size > cap()) {
      std::free(p);
      return;
    }
    free_[size].push_back(p);
    cached_ += size;
  }

  void release_cache() {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& kv : free_)
      for (void* p : kv.second) std::free(p);
    free_.clear();
    cached_ = 0;
  }

 private:
  static size_t round(size_t bytes) { return ((bytes ? bytes : 1) + 63) / 64 * 64; }
  static size_t cap() {
    static size_t c = [] {
      const char* e = std::getenv("PUZZLE_CPU_CACHE_MB");
      return (size_t)(e ? std::atoll(e) : 4096) << 20;
    }();
    return c;
  }
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> sizes_;
  size_t cached_ = 0;
};

CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();  // never destroyed: outlives tensor finalizers
  return *a;
}

void* cpu_alloc(size_t bytes) { return allocator().alloc(bytes); }
void cpu_free(void* p) { allocator().free(p); }
void cpu_memset_zero(void* dst, size_t bytes) {
  parallel_for((int64_t)bytes, 1 << 20, [&](int64_t b0, int64_t b1) { std::memset((char*)dst + b0, 0, b1 - b0); });
}
void cpu_copy(void* dst, const void* src, size_t bytes) {
  parallel_for((int64_t)bytes, 1 << 20,
               [&](int64_t b0, int64_t b1) { std::memcpy((char*)dst + b0, (const char*)src + b0, b1 - b0); });
}
void cpu_synchronize() {}
double cpu_now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

Backend make_cpu_backend() {
  Backend b{};
  b.name = "cpu";
  b.alloc = cpu_alloc;
  b.free = cpu_free;
  b.memset_zero = cpu_memset_zero;
  b.copy_to_device = cpu_copy;
  b.copy_to_host = cpu_copy;
  b.copy_device = cpu_copy;
  b.synchronize = cpu_synchronize;
  b.now_ms = cpu_now_ms;
  Ops& o = b.ops;
  o.embedding_forward = cpu::embedding_forward;
  o.embedding_backward = cpu::embedding_backward;
  o.rmsnorm_forward = cpu::rmsnorm_forward;
  o.rmsnorm_backward = cpu::rmsnorm_backward;
  o.add_rmsnorm_forward = cpu::add_rmsnorm_forward;
  o.matmul_forward = cpu::matmul_forward;
  o.matmul_backward = cpu::matmul_backward;
  o.gemm = [](bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, true);
  };
  o.rope_forward = cpu::rope_forward;
  o.rope_backward = cpu::rope_backward;
  o.attention_forward = cpu::attention_forward;
  o.attention_backward = cpu::attention_backward;
  o.attention_cached_forward = cpu::attention_cached_forward;
  o.rope_kv_cache_append = cpu::rope_kv_cache_append;
  o.swiglu_forward = cpu::swiglu_forward;
  o.swiglu_backward = cpu::swiglu_backward;
  o.norm_linear_forward = cpu::norm_linear_forward;
  o.norm_swiglu_forward = cpu::norm_swiglu_forward;
  o.norm_qkv_rope_cache_forward = cpu::norm_qkv_rope_cache_forward;
  o.add_forward = cpu::add_forward;
  o.accumulate = cpu::accumulate;
  o.cross_entropy_forward = cpu::cross_entropy_forward;
  o.cross_entropy_backward = cpu::cross_entropy_backward;
  o.kl_forward = cpu::kl_forward;
  o.kl_backward = cpu::kl_backward;
  o.cosine_forward = cpu::cosine_forward;
  o.cosine_backward = cpu::cosine_backward;
  o.nmse_forward = cpu::nmse_forward;
  o.nmse_backward = cpu::nmse_backward;
  o.sum_squares = cpu::sum_squares;
  o.adamw_update = cpu::adamw_update;
  b.ops_bf16 = cpu_ops_bf16();
  return b;
}

}  // namespace

const Backend& cpu_backend() {
  static Backend b = make_cpu_backend();
  return b;
}

}  // namespace puzzle
