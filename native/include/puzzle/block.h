// One decoder layer with DeciLM semantics:
//   x = x + Attn(RMSNorm(x));  x = x + FFN(RMSNorm(x))
// where Attn is GQA with NKV heads | one linear C x C matrix | no-op (no norm, no tensors),
// and FFN is SwiGLU of width F | one linear C x C matrix | no-op.
// Parameters live in one flat buffer (so the optimiser updates a block in one call) laid out
// so that fused weights are plain views: q|k|v rows form the QKV weight, gate|up rows the
// gate-up weight. Activations saved for backward live in buffers the block reuses.
//
// Precision: a block computes in fp32 (DType::F32) or in mixed precision (DType::BF16): then its
// inputs, outputs and activations are bf16 and the ops come from the backend's bf16 table; the
// parameters stay fp32 (the master copy the optimiser updates, gradients fp32 too) and a bf16
// copy of them feeds the GEMMs, refreshed before the next forward after weights_changed().
#pragma once
#include <mutex>
#include <string>
#include <vector>

#include "puzzle/buffer.h"

namespace puzzle {

enum class AttnKind { GQA, Linear, NoOp };
enum class FfnKind { SwiGLU, Linear, NoOp };

struct BlockConfig {
  int64_t C = 0;    // hidden size
  int64_t NH = 0;   // query heads
  int64_t HS = 0;   // head size
  AttnKind attn = AttnKind::GQA;
  int64_t NKV = 0;  // key/value heads (GQA)
  FfnKind ffn = FfnKind::SwiGLU;
  int64_t F = 0;    // FFN width (SwiGLU)
  float eps = 1e-5f;
};

struct ParamInfo {
  std::string name;              // HF name inside the layer, e.g. "self_attn.q_proj.weight"
  std::vector<int64_t> shape;
  size_t offset;                 // in floats, into the flat parameter buffer
  size_t numel;
};

// Everything forward needs besides the input: batch geometry and the RoPE tables.
struct BlockInputs {
  int64_t B = 0, T = 0;
  const float* cos = nullptr;    // [P, HS/2]
  const float* sin = nullptr;
  const int32_t* pos = nullptr;  // [T] or null for 0..T-1
};

class Block {
 public:
  // dtype: DType::F32 or DType::BF16 (activations; see above).
  Block(const Backend& backend, const BlockConfig& cfg, DType dtype = DType::F32);

  DType dtype() const { return dtype_; }
  // The fp32 parameters were written (loaded, or stepped by the optimiser): a bf16 block
  // refreshes its bf16 copy of them before the next forward.
  void weights_changed();
  // Inference only (bf16 blocks): makes the bf16 copy of the weights now and frees the fp32
  // parameters, so the block holds a third of the bytes. Afterwards the parameters cannot be read
  // or written (param_buffer() is null; weights_changed() and backward() throw).
  void drop_master_weights();
  bool has_master_weights() const { return params_buf_ != nullptr; }
  const BlockConfig& config() const { return cfg_; }
  const std::vector<ParamInfo>& params() const { return params_; }
  const ParamInfo* find(const std::string& name) const;
  size_t num_params() const { return total_; }
  const BufferPtr& param_buffer() const { return params_buf_; }
  // The gradient buffer is allocated (zeroed) on first use.
  const BufferPtr& grad_buffer();
  void zero_grad();
  void set_trainable(const std::string& name, bool trainable);
  bool trainable(const std::string& name) const;

  // out[N,C] = block(x[N,C]); when `save` is true the activations backward needs are kept.
  // The float overloads serve fp32 blocks and the bf16 overloads bf16 blocks (a mismatch throws).
  void forward(float* out, const float* x, const BlockInputs& in, bool save);
  void forward(bf16* out, const bf16* x, const BlockInputs& in, bool save);
  // Accumulates parameter gradients (trainable ones) and, when dx is not null, writes
  // (overwrites) the input gradient. Needs the immediately preceding forward(save = true).
  void backward(float* dx, const float* dout);
  void backward(bf16* dx, const bf16* dout);

  // Inference with a KV cache k/v[B, Tmax, NKV, HS] (GQA blocks only; others ignore it):
  // x holds the T new tokens at positions past .. past+T-1 (in.pos must say so); their keys and
  // values are written into the cache, then they attend to cache rows 0 .. past+t.
  void forward_cached(float* out, const float* x, const BlockInputs& in, float* k_cache, float* v_cache,
                      int64_t past, int64_t Tmax);
  void forward_cached(bf16* out, const bf16* x, const BlockInputs& in, bf16* k_cache, bf16* v_cache, int64_t past,
                      int64_t Tmax);

  // An activation kept by the last forward(save = true), by name: "attn_input" (RMSNorm(x),
  // [N,C]), "x1" (x + attention, [N,C]), "ffn_input" (RMSNorm(x1), [N,C]), "ffn_hidden"
  // (silu(gate)*up, [N,F]). Null (with *cols = 0) when this block has no such activation.
  // In the block's dtype: float for a float32 block, bf16 for a bfloat16 one.
  const void* saved_activation(const std::string& name, int64_t* rows, int64_t* cols) const;

  std::mutex& mutex() { return mu_; }
  const Backend& backend() const { return be_; }

 private:
  float* p(int idx) const { return idx < 0 ? nullptr : params_buf_->f32(params_[idx].offset); }
  float* g(int idx);
  template <class T>
  const T* w(int idx);  // the weights the GEMMs read: fp32 parameters, or their bf16 copy
  void ensure_workspace(int64_t N, int64_t B, int64_t T);
  void check_dtype(DType want, const char* fn) const;
  template <class T>
  void forward_t(T* out, const T* x, const BlockInputs& in, bool save);
  template <class T>
  void backward_t(T* dx, const T* dout);
  template <class T>
  void forward_cached_t(T* out, const T* x, const BlockInputs& in, T* k_cache, T* v_cache, int64_t past,
                        int64_t Tmax);
  // out = x1 + FFN(RMSNorm(x1)), where x1 first becomes x1 + residual when residual is given
  template <class T>
  void ffn_forward(T* out, T* x1, const T* residual, int64_t N);
  template <class T>
  void linear_backward(T* dinp, float* dweight, const T* dout, const T* inp, const T* weight, int64_t N, int64_t C,
                       int64_t OC);
  int add_param(const std::string& name, std::vector<int64_t> shape);

  const Backend& be_;
  BlockConfig cfg_;
  DType dtype_;
  BufferPtr weights16_;  // bf16 copy of params_buf_ (bf16 blocks)
  bool weights16_stale_ = true;
  std::vector<ParamInfo> params_;
  std::vector<bool> trainable_;
  size_t total_ = 0;
  BufferPtr params_buf_, grads_buf_;
  // indices into params_ (-1 when absent)
  int attn_norm_ = -1, wq_ = -1, wk_ = -1, wv_ = -1, wo_ = -1, wlin_attn_ = -1;
  int ffn_norm_ = -1, wgate_ = -1, wup_ = -1, wdown_ = -1, wlin_ffn_ = -1;

  // saved activations / workspace (N = B*T rows)
  int64_t ws_N_ = 0, ws_B_ = 0, ws_T_ = 0;
  BufferPtr x_, rstd1_, ln1_, qkv_, att_, lse_, x1_, rstd2_, ln2_, gu_, h_;
  BufferPtr dx1_, dln_, dqkv_, datt_, dgu_, dh_;
  BlockInputs saved_in_{};
  bool saved_ = false;
  std::mutex mu_;
};

}  // namespace puzzle
