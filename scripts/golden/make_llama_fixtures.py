#!/usr/bin/env python3
"""Writes small random Hugging Face checkpoints into test/fixtures/ (as another tool would: HF
tensor names and config keys), with the next-token loss PyTorch computes for a fixed batch, so
`puzzle eval` can be checked against an independent Llama implementation.

  /usr/bin/python3 scripts/golden/make_llama_fixtures.py
"""
import json
import math
import os
import shutil
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, '..', '..', 'test', 'fixtures'))
D = torch.float64


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        t = t.detach().contiguous()
        if dtype == 'BF16':
            data = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        else:
            data = t.to(torch.float32).numpy().tobytes()
        header[k] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header['__metadata__'] = {'format': 'pt'}
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h)
        for b in blobs:
            f.write(b)


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def inv_freq(hd, theta, sc):
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    if not sc:
        return inv
    f, lo, hi, old = sc['factor'], sc['low_freq_factor'], sc['high_freq_factor'], sc['original_max_position_embeddings']
    wl = 2 * math.pi / inv
    il = torch.where(wl > old / lo, inv / f, inv)
    s = (old / wl - lo) / (hi - lo)
    med = ~(wl < old / hi) * ~(wl > old / lo)
    return torch.where(med, (1 - s) * il / f + s * il, il)


