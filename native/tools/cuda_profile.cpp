// puzzle_cuda_profile: the cost of every option of a search space on the GPU, for
// `puzzle profile --device cuda` (which runs this and reads its JSON). No weights are needed:
// blocks are filled with small random values. For each option, one block holding just that
// subblock (the other half a no-op) runs the scenario: a prefill of batch x prompt tokens into
// a fresh KV cache, then every decode step of the generation at the cache lengths it passes
// through, each step a captured CUDA graph replayed (launch gaps out, as a serving engine runs
// it). The empty layer (both halves no-op) is measured too, and the non-block part (embedding,
// final norm, LM head). The additivity check runs whole stacks of layers (the parent's and
// random children's, up to --additivity-layers deep) the same way and compares them with the
// sums. CUDA events; warm-up; the L2 flushed before every prefill; the fastest of --repeats.
// --dtype bf16 measures mixed-precision blocks (bf16 activations, weights and KV cache: what a
// GPU serves), f32 the fp32 contract.
//
//   puzzle_cuda_profile --hidden C --heads NH --head-dim HS --vocab V --eps E
//       --attention kv8,kv2,linear,noop --ffn 14336,7168,linear,noop
//       --batch B --prompt P --generate G [--repeats R] [--children N] [--additivity-layers L]
//       [--dtype bf16|f32]
//   puzzle_cuda_profile ... --compare PARENT CHILD [--rounds R]
// --compare measures two whole models instead (layer lists like "kv8+14336,kv2+noop,linear+7168":
// attention kvN|linear|noop, '+', FFN width|linear|noop), alternately, R rounds, each model's
// fastest round, the LM head added to both: the measured speed-up of a child on this GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cuda/backend_cuda.h"
#include "puzzle/backend.h"
#include "puzzle/block.h"

namespace puzzle::cuda {
const char* gemm_kernel_name();
cudaStream_t stream();
}  // namespace puzzle::cuda

using namespace puzzle;

namespace {

const Backend* GPU = nullptr;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "puzzle_cuda_profile: %s\n", msg.c_str());
  std::exit(2);
}

void check_cuda(const char* where) {
  GPU->synchronize();
  std::string e = cuda::take_error();
  if (!e.empty()) die(std::string(where) + ": " + e);
}

struct Dims {
  int64_t C = 0, NH = 0, HS = 0, V = 0;
  float eps = 1e-5f;
  DType dtype = DType::BF16;  // of activations, weights' copies and KV caches
  size_t es() const { return dtype_size(dtype); }
};

// One block's cached forward in the block's dtype (buffers are untyped here).
void forward_cached(Block& b, void* out, const void* x, const BlockInputs& in, void* kc, void* vc, int64_t past,
                    int64_t Tmax) {
  if (b.dtype() == DType::BF16)
    b.forward_cached((bf16*)out, (const bf16*)x, in, (bf16*)kc, (bf16*)vc, past, Tmax);
  else
    b.forward_cached((float*)out, (const float*)x, in, (float*)kc, (float*)vc, past, Tmax);
}

struct Option {
  std::string id;  // attn-kv8, attn-linear, attn-noop, ffn-w14336, ffn-linear, ffn-noop, empty
  AttnKind attn = AttnKind::NoOp;
  int64_t NKV = 0;
  FfnKind ffn = FfnKind::NoOp;
  int64_t F = 0;
};

BlockConfig block_config(const Dims& d, const Option& o) {
  BlockConfig c;
  c.C = d.C, c.NH = d.NH, c.HS = d.HS, c.eps = d.eps;
  c.attn = o.attn, c.NKV = o.NKV, c.ffn = o.ffn, c.F = o.F;
  return c;
}

