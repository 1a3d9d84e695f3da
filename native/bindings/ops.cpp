// One binding per op of the backend contract: check every argument, then run the kernel off
// the JS thread. Outputs are tensors the caller allocated; the TypeScript layer (ts/core/ops.ts)
// gives these a functional shape.
#include "common.h"

namespace puzzle::bindings {
namespace {

using R = std::vector<TensorRef>;
constexpr DType F = DType::F32, I = DType::I32;

// Runs an op's work on the backend its arguments live on, then waits for the device and reports
// a CUDA error as ERR_PUZZLE_CUDA naming the op.
Napi::Value run_on(const Args& a, std::vector<TensorRef> keep, std::function<void(const Backend&)> work,
                   std::function<Napi::Value(Napi::Env)> result = nullptr, double flops = 1e300) {
  const Backend* be = &a.backend();
  std::string fn = a.fn();
  return run_async(
      a.env(), std::move(keep),
      [be, fn, work = std::move(work)] {
        work(*be);
        device_done(*be, fn);
      },
      std::move(result), flops);
}

void check_ids(const TensorData& t, int64_t n, int64_t limit, const std::string& where, bool allow_ignore) {
  std::vector<int32_t> staged = device_of(t) == Device::CPU ? std::vector<int32_t>{} : host_i32(t, (size_t)n);
  const int32_t* ids = staged.empty() ? t.i32() : staged.data();
  for (int64_t i = 0; i < n; ++i) {
    int32_t id = ids[i];
    if ((id < 0 || id >= limit) && !(allow_ignore && id == -100))
      fail("ERR_PUZZLE_RANGE", where + "[" + std::to_string(i) + "] = " + std::to_string(id) + " is outside [0, " +
                                   std::to_string(limit) + ")" + (allow_ignore ? " (or -100 to ignore)" : ""));
  }
}

// embeddingForward(out[N,C], ids[N], table[V,C], N, C, V)
Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingForward");
  auto out = a.tensor(0, "out", F), ids = a.tensor(1, "ids", I), table = a.tensor(2, "table", F);
  int64_t N = a.dim(3, "N"), C = a.dim(4, "C"), V = a.dim(5, "V");
  a.numel(out, "out", N * C, "N*C"), a.numel(ids, "ids", N, "N"), a.numel(table, "table", V * C, "V*C");
  return run_on(
      a, {out, ids, table},
      [=](const Backend& be) {
        check_ids(*ids, N, V, "embeddingForward: ids", false);
        be.ops.embedding_forward(out->f32(), ids->i32(), table->f32(), N, C);
      },
      nullptr, (double)N * (double)C);
}

// embeddingBackward(dtable[V,C], dout[N,C], ids[N], N, C, V)
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingBackward");
  auto dtable = a.tensor(0, "dtable", F), dout = a.tensor(1, "dout", F), ids = a.tensor(2, "ids", I);
  int64_t N = a.dim(3, "N"), C = a.dim(4, "C"), V = a.dim(5, "V");
  a.numel(dtable, "dtable", V * C, "V*C"), a.numel(dout, "dout", N * C, "N*C"), a.numel(ids, "ids", N, "N");
  return run_on(a, {dtable, dout, ids}, [=](const Backend& be) {
    check_ids(*ids, N, V, "embeddingBackward: ids", false);
    be.ops.embedding_backward(dtable->f32(), dout->f32(), ids->i32(), N, C);
  });
}

// rmsnormForward(out[N,C], rstd[N], inp[N,C], weight[C], N, C, eps)
Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormForward");
  auto out = a.tensor(0, "out", F), rstd = a.tensor(1, "rstd", F), inp = a.tensor(2, "inp", F),
       w = a.tensor(3, "weight", F);
  int64_t N = a.dim(4, "N"), C = a.dim(5, "C");
  float eps = (float)a.number(6, "eps");
  a.numel(out, "out", N * C, "N*C"), a.numel(rstd, "rstd", N, "N"), a.numel(inp, "inp", N * C, "N*C"),
      a.numel(w, "weight", C, "C");
  return run_on(
      a, {out, rstd, inp, w}, [=](const Backend& be) { be.ops.rmsnorm_forward(out->f32(), rstd->f32(), inp->f32(), w->f32(), N, C, eps); },
      nullptr, 4.0 * (double)N * (double)C);
}

