// Mixed precision on the CPU: bf16 tensors, and whole bf16 blocks (bf16 activations, fp32 master
// weights and gradients) against the same PyTorch goldens as the fp32 blocks, with the bf16
// tolerances. The CPU's bf16 ops are the reference the CUDA bf16 kernels are checked against.
import { afterAll, describe, expect, it } from 'vitest';
import { Block } from '../../ts/core/block.js';
import { tensor, zeros, type Tensor } from '../../ts/core/tensor.js';
import { Golden, arr, expectClose, goldenBlock } from '../support/golden.js';
import { expectError } from '../support/expect-error.js';
import { TOL } from '../support/tolerances.js';

const live: Array<Tensor | Block> = [];
afterAll(() => live.splice(0).forEach((t) => t.dispose()));

/** ||a - e|| / ||e||: the error measure of a whole bf16 computation */
function relL2(a: ArrayLike<number>, e: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < e.length; i++) {
    num += (a[i] - e[i]) ** 2;
    den += e[i] ** 2;
  }
  return Math.sqrt(num / den);
}

function build(g: Golden, dtype: 'float32' | 'bfloat16') {
  const r = goldenBlock(g, dtype);
  live.push(r.block, r.rope.cos, r.rope.sin);
  return r;
}

describe('bfloat16 tensors', () => {
  it('round to nearest even, keep NaN and infinities, and widen back exactly', () => {
    const x = new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, 3.14159, NaN, Infinity, -Infinity, 1e-40, 65504]);
    const t = tensor(x, [x.length], 'bfloat16');
    live.push(t);
    expect(t.dtype).toBe('bfloat16');
    const y = arr(t);
    expect(Array.from(y.slice(0, 5))).toEqual([1, 1, 1 + 2 ** -6, -2.5, 3.140625]);
    expect(Number.isNaN(y[5])).toBe(true);
    expect([y[6], y[7]]).toEqual([Infinity, -Infinity]);
    expect(y[8] > 0.9e-40 && y[8] < 1.1e-40).toBe(true); // subnormals survive (fp32 exponent range)
    expect(y[9]).toBe(65536); // 65504 is not representable: 8 significant bits
    t.copyFrom(new Float32Array(x.length).fill(0.1));
    expect(arr(t)[0]).toBe(0.10009765625);
    t.fill(-1 / 3);
    expect(arr(t)[3]).toBe(-0.333984375);
    const z = zeros([3], 'bfloat16');
    live.push(z);
    expect(Array.from(arr(z))).toEqual([0, 0, 0]);
  });

  it('refuse an Int32Array for a bfloat16 tensor and name the dtype', async () => {
    await expectError(() => tensor(new Int32Array(2), [2], 'bfloat16'), 'ERR_PUZZLE_DTYPE', 'Int32Array', 'bfloat16');
  });
});

