#include "puzzle/block.h"

#include <algorithm>
#include <stdexcept>

namespace puzzle {

Block::Block(const Backend& backend, const BlockConfig& cfg) : be_(backend), cfg_(cfg) {
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
  auto buf = [&](int64_t floats) { return floats > 0 ? make_buffer(be_, (size_t)floats * sizeof(float)) : nullptr; };
  const bool gqa = cfg_.attn == AttnKind::GQA, swiglu = cfg_.ffn == FfnKind::SwiGLU;
  const int64_t QKV = gqa ? (cfg_.NH + 2 * cfg_.NKV) * HS : 0;
  x_ = buf(N * C);
  rstd1_ = buf(N);
  ln1_ = buf(N * C);
  qkv_ = buf(N * QKV);
  att_ = buf(gqa ? N * cfg_.NH * HS : 0);
  lse_ = buf(gqa ? B * cfg_.NH * T : 0);
  x1_ = buf(N * C);
  rstd2_ = buf(N);
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
  const Ops& o = be_.ops;
  const int64_t B = in.B, T = in.T, N = B * T, C = cfg_.C, HS = cfg_.HS;
  ensure_workspace(N, B, T);
  saved_ = false;
  const size_t row_bytes = (size_t)N * C * sizeof(float);
  if (save) be_.copy_device(x_->ptr, x, row_bytes);

  // ---- attention subblock: x1 = x + Attn(RMSNorm(x))
  float* x1 = x1_->f32();
  if (cfg_.attn == AttnKind::NoOp) {
    be_.copy_device(x1, x, row_bytes);
  } else {
    o.rmsnorm_forward(ln1_->f32(), rstd1_->f32(), x, p(attn_norm_), N, C, cfg_.eps);
    if (cfg_.attn == AttnKind::Linear) {
      o.matmul_forward(x1, ln1_->f32(), p(wlin_attn_), nullptr, N, C, C);
    } else {
      const int64_t NH = cfg_.NH, NKV = cfg_.NKV, QKV = (NH + 2 * NKV) * HS;
      float* qkv = qkv_->f32();
      o.matmul_forward(qkv, ln1_->f32(), p(wq_), nullptr, N, C, QKV);
      o.rope_forward(qkv, qkv, in.cos, in.sin, in.pos, B, T, NH, HS, QKV);
      o.rope_forward(qkv + NH * HS, qkv + NH * HS, in.cos, in.sin, in.pos, B, T, NKV, HS, QKV);
      o.attention_forward(att_->f32(), lse_->f32(), qkv, qkv + NH * HS, qkv + (NH + NKV) * HS, B, T, NH, NKV, HS,
                          QKV, QKV);
      o.matmul_forward(x1, att_->f32(), p(wo_), nullptr, N, NH * HS, C);
    }
    o.accumulate(x1, x, N * C);
  }

  ffn_forward(out, x1, N);
  saved_in_ = in;
  saved_ = save;
}

const float* Block::saved_activation(const std::string& name, int64_t* rows, int64_t* cols) const {
  *rows = ws_N_;
  *cols = 0;
  if (!saved_) return nullptr;
  const bool attn = cfg_.attn != AttnKind::NoOp, ffn = cfg_.ffn != FfnKind::NoOp;
  if (name == "attn_input" && attn) return *cols = cfg_.C, ln1_->f32();
  if (name == "x1") return *cols = cfg_.C, x1_->f32();
  if (name == "ffn_input" && ffn) return *cols = cfg_.C, ln2_->f32();
  if (name == "ffn_hidden" && cfg_.ffn == FfnKind::SwiGLU) return *cols = cfg_.F, h_->f32();
  return nullptr;
}

void Block::forward_cached(float* out, const float* x, const BlockInputs& in, float* k_cache, float* v_cache,
                           int64_t past, int64_t Tmax) {
  if (cfg_.attn != AttnKind::GQA) {
    forward(out, x, in, false);
    return;
  }
  const Ops& o = be_.ops;
  const int64_t B = in.B, T = in.T, N = B * T, C = cfg_.C, HS = cfg_.HS;
  const int64_t NH = cfg_.NH, NKV = cfg_.NKV, QKV = (NH + 2 * NKV) * HS;
  ensure_workspace(N, B, T);
  saved_ = false;
  float* qkv = qkv_->f32();
  float* x1 = x1_->f32();
  o.rmsnorm_forward(ln1_->f32(), rstd1_->f32(), x, p(attn_norm_), N, C, cfg_.eps);
  o.matmul_forward(qkv, ln1_->f32(), p(wq_), nullptr, N, C, QKV);
  o.rope_forward(qkv, qkv, in.cos, in.sin, in.pos, B, T, NH, HS, QKV);
  o.rope_forward(qkv + NH * HS, qkv + NH * HS, in.cos, in.sin, in.pos, B, T, NKV, HS, QKV);
  o.kv_cache_append(k_cache, v_cache, qkv, B, T, NH, NKV, HS, past, Tmax);
  o.attention_cached_forward(att_->f32(), qkv, k_cache, v_cache, B, T, NH, NKV, HS, QKV, past, Tmax);
  o.matmul_forward(x1, att_->f32(), p(wo_), nullptr, N, NH * HS, C);
  o.accumulate(x1, x, N * C);
  ffn_forward(out, x1, N);
}

// FFN subblock: out = x1 + FFN(RMSNorm(x1)); leaves ln2/gu/h in the workspace for backward.
void Block::ffn_forward(float* out, const float* x1, int64_t N) {
  const Ops& o = be_.ops;
  const int64_t C = cfg_.C;
  if (cfg_.ffn == FfnKind::NoOp) {
    be_.copy_device(out, x1, (size_t)N * C * sizeof(float));
    return;
  }
  o.rmsnorm_forward(ln2_->f32(), rstd2_->f32(), x1, p(ffn_norm_), N, C, cfg_.eps);
  if (cfg_.ffn == FfnKind::Linear) {
    o.matmul_forward(out, ln2_->f32(), p(wlin_ffn_), nullptr, N, C, C);
  } else {
    const int64_t F = cfg_.F;
    o.matmul_forward(gu_->f32(), ln2_->f32(), p(wgate_), nullptr, N, C, 2 * F);
    o.swiglu_forward(h_->f32(), gu_->f32(), N, F);
    o.matmul_forward(out, h_->f32(), p(wdown_), nullptr, N, F, C);
  }
  o.accumulate(out, x1, N * C);
}

// dinp = dout @ W (written), dweight += dout^T @ inp (accumulated; skipped when frozen).
void Block::linear_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                            int64_t N, int64_t C, int64_t OC) {
  be_.ops.gemm(false, false, N, C, OC, 1.f, dout, OC, weight, C, 0.f, dinp, C);
  if (dweight) be_.ops.matmul_backward(nullptr, dweight, nullptr, dout, inp, weight, N, C, OC);
}

