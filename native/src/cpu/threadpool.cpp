#include "puzzle/threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#define PUZZLE_PAUSE() _mm_pause()
#else
#define PUZZLE_PAUSE() std::this_thread::yield()
#endif

namespace puzzle {
namespace {

// Spin this many pause iterations (~tens of microseconds) before sleeping.
constexpr int kSpinIterations = 1 << 14;
// True on pool workers and on a caller inside a job: nested parallel calls then run serially.
thread_local bool t_inside = false;

class Pool {
 public:
  Pool() { resize(0); }
  ~Pool() { stop(); }

  int size() const { return nthreads_; }

  void resize(int n) {
    if (n <= 0) n = std::max(1u, std::thread::hardware_concurrency());
    if (n == nthreads_) return;
    stop();
    nthreads_ = n;
    quit_ = false;
    // Workers start from the generation current now: one read later could miss the first job.
    const uint64_t start = generation_.load();
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, start] { loop(i, start); });
  }

  void run(const std::function<void(int, int)>& fn) {
    if (t_inside || nthreads_ == 1) {
      fn(0, 1);
      return;
    }
    // One job at a time: callers from different libuv threads queue here.
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    t_inside = true;
    job_ = &fn;
    pending_.store(nthreads_ - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    fn(0, nthreads_);
    for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
      if (spin < kSpinIterations) {
        PUZZLE_PAUSE();
      } else {
        std::unique_lock<std::mutex> lk(mutex_);
        done_cv_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
      }
    }
    job_ = nullptr;
    t_inside = false;
  }

 private:
  void loop(int tid, uint64_t seen) {
    t_inside = true;
    for (;;) {
      uint64_t g;
      int spin = 0;
      while ((g = generation_.load(std::memory_order_acquire)) == seen && !quit_.load()) {
        if (++spin < kSpinIterations) {
          PUZZLE_PAUSE();
        } else {
          std::unique_lock<std::mutex> lk(mutex_);
          cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen || quit_.load(); });
        }
      }
      if (quit_.load()) return;
      seen = g;
      (*job_)(tid, nthreads_);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mutex_);
        done_cv_.notify_one();
      }
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  int nthreads_ = 0;
  std::vector<std::thread> workers_;
  std::mutex job_mutex_, mutex_;
  std::condition_variable cv_, done_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> quit_{false};
  const std::function<void(int, int)>* job_ = nullptr;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(n); }
void parallel_run(const std::function<void(int, int)>& fn) { pool().run(fn); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t max_chunks = (n + grain - 1) / grain;
  if (max_chunks <= 1 || num_threads() == 1) {
    fn(0, n);
    return;
  }
  parallel_run([&](int tid, int nt) {
    int64_t chunks = std::min<int64_t>(nt, max_chunks);
    if (tid >= chunks) return;
    int64_t begin = n * tid / chunks, end = n * (tid + 1) / chunks;
    fn(begin, end);
  });
}

}  // namespace puzzle