// rmsnormBackward(dinp|null, dweight|null, dout, inp, weight, rstd, N, C)
Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormBackward");
  auto dinp = a.tensor(0, "dinp", F, true), dw = a.tensor(1, "dweight", F, true), dout = a.tensor(2, "dout", F),
       inp = a.tensor(3, "inp", F), w = a.tensor(4, "weight", F), rstd = a.tensor(5, "rstd", F);
  int64_t N = a.dim(6, "N"), C = a.dim(7, "C");
  a.numel(dinp, "dinp", N * C, "N*C"), a.numel(dw, "dweight", C, "C"), a.numel(dout, "dout", N * C, "N*C"),
      a.numel(inp, "inp", N * C, "N*C"), a.numel(w, "weight", C, "C"), a.numel(rstd, "rstd", N, "N");
  return run_on(a, {dinp, dw, dout, inp, w, rstd}, [=](const Backend& be) {
    be.ops.rmsnorm_backward(dinp ? dinp->f32() : nullptr, dw ? dw->f32() : nullptr, dout->f32(), inp->f32(), w->f32(),
                           rstd->f32(), N, C);
  });
}

// matmulForward(out[N,OC], inp[N,C], weight[OC,C], bias[OC]|null, N, C, OC)
Napi::Value MatmulForward(const Napi::CallbackInfo& info) {
  Args a(info, "matmulForward");
  auto out = a.tensor(0, "out", F), inp = a.tensor(1, "inp", F), w = a.tensor(2, "weight", F),
       bias = a.tensor(3, "bias", F, true);
  int64_t N = a.dim(4, "N"), C = a.dim(5, "C"), OC = a.dim(6, "OC");
  a.numel(out, "out", N * OC, "N*OC"), a.numel(inp, "inp", N * C, "N*C"), a.numel(w, "weight", OC * C, "OC*C"),
      a.numel(bias, "bias", OC, "OC");
  return run_on(
      a, {out, inp, w, bias},
      [=](const Backend& be) { be.ops.matmul_forward(out->f32(), inp->f32(), w->f32(), bias ? bias->f32() : nullptr, N, C, OC); }, nullptr,
      2.0 * (double)N * (double)C * (double)OC);
}

// matmulBackward(dinp|null, dweight|null, dbias|null, dout, inp, weight, N, C, OC)
Napi::Value MatmulBackward(const Napi::CallbackInfo& info) {
  Args a(info, "matmulBackward");
  auto dinp = a.tensor(0, "dinp", F, true), dw = a.tensor(1, "dweight", F, true), db = a.tensor(2, "dbias", F, true),
       dout = a.tensor(3, "dout", F), inp = a.tensor(4, "inp", F), w = a.tensor(5, "weight", F);
  int64_t N = a.dim(6, "N"), C = a.dim(7, "C"), OC = a.dim(8, "OC");
  a.numel(dinp, "dinp", N * C, "N*C"), a.numel(dw, "dweight", OC * C, "OC*C"), a.numel(db, "dbias", OC, "OC"),
      a.numel(dout, "dout", N * OC, "N*OC"), a.numel(inp, "inp", N * C, "N*C"), a.numel(w, "weight", OC * C, "OC*C");
  return run_on(a, {dinp, dw, db, dout, inp, w}, [=](const Backend& be) {
    be.ops.matmul_backward(dinp ? dinp->f32() : nullptr, dw ? dw->f32() : nullptr, db ? db->f32() : nullptr,
                          dout->f32(), inp->f32(), w->f32(), N, C, OC);
  });
}

