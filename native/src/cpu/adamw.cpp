// AdamW with decoupled weight decay (PyTorch's torch.optim.AdamW semantics) and the squared
// norm used for global-norm gradient clipping.
#include "cpu/ops_cpu.h"

namespace puzzle::cpu {
namespace {

PUZZLE_MULTIVERSION
double sumsq_range(const float* x, int64_t i0, int64_t i1) {
  // float partial sums over short blocks, double across blocks: fast and accurate
  double total = 0;
  for (int64_t b = i0; b < i1; b += 4096) {
    int64_t e = std::min(i1, b + 4096);
    float s = 0.f;
    for (int64_t i = b; i < e; ++i) s += x[i] * x[i];
    total += s;
  }
  return total;
}

PUZZLE_MULTIVERSION
void adamw_range(float* p, const float* g, float* m, float* v, int64_t i0, int64_t i1, float lr, float beta1,
                 float beta2, float eps, float decay, float grad_scale, float bc1, float bc2) {
  for (int64_t i = i0; i < i1; ++i) {
    float gi = g[i] * grad_scale;
    float mi = beta1 * m[i] + (1.f - beta1) * gi;
    float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float pi = p[i] * decay;
    p[i] = pi - lr * (mi / bc1) / (std::sqrt(vi / bc2) + eps);
  }
}

}  // namespace

double sum_squares(const float* x, int64_t n) {
  int nt = num_threads();
  std::vector<double> part(nt, 0.0);
  parallel_run([&](int tid, int nthreads) {
    part[tid] = sumsq_range(x, n * tid / nthreads, n * (tid + 1) / nthreads);
  });
  double s = 0;
  for (double p : part) s += p;
  return s;
}

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float grad_scale, int64_t t) {
  float bc1 = 1.f - (float)std::pow((double)beta1, (double)t);
  float bc2 = 1.f - (float)std::pow((double)beta2, (double)t);
  float decay = 1.f - lr * weight_decay;
  parallel_for(n, 1 << 14, [&](int64_t i0, int64_t i1) {
    adamw_range(param, grad, m, v, i0, i1, lr, beta1, beta2, eps, decay, grad_scale, bc1, bc2);
  });
}

}  // namespace puzzle::cpu
