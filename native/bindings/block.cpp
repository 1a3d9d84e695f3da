// The Block class: one decoder layer of any DeciLM variant, its parameters and gradients as
// Tensor views, forward/backward returning Promises.
#include "puzzle/block.h"

#include "common.h"

namespace puzzle::bindings {
namespace {

// Forward inputs for the kernels; positions (GQA blocks only) must index the RoPE tables' P rows.
// Runs on the worker thread, so it fails with a Failure, not a JS exception.
BlockInputs block_inputs(const char* fn, int64_t B, int64_t T, const TensorRef& cos, const TensorRef& sin,
                         const TensorRef& pos, int64_t P) {
  if (pos) {
    std::vector<int32_t> p = host_i32(*pos, (size_t)T);  // T ints, wherever pos lives
    for (int64_t t = 0; t < T; ++t)
      if (p[t] < 0 || p[t] >= P)
        fail("ERR_PUZZLE_RANGE", std::string(fn) + ": pos[" + std::to_string(t) + "] is outside the RoPE tables");
  }
  BlockInputs in;
  in.B = B, in.T = T;
  in.cos = cos ? cos->f32() : nullptr;
  in.sin = sin ? sin->f32() : nullptr;
  in.pos = pos ? pos->i32() : nullptr;
  return in;
}

class BlockWrap : public Napi::ObjectWrap<BlockWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(env, "Block",
                                   {
                                       InstanceMethod<&BlockWrap::Params>("params"),
                                       InstanceMethod<&BlockWrap::Param>("param"),
                                       InstanceMethod<&BlockWrap::Grad>("grad"),
                                       InstanceMethod<&BlockWrap::ParamBuffer>("paramBuffer"),
                                       InstanceMethod<&BlockWrap::GradBuffer>("gradBuffer"),
                                       InstanceMethod<&BlockWrap::SetTrainable>("setTrainable"),
                                       InstanceMethod<&BlockWrap::ZeroGrad>("zeroGrad"),
                                       InstanceMethod<&BlockWrap::Forward>("forward"),
                                       InstanceMethod<&BlockWrap::Backward>("backward"),
                                       InstanceMethod<&BlockWrap::ForwardCached>("forwardCached"),
                                       StaticMethod<&BlockWrap::ForwardCachedStack>("forwardCachedStack"),
                                       InstanceMethod<&BlockWrap::SavedActivation>("savedActivation"),
                                       InstanceMethod<&BlockWrap::DropMasterWeights>("dropMasterWeights"),
                                       InstanceMethod<&BlockWrap::Dispose>("dispose"),
                                       InstanceAccessor<&BlockWrap::NumParams>("numParams"),
                                       InstanceAccessor<&BlockWrap::DTypeName>("dtype"),
                                       InstanceAccessor<&BlockWrap::DeviceName>("device"),
                                   });
    exports.Set("Block", f);
  }