// rope{Forward,Backward}(out[B,T,NH,HS], inp[B,T,NH,HS], cos[P,HS/2], sin[P,HS/2], pos[T]|null, B, T, NH, HS)
Napi::Value Rope(const Napi::CallbackInfo& info, bool backward) {
  Args a(info, backward ? "ropeBackward" : "ropeForward");
  auto out = a.tensor(0, "out", F), inp = a.tensor(1, "inp", F), cos = a.tensor(2, "cos", F),
       sin = a.tensor(3, "sin", F), pos = a.tensor(4, "pos", I, true);
  int64_t B = a.dim(5, "B"), T = a.dim(6, "T"), NH = a.dim(7, "NH"), HS = a.dim(8, "HS", 2);
  if (HS % 2) a.bad("ERR_PUZZLE_ARG", "argument 'HS' must be even, got " + std::to_string(HS));
  a.numel(out, "out", B * T * NH * HS, "B*T*NH*HS"), a.numel(inp, "inp", B * T * NH * HS, "B*T*NH*HS");
  int64_t half = HS / 2, P = (int64_t)cos->numel() / half;
  a.numel(cos, "cos", P * half, "P*HS/2"), a.numel(sin, "sin", P * half, "P*HS/2");
  a.numel(pos, "pos", T, "T");
  if (!pos && P < T) a.bad("ERR_PUZZLE_SHAPE", "the cos/sin tables hold " + std::to_string(P) +
                                                   " positions but T = " + std::to_string(T));
  std::string fn = a.fn();
  return run_on(a, {out, inp, cos, sin, pos}, [=](const Backend& be) {
    if (pos) check_ids(*pos, T, P, fn + ": pos", false);
    auto f = backward ? be.ops.rope_backward : be.ops.rope_forward;
    f(out->f32(), inp->f32(), cos->f32(), sin->f32(), pos ? pos->i32() : nullptr, B, T, NH, HS, NH * HS);
  });
}
Napi::Value RopeForward(const Napi::CallbackInfo& info) { return Rope(info, false); }
Napi::Value RopeBackward(const Napi::CallbackInfo& info) { return Rope(info, true); }

struct AttnDims {
  int64_t B, T, NH, NKV, HS;
};
AttnDims attn_dims(const Args& a, size_t i) {
  AttnDims d{a.dim(i, "B"), a.dim(i + 1, "T"), a.dim(i + 2, "NH"), a.dim(i + 3, "NKV"), a.dim(i + 4, "HS")};
  if (d.NH % d.NKV)
    a.bad("ERR_PUZZLE_ARG", "NKV = " + std::to_string(d.NKV) + " must divide NH = " + std::to_string(d.NH));
  return d;
}

// attentionForward(out[B,T,NH,HS], lse[B,NH,T], q[B,T,NH,HS], k[B,T,NKV,HS], v, B, T, NH, NKV, HS)
Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionForward");
  auto out = a.tensor(0, "out", F), lse = a.tensor(1, "lse", F), q = a.tensor(2, "q", F), k = a.tensor(3, "k", F),
       v = a.tensor(4, "v", F);
  AttnDims d = attn_dims(a, 5);
  int64_t nq = d.B * d.T * d.NH * d.HS, nkv = d.B * d.T * d.NKV * d.HS;
  a.numel(out, "out", nq, "B*T*NH*HS"), a.numel(lse, "lse", d.B * d.NH * d.T, "B*NH*T"),
      a.numel(q, "q", nq, "B*T*NH*HS"), a.numel(k, "k", nkv, "B*T*NKV*HS"), a.numel(v, "v", nkv, "B*T*NKV*HS");
  return run_on(a, {out, lse, q, k, v}, [=](const Backend& be) {
    be.ops.attention_forward(out->f32(), lse->f32(), q->f32(), k->f32(), v->f32(), d.B, d.T, d.NH, d.NKV, d.HS,
                            d.NH * d.HS, d.NKV * d.HS);
  });
}

// attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, HS); dq/dk/dv accumulate
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionBackward");
  auto dq = a.tensor(0, "dq", F), dk = a.tensor(1, "dk", F), dv = a.tensor(2, "dv", F), dout = a.tensor(3, "dout", F),
       q = a.tensor(4, "q", F), k = a.tensor(5, "k", F), v = a.tensor(6, "v", F), out = a.tensor(7, "out", F),
       lse = a.tensor(8, "lse", F);
  AttnDims d = attn_dims(a, 9);
  int64_t nq = d.B * d.T * d.NH * d.HS, nkv = d.B * d.T * d.NKV * d.HS;
  a.numel(dq, "dq", nq, "B*T*NH*HS"), a.numel(dk, "dk", nkv, "B*T*NKV*HS"), a.numel(dv, "dv", nkv, "B*T*NKV*HS"),
      a.numel(dout, "dout", nq, "B*T*NH*HS"), a.numel(q, "q", nq, "B*T*NH*HS"), a.numel(k, "k", nkv, "B*T*NKV*HS"),
      a.numel(v, "v", nkv, "B*T*NKV*HS"), a.numel(out, "out", nq, "B*T*NH*HS"),
      a.numel(lse, "lse", d.B * d.NH * d.T, "B*NH*T");
  return run_on(a, {dq, dk, dv, dout, q, k, v, out, lse}, [=](const Backend& be) {
    be.ops.attention_backward(dq->f32(), dk->f32(), dv->f32(), dout->f32(), q->f32(), k->f32(), v->f32(), out->f32(),
                             lse->f32(), d.B, d.T, d.NH, d.NKV, d.HS, d.NH * d.HS, d.NKV * d.HS);
  });
}

// swigluForward(out[N,F], gu[N,2F], N, F)
Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluForward");
  auto out = a.tensor(0, "out", F), gu = a.tensor(1, "gu", F);
  int64_t N = a.dim(2, "N"), Fw = a.dim(3, "F");
  a.numel(out, "out", N * Fw, "N*F"), a.numel(gu, "gu", N * 2 * Fw, "N*2F");
  return run_on(a, {out, gu}, [=](const Backend& be) { be.ops.swiglu_forward(out->f32(), gu->f32(), N, Fw); });
}

// swigluBackward(dgu[N,2F], dout[N,F], gu[N,2F], N, F)
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluBackward");
  auto dgu = a.tensor(0, "dgu", F), dout = a.tensor(1, "dout", F), gu = a.tensor(2, "gu", F);
  int64_t N = a.dim(3, "N"), Fw = a.dim(4, "F");
  a.numel(dgu, "dgu", N * 2 * Fw, "N*2F"), a.numel(dout, "dout", N * Fw, "N*F"), a.numel(gu, "gu", N * 2 * Fw, "N*2F");
  return run_on(a, {dgu, dout, gu},
                   [=](const Backend& be) { be.ops.swiglu_backward(dgu->f32(), dout->f32(), gu->f32(), N, Fw); });
}

// add(out, a, b, n)
Napi::Value Add(const Napi::CallbackInfo& info) {
  Args a(info, "add");
  auto out = a.tensor(0, "out", F), x = a.tensor(1, "a", F), y = a.tensor(2, "b", F);
  int64_t n = a.dim(3, "n");
  a.numel(out, "out", n, "n"), a.numel(x, "a", n, "n"), a.numel(y, "b", n, "n");
  return run_on(a, {out, x, y}, [=](const Backend& be) { be.ops.add_forward(out->f32(), x->f32(), y->f32(), n); });
}

