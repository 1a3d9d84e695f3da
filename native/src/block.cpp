#include "puzzle/block.h"

#include <algorithm>
#include <stdexcept>
#include <type_traits>

namespace puzzle {
namespace {

// The op table for a storage type: the bf16 table mirrors the fp32 one name for name, so the
// block's code is written once. Only the linear layers differ (see linear_forward / wgrad_gemm).
template <class T>
using OpsOf = std::conditional_t<std::is_same_v<T, float>, Ops, OpsBf16>;
template <class T>
const OpsOf<T>& ops_of(const Backend& be) {
  if constexpr (std::is_same_v<T, float>)
    return be.ops;
  else
    return be.ops_bf16;
}

// out[N,OC] = inp[N,C] @ weight[OC,C]^T
template <class T>
void linear_forward(const Backend& be, T* out, const T* inp, const T* weight, int64_t N, int64_t C, int64_t OC) {
  if constexpr (std::is_same_v<T, float>)
    be.ops.matmul_forward(out, inp, weight, nullptr, N, C, OC);
  else
    be.ops_bf16.gemm(false, true, N, OC, C, 1.f, inp, C, weight, C, 0.f, out, OC);
}

// A GEMM whose output is a weight gradient: fp32 in both precisions.
template <class T>
void wgrad_gemm(const Backend& be, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                const T* B, int64_t ldb, float* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>)
    be.ops.gemm(ta, tb, M, N, K, 1.f, A, lda, B, ldb, 1.f, C, ldc);
  else
    be.ops_bf16.gemm_f32out(ta, tb, M, N, K, 1.f, A, lda, B, ldb, 1.f, C, ldc);
}

template <class T>
DType dtype_of() {
  return std::is_same_v<T, float> ? DType::F32 : DType::BF16;
}

}  // namespace

Block::Block(const Backend& backend, const BlockConfig& cfg, DType dtype) : be_(backend), cfg_(cfg), dtype_(dtype) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    throw std::invalid_argument("a block computes in float32 or bfloat16, not " + std::string(dtype_name(dtype)));
  const int64_t C = cfg.C, HS = cfg.HS;
  if (cfg.attn == AttnKind::GQA) {
    attn_norm_ = add_param("input_layernorm.weight", {C});
    // q, k, v adjacent: together they are the fused QKV weight [(NH + 2 NKV) HS, C]
    wq_ = add_param("self_attn.q_proj.weight", {cfg.NH * HS, C});
    wk_ = add_param("self_attn.k_proj.weight", {cfg.NKV * HS, C});
    wv_ = add_param("self_attn.v_proj.weight", {cfg.NKV * HS, C});
    wo_ = add_param("self_attn.o_proj.weight", {C, cfg.NH * HS});
  } else if (cfg.attn == AttnKind::Linear) {
    attn_norm_ = add_param("input_layernorm.weight", {C});
    wlin_attn_ = add_param("self_attn.linear_attn.weight", {C, C});
  }
  if (cfg.ffn == FfnKind::SwiGLU) {
    ffn_norm_ = add_param("post_attention_layernorm.weight", {C});
    // gate and up adjacent: together the fused gate-up weight [2F, C]
    wgate_ = add_param("mlp.gate_proj.weight", {cfg.F, C});
    wup_ = add_param("mlp.up_proj.weight", {cfg.F, C});
    wdown_ = add_param("mlp.down_proj.weight", {C, cfg.F});
  } else if (cfg.ffn == FfnKind::Linear) {
    ffn_norm_ = add_param("post_attention_layernorm.weight", {C});
    wlin_ffn_ = add_param("mlp.linear_mlp.weight", {C, C});
  }
  params_buf_ = make_buffer(be_, std::max<size_t>(total_, 1) * sizeof(float), true);
  if (dtype_ == DType::BF16) weights16_ = make_buffer(be_, std::max<size_t>(total_, 1) * sizeof(bf16));
}

