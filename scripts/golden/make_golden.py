#!/usr/bin/env python3
"""Generates the golden files the engine tests compare against (test/golden/*.safetensors).

Every reference is computed by PyTorch in float64 and stored as float32, so a golden is the
exact answer rounded once; the tests' tolerances (test/support/tolerances.ts) measure our fp32
kernels against it. Run with Debian's PyTorch:  /usr/bin/python3 scripts/golden/make_golden.py
Running the tests never needs PyTorch; only regenerating the files does.
"""
import json
import math
import os
import struct
import sys

import torch

torch.manual_seed(1234)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'test', 'golden')
D = torch.float64


def save(name, tensors, meta=None):
    """Minimal safetensors writer (the format is 8-byte header length + JSON header + data)."""
    header, blobs, offset = {}, [], 0
    for key, t in tensors.items():
        t = t.detach().contiguous()
        if t.dtype in (torch.float64, torch.float32):
            t, dtype = t.to(torch.float32), 'F32'
        elif t.dtype in (torch.int64, torch.int32):
            t, dtype = t.to(torch.int32), 'I32'
        else:
            raise ValueError(t.dtype)
        data = t.numpy().tobytes()
        header[key] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if meta:
        header['__metadata__'] = {k: json.dumps(v) for k, v in meta.items()}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(os.path.join(OUT, name + '.safetensors'), 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rnd(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=D) * scale).requires_grad_(True)


# ------------------------------------------------------------------ HF reference pieces
def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(var + eps) * w


def inv_freq_llama(head_dim, theta, scaling):
    # transformers: _compute_default_rope_parameters / _compute_llama3_parameters (fp32 inv_freq)
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    if not scaling:
        return inv
    factor, low, high = scaling['factor'], scaling['low_freq_factor'], scaling['high_freq_factor']
    old = scaling['original_max_position_embeddings']
    low_w, high_w = old / low, old / high
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_w, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_w) * ~(wavelen > low_w)
    return torch.where(medium, smoothed, inv_l)


def rope_tables(head_dim, positions, theta, scaling=None):
    inv = inv_freq_llama(head_dim, theta, scaling).float()
    freqs = torch.arange(positions, dtype=torch.float32)[:, None] * inv[None, :]
    return freqs.double().cos(), freqs.double().sin()  # [P, HS/2]


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos, sin, pos):
    # x [B,T,H,HS]; tables [P, HS/2] -> HF's full-width cos = cat(freqs, freqs)
    c = torch.cat((cos[pos], cos[pos]), -1)[None, :, None, :]
    s = torch.cat((sin[pos], sin[pos]), -1)[None, :, None, :]
    return x * c + rotate_half(x) * s


def attention(q, k, v):
    # q [B,T,NH,HS], k/v [B,T,NKV,HS]; causal; GQA by repeat_interleave (HF repeat_kv)
    B, T, NH, HS = q.shape
    g = NH // k.shape[2]
    k = k.repeat_interleave(g, dim=2)
    v = v.repeat_interleave(g, dim=2)
    s = torch.einsum('bthd,bshd->bhts', q, k) / math.sqrt(HS)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float('-inf'))
    lse = torch.logsumexp(s, -1)  # [B,NH,T]
    p = torch.softmax(s, -1)
    return torch.einsum('bhts,bshd->bthd', p, v), lse


def grads(out, inputs):
    dout = torch.randn_like(out)
    gs = torch.autograd.grad(out, inputs, dout, allow_unused=True)
    return dout, gs


# ------------------------------------------------------------------ ops
def op_embedding():
    table = rnd(11, 8)
    ids = torch.tensor([[0, 3, 3, 10, 5], [7, 7, 7, 1, 2]])
    out = table[ids]
    dout, (dtable,) = grads(out, [table])
    save('embedding', {'ids': ids, 'table': table, 'out': out, 'dout': dout, 'dtable': dtable})


def op_rmsnorm():
    x, w = rnd(3, 5, 16), rnd(16, scale=0.5)
    eps = 1e-5
    out = rms_norm(x, w, eps)
    dout, (dx, dw) = grads(out, [x, w])
    save('rmsnorm', {'x': x, 'w': w, 'out': out, 'dout': dout, 'dx': dx, 'dw': dw}, {'eps': eps})