def rot(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


def forward(W, cfg, layers, ids):
    B, T = ids.shape
    C, NH, HS = cfg['hidden_size'], cfg['num_attention_heads'], cfg.get('head_dim') or cfg['hidden_size'] // cfg['num_attention_heads']
    eps = cfg['rms_norm_eps']
    rp = cfg.get('rope_parameters')
    theta = rp['rope_theta'] if rp else cfg['rope_theta']
    sc = rp if rp and rp.get('rope_type') == 'llama3' else cfg.get('rope_scaling')
    inv = inv_freq(HS, theta, sc).float()
    fr = torch.arange(T).float()[:, None] * inv[None]
    cos = torch.cat((fr.cos(), fr.cos()), -1).double()[None, :, None]
    sin = torch.cat((fr.sin(), fr.sin()), -1).double()[None, :, None]
    x = W['model.embed_tokens.weight'][ids]
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    for i, (attn, kv, ffn, width) in enumerate(layers):
        p = lambda n: W[f'model.layers.{i}.{n}']
        if attn != 'noop':
            h = rms(x, p('input_layernorm.weight'), eps)
            if attn == 'linear':
                a = h @ p('self_attn.linear_attn.weight').T
            else:
                q = (h @ p('self_attn.q_proj.weight').T).view(B, T, NH, HS)
                k = (h @ p('self_attn.k_proj.weight').T).view(B, T, kv, HS)
                v = (h @ p('self_attn.v_proj.weight').T).view(B, T, kv, HS)
                q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
                k, v = k.repeat_interleave(NH // kv, 2), v.repeat_interleave(NH // kv, 2)
                s = torch.einsum('bthd,bshd->bhts', q, k) / math.sqrt(HS)
                o = torch.einsum('bhts,bshd->bthd', torch.softmax(s.masked_fill(mask, -math.inf), -1), v)
                a = o.reshape(B, T, NH * HS) @ p('self_attn.o_proj.weight').T
            x = x + a
        if ffn != 'noop':
            h = rms(x, p('post_attention_layernorm.weight'), eps)
            if ffn == 'linear':
                f = h @ p('mlp.linear_mlp.weight').T
            else:
                f = (torch.nn.functional.silu(h @ p('mlp.gate_proj.weight').T) * (h @ p('mlp.up_proj.weight').T)) @ p('mlp.down_proj.weight').T
            x = x + f
    x = rms(x, W['model.norm.weight'], eps)
    head = W['model.embed_tokens.weight'] if cfg.get('tie_word_embeddings') else W['lm_head.weight']
    return x @ head.T


def make(name, cfg, layers, dtype='F32', shards=1, seed=0):
    torch.manual_seed(seed)
    C, NH, V = cfg['hidden_size'], cfg['num_attention_heads'], cfg['vocab_size']
    HS = cfg.get('head_dim') or C // NH
    W = {'model.embed_tokens.weight': torch.randn(V, C, dtype=D) * 0.5}
    for i, (attn, kv, ffn, width) in enumerate(layers):
        pre = f'model.layers.{i}.'
        if attn != 'noop':
            W[pre + 'input_layernorm.weight'] = 1 + 0.1 * torch.randn(C, dtype=D)
        if attn == 'gqa':
            W[pre + 'self_attn.q_proj.weight'] = torch.randn(NH * HS, C, dtype=D) * C ** -0.5
            W[pre + 'self_attn.k_proj.weight'] = torch.randn(kv * HS, C, dtype=D) * C ** -0.5
            W[pre + 'self_attn.v_proj.weight'] = torch.randn(kv * HS, C, dtype=D) * C ** -0.5
            W[pre + 'self_attn.o_proj.weight'] = torch.randn(C, NH * HS, dtype=D) * (NH * HS) ** -0.5
        elif attn == 'linear':
            W[pre + 'self_attn.linear_attn.weight'] = torch.randn(C, C, dtype=D) * C ** -0.5
        if ffn != 'noop':
            W[pre + 'post_attention_layernorm.weight'] = 1 + 0.1 * torch.randn(C, dtype=D)
        if ffn == 'swiglu':
            W[pre + 'mlp.gate_proj.weight'] = torch.randn(width, C, dtype=D) * C ** -0.5
            W[pre + 'mlp.up_proj.weight'] = torch.randn(width, C, dtype=D) * C ** -0.5
            W[pre + 'mlp.down_proj.weight'] = torch.randn(C, width, dtype=D) * width ** -0.5
        elif ffn == 'linear':
            W[pre + 'mlp.linear_mlp.weight'] = torch.randn(C, C, dtype=D) * C ** -0.5
    W['model.norm.weight'] = 1 + 0.1 * torch.randn(C, dtype=D)
    if not cfg.get('tie_word_embeddings'):
        W['lm_head.weight'] = torch.randn(V, C, dtype=D) * C ** -0.5
    if dtype == 'BF16':  # what the file holds is what the reference must use
        W = {k: v.to(torch.bfloat16).to(D) for k, v in W.items()}
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
    names = list(W)
    if shards == 1:
        write_safetensors(os.path.join(d, 'model.safetensors'), W, dtype)
    else:
        per = math.ceil(len(names) / shards)
        wm = {}
        for s in range(shards):
            fn = f'model-{s + 1:05d}-of-{shards:05d}.safetensors'
            part = {n: W[n] for n in names[s * per:(s + 1) * per]}
            write_safetensors(os.path.join(d, fn), part, dtype)
            wm.update({n: fn for n in part})
        with open(os.path.join(d, 'model.safetensors.index.json'), 'w') as f:
            json.dump({'metadata': {'total_size': 0}, 'weight_map': wm}, f, indent=2)
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, V, (2, 23), generator=g)
    logits = forward(W, cfg, layers, ids)
    lp = torch.log_softmax(logits[:, :-1], -1)
    tgt = ids[:, 1:]
    loss = -lp.gather(-1, tgt[..., None]).mean().item()
    top1 = (logits[:, :-1].argmax(-1) == tgt).double().mean().item()
    with open(os.path.join(d, 'expected.json'), 'w') as f:
        json.dump({'ids': ids.tolist(), 'loss': loss, 'top1': top1,
                   'logits_first_row': logits[0, 0].tolist()}, f)


base = {'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'hidden_size': 64, 'num_attention_heads': 4,
        'num_key_value_heads': 2, 'intermediate_size': 160, 'num_hidden_layers': 3, 'vocab_size': 97,
        'rms_norm_eps': 1e-5, 'max_position_embeddings': 256, 'hidden_act': 'silu', 'bos_token_id': 1, 'eos_token_id': 2}

if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    gqa3 = [('gqa', 2, 'swiglu', 160)] * 3
    make('llama-gqa-llama3-untied', {**base, 'rope_theta': 500000.0, 'torch_dtype': 'float32', 'tie_word_embeddings': False,
         'rope_scaling': {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                          'original_max_position_embeddings': 8}}, gqa3, seed=1)
    make('llama-tied-bf16-sharded', {**base, 'tie_word_embeddings': True, 'dtype': 'bfloat16', 'head_dim': 16,
         'rope_parameters': {'rope_type': 'llama3', 'rope_theta': 10000.0, 'factor': 4.0, 'low_freq_factor': 1.0,
                             'high_freq_factor': 2.0, 'original_max_position_embeddings': 8}}, gqa3, dtype='BF16', shards=2, seed=2)
    deci_layers = [('gqa', 1, 'swiglu', 256), ('linear', 0, 'linear', 0), ('noop', 0, 'swiglu', 512), ('gqa', 4, 'noop', 0)]
    deci = {**base, 'architectures': ['DeciLMForCausalLM'], 'model_type': 'nemotron-nas', 'num_hidden_layers': 4,
            'num_key_value_heads': None, 'intermediate_size': None, 'rope_theta': 10000.0, 'tie_word_embeddings': False,
            'block_configs': [
                {'attention': {'n_heads_in_group': 4, 'no_op': False, 'replace_with_linear': False}, 'ffn': {'ffn_mult': 6.0, 'no_op': False, 'replace_with_linear': False}},
                {'attention': {'n_heads_in_group': None, 'no_op': False, 'replace_with_linear': True}, 'ffn': {'ffn_mult': None, 'no_op': False, 'replace_with_linear': True}},
                {'attention': {'n_heads_in_group': None, 'no_op': True, 'replace_with_linear': False}, 'ffn': {'ffn_mult': 12.0, 'no_op': False, 'replace_with_linear': False}},
                {'attention': {'n_heads_in_group': 1, 'no_op': False, 'replace_with_linear': False}, 'ffn': {'ffn_mult': None, 'no_op': True, 'replace_with_linear': False}},
            ]}
    make('decilm-mixed', deci, deci_layers, seed=3)
    print('fixtures written to', OUT)