void Block::weights_changed() {
  if (!params_buf_) throw std::logic_error("Block::weights_changed: the fp32 parameters were dropped (inference only)");
  weights16_stale_ = true;
}

void Block::drop_master_weights() {
  if (dtype_ != DType::BF16) throw std::logic_error("Block::drop_master_weights: only a bfloat16 block keeps a copy to serve from");
  if (!params_buf_) return;
  (void)w<bf16>(-1);  // the bf16 copy, made now if stale
  params_buf_.reset();
  grads_buf_.reset();
}

void Block::check_dtype(DType want, const char* fn) const {
  if (want != dtype_)
    throw std::logic_error(std::string("Block::") + fn + ": this block computes in " + dtype_name(dtype_) +
                           ", the arguments are " + dtype_name(want));
}

template <class T>
const T* Block::w(int idx) {
  if constexpr (std::is_same_v<T, float>) {
    return idx < 0 ? nullptr : p(idx);
  } else {
    if (weights16_stale_) {
      be_.ops_bf16.to_bf16(weights16_->as<bf16>(), params_buf_->f32(), (int64_t)total_);
      weights16_stale_ = false;
    }
    return idx < 0 ? nullptr : weights16_->as<bf16>(params_[idx].offset);
  }
}

int Block::add_param(const std::string& name, std::vector<int64_t> shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= (size_t)d;
  params_.push_back({name, std::move(shape), total_, n});
  trainable_.push_back(true);
  total_ += n;
  return (int)params_.size() - 1;
}