def op_matmul():
    x, w, b = rnd(4, 7, 12), rnd(10, 12, scale=0.3), rnd(10)
    out = x @ w.T + b
    dout, (dx, dw, db) = grads(out, [x, w, b])
    save('matmul', {'x': x, 'w': w, 'b': b, 'out': out, 'dout': dout, 'dx': dx, 'dw': dw, 'db': db})
    x, w = rnd(33, 65), rnd(17, 65)
    out = x @ w.T
    dout, (dx, dw) = grads(out, [x, w])
    save('matmul_nobias', {'x': x, 'w': w, 'out': out, 'dout': dout, 'dx': dx, 'dw': dw})


def op_rope():
    cases = [
        ('rope', 8, 10000.0, None, 9, None),
        ('rope_llama3', 16, 500000.0,
         {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
          'original_max_position_embeddings': 64}, 12, [0, 1, 2, 3, 40, 41, 100, 200, 300, 511, 5, 6]),
    ]
    for name, hs, theta, scaling, T, pos in cases:
        P = 512 if pos else T
        cos, sin = rope_tables(hs, P, theta, scaling)
        p = torch.tensor(pos) if pos else torch.arange(T)
        x = rnd(2, T, 3, hs)
        out = apply_rope(x, cos, sin, p)
        dout, (dx,) = grads(out, [x])
        t = {'x': x, 'cos': cos, 'sin': sin, 'out': out, 'dout': dout, 'dx': dx}
        if pos:
            t['pos'] = p
        save(name, t, {'theta': theta, 'head_dim': hs, 'positions': P, 'rope_scaling': scaling})


def op_attention():
    for nkv in (4, 2, 1):
        q, k, v = rnd(2, 70, 4, 8), rnd(2, 70, nkv, 8), rnd(2, 70, nkv, 8)
        out, lse = attention(q, k, v)
        dout, (dq, dk, dv) = grads(out, [q, k, v])
        save(f'attention_kv{nkv}', {'q': q, 'k': k, 'v': v, 'out': out, 'lse': lse, 'dout': dout,
                                    'dq': dq, 'dk': dk, 'dv': dv})


def op_swiglu():
    gu = rnd(5, 48, scale=2.0)
    g, u = gu[:, :24], gu[:, 24:]
    out = torch.nn.functional.silu(g) * u
    dout, (dgu,) = grads(out, [gu])
    save('swiglu', {'gu': gu, 'out': out, 'dout': dout, 'dgu': dgu})


def op_losses():
    logits = rnd(6, 20, scale=3.0)
    targets = torch.tensor([3, 0, 19, -100, 7, 7])
    loss = torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100)
    (dlogits,) = torch.autograd.grad(loss, [logits])
    save('cross_entropy', {'logits': logits, 'targets': targets, 'loss': loss.reshape(1), 'dlogits': dlogits})

    teacher, student = rnd(6, 20, scale=2.0), rnd(6, 20, scale=2.0)
    lt, ls = torch.log_softmax(teacher, -1), torch.log_softmax(student, -1)
    rows = (lt.exp() * (lt - ls)).sum(-1)
    loss = rows.mean()
    (dstudent,) = torch.autograd.grad(loss, [student])
    save('kl', {'teacher': teacher, 'student': student, 'rows': rows, 'loss': loss.reshape(1), 'dstudent': dstudent})

    x, y = rnd(6, 16), rnd(6, 16)
    rows = 1 - torch.nn.functional.cosine_similarity(x, y, dim=-1)
    loss = rows.mean()
    (dx,) = torch.autograd.grad(loss, [x])
    save('cosine', {'x': x, 'y': y, 'rows': rows, 'loss': loss.reshape(1), 'dx': dx})

    x, y = rnd(4, 16), rnd(4, 16)
    loss = ((x - y) ** 2).mean() / (y ** 2).mean()
    (dx,) = torch.autograd.grad(loss, [x])
    save('nmse', {'x': x, 'y': y, 'loss': loss.reshape(1), 'dx': dx})


def op_adamw():
    # Three AdamW steps with global-norm clipping, exactly as torch.optim.AdamW +
    # torch.nn.utils.clip_grad_norm_ do it.
    p0 = torch.randn(2, 37, dtype=D)
    g = [torch.randn(2, 37, dtype=D) * s for s in (1.0, 3.0, 0.1)]
    cfg = {'lr': 1e-2, 'betas': (0.9, 0.95), 'eps': 1e-8, 'weight_decay': 0.1}
    clip = 1.0
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([p], lr=cfg['lr'], betas=cfg['betas'], eps=cfg['eps'], weight_decay=cfg['weight_decay'])
    tensors = {'p0': p0}
    for i, gi in enumerate(g):
        p.grad = gi.clone()
        torch.nn.utils.clip_grad_norm_([p], clip)
        opt.step()
        tensors[f'g{i}'] = gi
        tensors[f'p{i + 1}'] = p.detach().clone()
    save('adamw', tensors, {'lr': cfg['lr'], 'beta1': 0.9, 'beta2': 0.95, 'eps': cfg['eps'],
                            'weight_decay': cfg['weight_decay'], 'clip': clip})