  // new Block({hidden, heads, headDim, attention: 'gqa'|'linear'|'noop', kvHeads,
  //            ffn: 'swiglu'|'linear'|'noop', ffnWidth, eps, dtype: 'float32'|'bfloat16',
  //            device: 'cpu'|'cuda'})
  // A bfloat16 block takes and returns bfloat16 activations (and KV caches); its parameters and
  // gradients stay float32 (see puzzle/block.h). A cuda block keeps its parameters, gradients
  // and workspace on the GPU and takes and returns tensors that live there (tensor.to('cuda')).
  explicit BlockWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BlockWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw make_error(env, "ERR_PUZZLE_ARG", "Block: argument 'config' must be an object");
    Napi::Object c = info[0].As<Napi::Object>();
    auto num = [&](const char* key, bool required, double def = 0) -> double {
      Napi::Value v = c.Get(key);
      if (v.IsUndefined() && !required) return def;
      if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() <= 0)
        throw make_error(env, "ERR_PUZZLE_ARG", std::string("Block: config.") + key + " must be a positive number");
      return v.As<Napi::Number>().DoubleValue();
    };
    auto str = [&](const char* key) {
      Napi::Value v = c.Get(key);
      if (!v.IsString()) throw make_error(env, "ERR_PUZZLE_ARG", std::string("Block: config.") + key + " must be a string");
      return v.As<Napi::String>().Utf8Value();
    };
    BlockConfig cfg;
    cfg.C = (int64_t)num("hidden", true);
    cfg.eps = (float)num("eps", false, 1e-5);
    std::string attn = str("attention"), ffn = str("ffn");
    if (attn == "gqa") {
      cfg.attn = AttnKind::GQA;
      cfg.NH = (int64_t)num("heads", true);
      cfg.HS = (int64_t)num("headDim", true);
      cfg.NKV = (int64_t)num("kvHeads", true);
      if (cfg.NH % cfg.NKV)
        throw make_error(env, "ERR_PUZZLE_ARG",
                         "Block: config.kvHeads = " + std::to_string(cfg.NKV) + " must divide config.heads = " +
                             std::to_string(cfg.NH));
      if (cfg.HS % 2) throw make_error(env, "ERR_PUZZLE_ARG", "Block: config.headDim must be even (RoPE)");
    } else if (attn == "linear") {
      cfg.attn = AttnKind::Linear;
    } else if (attn == "noop") {
      cfg.attn = AttnKind::NoOp;
    } else {
      throw make_error(env, "ERR_PUZZLE_ARG",
                       "Block: config.attention must be 'gqa', 'linear' or 'noop', got '" + attn + "'");
    }
    if (ffn == "swiglu") {
      cfg.ffn = FfnKind::SwiGLU;
      cfg.F = (int64_t)num("ffnWidth", true);
    } else if (ffn == "linear") {
      cfg.ffn = FfnKind::Linear;
    } else if (ffn == "noop") {
      cfg.ffn = FfnKind::NoOp;
    } else {
      throw make_error(env, "ERR_PUZZLE_ARG", "Block: config.ffn must be 'swiglu', 'linear' or 'noop', got '" + ffn + "'");
    }
    DType dtype = DType::F32;
    if (!c.Get("dtype").IsUndefined()) {
      std::string d = c.Get("dtype").IsString() ? c.Get("dtype").As<Napi::String>().Utf8Value() : "";
      if (d == "bfloat16")
        dtype = DType::BF16;
      else if (d != "float32")
        throw make_error(env, "ERR_PUZZLE_ARG", "Block: config.dtype must be 'float32' or 'bfloat16', got '" + d + "'");
    }
    const Device device = read_device(c.Get("device"), "Block", "config.device");
    const Backend& be = backend_of(env, device, "Block");
    try {
      block_ = std::make_shared<Block>(be, cfg, dtype);
    } catch (const std::bad_alloc&) {
      throw make_error(env, "ERR_PUZZLE_OOM",
                       std::string("Block: cannot allocate the parameters on ") + device_name(device));
    }
    device_done(env, be, "Block");
  }

 private:
  Block& block(const Napi::Env& env, const char* fn) {
    if (!block_) throw make_error(env, "ERR_PUZZLE_DISPOSED", std::string("Block.") + fn + ": the block was disposed");
    return *block_;
  }

  // What a cached forward of block b over x[B*T, hidden] needs of its arguments (kname, vname:
  // the caches' names in the messages); the cache length Tmax and the RoPE tables' rows P.
  struct CachedShape {
    int64_t Tmax = 0, P = 0;
  };
  static CachedShape check_cached(const Args& a, const Block& b, const TensorRef& x, int64_t B, int64_t T,
                                  const TensorRef& cos, const TensorRef& sin, const TensorRef& pos, const TensorRef& kc,
                                  const TensorRef& vc, const std::string& kname, const std::string& vname, int64_t past) {
    const BlockConfig& cfg = b.config();
    a.numel(x, "x", B * T * cfg.C, "B*T*hidden");
    CachedShape cs;
    if (cfg.attn != AttnKind::GQA) return cs;
    int64_t row = cfg.NKV * cfg.HS;
    if (kc->numel() % (size_t)(B * row))
      a.bad("ERR_PUZZLE_SHAPE", "argument '" + kname + "' has shape " + shape_str(kc->shape) + ", expected [B, Tmax, " +
                                    std::to_string(cfg.NKV) + ", " + std::to_string(cfg.HS) + "]");
    cs.Tmax = (int64_t)kc->numel() / (B * row);
    a.numel(vc, vname.c_str(), B * cs.Tmax * row, "B*Tmax*NKV*HS");
    if (past + T > cs.Tmax)
      a.bad("ERR_PUZZLE_RANGE", "past + T = " + std::to_string(past + T) + " exceeds the cache length " +
                                    std::to_string(cs.Tmax) + " of '" + kname + "'");
    int64_t half = cfg.HS / 2;
    cs.P = (int64_t)cos->numel() / half;
    a.numel(cos, "cos", cs.P * half, "P*headDim/2"), a.numel(sin, "sin", cs.P * half, "P*headDim/2");
    a.numel(pos, "pos", T, "T");
    return cs;
  }
  static double cached_flops(const Block& b, int64_t B, int64_t T, int64_t past) {
    const BlockConfig& cfg = b.config();
    return 2.0 * (double)(B * T) * ((double)b.num_params() + (double)(past + T) * (double)(cfg.NH * cfg.HS));
  }
  // One block's cached forward on the worker thread (out may be x)
  static void run_cached(Block& blk, const TensorRef& out, const TensorRef& x, const BlockInputs& in,
                         const TensorRef& kc, const TensorRef& vc, int64_t past, int64_t Tmax) {
    std::lock_guard<std::mutex> lk(blk.mutex());
    if (blk.dtype() == DType::BF16) {
      if (blk.has_master_weights()) blk.weights_changed();  // JS may have written the fp32 parameters
      auto h = [](const TensorRef& t) { return t ? static_cast<bf16*>(t->ptr()) : nullptr; };
      blk.forward_cached(h(out), h(x), in, h(kc), h(vc), past, Tmax);
    } else {
      auto f = [](const TensorRef& t) { return t ? t->f32() : nullptr; };
      blk.forward_cached(out->f32(), x->f32(), in, f(kc), f(vc), past, Tmax);
    }
  }

  const ParamInfo& info_of(const Napi::CallbackInfo& info, const char* fn) {
    Block& b = block(info.Env(), fn);
    std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    const ParamInfo* p = b.find(name);
    if (!p) {
      std::string names;
      for (auto& q : b.params()) names += (names.empty() ? "" : ", ") + q.name;
      throw make_error(info.Env(), "ERR_PUZZLE_ARG",
                       std::string("Block.") + fn + ": no parameter '" + name + "' (this block has: " +
                           (names.empty() ? "none" : names) + ")");
    }
    return *p;
  }

  Napi::Value view(Napi::Env env, const BufferPtr& buf, const ParamInfo& p) {
    auto t = std::make_shared<TensorData>();
    t->buf = buf;
    t->offset = p.offset;
    t->shape = p.shape;
    return Tensor::Wrap(env, t);
  }

  Napi::Value flat(Napi::Env env, const BufferPtr& buf) {
    auto t = std::make_shared<TensorData>();
    t->buf = buf;
    t->shape = {(int64_t)block_->num_params()};
    return Tensor::Wrap(env, t);
  }

  Napi::Value Params(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Block& b = block(env, "params");
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    for (auto& p : b.params()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", p.name);
      Napi::Array shape = Napi::Array::New(env);
      for (uint32_t d = 0; d < p.shape.size(); ++d) shape.Set(d, Napi::Number::New(env, (double)p.shape[d]));
      o.Set("shape", shape);
      o.Set("offset", Napi::Number::New(env, (double)p.offset));
      o.Set("numel", Napi::Number::New(env, (double)p.numel));
      o.Set("trainable", Napi::Boolean::New(env, b.trainable(p.name)));
      out.Set(i++, o);
    }
    return out;
  }

  // The fp32 parameters, unless dropMasterWeights() freed them.
  const BufferPtr& master(const Napi::CallbackInfo& info, const char* fn) {
    Block& b = block(info.Env(), fn);
    if (!b.has_master_weights())
      throw make_error(info.Env(), "ERR_PUZZLE_STATE",
                       std::string("Block.") + fn + ": the float32 parameters were dropped (dropMasterWeights: inference only)");
    return b.param_buffer();
  }
  Napi::Value Param(const Napi::CallbackInfo& info) {
    const ParamInfo& p = info_of(info, "param");
    return view(info.Env(), master(info, "param"), p);
  }
  Napi::Value Grad(const Napi::CallbackInfo& info) {
    const ParamInfo& p = info_of(info, "grad");
    return view(info.Env(), block_->grad_buffer(), p);
  }
  Napi::Value ParamBuffer(const Napi::CallbackInfo& info) { return flat(info.Env(), master(info, "paramBuffer")); }
  // dropMasterWeights(): a bfloat16 block keeps only its bf16 copy of the weights (inference).
  Napi::Value DropMasterWeights(const Napi::CallbackInfo& info) {
    Block& b = block(info.Env(), "dropMasterWeights");
    if (b.dtype() != DType::BF16)
      throw make_error(info.Env(), "ERR_PUZZLE_DTYPE", "Block.dropMasterWeights: only a bfloat16 block has a copy to serve from");
    std::lock_guard<std::mutex> lk(b.mutex());
    b.drop_master_weights();
    return info.Env().Undefined();
  }
  Napi::Value GradBuffer(const Napi::CallbackInfo& info) {
    return flat(info.Env(), block(info.Env(), "gradBuffer").grad_buffer());
  }
  Napi::Value SetTrainable(const Napi::CallbackInfo& info) {
    const ParamInfo& p = info_of(info, "setTrainable");
    if (!info[1].IsBoolean())
      throw make_error(info.Env(), "ERR_PUZZLE_ARG", "Block.setTrainable: argument 'trainable' must be a boolean");
    block_->set_trainable(p.name, info[1].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  }
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    Block& b = block(info.Env(), "zeroGrad");
    std::lock_guard<std::mutex> lk(b.mutex());
    b.zero_grad();
    return info.Env().Undefined();
  }
  Napi::Value DTypeName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), dtype_name(block(info.Env(), "dtype").dtype()));
  }
  Napi::Value DeviceName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), device_name(device_of(block(info.Env(), "device").backend())));
  }
  Napi::Value NumParams(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), (double)block(info.Env(), "numParams").num_params());
  }

  // forward(x[B,T,C], B, T, cos[P,HS/2]|null, sin|null, pos[T]|null, save) -> Promise<Tensor out[B,T,C]>
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Block& b = block(env, "forward");
    Args a(info, "Block.forward");
    a.expect_device(device_of(b.backend()), "the block");
    const BlockConfig& cfg = b.config();
    const DType dt = b.dtype();
    auto x = a.tensor(0, "x", dt);
    int64_t B = a.dim(1, "B"), T = a.dim(2, "T");
    bool gqa = cfg.attn == AttnKind::GQA;
    auto cos = a.tensor(3, "cos", DType::F32, !gqa), sin = a.tensor(4, "sin", DType::F32, !gqa);
    auto pos = a.tensor(5, "pos", DType::I32, true);
    bool save = a.flag(6, "save");
    a.numel(x, "x", B * T * cfg.C, "B*T*hidden");
    int64_t P = 0;
    if (gqa) {
      int64_t half = cfg.HS / 2;
      P = (int64_t)cos->numel() / half;
      a.numel(cos, "cos", P * half, "P*headDim/2"), a.numel(sin, "sin", P * half, "P*headDim/2");
      a.numel(pos, "pos", T, "T");
      if (!pos && P < T)
        a.bad("ERR_PUZZLE_SHAPE", "the cos/sin tables hold " + std::to_string(P) + " positions but T = " + std::to_string(T));
    }
    TensorRef out = new_tensor(env, x->shape, dt, b.backend(), "Block.forward");
    auto blk = block_;
    saved_ = {x, cos, sin, pos};  // RoPE tables must live until backward
    return run_async(
        env, {x, cos, sin, pos, out},
        [=] {
          std::lock_guard<std::mutex> lk(blk->mutex());
          BlockInputs in = block_inputs("Block.forward", B, T, cos, sin, gqa ? pos : nullptr, P);
          check_finite(*x, B * T * cfg.C, "Block.forward: x");
          if (dt == DType::BF16) {
            // JS may have written the fp32 parameters through their views
            if (blk->has_master_weights()) blk->weights_changed();
            blk->forward(static_cast<bf16*>(out->ptr()), static_cast<const bf16*>(x->ptr()), in, save);
          } else {
            blk->forward(out->f32(), x->f32(), in, save);
          }
          device_done(blk->backend(), "Block.forward");
        },
        [=](Napi::Env e) { return Tensor::Wrap(e, out); }, 2.0 * (double)(B * T) * (double)b.num_params());
  }

  // forwardCached(x[B,T,C], B, T, cos, sin, pos[T], kCache[B,Tmax,NKV,HS], vCache, past) -> Promise<Tensor>
  // Inference: the T new tokens sit at positions past..past+T-1 (pos holds them). Non-GQA
  // blocks take null caches.
  Napi::Value ForwardCached(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Block& b = block(env, "forwardCached");
    Args a(info, "Block.forwardCached");
    a.expect_device(device_of(b.backend()), "the block");
    const bool gqa = b.config().attn == AttnKind::GQA;
    const DType dt = b.dtype();
    auto x = a.tensor(0, "x", dt);
    int64_t B = a.dim(1, "B"), T = a.dim(2, "T");
    auto cos = a.tensor(3, "cos", DType::F32, !gqa), sin = a.tensor(4, "sin", DType::F32, !gqa);
    auto pos = a.tensor(5, "pos", DType::I32, !gqa);
    auto kc = a.tensor(6, "kCache", dt, !gqa), vc = a.tensor(7, "vCache", dt, !gqa);
    int64_t past = a.dim(8, "past", 0);
    const CachedShape cs = check_cached(a, b, x, B, T, cos, sin, pos, kc, vc, "kCache", "vCache", past);
    TensorRef out = new_tensor(env, x->shape, dt, b.backend(), "Block.forwardCached");
    auto blk = block_;
    return run_async(
        env, {x, cos, sin, pos, kc, vc, out},
        [=] {
          BlockInputs in = block_inputs("Block.forwardCached", B, T, cos, sin, gqa ? pos : nullptr, cs.P);
          run_cached(*blk, out, x, in, kc, vc, past, cs.Tmax);
          device_done(blk->backend(), "Block.forwardCached");
        },
        [=](Napi::Env e) { return Tensor::Wrap(e, out); }, cached_flops(b, B, T, past));
  }

  // Block.forwardCachedStack(blocks, x, B, T, cos, sin, pos, kCaches, vCaches, past) -> Promise<Tensor>
  // The blocks one after another over their KV caches (a model's layers, in a prefill or a decode
  // step): what forwardCached called block by block returns, in one worker task with one wait for
  // the device at the end, instead of a round trip to JS and a device synchronisation per layer
  // (on a GPU, idle gaps between the layers of a decode step). The layers after the first run in
  // place on the output (a cached forward allows out == x), so no buffer is made per layer.
  // kCaches[i] and vCaches[i] are block i's caches (null for a block without GQA attention).
  static Napi::Value ForwardCachedStack(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "Block.forwardCachedStack");
    if (!info.This().IsFunction()) a.bad("ERR_PUZZLE_ARG", "call it on the class: Block.forwardCachedStack(...)");
    const Napi::Function cls = info.This().As<Napi::Function>();
    if (!info[0].IsArray()) a.bad("ERR_PUZZLE_ARG", "argument 'blocks' must be an array of Blocks");
    const Napi::Array arr = info[0].As<Napi::Array>();
    const uint32_t L = arr.Length();
    if (L == 0) a.bad("ERR_PUZZLE_ARG", "argument 'blocks' is empty");
    for (size_t i : {7, 8})
      if (!info[i].IsArray() || info[i].As<Napi::Array>().Length() != L)
        a.bad("ERR_PUZZLE_ARG", std::string("argument '") + (i == 7 ? "kCaches" : "vCaches") +
                                    "' must be an array with one entry (a Tensor or null) per block, " +
                                    std::to_string(L) + " here");
    std::vector<std::shared_ptr<Block>> blocks(L);
    bool any_gqa = false;
    for (uint32_t i = 0; i < L; ++i) {
      const std::string name = "blocks[" + std::to_string(i) + "]";
      const Napi::Value v = arr.Get(i);
      if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(cls)) a.bad("ERR_PUZZLE_ARG", "argument '" + name + "' must be a Block");
      blocks[i] = BlockWrap::Unwrap(v.As<Napi::Object>())->block_;
      if (!blocks[i]) a.bad("ERR_PUZZLE_DISPOSED", "argument '" + name + "' is a disposed Block");
      const Block& b = *blocks[i], &b0 = *blocks[0];
      if (&b.backend() != &b0.backend())
        a.bad("ERR_PUZZLE_DEVICE", "argument '" + name + "' is on " + device_name(device_of(b.backend())) +
                                       " but blocks[0] is on " + device_name(device_of(b0.backend())));
      if (b.dtype() != b0.dtype())
        a.bad("ERR_PUZZLE_DTYPE", "argument '" + name + "' is " + dtype_name(b.dtype()) + " but blocks[0] is " +
                                      dtype_name(b0.dtype()));
      if (b.config().C != b0.config().C)
        a.bad("ERR_PUZZLE_SHAPE", "argument '" + name + "' has hidden size " + std::to_string(b.config().C) +
                                      " but blocks[0] has " + std::to_string(b0.config().C));
      any_gqa = any_gqa || b.config().attn == AttnKind::GQA;
    }
    const Block& b0 = *blocks[0];
    a.expect_device(device_of(b0.backend()), "the blocks");
    const DType dt = b0.dtype();
    auto x = a.tensor(1, "x", dt);
    int64_t B = a.dim(2, "B"), T = a.dim(3, "T");
    auto cos = a.tensor(4, "cos", DType::F32, !any_gqa), sin = a.tensor(5, "sin", DType::F32, !any_gqa);
    auto pos = a.tensor(6, "pos", DType::I32, !any_gqa);
    int64_t past = a.dim(9, "past", 0);
    const Napi::Array karr = info[7].As<Napi::Array>(), varr = info[8].As<Napi::Array>();
    std::vector<TensorRef> kcs(L), vcs(L);
    std::vector<int64_t> tmax(L);
    int64_t P = INT64_MAX;
    double flops = 0;
    for (uint32_t i = 0; i < L; ++i) {
      const bool gqa = blocks[i]->config().attn == AttnKind::GQA;
      const std::string kn = "kCaches[" + std::to_string(i) + "]", vn = "vCaches[" + std::to_string(i) + "]";
      kcs[i] = a.tensor_value(karr.Get(i), kn, dt, !gqa), vcs[i] = a.tensor_value(varr.Get(i), vn, dt, !gqa);
      const CachedShape cs = check_cached(a, *blocks[i], x, B, T, cos, sin, pos, kcs[i], vcs[i], kn, vn, past);
      tmax[i] = cs.Tmax;
      if (gqa) P = std::min(P, cs.P);
      flops += cached_flops(*blocks[i], B, T, past);
    }
    TensorRef out = new_tensor(env, x->shape, dt, b0.backend(), "Block.forwardCachedStack");
    std::vector<TensorRef> keep = {x, cos, sin, pos, out};
    keep.insert(keep.end(), kcs.begin(), kcs.end());
    keep.insert(keep.end(), vcs.begin(), vcs.end());
    return run_async(
        env, keep,
        [=] {
          BlockInputs in = block_inputs("Block.forwardCachedStack", B, T, cos, sin, any_gqa ? pos : nullptr, P);
          for (uint32_t i = 0; i < L; ++i) run_cached(*blocks[i], out, i == 0 ? x : out, in, kcs[i], vcs[i], past, tmax[i]);
          device_done(blocks[0]->backend(), "Block.forwardCachedStack");
        },
        [=](Napi::Env e) { return Tensor::Wrap(e, out); }, flops);
  }

  // backward(dout[B,T,C], wantInputGrad) -> Promise<Tensor dx | null>
  Napi::Value Backward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Block& b = block(env, "backward");
    Args a(info, "Block.backward");
    a.expect_device(device_of(b.backend()), "the block");
    const DType dt = b.dtype();
    auto dout = a.tensor(0, "dout", dt);
    bool want = a.flag(1, "wantInputGrad");
    if (saved_.empty()) a.bad("ERR_PUZZLE_STATE", "call forward(..., save = true) before backward");
    a.numel(dout, "dout", saved_[0]->numel(), "the forward input's size");
    TensorRef dx;
    if (want) dx = new_tensor(env, saved_[0]->shape, dt, b.backend(), "Block.backward");
    (void)b.grad_buffer();  // allocate on the JS thread, before the worker runs
    auto blk = block_;
    std::vector<TensorRef> keep = saved_;
    keep.push_back(dout);
    keep.push_back(dx);
    return run_async(
        env, keep,
        [=] {
          std::lock_guard<std::mutex> lk(blk->mutex());
          try {
            if (dt == DType::BF16)
              blk->backward(dx ? static_cast<bf16*>(dx->ptr()) : nullptr, static_cast<const bf16*>(dout->ptr()));
            else
              blk->backward(dx ? dx->f32() : nullptr, dout->f32());
          } catch (const std::logic_error& e) {
            fail("ERR_PUZZLE_STATE", std::string("Block.backward: ") + e.what());
          }
          device_done(blk->backend(), "Block.backward");
        },
        [=](Napi::Env e) { return dx ? Tensor::Wrap(e, dx) : e.Null(); });
  }

  // savedActivation(name) -> Tensor [N, cols] (a copy) of an activation the last forward(save) kept
  Napi::Value SavedActivation(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Block& b = block(env, "savedActivation");
    std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    std::lock_guard<std::mutex> lk(b.mutex());
    int64_t rows = 0, cols = 0;
    const void* src = b.saved_activation(name, &rows, &cols);
    if (!src)
      throw make_error(env, "ERR_PUZZLE_STATE",
                       "Block.savedActivation: no activation '" + name +
                           "' (names: attn_input, x1, ffn_input, ffn_hidden; it must exist in this variant and a forward with save = true must precede)");
    // float32 always: a bfloat16 block's activation is widened (exactly) on its device
    TensorRef t = new_tensor(env, {rows, cols}, DType::F32, b.backend(), "Block.savedActivation");
    if (b.dtype() == DType::BF16) b.backend().ops_bf16.to_f32(t->f32(), static_cast<const bf16*>(src), rows * cols);
    else b.backend().copy_device(t->buf->ptr, src, (size_t)rows * cols * sizeof(float));
    device_done(env, b.backend(), "Block.savedActivation");
    return Tensor::Wrap(env, t);
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    block_.reset();  // in-flight work holds its own reference
    saved_.clear();
    return info.Env().Undefined();
  }

  std::shared_ptr<Block> block_;
  std::vector<TensorRef> saved_;
};

}  // namespace

void InitBlock(Napi::Env env, Napi::Object exports) { BlockWrap::Init(env, exports); }

}  // namespace puzzle::bindings