describe('bfloat16 blocks against the PyTorch goldens', () => {
  const variants = [['gqa2', 'swiglu'], ['gqa4', 'linear'], ['gqa1', 'noop'], ['linear', 'swiglu'], ['noop', 'swiglu']];
  for (const [a, f] of variants) {
    it(`attention ${a} + ffn ${f}: forward, input and weight gradients`, async () => {
      const g = new Golden(`block_${a}_${f}`);
      const { block, rope } = build(g, 'bfloat16');
      expect(block.dtype).toBe('bfloat16');
      const B = g.meta<number>('B');
      const T = g.meta<number>('T');
      const x = tensor(g.f32('x'), g.shape('x'), 'bfloat16');
      const out = await block.forward(x, B, T, rope, true);
      live.push(x, out);
      expect(out.dtype).toBe('bfloat16');
      // each element within the bf16 tolerance, and the whole within 1% (relative L2)
      expectClose(arr(out), g.f32('out'), TOL.bf16Block, 'out');
      expect(relL2(arr(out), g.f32('out'))).toBeLessThan(1e-2);
      block.zeroGrad();
      const dout = tensor(g.f32('dout'), g.shape('dout'), 'bfloat16');
      const dx = await block.backward(dout, true);
      live.push(dout, dx!);
      expect(dx!.dtype).toBe('bfloat16');
      expect(relL2(arr(dx), g.f32('dx'))).toBeLessThan(2e-2);
      for (const name of g.names('grad.')) {
        const grad = block.grad(name.slice(5));
        expect(grad.dtype, `${name} stays float32`).toBe('float32');
        expect(relL2(arr(grad), g.f32(name)), name).toBeLessThan(3e-2);
      }
    });
  }

  it('a bf16 block is not an fp32 block: its output is bf16-rounded and differs from the fp32 one', async () => {
    const g = new Golden('block_gqa2_swiglu');
    const lo = build(g, 'bfloat16');
    const hi = build(g, 'float32');
    const B = g.meta<number>('B');
    const T = g.meta<number>('T');
    const x16 = tensor(g.f32('x'), g.shape('x'), 'bfloat16');
    const x32 = tensor(arr(x16), g.shape('x'));
    const a = arr(await lo.block.forward(x16, B, T, lo.rope, false));
    const b = arr(await hi.block.forward(x32, B, T, hi.rope, false));
    live.push(x16, x32);
    for (const v of a) expect(Math.fround(v) === v && (new Uint32Array(new Float32Array([v]).buffer)[0] & 0xffff) === 0).toBe(true);
    const d = relL2(a, b);
    expect(d).toBeGreaterThan(1e-4);
    expect(d).toBeLessThan(1e-2);
  });

  it('picks up weights written after the first forward (the bf16 copy is refreshed)', async () => {
    const g = new Golden('block_linear_linear');
    const { block, rope } = build(g, 'bfloat16');
    const B = g.meta<number>('B');
    const T = g.meta<number>('T');
    const x = tensor(g.f32('x'), g.shape('x'), 'bfloat16');
    live.push(x);
    const before = arr(await block.forward(x, B, T, rope, false));
    block.param('mlp.linear_mlp.weight').fill(0);
    const after = arr(await block.forward(x, B, T, rope, false));
    expect(relL2(after, before)).toBeGreaterThan(1e-2);
  });

  it('cached prefill and decode equal the full forward', async () => {
    const g = new Golden('block_gqa2_swiglu');
    const { block, rope } = build(g, 'bfloat16');
    const C = g.meta<number>('hidden');
    const T = g.meta<number>('T');
    const B = g.meta<number>('B');
    const x = g.f32('x');
    const full = arr(await block.forward(tensor(x, g.shape('x'), 'bfloat16'), B, T, rope, false));
    const kv = g.meta<number>('kv_heads') * g.meta<number>('head_dim');
    const kc = zeros([B, T, kv], 'bfloat16');
    const vc = zeros([B, T, kv], 'bfloat16');
    live.push(kc, vc);
    const split = T - 2;
    const rows = (t0: number, t1: number) => {
      const r = new Float32Array(B * (t1 - t0) * C);
      for (let b = 0; b < B; b++) r.set(x.subarray((b * T + t0) * C, (b * T + t1) * C), b * (t1 - t0) * C);
      return tensor(r, [B, t1 - t0, C], 'bfloat16');
    };
    const pos = (t0: number, t1: number) => tensor(Int32Array.from({ length: t1 - t0 }, (_, i) => t0 + i), [t1 - t0]);
    const parts = [[0, split], [split, split + 1], [split + 1, T]];
    const got = new Float32Array(B * T * C);
    for (const [t0, t1] of parts) {
      const p = pos(t0, t1);
      const xs = rows(t0, t1);
      const o = arr(await block.forwardCached(xs, B, t1 - t0, { ...rope, pos: p }, { k: kc, v: vc }, t0));
      live.push(p, xs);
      for (let b = 0; b < B; b++) got.set(o.subarray(b * (t1 - t0) * C, (b + 1) * (t1 - t0) * C), (b * T + t0) * C);
    }
    expect(relL2(got, full)).toBeLessThan(5e-3);
  });

  it('dropMasterWeights keeps serving the same outputs from the bf16 copy alone, and refuses training', async () => {
    const g = new Golden('block_gqa2_swiglu');
    const { block, rope } = build(g, 'bfloat16');
    const x = tensor(g.f32('x'), g.shape('x'), 'bfloat16');
    live.push(x);
    const before = arr(await block.forward(x, g.meta('B'), g.meta('T'), rope, true));
    block.dropMasterWeights();
    block.dropMasterWeights(); // a second call changes nothing
    const after = arr(await block.forward(x, g.meta('B'), g.meta('T'), rope, true));
    expect(Array.from(after)).toEqual(Array.from(before));
    await expectError(() => block.param('mlp.up_proj.weight'), 'ERR_PUZZLE_STATE', 'dropMasterWeights');
    await expectError(() => block.paramBuffer(), 'ERR_PUZZLE_STATE', 'dropped');
    const dout = tensor(g.f32('dout'), g.shape('dout'), 'bfloat16');
    live.push(dout);
    await expectError(block.backward(dout, true), 'ERR_PUZZLE_STATE', 'inference only');
    const f32 = build(g, 'float32');
    await expectError(() => f32.block.dropMasterWeights(), 'ERR_PUZZLE_DTYPE', 'bfloat16');
  });

  it('hands saved activations out widened to float32', async () => {
    const g = new Golden('block_gqa2_swiglu');
    const b16 = build(g, 'bfloat16'), b32 = build(g, 'float32');
    const x16 = tensor(g.f32('x'), g.shape('x'), 'bfloat16'), x32 = tensor(g.f32('x'), g.shape('x'));
    live.push(x16, x32);
    live.push(await b16.block.forward(x16, g.meta('B'), g.meta('T'), b16.rope, true), await b32.block.forward(x32, g.meta('B'), g.meta('T'), b32.rope, true));
    for (const name of ['attn_input', 'x1', 'ffn_input', 'ffn_hidden']) {
      const a16 = b16.block.savedActivation(name), a32 = b32.block.savedActivation(name);
      live.push(a16, a32);
      expect(a16.dtype).toBe('float32');
      expect(a16.shape).toEqual(a32.shape);
      const v = a16.toArray();
      // bf16 values, exactly widened, close to the float32 block's
      expect(Array.from(tensor(v, a16.shape, 'bfloat16').toArray())).toEqual(Array.from(v));
      expect(relL2(v, a32.toArray()), name).toBeLessThan(2e-2);
    }
  });

  it('refuses float32 activations and unknown dtypes with typed errors', async () => {
    const g = new Golden('block_gqa2_swiglu');
    const { block, rope } = build(g, 'bfloat16');
    const x = tensor(g.f32('x'), g.shape('x'));
    live.push(x);
    await expectError(block.forward(x, g.meta('B'), g.meta('T'), rope, true), 'ERR_PUZZLE_DTYPE', "'x'", 'bfloat16', 'float32');
    const bad = g.f32('x').slice();
    bad[5] = Infinity;
    const xb = tensor(bad, g.shape('x'), 'bfloat16');
    live.push(xb);
    await expectError(block.forward(xb, g.meta('B'), g.meta('T'), rope, true), 'ERR_PUZZLE_NAN', 'Block.forward: x', 'flat index 5');
    await expectError(() => new Block({ hidden: 8, attention: 'linear', ffn: 'noop', dtype: 'float16' as 'bfloat16' }), 'ERR_PUZZLE_ARG', 'config.dtype', 'float16');
  });
});