# ------------------------------------------------------------------ whole blocks (DeciLM semantics)
C, NH, HS, F, B, T, EPS = 32, 4, 8, 48, 2, 70, 1e-5


def block_params(attn, nkv, ffn):
    p = {}
    if attn != 'noop':
        p['input_layernorm.weight'] = rnd(C, scale=0.2).detach().add_(1).requires_grad_(True)
    if attn == 'gqa':
        p['self_attn.q_proj.weight'] = rnd(NH * HS, C, scale=C ** -0.5)
        p['self_attn.k_proj.weight'] = rnd(nkv * HS, C, scale=C ** -0.5)
        p['self_attn.v_proj.weight'] = rnd(nkv * HS, C, scale=C ** -0.5)
        p['self_attn.o_proj.weight'] = rnd(C, NH * HS, scale=(NH * HS) ** -0.5)
    elif attn == 'linear':
        p['self_attn.linear_attn.weight'] = rnd(C, C, scale=C ** -0.5)
    if ffn != 'noop':
        p['post_attention_layernorm.weight'] = rnd(C, scale=0.2).detach().add_(1).requires_grad_(True)
    if ffn == 'swiglu':
        p['mlp.gate_proj.weight'] = rnd(F, C, scale=C ** -0.5)
        p['mlp.up_proj.weight'] = rnd(F, C, scale=C ** -0.5)
        p['mlp.down_proj.weight'] = rnd(C, F, scale=F ** -0.5)
    elif ffn == 'linear':
        p['mlp.linear_mlp.weight'] = rnd(C, C, scale=C ** -0.5)
    return p


def block_forward(x, p, attn, nkv, ffn, cos, sin):
    pos = torch.arange(x.shape[1])
    if attn != 'noop':
        h = rms_norm(x, p['input_layernorm.weight'], EPS)
        if attn == 'linear':
            a = h @ p['self_attn.linear_attn.weight'].T
        else:
            q = (h @ p['self_attn.q_proj.weight'].T).view(B, T, NH, HS)
            k = (h @ p['self_attn.k_proj.weight'].T).view(B, T, nkv, HS)
            v = (h @ p['self_attn.v_proj.weight'].T).view(B, T, nkv, HS)
            q, k = apply_rope(q, cos, sin, pos), apply_rope(k, cos, sin, pos)
            o, _ = attention(q, k, v)
            a = o.reshape(B, T, NH * HS) @ p['self_attn.o_proj.weight'].T
        x = x + a
    if ffn != 'noop':
        h = rms_norm(x, p['post_attention_layernorm.weight'], EPS)
        if ffn == 'linear':
            f = h @ p['mlp.linear_mlp.weight'].T
        else:
            f = (torch.nn.functional.silu(h @ p['mlp.gate_proj.weight'].T) * (h @ p['mlp.up_proj.weight'].T)) \
                @ p['mlp.down_proj.weight'].T
        x = x + f
    return x


def blocks():
    cos, sin = rope_tables(HS, T, 10000.0)
    for attn, nkv in (('gqa', 4), ('gqa', 2), ('gqa', 1), ('linear', 0), ('noop', 0)):
        for ffn in ('swiglu', 'linear', 'noop'):
            p = block_params(attn, nkv, ffn)
            x = rnd(B, T, C)
            out = block_forward(x, p, attn, nkv, ffn, cos, sin)
            names = list(p)
            dout, gs = grads(out, [x] + [p[n] for n in names])
            t = {'x': x, 'out': out, 'dout': dout, 'dx': gs[0]}
            for n, gr in zip(names, gs[1:]):
                t['param.' + n] = p[n]
                t['grad.' + n] = gr
            tag = f'{attn}{nkv if attn == "gqa" else ""}_{ffn}'
            save('block_' + tag, t, {'attention': attn, 'kv_heads': nkv, 'ffn': ffn, 'hidden': C, 'heads': NH,
                                     'head_dim': HS, 'ffn_width': F, 'eps': EPS, 'rope_theta': 10000.0,
                                     'B': B, 'T': T})


if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    for f in (op_embedding, op_rmsnorm, op_matmul, op_rope, op_attention, op_swiglu, op_losses, op_adamw, blocks):
        f()
    print('golden files written to', os.path.normpath(OUT), file=sys.stderr)
