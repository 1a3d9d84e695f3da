// Losses on rows of logits or hidden states. Sums run in double where a row is long (a
// vocabulary), so per-row values do not depend on thread count.
#include "cpu/ops_cpu.h"

namespace puzzle::cpu {
namespace {

constexpr int32_t kIgnore = -100;

PUZZLE_MULTIVERSION
float row_max(const float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

PUZZLE_MULTIVERSION
float row_sum_exp(const float* x, int64_t n, float shift) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += fast_expf(x[i] - shift);
  return s;
}

inline float row_lse(const float* x, int64_t n) {
  float m = row_max(x, n);
  return m + std::log(row_sum_exp(x, n, m));
}

PUZZLE_MULTIVERSION
void softmax_minus(float* d, const float* x, float lse, const float* target_p, float t_lse, int64_t n, float scale) {
  // d += scale * (softmax(x) - softmax(target)) ; target_p is teacher logits
  for (int64_t i = 0; i < n; ++i) d[i] += scale * (fast_expf(x[i] - lse) - fast_expf(target_p[i] - t_lse));
}

PUZZLE_MULTIVERSION
float kl_row(const float* t, float tl, const float* s, float sl, int64_t n) {
  float acc = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    float lp = t[i] - tl;
    acc += fast_expf(lp) * (lp - (s[i] - sl));
  }
  return acc;
}

PUZZLE_MULTIVERSION
void ce_grad_row(float* d, const float* x, float lse, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) d[i] += scale * fast_expf(x[i] - lse);
}

}  // namespace

void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V) {
  parallel_for(N, grain_rows(V), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* x = logits + n * V;
      float l = row_lse(x, V);
      lse[n] = l;
      losses[n] = targets[n] == kIgnore ? 0.f : l - x[targets[n]];
    }
  });
}

void cross_entropy_backward(float* dlogits, const float* logits, const float* lse, const int32_t* targets, int64_t N,
                            int64_t V, float scale) {
  parallel_for(N, grain_rows(V), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      if (targets[n] == kIgnore) continue;
      float* d = dlogits + n * V;
      ce_grad_row(d, logits + n * V, lse[n], V, scale);
      d[targets[n]] -= scale;
    }
  });
}

void kl_forward(float* losses, const float* teacher, const float* student, int64_t N, int64_t V) {
  parallel_for(N, grain_rows(V), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* t = teacher + n * V;
      const float* s = student + n * V;
      losses[n] = kl_row(t, row_lse(t, V), s, row_lse(s, V), V);
    }
  });
}

void kl_backward(float* dstudent, const float* teacher, const float* student, int64_t N, int64_t V, float scale) {
  parallel_for(N, grain_rows(V), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* t = teacher + n * V;
      const float* s = student + n * V;
      softmax_minus(dstudent + n * V, s, row_lse(s, V), t, row_lse(t, V), V, scale);
    }
  });
}

namespace {
// eps as torch.nn.functional.cosine_similarity: cos = x.y / sqrt(max(|x|^2 |y|^2, eps^2))
constexpr double kCosEps = 1e-8;

PUZZLE_MULTIVERSION
void dots3(const float* x, const float* y, int64_t C, float* xy, float* xx, float* yy) {
  float a = 0.f, b = 0.f, c = 0.f;
  for (int64_t i = 0; i < C; ++i) {
    a += x[i] * y[i];
    b += x[i] * x[i];
    c += y[i] * y[i];
  }
  *xy = a, *xx = b, *yy = c;
}
}  // namespace

void cosine_forward(float* losses, const float* x, const float* y, int64_t N, int64_t C) {
  parallel_for(N, grain_rows(C), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      float xy, xx, yy;
      dots3(x + n * C, y + n * C, C, &xy, &xx, &yy);
      double denom = std::sqrt(std::max((double)xx * yy, kCosEps * kCosEps));
      losses[n] = (float)(1.0 - xy / denom);
    }
  });
}

// d(1 - cos)/dx = -(y / (|x||y|) - cos * x / |x|^2)
void cosine_backward(float* dx, const float* x, const float* y, int64_t N, int64_t C, float scale) {
  parallel_for(N, grain_rows(C), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* xr = x + n * C;
      const float* yr = y + n * C;
      float xy, xx, yy;
      dots3(xr, yr, C, &xy, &xx, &yy);
      double prod = (double)xx * yy;
      if (prod <= kCosEps * kCosEps) {  // clamped: cos = xy / eps, linear in x
        float k = (float)(-scale / kCosEps);
        for (int64_t i = 0; i < C; ++i) dx[n * C + i] += k * yr[i];
        continue;
      }
      double denom = std::sqrt(prod);
      float a = (float)(-scale / denom);
      float b = (float)(scale * (xy / denom) / xx);
      for (int64_t i = 0; i < C; ++i) dx[n * C + i] += a * yr[i] + b * xr[i];
    }
  });
}

double nmse_forward(const float* x, const float* y, int64_t n) {
  int nt = num_threads();
  std::vector<double> num(nt, 0.0), den(nt, 0.0);
  parallel_run([&](int tid, int nthreads) {
    int64_t i0 = n * tid / nthreads, i1 = n * (tid + 1) / nthreads;
    double a = 0, b = 0;
    for (int64_t i = i0; i < i1; ++i) {
      double d = (double)x[i] - y[i];
      a += d * d;
      b += (double)y[i] * y[i];
    }
    num[tid] = a, den[tid] = b;
  });
  double a = 0, b = 0;
  for (int t = 0; t < nt; ++t) a += num[t], b += den[t];
  return a / b;
}

void nmse_backward(float* dx, const float* x, const float* y, int64_t n, float scale) {
  double den = 0;
  {
    int nt = num_threads();
    std::vector<double> part(nt, 0.0);
    parallel_run([&](int tid, int nthreads) {
      int64_t i0 = n * tid / nthreads, i1 = n * (tid + 1) / nthreads;
      double b = 0;
      for (int64_t i = i0; i < i1; ++i) b += (double)y[i] * y[i];
      part[tid] = b;
    });
    for (double p : part) den += p;
  }
  float k = (float)(2.0 * scale / den);
  parallel_for(n, 1 << 15, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dx[i] += k * (x[i] - y[i]);
  });
}

}  // namespace puzzle::cpu
