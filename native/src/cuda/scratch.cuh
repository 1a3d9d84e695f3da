// Stream-ordered device scratch for kernels that need a temporary buffer between two launches
// (attention: D for the backward and the split-KV decode's partitions; gemm_mma.cu: split-K
// partial sums). Outside stream capture one buffer is kept and reused, grown stream-ordered (the
// old one is freed after the work already queued on stream()); inside a capture each call gets
// its own cudaMallocAsync / cudaFreeAsync pair, so the graph owns that memory and never depends
// on the reusable buffer. Callers hold lock() from acquire() until their last launch that uses
// the buffer is queued: the next caller may then reuse it, since all work is on one stream.
// Each user keeps its own instance, so one user's lock is never held while another's is taken.
#pragma once
#include <algorithm>
#include <mutex>

#include "cuda/common.cuh"

namespace puzzle::cuda {

class Scratch {
 public:
  explicit Scratch(const char* where) : where_(where) {}
  std::mutex& lock() { return mu_; }
  // A buffer of at least `bytes`, or nullptr with the error recorded (quiet: not recorded, for a
  // caller that has another way to do the work). *temporary: it belongs to this call (a capture
  // is in progress) and must be given to release() after the last launch.
  float* acquire(size_t bytes, bool* temporary, bool quiet = false) {
    *temporary = false;
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    cudaError_t e = cudaStreamIsCapturing(stream(), &st);
    if (e != cudaSuccess) return fail(e, quiet);
    void* p = nullptr;
    if (st != cudaStreamCaptureStatusNone) {
      e = cudaMallocAsync(&p, bytes, stream());
      if (e != cudaSuccess) return fail(e, quiet);
      *temporary = true;
      return static_cast<float*>(p);
    }
    if (bytes > cap_) {
      trim_locked();
      const size_t want = std::max(bytes + bytes / 2, (size_t)1 << 20);
      e = cudaMallocAsync(&p, want, stream());
      if (e != cudaSuccess) return fail(e, quiet);
      buf_ = static_cast<float*>(p);
      cap_ = want;
    }
    return buf_;
  }
  void release(float* p, bool temporary) {
    if (temporary && p != nullptr) record_error(cudaFreeAsync(p, stream()), where_);
  }
  // Frees the kept buffer (stream-ordered); the next acquire() allocates again.
  void trim() {
    std::lock_guard<std::mutex> guard(mu_);
    trim_locked();
  }

 private:
  float* fail(cudaError_t e, bool quiet) {
    if (quiet)
      (void)cudaGetLastError();  // not an error of the next launch either
    else
      record_error(e, where_);
    return nullptr;
  }
  void trim_locked() {
    if (buf_ != nullptr) record_error(cudaFreeAsync(buf_, stream()), where_);
    buf_ = nullptr;
    cap_ = 0;
  }
  const char* where_;
  std::mutex mu_;
  float* buf_ = nullptr;
  size_t cap_ = 0;
};

}  // namespace puzzle::cuda
