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

// A job is split into `nthreads` tasks (tid 0..n-1) that any thread may claim: the caller claims
// tasks itself, so a worker that is descheduled or asleep (2 shared cores, libuv and V8 threads
// beside us) never stalls a job; it just does less of it. The caller then waits only for tasks
// another thread has already started.
// Workers spin this many pause iterations (~tens of microseconds) before sleeping.
constexpr int kSpinIterations = 1 << 12;
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
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, start] { loop(start); });
  }

  void run(const std::function<void(int, int)>& fn) {
    if (t_inside || nthreads_ == 1) {
      fn(0, 1);
      return;
    }
    // One job at a time: callers from different libuv threads queue here.
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    t_inside = true;
    job_.store(&fn, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    next_.store(0, std::memory_order_release);  // publishes job_ and nthreads_ to claimers
    {
      std::lock_guard<std::mutex> lk(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    work();
    // Wait for tasks others claimed and are running: pause, then give the core away.
    for (int spin = 0; done_.load(std::memory_order_acquire) != nthreads_; ++spin) {
      if (spin < 256) {
        PUZZLE_PAUSE();
      } else if (spin < 4096) {
        std::this_thread::yield();
      } else {
        std::unique_lock<std::mutex> lk(mutex_);
        done_cv_.wait(lk, [&] { return done_.load(std::memory_order_acquire) == nthreads_; });
        break;
      }
    }
    job_.store(nullptr, std::memory_order_relaxed);
    t_inside = false;
  }

 private:
  // Claims and runs tasks until none are left. A claim that lands in a newer job than the one
  // that woke this thread is still a valid task of that newer job (the caller cannot finish a
  // job while one of its claimed tasks runs, so job_ cannot change under a claimed task).
  void work() {
    for (;;) {
      const int t = next_.fetch_add(1, std::memory_order_acq_rel);
      if (t >= nthreads_) return;
      (*job_.load(std::memory_order_relaxed))(t, nthreads_);
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == nthreads_) {
        std::lock_guard<std::mutex> lk(mutex_);
        done_cv_.notify_one();
      }
    }
  }

  void loop(uint64_t seen) {
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
      work();
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

  int nthreads_ = 0;  // also the number of tasks per job; fixed while workers run
  std::vector<std::thread> workers_;
  std::mutex job_mutex_, mutex_;
  std::condition_variable cv_, done_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{1 << 30}, done_{0};
  std::atomic<bool> quit_{false};
  std::atomic<const std::function<void(int, int)>*> job_{nullptr};
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
