#!/usr/bin/env python3
"""PyTorch anchor for benchmarks/engine.ts: the same shapes, the same work, PyTorch at its best.

Run by benchmarks/engine.ts with the tuned environment (OpenBLAS with OPENBLAS_CORETYPE unset,
jemalloc preloaded, MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1, OMP_WAIT_POLICY=PASSIVE,
threads matched). Prints one JSON object; times are milliseconds per repeat (all samples).
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

args = json.loads(sys.argv[1])
torch.set_num_threads(args['threads'])
torch.manual_seed(0)


def timed(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def rms_norm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), -1)


class Layer(torch.nn.Module):
    """A Llama decoder layer as HF writes it (eager attention; torch 1.13 has no SDPA)."""

    def __init__(self, C, NH, NKV, Fw):
        super().__init__()
        HS = C // NH
        self.NH, self.NKV, self.HS = NH, NKV, HS
        self.n1 = torch.nn.Parameter(torch.ones(C))
        self.n2 = torch.nn.Parameter(torch.ones(C))
        self.q = torch.nn.Linear(C, NH * HS, bias=False)
        self.k = torch.nn.Linear(C, NKV * HS, bias=False)
        self.v = torch.nn.Linear(C, NKV * HS, bias=False)
        self.o = torch.nn.Linear(NH * HS, C, bias=False)
        self.gate = torch.nn.Linear(C, Fw, bias=False)
        self.up = torch.nn.Linear(C, Fw, bias=False)
        self.down = torch.nn.Linear(Fw, C, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        h = rms_norm(x, self.n1)
        q = self.q(h).view(B, T, self.NH, self.HS).transpose(1, 2)
        k = self.k(h).view(B, T, self.NKV, self.HS).transpose(1, 2)
        v = self.v(h).view(B, T, self.NKV, self.HS).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        g = self.NH // self.NKV
        if g > 1:
            k = k.repeat_interleave(g, dim=1)
            v = v.repeat_interleave(g, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.HS) + mask
        a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.o(a)
        h = rms_norm(x, self.n2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def tables(HS, T):
    inv = 1.0 / (10000 ** (torch.arange(0, HS, 2).float() / HS))
    f = torch.arange(T).float()[:, None] * inv[None]
    return f.cos(), f.sin()


def bench_block(c, repeats):
    layer = Layer(c['hidden'], c['heads'], c['kvHeads'], c['ffn'])
    B, T = c['batch'], c['seq']
    x = torch.randn(B, T, c['hidden'], requires_grad=True)
    cos, sin = tables(c['hidden'] // c['heads'], T)
    mask = torch.full((T, T), float('-inf')).triu(1)
    dout = torch.randn(B, T, c['hidden']) * 1e-2

    def fwd():
        with torch.no_grad():
            layer(x, cos, sin, mask)

    def train():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x, cos, sin, mask).backward(dout)

    return {'forward': timed(fwd, repeats), 'train': timed(train, repeats)}


def bench_step(c, repeats):
    layers = torch.nn.ModuleList([Layer(c['hidden'], c['heads'], c['kvHeads'], c['ffn']) for _ in range(c['layers'])])
    emb = torch.nn.Embedding(c['vocab'], c['hidden'])
    norm = torch.nn.Parameter(torch.ones(c['hidden']))
    head = torch.nn.Linear(c['hidden'], c['vocab'], bias=False)
    params = list(layers.parameters()) + list(emb.parameters()) + [norm] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    B, T = c['batch'], c['seq']
    ids = torch.randint(0, c['vocab'], (B, T))
    tgt = torch.roll(ids, -1, 1)
    cos, sin = tables(c['hidden'] // c['heads'], T)
    mask = torch.full((T, T), float('-inf')).triu(1)

    def step():
        opt.zero_grad(set_to_none=True)
        h = emb(ids)
        for l in layers:
            h = l(h, cos, sin, mask)
        logits = head(rms_norm(h, norm))
        F.cross_entropy(logits.view(-1, c['vocab']), tgt.view(-1)).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return {'step': timed(step, repeats, warmup=1)}


def bench_gemm(shapes, repeats):
    out = []
    for N, C, OC in shapes:
        x, w, dy = torch.randn(N, C), torch.randn(OC, C), torch.randn(N, OC)
        out.append({'shape': [N, C, OC],
                    'forward': timed(lambda: x @ w.t(), repeats),
                    'backward': timed(lambda: (dy @ w, dy.t() @ x), repeats)})
    return out


result = {'torch': torch.__version__, 'threads': torch.get_num_threads()}
if 'block' in args:
    result['block'] = [bench_block(c, args['repeats']) for c in args['block']]
if 'step' in args:
    result['step'] = bench_step(args['step'], max(3, args['repeats'] // 2))
if 'gemm' in args:
    result['gemm'] = bench_gemm(args['gemm'], args['repeats'])
print(json.dumps(result))