// accumulate(out, a, n): out += a
Napi::Value Accumulate(const Napi::CallbackInfo& info) {
  Args a(info, "accumulate");
  auto out = a.tensor(0, "out", F), x = a.tensor(1, "a", F);
  int64_t n = a.dim(2, "n");
  a.numel(out, "out", n, "n"), a.numel(x, "a", n, "n");
  return run_on(a, {out, x}, [=](const Backend& be) { be.ops.accumulate(out->f32(), x->f32(), n); });
}

// cast(out, inp, n): float32 -> bfloat16 (rounded to nearest even) or bfloat16 -> float32 (exact),
// on the device both live on: the residual stream of a bf16 model enters and leaves its blocks so
constexpr DType B16 = DType::BF16;
Napi::Value Cast(const Napi::CallbackInfo& info) {
  Args a(info, "cast");
  // the direction is the input's dtype (anything else fails in a.tensor, by name)
  const TensorData* peek = info.Length() > 1 && Tensor::Is(info[1]) ? Tensor::Unwrap(info[1].As<Napi::Object>())->data().get() : nullptr;
  const bool down = !peek || peek->dtype != B16;
  auto out = a.tensor(0, "out", down ? B16 : F), inp = a.tensor(1, "inp", down ? F : B16);
  int64_t n = a.dim(2, "n");
  a.numel(out, "out", n, "n"), a.numel(inp, "inp", n, "n");
  return run_on(a, {out, inp}, [=](const Backend& be) {
    if (down) be.ops_bf16.to_bf16(static_cast<bf16*>(out->ptr()), inp->f32(), n);
    else be.ops_bf16.to_f32(out->f32(), static_cast<const bf16*>(inp->ptr()), n);
  });
}

// crossEntropyForward(losses[N], lse[N], logits[N,V], targets[N], N, V)
Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info) {
  Args a(info, "crossEntropyForward");
  auto losses = a.tensor(0, "losses", F), lse = a.tensor(1, "lse", F), logits = a.tensor(2, "logits", F),
       targets = a.tensor(3, "targets", I);
  int64_t N = a.dim(4, "N"), V = a.dim(5, "V");
  a.numel(losses, "losses", N, "N"), a.numel(lse, "lse", N, "N"), a.numel(logits, "logits", N * V, "N*V"),
      a.numel(targets, "targets", N, "N");
  return run_on(a, {losses, lse, logits, targets}, [=](const Backend& be) {
    check_ids(*targets, N, V, "crossEntropyForward: targets", true);
    check_finite(*logits, N * V, "crossEntropyForward: logits");
    be.ops.cross_entropy_forward(losses->f32(), lse->f32(), logits->f32(), targets->i32(), N, V);
  });
}

// crossEntropyBackward(dlogits, logits, lse, targets, N, V, scale)
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Args a(info, "crossEntropyBackward");
  auto dlogits = a.tensor(0, "dlogits", F), logits = a.tensor(1, "logits", F), lse = a.tensor(2, "lse", F),
       targets = a.tensor(3, "targets", I);
  int64_t N = a.dim(4, "N"), V = a.dim(5, "V");
  float scale = (float)a.number(6, "scale");
  a.numel(dlogits, "dlogits", N * V, "N*V"), a.numel(logits, "logits", N * V, "N*V"), a.numel(lse, "lse", N, "N"),
      a.numel(targets, "targets", N, "N");
  return run_on(a, {dlogits, logits, lse, targets}, [=](const Backend& be) {
    check_ids(*targets, N, V, "crossEntropyBackward: targets", true);
    be.ops.cross_entropy_backward(dlogits->f32(), logits->f32(), lse->f32(), targets->i32(), N, V, scale);
  });
}

// klForward(losses[N], teacher[N,V], student[N,V], N, V)
Napi::Value KlForward(const Napi::CallbackInfo& info) {
  Args a(info, "klForward");
  auto losses = a.tensor(0, "losses", F), t = a.tensor(1, "teacher", F), s = a.tensor(2, "student", F);
  int64_t N = a.dim(3, "N"), V = a.dim(4, "V");
  a.numel(losses, "losses", N, "N"), a.numel(t, "teacher", N * V, "N*V"), a.numel(s, "student", N * V, "N*V");
  return run_on(a, {losses, t, s}, [=](const Backend& be) {
    check_finite(*t, N * V, "klForward: teacher");
    check_finite(*s, N * V, "klForward: student");
    be.ops.kl_forward(losses->f32(), t->f32(), s->f32(), N, V);
  });
}

