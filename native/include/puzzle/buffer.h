// A block of backend memory with an owner. Tensors and blocks hold it through shared_ptr, so
// memory an in-flight kernel uses outlives a dispose() issued meanwhile from JavaScript.
#pragma once
#include <cstddef>
#include <memory>
#include <new>

#include "puzzle/backend.h"

namespace puzzle {

enum class DType : int { F32 = 0, I32 = 1, BF16 = 2 };

inline size_t dtype_size(DType t) { return t == DType::BF16 ? 2 : 4; }
inline const char* dtype_name(DType t) { return t == DType::F32 ? "float32" : t == DType::I32 ? "int32" : "bfloat16"; }

struct Buffer {
  const Backend* backend;
  void* ptr;
  size_t bytes;
  Buffer(const Backend* be, size_t n) : backend(be), ptr(be->alloc(n)), bytes(n) {
    if (!ptr) throw std::bad_alloc();
  }
  ~Buffer() { backend->free(ptr); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  float* f32(size_t offset_elems = 0) const { return static_cast<float*>(ptr) + offset_elems; }
  template <class T>
  T* as(size_t offset_elems = 0) const {
    return static_cast<T*>(ptr) + offset_elems;
  }
};

using BufferPtr = std::shared_ptr<Buffer>;

inline BufferPtr make_buffer(const Backend& be, size_t bytes, bool zero = false) {
  auto b = std::make_shared<Buffer>(&be, bytes);
  if (zero) be.memset_zero(b->ptr, bytes);
  return b;
}

}  // namespace puzzle
