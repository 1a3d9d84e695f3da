// The engine's one thread pool. Every parallel kernel runs on it; nothing else spins.
// Workers spin briefly after a job (kernels come in quick succession) and then sleep on a
// condition variable, so the pool never fights another runtime's threads for long.
#pragma once
#include <cstdint>
#include <functional>

namespace puzzle {

// Number of threads kernels use (the calling thread counts as one).
int num_threads();
// Resizes the pool; n <= 0 means "all hardware threads". Not to be called while a kernel runs.
void set_num_threads(int n);

// Runs fn(tid, nthreads) once on every pool thread, the caller being tid 0; returns when all finish.
// Nested calls from inside fn run serially on the calling thread (nthreads == 1).
void parallel_run(const std::function<void(int tid, int nthreads)>& fn);

// Splits [0, n) into contiguous chunks of at least `grain` items over the pool.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace puzzle