// klBackward(dstudent, teacher, student, N, V, scale)
Napi::Value KlBackward(const Napi::CallbackInfo& info) {
  Args a(info, "klBackward");
  auto ds = a.tensor(0, "dstudent", F), t = a.tensor(1, "teacher", F), s = a.tensor(2, "student", F);
  int64_t N = a.dim(3, "N"), V = a.dim(4, "V");
  float scale = (float)a.number(5, "scale");
  a.numel(ds, "dstudent", N * V, "N*V"), a.numel(t, "teacher", N * V, "N*V"), a.numel(s, "student", N * V, "N*V");
  return run_on(a, {ds, t, s},
                   [=](const Backend& be) { be.ops.kl_backward(ds->f32(), t->f32(), s->f32(), N, V, scale); });
}

// cosineForward(losses[N], x[N,C], y[N,C], N, C)
Napi::Value CosineForward(const Napi::CallbackInfo& info) {
  Args a(info, "cosineForward");
  auto losses = a.tensor(0, "losses", F), x = a.tensor(1, "x", F), y = a.tensor(2, "y", F);
  int64_t N = a.dim(3, "N"), C = a.dim(4, "C");
  a.numel(losses, "losses", N, "N"), a.numel(x, "x", N * C, "N*C"), a.numel(y, "y", N * C, "N*C");
  return run_on(a, {losses, x, y}, [=](const Backend& be) {
    check_finite(*x, N * C, "cosineForward: x");
    check_finite(*y, N * C, "cosineForward: y");
    be.ops.cosine_forward(losses->f32(), x->f32(), y->f32(), N, C);
  });
}

// cosineBackward(dx, x, y, N, C, scale)
Napi::Value CosineBackward(const Napi::CallbackInfo& info) {
  Args a(info, "cosineBackward");
  auto dx = a.tensor(0, "dx", F), x = a.tensor(1, "x", F), y = a.tensor(2, "y", F);
  int64_t N = a.dim(3, "N"), C = a.dim(4, "C");
  float scale = (float)a.number(5, "scale");
  a.numel(dx, "dx", N * C, "N*C"), a.numel(x, "x", N * C, "N*C"), a.numel(y, "y", N * C, "N*C");
  return run_on(a, {dx, x, y}, [=](const Backend& be) { be.ops.cosine_backward(dx->f32(), x->f32(), y->f32(), N, C, scale); });
}

// nmseForward(x, y, n) -> Promise<number>
Napi::Value NmseForward(const Napi::CallbackInfo& info) {
  Args a(info, "nmseForward");
  auto x = a.tensor(0, "x", F), y = a.tensor(1, "y", F);
  int64_t n = a.dim(2, "n");
  a.numel(x, "x", n, "n"), a.numel(y, "y", n, "n");
  auto result = std::make_shared<double>(0);
  return run_on(
      a, {x, y},
      [=](const Backend& be) {
        check_finite(*x, n, "nmseForward: x");
        check_finite(*y, n, "nmseForward: y");
        *result = be.ops.nmse_forward(x->f32(), y->f32(), n);
      },
      [=](Napi::Env env) { return Napi::Number::New(env, *result); });
}

