"""PyTorch anchor for benchmarks/gpu/check.sh: the same shapes as native/tools/cuda_check.cpp,
in bf16 (PyTorch's usual serving and training dtype), timed with CUDA events (median and the
10th/90th percentiles). Writes JSON entries with the same names, so report.py can put the two
side by side. Run on the GPU machine, where python3 holds PyTorch.
"""
import argparse
import json
import math
import sys

import torch
import torch.nn.functional as F


def timed(fn, warmup, repeats, between=None):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        if between:
            between()
        s.record()
        fn()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    q = lambda f: ts[min(len(ts) - 1, int(f * (len(ts) - 1) + 0.5))]
    return {"median_ms": q(0.5), "p10_ms": q(0.1), "p90_ms": q(0.9)}


def kernel_breakdown(out, workload, iters, step_ms, fn):
    """--kernels: fn run `iters` times under torch.profiler (CUPTI, as puzzle_cuda_check --kernels),
    GPU time summed by kernel name; kept in out["kernels"] in puzzle_cuda_check's JSON shape."""
    try:
        from torch.profiler import ProfilerActivity, profile
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(iters):
                fn()
            torch.cuda.synchronize()
        sums = {}
        for e in prof.events():
            if str(getattr(e, "device_type", "")).endswith("CUDA"):
                c, t = sums.get(e.name, (0, 0.0))
                sums[e.name] = (c + 1, t + e.time_range.elapsed_us() / 1000.0)
        rows = sorted(({"name": n[:120], "calls": c, "ms": t} for n, (c, t) in sums.items()), key=lambda r: -r["ms"])
        out.setdefault("kernels", []).append({"workload": workload, "iters": iters, "step_ms": step_ms, "rows": rows})
        print(f"  torch kernels of {workload}: {len(rows)} kernels, {sum(r['ms'] for r in rows) / iters:.4f} ms a step",
              flush=True)
    except Exception as e:  # the breakdown is a diagnosis, not a result
        print(f"  torch kernel breakdown of {workload} failed: {e}", file=sys.stderr)


