// Whole decoder blocks, every attention x FFN variant, forward and backward against PyTorch.
import { afterAll, describe, expect, it } from 'vitest';
import { Block } from '../../ts/core/block.js';
import { tensor, type Tensor } from '../../ts/core/tensor.js';
import { Golden, arr, expectClose, goldenBlock } from '../support/golden.js';
import { TOL } from '../support/tolerances.js';

const variants: Array<[string, string]> = [];
for (const a of ['gqa4', 'gqa2', 'gqa1', 'linear', 'noop']) for (const f of ['swiglu', 'linear', 'noop']) variants.push([a, f]);

const live: Array<Tensor | Block> = [];
afterAll(() => live.splice(0).forEach((t) => t.dispose()));

function build(g: Golden): { block: Block; rope: { cos: Tensor; sin: Tensor } } {
  const r = goldenBlock(g);
  live.push(r.block, r.rope.cos, r.rope.sin);
  return r;
}

describe('decoder block (DeciLM semantics)', () => {
  for (const [a, f] of variants) {
    it(`attention ${a} + ffn ${f}`, async () => {
      const g = new Golden(`block_${a}_${f}`);
      const { block, rope } = build(g);
      // exactly the tensors DeciLM has for this variant, no more (a no-op has not even a norm)
      expect(block.params().map((p) => p.name).sort()).toEqual(g.names('param.').map((n) => n.slice(6)).sort());
      const B = g.meta<number>('B');
      const T = g.meta<number>('T');
      const x = tensor(g.f32('x'), g.shape('x'));
      const out = await block.forward(x, B, T, rope, true);
      live.push(x, out);
      expectClose(arr(out), g.f32('out'), TOL.block, 'out');
      block.zeroGrad();
      const dout = tensor(g.f32('dout'), g.shape('dout'));
      const dx = await block.backward(dout, true);
      live.push(dout, dx!);
      expectClose(arr(dx), g.f32('dx'), TOL.block, 'dx');
      for (const name of g.names('grad.')) expectClose(arr(block.grad(name.slice(5))), g.f32(name), TOL.block, name);
    });
  }

  it('frozen parameters get no gradient; the others are unchanged by freezing', async () => {
    const g = new Golden('block_gqa2_swiglu');
    const { block, rope } = build(g);
    const frozen = ['self_attn.k_proj.weight', 'mlp.up_proj.weight', 'input_layernorm.weight'];
    for (const n of frozen) block.setTrainable(n, false);
    const x = tensor(g.f32('x'), g.shape('x'));
    const dout = tensor(g.f32('dout'), g.shape('dout'));
    live.push(x, dout);
    live.push(await block.forward(x, g.meta('B'), g.meta('T'), rope, true));
    block.zeroGrad();
    const dx = await block.backward(dout, true);
    live.push(dx!);
    expectClose(arr(dx), g.f32('dx'), TOL.block, 'dx');
    for (const p of block.params()) {
      const got = arr(block.grad(p.name));
      if (frozen.includes(p.name)) expect(got.every((v) => v === 0), `${p.name} must stay zero`).toBe(true);
      else expectClose(got, g.f32(`grad.${p.name}`), TOL.block, p.name);
    }
  });

  it('backward without an input gradient still accumulates parameter gradients, twice = double', async () => {
    const g = new Golden('block_gqa1_swiglu');
    const { block, rope } = build(g);
    const x = tensor(g.f32('x'), g.shape('x'));
    const dout = tensor(g.f32('dout'), g.shape('dout'));
    live.push(x, dout);
    block.zeroGrad();
    for (let i = 0; i < 2; i++) {
      live.push(await block.forward(x, g.meta('B'), g.meta('T'), rope, true));
      expect(await block.backward(dout, false)).toBeNull();
    }
    const want = g.f32('grad.mlp.down_proj.weight').map((v) => 2 * v);
    expectClose(arr(block.grad('mlp.down_proj.weight')), want, TOL.block, 'accumulated down_proj grad');
  });
});

describe('saved activations', () => {
  it('ffn_input and ffn_hidden equal the ops composed by hand', async () => {
    const ops = await import('../../ts/core/ops.js');
    const g = new Golden('block_noop_swiglu');
    const { block } = build(g);
    const x = tensor(g.f32('x'), g.shape('x'));
    live.push(x, await block.forward(x, g.meta('B'), g.meta('T'), null, true));
    const w2 = block.param('post_attention_layernorm.weight');
    const { out: ln2 } = await ops.rmsnormForward(x, w2, g.meta('eps'));
    const F = g.meta<number>('ffn_width');
    const C = g.meta<number>('hidden');
    const gate = arr(block.param('mlp.gate_proj.weight'));
    const up = arr(block.param('mlp.up_proj.weight'));
    const gu = tensor(Float32Array.from([...gate, ...up]), [2 * F, C]);
    const h = await ops.swigluForward(await ops.matmulForward(ln2, gu));
    expectClose(arr(block.savedActivation('ffn_input')), arr(ln2), TOL.op, 'ffn_input');
    expectClose(arr(block.savedActivation('ffn_hidden')), arr(h), TOL.op, 'ffn_hidden');
    expect(() => block.savedActivation('attn_input')).toThrow(/no activation 'attn_input'/);
  });
});