// nmseBackward(dx, x, y, n, scale)
Napi::Value NmseBackward(const Napi::CallbackInfo& info) {
  Args a(info, "nmseBackward");
  auto dx = a.tensor(0, "dx", F), x = a.tensor(1, "x", F), y = a.tensor(2, "y", F);
  int64_t n = a.dim(3, "n");
  float scale = (float)a.number(4, "scale");
  a.numel(dx, "dx", n, "n"), a.numel(x, "x", n, "n"), a.numel(y, "y", n, "n");
  return run_on(a, {dx, x, y}, [=](const Backend& be) { be.ops.nmse_backward(dx->f32(), x->f32(), y->f32(), n, scale); });
}

// sumSquares(x, n) -> Promise<number>
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Args a(info, "sumSquares");
  auto x = a.tensor(0, "x", F);
  int64_t n = a.dim(1, "n");
  a.numel(x, "x", n, "n");
  auto result = std::make_shared<double>(0);
  return run_on(
      a, {x}, [=](const Backend& be) { *result = be.ops.sum_squares(x->f32(), n); },
      [=](Napi::Env env) { return Napi::Number::New(env, *result); });
}

// adamwUpdate(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, gradScale, t)
Napi::Value AdamwUpdate(const Napi::CallbackInfo& info) {
  Args a(info, "adamwUpdate");
  auto p = a.tensor(0, "param", F), g = a.tensor(1, "grad", F), m = a.tensor(2, "m", F), v = a.tensor(3, "v", F);
  int64_t n = a.dim(4, "n");
  float lr = (float)a.number(5, "lr"), b1 = (float)a.number(6, "beta1"), b2 = (float)a.number(7, "beta2"),
        eps = (float)a.number(8, "eps"), wd = (float)a.number(9, "weightDecay"),
        gs = (float)a.number(10, "gradScale");
  int64_t t = a.dim(11, "t");
  a.numel(p, "param", n, "n"), a.numel(g, "grad", n, "n"), a.numel(m, "m", n, "n"), a.numel(v, "v", n, "n");
  return run_on(a, {p, g, m, v}, [=](const Backend& be) {
    be.ops.adamw_update(p->f32(), g->f32(), m->f32(), v->f32(), n, lr, b1, b2, eps, wd, gs, t);
  });
}

}  // namespace

void InitOps(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("embeddingForward", Napi::Function::New(env, EmbeddingForward));
  o.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward));
  o.Set("rmsnormForward", Napi::Function::New(env, RmsnormForward));
  o.Set("rmsnormBackward", Napi::Function::New(env, RmsnormBackward));
  o.Set("matmulForward", Napi::Function::New(env, MatmulForward));
  o.Set("matmulBackward", Napi::Function::New(env, MatmulBackward));
  o.Set("ropeForward", Napi::Function::New(env, RopeForward));
  o.Set("ropeBackward", Napi::Function::New(env, RopeBackward));
  o.Set("attentionForward", Napi::Function::New(env, AttentionForward));
  o.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
  o.Set("swigluForward", Napi::Function::New(env, SwigluForward));
  o.Set("swigluBackward", Napi::Function::New(env, SwigluBackward));
  o.Set("add", Napi::Function::New(env, Add));
  o.Set("cast", Napi::Function::New(env, Cast));
  o.Set("accumulate", Napi::Function::New(env, Accumulate));
  o.Set("crossEntropyForward", Napi::Function::New(env, CrossEntropyForward));
  o.Set("crossEntropyBackward", Napi::Function::New(env, CrossEntropyBackward));
  o.Set("klForward", Napi::Function::New(env, KlForward));
  o.Set("klBackward", Napi::Function::New(env, KlBackward));
  o.Set("cosineForward", Napi::Function::New(env, CosineForward));
  o.Set("cosineBackward", Napi::Function::New(env, CosineBackward));
  o.Set("nmseForward", Napi::Function::New(env, NmseForward));
  o.Set("nmseBackward", Napi::Function::New(env, NmseBackward));
  o.Set("sumSquares", Napi::Function::New(env, SumSquares));
  o.Set("adamwUpdate", Napi::Function::New(env, AdamwUpdate));
  exports.Set("ops", o);
}

}  // namespace puzzle::bindings