void Block::backward(float* dx, const float* dout) {
  if (!saved_) throw std::logic_error("backward needs the activations of a preceding forward with save = true");
  const Ops& o = be_.ops;
  const int64_t B = saved_in_.B, T = saved_in_.T, N = B * T, C = cfg_.C, HS = cfg_.HS;
  const size_t row_bytes = (size_t)N * C * sizeof(float);
  const bool attn_needs_dx1 = cfg_.attn != AttnKind::NoOp || dx;

  // ---- FFN subblock: dx1 = dout + d(FFN(RMSNorm(x1)))/dx1
  float* dx1 = dx1_->f32();
  be_.copy_device(dx1, dout, row_bytes);
  if (cfg_.ffn != FfnKind::NoOp) {
    // Input gradients of the subblock's GEMMs are written (beta = 0), so no buffer needs zeroing.
    float* dln = dln_->f32();
    if (cfg_.ffn == FfnKind::Linear) {
      linear_backward(dln, g(wlin_ffn_), dout, ln2_->f32(), p(wlin_ffn_), N, C, C);
    } else {
      const int64_t F = cfg_.F;
      linear_backward(dh_->f32(), g(wdown_), dout, h_->f32(), p(wdown_), N, F, C);
      o.swiglu_backward(dgu_->f32(), dh_->f32(), gu_->f32(), N, F);
      // gate and up are adjacent in both the parameter and the gradient buffer
      float* dgate = g(wgate_);
      float* dup = g(wup_);
      if (dgate && dup) {
        linear_backward(dln, dgate, dgu_->f32(), ln2_->f32(), p(wgate_), N, C, 2 * F);
      } else {
        // one of the two frozen: split the GEMMs so the frozen one gets no gradient
        linear_backward(dln, nullptr, dgu_->f32(), ln2_->f32(), p(wgate_), N, C, 2 * F);
        if (dgate) o.gemm(true, false, F, C, N, 1.f, dgu_->f32(), 2 * F, ln2_->f32(), C, 1.f, dgate, C);
        if (dup) o.gemm(true, false, F, C, N, 1.f, dgu_->f32() + F, 2 * F, ln2_->f32(), C, 1.f, dup, C);
      }
    }
    o.rmsnorm_backward(attn_needs_dx1 ? dx1 : nullptr, g(ffn_norm_), dln, x1_->f32(), p(ffn_norm_), rstd2_->f32(), N,
                       C);
  }

  // ---- attention subblock: dx = dx1 + d(Attn(RMSNorm(x)))/dx
  if (cfg_.attn != AttnKind::NoOp) {
    float* dln = dln_->f32();
    if (cfg_.attn == AttnKind::Linear) {
      linear_backward(dln, g(wlin_attn_), dx1, ln1_->f32(), p(wlin_attn_), N, C, C);
    } else {
      const int64_t NH = cfg_.NH, NKV = cfg_.NKV, QKV = (NH + 2 * NKV) * HS;
      float* datt = datt_->f32();
      float* dqkv = dqkv_->f32();
      float* qkv = qkv_->f32();
      be_.memset_zero(dqkv, (size_t)N * QKV * sizeof(float));  // attention backward accumulates
      linear_backward(datt, g(wo_), dx1, att_->f32(), p(wo_), N, NH * HS, C);
      o.attention_backward(dqkv, dqkv + NH * HS, dqkv + (NH + NKV) * HS, datt, qkv, qkv + NH * HS,
                           qkv + (NH + NKV) * HS, att_->f32(), lse_->f32(), B, T, NH, NKV, HS, QKV, QKV);
      o.rope_backward(dqkv, dqkv, saved_in_.cos, saved_in_.sin, saved_in_.pos, B, T, NH, HS, QKV);
      o.rope_backward(dqkv + NH * HS, dqkv + NH * HS, saved_in_.cos, saved_in_.sin, saved_in_.pos, B, T, NKV, HS, QKV);
      float* dq = g(wq_);
      float* dk = g(wk_);
      float* dv = g(wv_);
      if (dq && dk && dv) {
        linear_backward(dln, dq, dqkv, ln1_->f32(), p(wq_), N, C, QKV);
      } else {
        linear_backward(dln, nullptr, dqkv, ln1_->f32(), p(wq_), N, C, QKV);
        const int64_t rows[3] = {NH * HS, NKV * HS, NKV * HS};
        const int64_t offs[3] = {0, NH * HS, (NH + NKV) * HS};
        float* grads[3] = {dq, dk, dv};
        for (int i = 0; i < 3; ++i)
          if (grads[i])
            o.gemm(true, false, rows[i], C, N, 1.f, dqkv + offs[i], QKV, ln1_->f32(), C, 1.f, grads[i], C);
      }
    }
    if (dx) {
      be_.copy_device(dx, dx1, row_bytes);
      o.rmsnorm_backward(dx, g(attn_norm_), dln, x_->f32(), p(attn_norm_), rstd1_->f32(), N, C);
    } else {
      o.rmsnorm_backward(nullptr, g(attn_norm_), dln, x_->f32(), p(attn_norm_), rstd1_->f32(), N, C);
    }
  } else if (dx) {
    be_.copy_device(dx, dx1, row_bytes);
  }
}

}  // namespace puzzle