void* dalloc(size_t bytes) {
  void* p = GPU->alloc(bytes ? bytes : 4);
  if (!p) die("out of GPU memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}

void fill_random(float* dst, size_t n, float scale, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> h(std::min<size_t>(n, 1 << 22));
  for (auto& x : h) x = nd(g);
  for (size_t off = 0; off < n; off += h.size()) GPU->copy_to_device(dst + off, h.data(), std::min(h.size(), n - off) * 4);
}

struct Events {
  cudaEvent_t a, b;
  Events() { cudaEventCreate(&a), cudaEventCreate(&b); }
  ~Events() { cudaEventDestroy(a), cudaEventDestroy(b); }
  void start() { cudaEventRecord(a, cuda::stream()); }
  float stop() {
    cudaEventRecord(b, cuda::stream());
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    return ms;
  }
};

struct Scenario {
  int64_t B, P, G;
  int repeats;
};

struct Timing {
  double prefill_ms, decode_ms;  // decode: all G steps
};

// A stack of layers run like a model: prefill the prompt, then G decode steps (each a graph).
class Stack {
 public:
  Stack(const Dims& d, const std::vector<Option>& layers, const Scenario& s, const float* cos, const float* sin)
      : s_(s), cos_(cos), sin_(sin) {
    uint64_t seed = 1;
    for (auto& o : layers) {
      blocks_.push_back(std::make_unique<Block>(*GPU, block_config(d, o), d.dtype));
      Block& b = *blocks_.back();
      fill_random(b.param_buffer()->f32(), b.num_params(), 0.02f, seed++);
      b.weights_changed();
      // serving holds bf16 weights only: drop the fp32 masters (two whole models fit at once)
      if (d.dtype == DType::BF16) b.drop_master_weights();
      const int64_t kv = o.attn == AttnKind::GQA ? s.B * (s.P + s.G) * o.NKV * d.HS : 0;
      kc_.push_back(kv ? dalloc(kv * d.es()) : nullptr);
      vc_.push_back(kv ? dalloc(kv * d.es()) : nullptr);
    }
    const int64_t n = s.B * s.P * d.C;
    x_ = dalloc(n * d.es());
    y_ = dalloc(n * d.es());
    if (d.dtype == DType::BF16) {
      float* tmp = (float*)dalloc(n * 4);
      fill_random(tmp, n, 1.f, 99);
      GPU->ops_bf16.to_bf16((bf16*)x_, tmp, n);
      GPU->free(tmp);
    } else {
      fill_random((float*)x_, n, 1.f, 99);
    }
    pos_ = (int32_t*)dalloc(s.G * 4);
    std::vector<int32_t> pos(s.G);
    for (int64_t g = 0; g < s.G; ++g) pos[g] = (int32_t)(s.P + g);
    GPU->copy_to_device(pos_, pos.data(), s.G * 4);
  }
  ~Stack() {
    for (auto& g : graphs_) cudaGraphExecDestroy(g);
    for (void* p : kc_) GPU->free(p);
    for (void* p : vc_) GPU->free(p);
    GPU->free(x_), GPU->free(y_), GPU->free(pos_);
  }

  // As a model runs its layers (LlamaModel.forwardCached: Block.forwardCachedStack): the first
  // from x_ into y_, the others in place on y_, so x_ stays the input of every repeat and replay.
  void prefill() {
    BlockInputs in{s_.B, s_.P, cos_, sin_, nullptr};
    for (size_t i = 0; i < blocks_.size(); ++i)
      forward_cached(*blocks_[i], y_, i == 0 ? x_ : y_, in, kc_[i], vc_[i], 0, s_.P + s_.G);
  }

  void decode_step(int64_t g) {
    BlockInputs in{s_.B, 1, cos_, sin_, pos_ + g};
    for (size_t i = 0; i < blocks_.size(); ++i)
      forward_cached(*blocks_[i], y_, i == 0 ? x_ : y_, in, kc_[i], vc_[i], s_.P + g, s_.P + s_.G);
  }

  // One graph per decode step (each passes a different cache length), captured once.
  void capture() {
    for (int64_t g = 0; g < s_.G; ++g) decode_step(g);  // warm-up: workspaces sized for T = 1
    check_cuda("decode warm-up");
    for (int64_t g = 0; g < s_.G; ++g) {
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      if (cudaStreamBeginCapture(cuda::stream(), cudaStreamCaptureModeThreadLocal) != cudaSuccess) die("cannot capture a decode step");
      decode_step(g);
      if (cudaStreamEndCapture(cuda::stream(), &graph) != cudaSuccess) die("decode step capture failed: " + cuda::take_error());
      if (cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) die("cannot instantiate a decode graph");
      cudaGraphDestroy(graph);
      graphs_.push_back(exec);
    }
  }

  // Prefill repeats first, then the decode graphs: the block workspaces are sized per shape, so
  // the graphs are captured after the last prefill and replayed with nothing in between.
  Timing measure(float* flush, size_t flush_bytes) {
    Events ev;
    double best_p = 1e30, best_d = 1e30;
    prefill();  // warm-up (workspaces sized for the prompt)
    check_cuda("prefill warm-up");
    for (int r = 0; r < s_.repeats; ++r) {
      cudaMemsetAsync(flush, r & 1, flush_bytes, cuda::stream());
      ev.start();
      prefill();
      best_p = std::min<double>(best_p, ev.stop());
    }
    check_cuda("prefill");
    // the prefill repeats above re-sized the block workspaces the graphs point into: capture anew
    for (auto& g : graphs_) cudaGraphExecDestroy(g);
    graphs_.clear();
    capture();
    for (int r = 0; r < s_.repeats; ++r) {
      cudaMemsetAsync(flush, r & 1, flush_bytes, cuda::stream());
      ev.start();
      for (auto& g : graphs_) cudaGraphLaunch(g, cuda::stream());
      best_d = std::min<double>(best_d, ev.stop());
    }
    check_cuda("decode");
    return {best_p, best_d};
  }

 private:
  Scenario s_;
  const float *cos_, *sin_;
  std::vector<std::unique_ptr<Block>> blocks_;
  std::vector<void*> kc_, vc_;
  void *x_ = nullptr, *y_ = nullptr;
  int32_t* pos_ = nullptr;
  std::vector<cudaGraphExec_t> graphs_;
};

// Embedding, final norm and LM head for the scenario (prefill logits for the last position of
// each sequence are what serving needs, but the engine computes all rows: measured as it runs).
// In bf16 the embedded rows are rounded to bf16 and the head reads a bf16 copy of the table,
// writing fp32 logits.
Timing measure_head(const Dims& d, const Scenario& s, float* flush, size_t flush_bytes) {
  const Ops& o = GPU->ops;
  float* table = (float*)dalloc(d.V * d.C * 4);
  fill_random(table, d.V * d.C, 0.02f, 5);
  float* norm = (float*)dalloc(d.C * 4);
  fill_random(norm, d.C, 0.1f, 6);
  const int64_t N = s.B * s.P;
  int32_t* ids = (int32_t*)dalloc(N * 4);
  std::vector<int32_t> h(N);
  for (int64_t i = 0; i < N; ++i) h[i] = (int32_t)((i * 7919) % d.V);
  GPU->copy_to_device(ids, h.data(), N * 4);
  float *x = (float*)dalloc(N * d.C * 4), *xn = (float*)dalloc(N * d.C * 4), *rstd = (float*)dalloc(N * 4);
  float* logits = (float*)dalloc(N * d.V * 4);
  const bool half = d.dtype == DType::BF16;
  bf16 *t16 = nullptr, *n16 = nullptr, *x16 = nullptr, *xn16 = nullptr;
  if (half) {
    t16 = (bf16*)dalloc(d.V * d.C * 2), n16 = (bf16*)dalloc(d.C * 2);
    x16 = (bf16*)dalloc(N * d.C * 2), xn16 = (bf16*)dalloc(N * d.C * 2);
    GPU->ops_bf16.to_bf16(t16, table, d.V * d.C);
    GPU->ops_bf16.to_bf16(n16, norm, d.C);
  }
  auto run = [&](int64_t rows) {
    o.embedding_forward(x, ids, table, rows, d.C);
    if (half) {
      const OpsBf16& h = GPU->ops_bf16;
      h.to_bf16(x16, x, rows * d.C);
      h.rmsnorm_forward(xn16, rstd, x16, n16, rows, d.C, d.eps);
      h.gemm_f32out(false, true, rows, d.V, d.C, 1.f, xn16, d.C, t16, d.C, 0.f, logits, d.V);
    } else {
      o.rmsnorm_forward(xn, rstd, x, norm, rows, d.C, d.eps);
      o.matmul_forward(logits, xn, table, nullptr, rows, d.C, d.V);
    }
  };
  run(N), run(s.B);
  check_cuda("head warm-up");
  Events ev;
  double bp = 1e30, bd = 1e30;
  for (int r = 0; r < s.repeats; ++r) {
    cudaMemsetAsync(flush, r & 1, flush_bytes, cuda::stream());
    ev.start();
    run(N);
    bp = std::min<double>(bp, ev.stop());
    ev.start();
    for (int64_t g = 0; g < s.G; ++g) run(s.B);
    bd = std::min<double>(bd, ev.stop());
  }
  check_cuda("head");
  for (void* p : {(void*)table, (void*)norm, (void*)ids, (void*)x, (void*)xn, (void*)rstd, (void*)logits}) GPU->free(p);
  for (void* p : {(void*)t16, (void*)n16, (void*)x16, (void*)xn16})
    if (p) GPU->free(p);
  return {bp, bd};
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    size_t b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

// "kv8+14336" -> one layer; attention kvN|linear|noop, FFN width|linear|noop.
Option parse_layer(const std::string& t, const Dims& d) {
  const size_t plus = t.find('+');
  if (plus == std::string::npos) die("--compare: a layer is ATTENTION+FFN (e.g. kv8+14336), got " + t);
  const std::string a = t.substr(0, plus), f = t.substr(plus + 1);
  Option o;
  o.id = t;
  if (a == "linear") o.attn = AttnKind::Linear;
  else if (a == "noop") o.attn = AttnKind::NoOp;
  else if (a.rfind("kv", 0) == 0) o.attn = AttnKind::GQA, o.NKV = std::atoll(a.c_str() + 2);
  else die("--compare: attention must be kvN, linear or noop, got " + a);
  if (o.attn == AttnKind::GQA && (o.NKV < 1 || d.NH % o.NKV)) die("--compare: " + a + " must divide the heads");
  if (f == "linear") o.ffn = FfnKind::Linear;
  else if (f == "noop") o.ffn = FfnKind::NoOp;
  else o.ffn = FfnKind::SwiGLU, o.F = std::atoll(f.c_str());
  if (o.ffn == FfnKind::SwiGLU && o.F < 1) die("--compare: FFN must be a width, linear or noop, got " + f);
  return o;
}

void emit_cost(FILE* f, const Option& o, const Timing& t, const Timing& base, int k, bool first) {
  std::fprintf(f, "%s\n    {\"id\": \"%s\", \"prefill_ms\": %.6f, \"decode_ms\": %.6f}", first ? "" : ",", o.id.c_str(),
               (t.prefill_ms - base.prefill_ms) / k, (t.decode_ms - base.decode_ms) / k);
}

}  // namespace

int main(int argc, char** argv) {
  Dims d;
  Scenario s{1, 32, 4, 5};
  std::string attn_list, ffn_list;
  int children = 2, add_layers = 4, stack = 2, rounds = 3;
  std::string compare_parent, compare_child;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--hidden") d.C = std::atoll(next().c_str());
    else if (a == "--heads") d.NH = std::atoll(next().c_str());
    else if (a == "--head-dim") d.HS = std::atoll(next().c_str());
    else if (a == "--vocab") d.V = std::atoll(next().c_str());
    else if (a == "--eps") d.eps = (float)std::atof(next().c_str());
    else if (a == "--attention") attn_list = next();
    else if (a == "--ffn") ffn_list = next();
    else if (a == "--batch") s.B = std::atoll(next().c_str());
    else if (a == "--prompt") s.P = std::atoll(next().c_str());
    else if (a == "--generate") s.G = std::atoll(next().c_str());
    else if (a == "--repeats") s.repeats = std::atoi(next().c_str());
    else if (a == "--children") children = std::atoi(next().c_str());
    else if (a == "--additivity-layers") add_layers = std::atoi(next().c_str());
    else if (a == "--stack") stack = std::atoi(next().c_str());
    else if (a == "--compare") compare_parent = next(), compare_child = next();
    else if (a == "--rounds") rounds = std::atoi(next().c_str());
    else if (a == "--dtype") {
      const std::string t = next();
      if (t == "bf16" || t == "bfloat16") d.dtype = DType::BF16;
      else if (t == "f32" || t == "float32") d.dtype = DType::F32;
      else die("--dtype: expected bf16 or f32, got " + t);
    }
    else die("unknown argument " + a);
  }
  const bool compare = !compare_parent.empty();
  if (d.C <= 0 || d.NH <= 0 || d.HS <= 0 || d.V <= 0 || (!compare && (attn_list.empty() || ffn_list.empty())))
    die("--hidden, --heads, --head-dim, --vocab and either --attention and --ffn or --compare are required");
  if (rounds < 1) die("--rounds must be >= 1");
  if (s.B < 1 || s.P < 1 || s.G < 1 || s.repeats < 1 || stack < 1) die("--batch, --prompt, --generate, --repeats, --stack must be >= 1");
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) die("no GPU answers");
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  if (const std::string why = cuda::unsupported_device(prop.name, prop.major, prop.minor); !why.empty()) die(why);
  GPU = &cuda::cuda_backend();
  int driver = 0;
  cudaDriverGetVersion(&driver);

  std::vector<Option> attn, ffn;
  for (auto& t : compare ? std::vector<std::string>{} : split(attn_list)) {
    Option o;
    if (t == "linear") o.id = "attn-linear", o.attn = AttnKind::Linear;
    else if (t == "noop") o.id = "attn-noop", o.attn = AttnKind::NoOp;
    else if (t.rfind("kv", 0) == 0) o.id = "attn-" + t, o.attn = AttnKind::GQA, o.NKV = std::atoll(t.c_str() + 2);
    else die("--attention: expected kvN, linear or noop, got " + t);
    if (o.attn == AttnKind::GQA && (o.NKV < 1 || d.NH % o.NKV)) die("--attention: " + t + " must divide the heads");
    attn.push_back(o);
  }
  for (auto& t : compare ? std::vector<std::string>{} : split(ffn_list)) {
    Option o;
    if (t == "linear") o.id = "ffn-linear", o.ffn = FfnKind::Linear;
    else if (t == "noop") o.id = "ffn-noop", o.ffn = FfnKind::NoOp;
    else o.id = "ffn-w" + t, o.ffn = FfnKind::SwiGLU, o.F = std::atoll(t.c_str());
    if (o.ffn == FfnKind::SwiGLU && o.F < 1) die("--ffn: expected a width, linear or noop, got " + t);
    ffn.push_back(o);
  }

  // RoPE tables for every position the scenario reaches
  const int64_t P = s.P + s.G, half = d.HS / 2;
  std::vector<float> cos(P * half), sin(P * half);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < half; ++i) {
      double f = p * std::pow(500000.0, -2.0 * i / d.HS);
      cos[p * half + i] = (float)std::cos(f), sin[p * half + i] = (float)std::sin(f);
    }
  float* gcos = (float*)dalloc(cos.size() * 4);
  float* gsin = (float*)dalloc(sin.size() * 4);
  GPU->copy_to_device(gcos, cos.data(), cos.size() * 4);
  GPU->copy_to_device(gsin, sin.data(), sin.size() * 4);
  const size_t flush_bytes = (size_t)prop.l2CacheSize * 4;
  float* flush = (float*)dalloc(flush_bytes);

  if (compare) {
    std::vector<Option> pl, cl;
    for (auto& t : split(compare_parent)) pl.push_back(parse_layer(t, d));
    for (auto& t : split(compare_child)) cl.push_back(parse_layer(t, d));
    if (pl.empty() || cl.empty()) die("--compare: both models need at least one layer");
    const Timing head = measure_head(d, s, flush, flush_bytes);
    Timing bp{1e30, 1e30}, bc{1e30, 1e30};
    {
      Stack ps(d, pl, s, gcos, gsin), cs(d, cl, s, gcos, gsin);
      for (int r = 0; r < rounds; ++r) {  // alternately, so drift hits both alike
        const Timing a = ps.measure(flush, flush_bytes), b = cs.measure(flush, flush_bytes);
        bp = {std::min(bp.prefill_ms, a.prefill_ms), std::min(bp.decode_ms, a.decode_ms)};
        bc = {std::min(bc.prefill_ms, b.prefill_ms), std::min(bc.decode_ms, b.decode_ms)};
      }
    }
    std::printf("{\n  \"device\": {\"kind\": \"cuda\", \"model\": \"%s\", \"sm\": \"%d%d\", \"sms\": %d, \"driver\": \"%d.%d\", \"gemm\": \"%s\"},\n",
                prop.name, prop.major, prop.minor, prop.multiProcessorCount, driver / 1000, (driver % 1000) / 10, cuda::gemm_kernel_name());
    std::printf("  \"dtype\": \"%s\",\n  \"rounds\": %d,\n  \"head\": {\"prefill_ms\": %.6f, \"decode_ms\": %.6f},\n", dtype_name(d.dtype),
                rounds, head.prefill_ms, head.decode_ms);
    std::printf("  \"parent\": {\"layers\": %zu, \"prefill_ms\": %.6f, \"decode_ms\": %.6f},\n", pl.size(),
                bp.prefill_ms + head.prefill_ms, bp.decode_ms + head.decode_ms);
    std::printf("  \"child\": {\"layers\": %zu, \"prefill_ms\": %.6f, \"decode_ms\": %.6f}\n}\n", cl.size(),
                bc.prefill_ms + head.prefill_ms, bc.decode_ms + head.decode_ms);
    GPU->free(gcos), GPU->free(gsin), GPU->free(flush);
    check_cuda("end");
    return 0;
  }

  auto time_stack = [&](const std::vector<Option>& layers) {
    Stack st(d, layers, s, gcos, gsin);
    return st.measure(flush, flush_bytes);
  };
  FILE* f = stdout;
  std::fprintf(f, "{\n  \"device\": {\"kind\": \"cuda\", \"model\": \"%s\", \"sm\": \"%d%d\", \"sms\": %d, \"driver\": \"%d.%d\", \"gemm\": \"%s\"},\n",
               prop.name, prop.major, prop.minor, prop.multiProcessorCount, driver / 1000, (driver % 1000) / 10, cuda::gemm_kernel_name());
  std::fprintf(f, "  \"stack\": %d,\n  \"dtype\": \"%s\",\n", stack, dtype_name(d.dtype));
  // The base: `stack` empty layers (both halves no-op) cost only their residual copies.
  Option empty;
  empty.id = "empty";
  Timing none = time_stack({});
  Timing base_empty = time_stack(std::vector<Option>(stack, empty));
  std::fprintf(f, "  \"empty\": {\"id\": \"empty\", \"prefill_ms\": %.6f, \"decode_ms\": %.6f},\n  \"subblocks\": [",
               (base_empty.prefill_ms - none.prefill_ms) / stack, (base_empty.decode_ms - none.decode_ms) / stack);
  bool first = true;
  std::vector<std::pair<Option, Timing>> measured;
  for (auto& a : attn) {
    Option o = a;
    Timing t = time_stack(std::vector<Option>(stack, o));
    emit_cost(f, o, t, none, stack, first), first = false;
    measured.push_back({o, {(t.prefill_ms - none.prefill_ms) / stack, (t.decode_ms - none.decode_ms) / stack}});
    std::fflush(f);
  }
  for (auto& fo : ffn) {
    Option o = fo;
    Timing t = time_stack(std::vector<Option>(stack, o));
    emit_cost(f, o, t, none, stack, false);
    measured.push_back({o, {(t.prefill_ms - none.prefill_ms) / stack, (t.decode_ms - none.decode_ms) / stack}});
    std::fflush(f);
  }
  Timing head = measure_head(d, s, flush, flush_bytes);
  std::fprintf(f, "\n  ],\n  \"head\": {\"prefill_ms\": %.6f, \"decode_ms\": %.6f},\n", head.prefill_ms, head.decode_ms);

  // Additivity: whole stacks (parent = first attention and FFN options; children random) against
  // the sum of their layers' (attention + FFN - empty) costs.
  std::mt19937 g(0);
  const Timing empty_cost{(base_empty.prefill_ms - none.prefill_ms) / stack, (base_empty.decode_ms - none.decode_ms) / stack};
  std::fprintf(f, "  \"additivity\": [");
  for (int c = 0; c <= children; ++c) {
    std::vector<Option> layers;
    double pp = none.prefill_ms, pd = none.decode_ms;
    for (int l = 0; l < add_layers; ++l) {
      size_t ai = c == 0 ? 0 : g() % attn.size(), fi = c == 0 ? 0 : g() % ffn.size();
      Option o = attn[ai];
      o.id = attn[ai].id + "+" + ffn[fi].id;
      o.ffn = ffn[fi].ffn, o.F = ffn[fi].F;
      layers.push_back(o);
      const Timing& ta = measured[ai].second;
      const Timing& tf = measured[attn.size() + fi].second;
      pp += ta.prefill_ms + tf.prefill_ms - empty_cost.prefill_ms;
      pd += ta.decode_ms + tf.decode_ms - empty_cost.decode_ms;
    }
    Timing m = time_stack(layers);
    std::fprintf(f, "%s\n    {\"name\": \"%s\", \"layers\": %d, \"predictedPrefill\": %.6f, \"measuredPrefill\": %.6f, \"predictedDecode\": %.6f, \"measuredDecode\": %.6f}",
                 c ? "," : "", c == 0 ? "parent" : ("child " + std::to_string(c)).c_str(), add_layers, pp, m.prefill_ms, pd, m.decode_ms);
    std::fflush(f);
  }
  std::fprintf(f, "\n  ]\n}\n");
  GPU->free(gcos), GPU->free(gsin), GPU->free(flush);
  check_cuda("end");
  return 0;
}