const ParamInfo* Block::find(const std::string& name) const {
  for (auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

const BufferPtr& Block::grad_buffer() {
  if (!grads_buf_) grads_buf_ = make_buffer(be_, std::max<size_t>(total_, 1) * sizeof(float), true);
  return grads_buf_;
}

void Block::zero_grad() {
  if (grads_buf_) be_.memset_zero(grads_buf_->ptr, grads_buf_->bytes);
}

void Block::set_trainable(const std::string& name, bool trainable) {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) {
      trainable_[i] = trainable;
      return;
    }
  throw std::invalid_argument("no parameter named " + name);
}

bool Block::trainable(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return trainable_[i];
  return false;
}

float* Block::g(int idx) {
  if (idx < 0 || !trainable_[idx]) return nullptr;
  return grad_buffer()->f32(params_[idx].offset);
}

void Block::ensure_workspace(int64_t N, int64_t B, int64_t T) {
  if (N == ws_N_ && B == ws_B_ && T == ws_T_) return;
  const int64_t C = cfg_.C, HS = cfg_.HS;
  // activations in the block's dtype; rstd and lse (statistics) always fp32
  const size_t act = dtype_size(dtype_);
  auto buf = [&](int64_t n) { return n > 0 ? make_buffer(be_, (size_t)n * act) : nullptr; };
  auto stat = [&](int64_t n) { return n > 0 ? make_buffer(be_, (size_t)n * sizeof(float)) : nullptr; };
  const bool gqa = cfg_.attn == AttnKind::GQA, swiglu = cfg_.ffn == FfnKind::SwiGLU;
  const int64_t QKV = gqa ? (cfg_.NH + 2 * cfg_.NKV) * HS : 0;
  x_ = buf(N * C);
  rstd1_ = stat(N);
  ln1_ = buf(N * C);
  qkv_ = buf(N * QKV);
  att_ = buf(gqa ? N * cfg_.NH * HS : 0);
  lse_ = stat(gqa ? B * cfg_.NH * T : 0);
  x1_ = buf(N * C);
  rstd2_ = stat(N);
  ln2_ = buf(N * C);
  gu_ = buf(swiglu ? N * 2 * cfg_.F : 0);
  h_ = buf(swiglu ? N * cfg_.F : 0);
  dx1_ = buf(N * C);
  dln_ = buf(N * C);
  dqkv_ = buf(N * QKV);
  datt_ = buf(gqa ? N * cfg_.NH * HS : 0);
  dgu_ = buf(swiglu ? N * 2 * cfg_.F : 0);
  dh_ = buf(swiglu ? N * cfg_.F : 0);
  ws_N_ = N, ws_B_ = B, ws_T_ = T;
  saved_ = false;
}

void Block::forward(float* out, const float* x, const BlockInputs& in, bool save) {
  check_dtype(DType::F32, "forward");
  forward_t(out, x, in, save);
}
void Block::forward(bf16* out, const bf16* x, const BlockInputs& in, bool save) {
  check_dtype(DType::BF16, "forward");
  forward_t(out, x, in, save);
}

template <class T>
void Block::forward_t(T* out, const T* x, const BlockInputs& in, bool save) {
  const OpsOf<T>& o = ops_of<T>(be_);
  const int64_t B = in.B, T_ = in.T, N = B * T_, C = cfg_.C, HS = cfg_.HS;
  ensure_workspace(N, B, T_);
  saved_ = false;
  const size_t row_bytes = (size_t)N * C * sizeof(T);
  if (save) be_.copy_device(x_->ptr, x, row_bytes);

  // ---- attention subblock: x1 = x + Attn(RMSNorm(x))
  T* x1 = x1_->as<T>();
  if (cfg_.attn == AttnKind::NoOp) {
    be_.copy_device(x1, x, row_bytes);
  } else {
    T* ln1 = ln1_->as<T>();
    o.rmsnorm_forward(ln1, rstd1_->f32(), x, w<T>(attn_norm_), N, C, cfg_.eps);
    if (cfg_.attn == AttnKind::Linear) {
      linear_forward<T>(be_, x1, ln1, w<T>(wlin_attn_), N, C, C);
    } else {
      const int64_t NH = cfg_.NH, NKV = cfg_.NKV, QKV = (NH + 2 * NKV) * HS;
      T* qkv = qkv_->as<T>();
      linear_forward<T>(be_, qkv, ln1, w<T>(wq_), N, C, QKV);
      // q's NH heads and k's NKV heads sit side by side in a qkv row: one rotation over both
      o.rope_forward(qkv, qkv, in.cos, in.sin, in.pos, B, T_, NH + NKV, HS, QKV);
      o.attention_forward(att_->as<T>(), lse_->f32(), qkv, qkv + NH * HS, qkv + (NH + NKV) * HS, B, T_, NH, NKV, HS,
                          QKV, QKV);
      linear_forward<T>(be_, x1, att_->as<T>(), w<T>(wo_), N, NH * HS, C);
    }
  }

  // x1 holds the attention branch: the residual x is added as the FFN's norm reads it
  ffn_forward(out, x1, cfg_.attn == AttnKind::NoOp ? nullptr : x, N);
  saved_in_ = in;
  saved_ = save;
}

const void* Block::saved_activation(const std::string& name, int64_t* rows, int64_t* cols) const {
  *rows = ws_N_;
  *cols = 0;
  if (!saved_) return nullptr;
  const bool attn = cfg_.attn != AttnKind::NoOp, ffn = cfg_.ffn != FfnKind::NoOp;
  if (name == "attn_input" && attn) return *cols = cfg_.C, ln1_->ptr;
  if (name == "x1") return *cols = cfg_.C, x1_->ptr;
  if (name == "ffn_input" && ffn) return *cols = cfg_.C, ln2_->ptr;
  if (name == "ffn_hidden" && cfg_.ffn == FfnKind::SwiGLU) return *cols = cfg_.F, h_->ptr;
  return nullptr;
}

void Block::forward_cached(float* out, const float* x, const BlockInputs& in, float* k_cache, float* v_cache,
                           int64_t past, int64_t Tmax) {
  check_dtype(DType::F32, "forward_cached");
  forward_cached_t(out, x, in, k_cache, v_cache, past, Tmax);
}
void Block::forward_cached(bf16* out, const bf16* x, const BlockInputs& in, bf16* k_cache, bf16* v_cache,
                           int64_t past, int64_t Tmax) {
  check_dtype(DType::BF16, "forward_cached");
  forward_cached_t(out, x, in, k_cache, v_cache, past, Tmax);
}

template <class T>
void Block::forward_cached_t(T* out, const T* x, const BlockInputs& in, T* k_cache, T* v_cache, int64_t past,
                             int64_t Tmax) {
  const OpsOf<T>& o = ops_of<T>(be_);
  const int64_t B = in.B, T_ = in.T, N = B * T_, C = cfg_.C;
  const size_t row_bytes = (size_t)N * C * sizeof(T);
  ensure_workspace(N, B, T_);
  saved_ = false;
  T* ln = ln1_->as<T>();
  float* rstd = rstd1_->f32();
  // Nothing is saved for backward here, so the inference fusions of the contract apply, for every
  // kind of layer: the norm goes into the product after it, the residual into the product before
  // it, SwiGLU into the gate|up product, RoPE and the cache append into the q|k|v product (on
  // CUDA, one kernel each for a few rows: 5 for a GQA + SwiGLU step, 3 for linear attention +
  // SwiGLU, 2 for no-op attention + SwiGLU). A fused product may write its residual in place but
  // no other input of it, which decides where x1 = x + Attn(RMSNorm(x)) lives: in out, so that the
  // FFN's last product adds itself to it in place; in the workspace for a linear FFN (its one
  // product reads x1 while it writes out) and for a linear attention run in place (its product
  // reads x while it writes x1); with no-op attention x1 is x itself.
  const T* x1 = x;
  if (cfg_.attn != AttnKind::NoOp) {
    const bool own = cfg_.ffn == FfnKind::Linear || (cfg_.attn == AttnKind::Linear && out == x);
    T* a1 = own ? x1_->as<T>() : out;
    if (cfg_.attn == AttnKind::Linear) {
      o.norm_linear_forward(a1, ln, rstd, x, w<T>(attn_norm_), w<T>(wlin_attn_), x, N, C, C, cfg_.eps);
    } else {
      const int64_t HS = cfg_.HS, NH = cfg_.NH, NKV = cfg_.NKV, QKV = (NH + 2 * NKV) * HS;
      T* qkv = qkv_->as<T>();
      // the norm, the q|k|v product, q and k rotated, the new keys and values appended: one op
      o.norm_qkv_rope_cache_forward(qkv, ln, rstd, k_cache, v_cache, x, w<T>(attn_norm_), w<T>(wq_), in.cos, in.sin,
                                    in.pos, B, T_, C, NH, NKV, HS, past, Tmax, cfg_.eps);
      o.attention_cached_forward(att_->as<T>(), qkv, k_cache, v_cache, B, T_, NH, NKV, HS, QKV, past, Tmax);
      o.norm_linear_forward(a1, ln, rstd, att_->as<T>(), nullptr, w<T>(wo_), x, N, NH * HS, C, cfg_.eps);
    }
    x1 = a1;
  }
  // out = x1 + FFN(RMSNorm(x1))
  if (cfg_.ffn == FfnKind::Linear) {
    if (x1 == out) {  // no-op attention in place: the product must not write the x it reads
      be_.copy_device(x1_->ptr, x1, row_bytes);
      x1 = x1_->as<T>();
    }
    o.norm_linear_forward(out, ln, rstd, x1, w<T>(ffn_norm_), w<T>(wlin_ffn_), x1, N, C, C, cfg_.eps);
  } else if (cfg_.ffn == FfnKind::SwiGLU) {
    T* h = h_->as<T>();
    o.norm_swiglu_forward(h, ln, rstd, gu_->as<T>(), x1, w<T>(ffn_norm_), w<T>(wgate_), N, C, cfg_.F, cfg_.eps);
    o.norm_linear_forward(out, ln, rstd, h, nullptr, w<T>(wdown_), x1, N, cfg_.F, C, cfg_.eps);
  } else if (x1 != out) {
    be_.copy_device(out, x1, row_bytes);
  }
}

// FFN subblock of the training forward: out = x1 + FFN(RMSNorm(x1)), where x1 first becomes
// x1 + residual when a residual is given (the attention subblock's add, fused with this norm: one
// pass over the rows instead of two). Leaves ln2/gu/h in the workspace for backward.
template <class T>
void Block::ffn_forward(T* out, T* x1, const T* residual, int64_t N) {
  const OpsOf<T>& o = ops_of<T>(be_);
  const int64_t C = cfg_.C;
  if (cfg_.ffn == FfnKind::NoOp) {
    if (residual) o.accumulate(x1, residual, N * C);
    be_.copy_device(out, x1, (size_t)N * C * sizeof(T));
    return;
  }
  T* ln2 = ln2_->as<T>();
  if (residual)
    o.add_rmsnorm_forward(x1, ln2, rstd2_->f32(), x1, residual, w<T>(ffn_norm_), N, C, cfg_.eps);
  else
    o.rmsnorm_forward(ln2, rstd2_->f32(), x1, w<T>(ffn_norm_), N, C, cfg_.eps);
  if (cfg_.ffn == FfnKind::Linear) {
    linear_forward<T>(be_, out, ln2, w<T>(wlin_ffn_), N, C, C);
  } else {
    const int64_t F = cfg_.F;
    linear_forward<T>(be_, gu_->as<T>(), ln2, w<T>(wgate_), N, C, 2 * F);
    o.swiglu_forward(h_->as<T>(), gu_->as<T>(), N, F);
    linear_forward<T>(be_, out, h_->as<T>(), w<T>(wdown_), N, F, C);
  }
  o.accumulate(out, x1, N * C);
}

// dinp = dout @ W (written), dweight += dout^T @ inp (accumulated; skipped when frozen).
template <class T>
void Block::linear_backward(T* dinp, float* dweight, const T* dout, const T* inp, const T* weight, int64_t N,
                            int64_t C, int64_t OC) {
  ops_of<T>(be_).gemm(false, false, N, C, OC, 1.f, dout, OC, weight, C, 0.f, dinp, C);
  if (!dweight) return;
  if constexpr (std::is_same_v<T, float>)
    be_.ops.matmul_backward(nullptr, dweight, nullptr, dout, inp, weight, N, C, OC);
  else
    wgrad_gemm<T>(be_, true, false, OC, C, N, dout, OC, inp, C, dweight, C);
}

void Block::backward(float* dx, const float* dout) {
  check_dtype(DType::F32, "backward");
  backward_t(dx, dout);
}
void Block::backward(bf16* dx, const bf16* dout) {
  check_dtype(DType::BF16, "backward");
  backward_t(dx, dout);
}

template <class T>
void Block::backward_t(T* dx, const T* dout) {
  if (!saved_) throw std::logic_error("backward needs the activations of a preceding forward with save = true");
  if (!params_buf_) throw std::logic_error("backward: the fp32 parameters were dropped (inference only)");
  const OpsOf<T>& o = ops_of<T>(be_);
  const int64_t B = saved_in_.B, T_ = saved_in_.T, N = B * T_, C = cfg_.C, HS = cfg_.HS;
  const size_t row_bytes = (size_t)N * C * sizeof(T);
  const bool attn_needs_dx1 = cfg_.attn != AttnKind::NoOp || dx;

  // ---- FFN subblock: dx1 = dout + d(FFN(RMSNorm(x1)))/dx1
  T* dx1 = dx1_->as<T>();
  be_.copy_device(dx1, dout, row_bytes);
  if (cfg_.ffn != FfnKind::NoOp) {
    // Input gradients of the subblock's GEMMs are written (beta = 0), so no buffer needs zeroing.
    T* dln = dln_->as<T>();
    T* ln2 = ln2_->as<T>();
    if (cfg_.ffn == FfnKind::Linear) {
      linear_backward<T>(dln, g(wlin_ffn_), dout, ln2, w<T>(wlin_ffn_), N, C, C);
    } else {
      const int64_t F = cfg_.F;
      T* dgu = dgu_->as<T>();
      linear_backward<T>(dh_->as<T>(), g(wdown_), dout, h_->as<T>(), w<T>(wdown_), N, F, C);
      o.swiglu_backward(dgu, dh_->as<T>(), gu_->as<T>(), N, F);
      // gate and up are adjacent in both the parameter and the gradient buffer
      float* dgate = g(wgate_);
      float* dup = g(wup_);
      if (dgate && dup) {
        linear_backward<T>(dln, dgate, dgu, ln2, w<T>(wgate_), N, C, 2 * F);
      } else {
        // one of the two frozen: split the GEMMs so the frozen one gets no gradient
        linear_backward<T>(dln, nullptr, dgu, ln2, w<T>(wgate_), N, C, 2 * F);
        if (dgate) wgrad_gemm<T>(be_, true, false, F, C, N, dgu, 2 * F, ln2, C, dgate, C);
        if (dup) wgrad_gemm<T>(be_, true, false, F, C, N, dgu + F, 2 * F, ln2, C, dup, C);
      }
    }
    o.rmsnorm_backward(attn_needs_dx1 ? dx1 : nullptr, g(ffn_norm_), dln, x1_->as<T>(), w<T>(ffn_norm_), rstd2_->f32(),
                       N, C);
  }

  // ---- attention subblock: dx = dx1 + d(Attn(RMSNorm(x)))/dx
  if (cfg_.attn != AttnKind::NoOp) {
    T* dln = dln_->as<T>();
    T* ln1 = ln1_->as<T>();
    if (cfg_.attn == AttnKind::Linear) {
      linear_backward<T>(dln, g(wlin_attn_), dx1, ln1, w<T>(wlin_attn_), N, C, C);
    } else {
      const int64_t NH = cfg_.NH, NKV = cfg_.NKV, QKV = (NH + 2 * NKV) * HS;
      T* datt = datt_->as<T>();
      T* dqkv = dqkv_->as<T>();
      T* qkv = qkv_->as<T>();
      be_.memset_zero(dqkv, (size_t)N * QKV * sizeof(T));  // attention backward accumulates
      linear_backward<T>(datt, g(wo_), dx1, att_->as<T>(), w<T>(wo_), N, NH * HS, C);
      o.attention_backward(dqkv, dqkv + NH * HS, dqkv + (NH + NKV) * HS, datt, qkv, qkv + NH * HS,
                           qkv + (NH + NKV) * HS, att_->as<T>(), lse_->f32(), B, T_, NH, NKV, HS, QKV, QKV);
      o.rope_backward(dqkv, dqkv, saved_in_.cos, saved_in_.sin, saved_in_.pos, B, T_, NH + NKV, HS, QKV);  // dq, dk
      float* dq = g(wq_);
      float* dk = g(wk_);
      float* dv = g(wv_);
      if (dq && dk && dv) {
        linear_backward<T>(dln, dq, dqkv, ln1, w<T>(wq_), N, C, QKV);
      } else {
        linear_backward<T>(dln, nullptr, dqkv, ln1, w<T>(wq_), N, C, QKV);
        const int64_t rows[3] = {NH * HS, NKV * HS, NKV * HS};
        const int64_t offs[3] = {0, NH * HS, (NH + NKV) * HS};
        float* grads[3] = {dq, dk, dv};
        for (int i = 0; i < 3; ++i)
          if (grads[i]) wgrad_gemm<T>(be_, true, false, rows[i], C, N, dqkv + offs[i], QKV, ln1, C, grads[i], C);
      }
    }
    if (dx) {
      be_.copy_device(dx, dx1, row_bytes);
      o.rmsnorm_backward(dx, g(attn_norm_), dln, x_->as<T>(), w<T>(attn_norm_), rstd1_->f32(), N, C);
    } else {
      o.rmsnorm_backward(nullptr, g(attn_norm_), dln, x_->as<T>(), w<T>(attn_norm_), rstd1_->f32(), N, C);
    }
  } else if (dx) {
    be_.copy_device(dx, dx1, row_bytes);
  }
}

}  // namespace puzzle