def rope(x, cos, sin):  # x [B, H, T, D], rotate-half
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Layer(torch.nn.Module):
    """A Llama decoder layer written out (the same math as puzzle's Block)."""

    def __init__(self, C, NH, NKV, HS, Fw, dtype):
        super().__init__()
        kw = dict(device="cuda", dtype=dtype)
        self.NH, self.NKV, self.HS = NH, NKV, HS
        self.n1 = torch.nn.Parameter(torch.ones(C, **kw))
        self.n2 = torch.nn.Parameter(torch.ones(C, **kw))
        self.qkv = torch.nn.Parameter(torch.randn((NH + 2 * NKV) * HS, C, **kw) * 0.02)
        self.o = torch.nn.Parameter(torch.randn(C, NH * HS, **kw) * 0.02)
        self.gu = torch.nn.Parameter(torch.randn(2 * Fw, C, **kw) * 0.02)
        self.down = torch.nn.Parameter(torch.randn(C, Fw, **kw) * 0.02)

    def attn_qkv(self, x, cos, sin):
        B, T, _ = x.shape
        h = F.rms_norm(x, (x.shape[-1],), self.n1, 1e-5)
        qkv = F.linear(h, self.qkv)
        q, k, v = qkv.split([self.NH * self.HS, self.NKV * self.HS, self.NKV * self.HS], dim=-1)
        q = q.view(B, T, self.NH, self.HS).transpose(1, 2)
        k = k.view(B, T, self.NKV, self.HS).transpose(1, 2)
        v = v.view(B, T, self.NKV, self.HS).transpose(1, 2)
        return rope(q, cos, sin), rope(k, cos, sin), v

    def ffn(self, x1):
        h = F.rms_norm(x1, (x1.shape[-1],), self.n2, 1e-5)
        g, u = F.linear(h, self.gu).chunk(2, dim=-1)
        return x1 + F.linear(F.silu(g) * u, self.down)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.attn_qkv(x, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x1 = x + F.linear(a.transpose(1, 2).reshape(B, T, -1), self.o)
        return self.ffn(x1)

    def decode(self, x, cos, sin, kc, vc, past):  # x [B,1,C]; caches [B,NKV,Tmax,HS]
        B = x.shape[0]
        q, k, v = self.attn_qkv(x, cos, sin)
        kc[:, :, past : past + 1] = k
        vc[:, :, past : past + 1] = v
        a = F.scaled_dot_product_attention(q, kc[:, :, : past + 1], vc[:, :, : past + 1], enable_gqa=True)
        x1 = x + F.linear(a.transpose(1, 2).reshape(B, 1, -1), self.o)
        return self.ffn(x1)


def tables(T, HS, dtype, offset=0):
    inv = 500000.0 ** (-torch.arange(0, HS // 2, device="cuda", dtype=torch.float64) * 2 / HS)
    f = torch.arange(offset, offset + T, device="cuda", dtype=torch.float64)[:, None] * inv[None]
    cos, sin = torch.cat([f.cos()] * 1, -1).to(dtype), torch.cat([f.sin()] * 1, -1).to(dtype)
    return cos, sin


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--kernels", action="store_true", help="also the kernel breakdowns of the 8B block's steps")
    args = ap.parse_args()
    torch.manual_seed(0)
    reps = 10 if args.quick else 30
    dt = torch.bfloat16
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "results": []}

    def emit(group, name, st, **extra):
        st.update(extra)
        st.update(group=group, name=name)
        out["results"].append(st)
        print(f"  torch {name:44s} {st['median_ms']:9.4f} ms  " + " ".join(f"{k}={v:.4g}" for k, v in extra.items()), flush=True)

    l2 = torch.empty(torch.cuda.get_device_properties(0).L2_cache_size * 4 // 4, device="cuda", dtype=torch.float32)
    flush = lambda: l2.zero_()

    a = torch.empty(1 << 29, device="cuda", dtype=torch.float32).fill_(1)
    b = torch.empty_like(a)
    st = timed(lambda: b.copy_(a), 2, reps)
    emit("bandwidth", "device copy 2 GiB (read+write)", st, GBps=2 * a.numel() * 4 / st["median_ms"] / 1e6)
    del a, b

    for name, M, N, K in [("gemm 8192^3", 8192, 8192, 8192), ("gemm 8B qkv 4096x6144x4096", 4096, 6144, 4096),
                          ("gemm 8B gate|up 4096x28672x4096", 4096, 28672, 4096),
                          ("gemm 8B down 4096x4096x14336", 4096, 4096, 14336),
                          ("gemm 70B gate|up 4096x57344x8192", 4096, 57344, 8192)]:
        A = torch.randn(M, K, device="cuda", dtype=dt)
        W = torch.randn(N, K, device="cuda", dtype=dt)
        st = timed(lambda: F.linear(A, W), 2, 10)
        emit("gemm", name, st, TFLOPs=2 * M * N * K / st["median_ms"] / 1e9)
        del A, W

    T, NH, NKV, HS, C = 4096, 32, 8, 128, 4096
    q = torch.randn(1, NH, T, HS, device="cuda", dtype=dt, requires_grad=True)
    k = torch.randn(1, NKV, T, HS, device="cuda", dtype=dt, requires_grad=True)
    v = torch.randn(1, NKV, T, HS, device="cuda", dtype=dt, requires_grad=True)
    fl = 4.0 * T * T * HS * NH / 2
    st = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), 2, reps)
    emit("op", "attention fwd 8B T4096", st, TFLOPs=fl / st["median_ms"] / 1e9)
    o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    g = torch.randn_like(o)
    st = timed(lambda: torch.autograd.grad(o, (q, k, v), g, retain_graph=True), 2, reps)
    emit("op", "attention bwd 8B T4096", st, TFLOPs=2.5 * fl / st["median_ms"] / 1e9)
    x = torch.randn(T, C, device="cuda", dtype=torch.float32)
    w = torch.ones(C, device="cuda", dtype=torch.float32)
    st = timed(lambda: F.rms_norm(x, (C,), w, 1e-5), 2, reps, flush)
    emit("op", "rmsnorm fwd 4096x4096", st, GBps=2 * T * C * 4 / st["median_ms"] / 1e6, note=0.0)
    del q, k, v, o, g, x

    # the products of an 8B decode step, L2 flushed between repeats (as puzzle_cuda_check's rows)
    for name, N, K in [("qkv", 6144, 4096), ("o", 4096, 4096), ("gate|up", 28672, 4096), ("down", 4096, 14336)]:
        W = torch.randn(N, K, device="cuda", dtype=dt)
        for M in (1, 64):
            X = torch.randn(M, K, device="cuda", dtype=dt)
            st = timed(lambda: F.linear(X, W), 2, reps, flush)
            emit("op", f"gemv 8B {name} M{M}", st, GBps=2 * (N * K + M * K + M * N) / st["median_ms"] / 1e6)
        del W, X

    for name, C, NH, NKV, HS, Fw in [("llama-3.1-8b", 4096, 32, 8, 128, 14336), ("llama-3.1-70b", 8192, 64, 8, 128, 28672)]:
        layer = Layer(C, NH, NKV, HS, Fw, dt)
        nparams = sum(p.numel() for p in layer.parameters())
        if not args.quick or C == 4096:
            T = 4096 if C == 4096 else 2048
            x = torch.randn(1, T, C, device="cuda", dtype=dt, requires_grad=True)
            cos, sin = tables(T, HS, dt)

            def step():
                y = layer(x, cos, sin)
                y.backward(y.detach())

            st = timed(step, 1, 3 if args.quick else 8)
            flops = 6.0 * T * nparams + 3.0 * 4.0 * T * T * HS * NH / 2
            emit("block", f"{name} block fwd+bwd T{T}", st, tok_per_s=T / st["median_ms"] * 1e3,
                 TFLOPs=flops / st["median_ms"] / 1e9)
            if args.kernels and C == 4096:
                kernel_breakdown(out, f"{name} block fwd+bwd T{T}", 3, st["median_ms"], step)
            del x
            layer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for B in (1, 64):
                past = 8192 if B == 1 else 1024
                kc = torch.zeros(B, NKV, past + 1, HS, device="cuda", dtype=dt)
                vc = torch.zeros_like(kc)
                x = torch.randn(B, 1, C, device="cuda", dtype=dt)
                cos, sin = tables(1, HS, dt, past)
                fn = lambda: layer.decode(x, cos, sin, kc, vc, past)
                st = timed(fn, 3, reps, flush)
                emit("decode", f"{name} decode step B{B} past{past} (eager)", st,
                     weight_bytes=nparams * 2.0, kv_bytes=2.0 * B * (past + 1) * NKV * HS * 2)
                try:
                    gr = torch.cuda.CUDAGraph()
                    s = torch.cuda.Stream()
                    s.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(s):
                        fn()
                    torch.cuda.current_stream().wait_stream(s)
                    with torch.cuda.graph(gr):
                        fn()
                    st = timed(gr.replay, 3, reps, flush)
                    emit("decode", f"{name} decode step B{B} past{past}", st,
                         weight_bytes=nparams * 2.0, kv_bytes=2.0 * B * (past + 1) * NKV * HS * 2)
                    if args.kernels and C == 4096:
                        kernel_breakdown(out, f"{name} decode step B{B} past{past}", 20, st["median_ms"], gr.replay)
                except Exception as e:  # graphs are a convenience for the anchor, not a must
                    print(f"  torch graph capture failed: {e}", file=sys.stderr)
                del kc, vc
        del layer
        torch.cuda.empty_cache()
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
