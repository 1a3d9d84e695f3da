// Block.forwardCachedStack (a model's layers over their KV caches in one native task, the later
// layers in place on the output) against forwardCached called block by block: bit for bit, the
// caches included, for every attention and FFN kind and per-layer KV heads, in float32 and
// bfloat16; and the errors it gives for arguments that do not fit.
import { afterAll, describe, expect, it } from 'vitest';
import { Block, type BlockShape } from '../../ts/core/block.js';
import { tensor, zeros, ids, type Tensor } from '../../ts/core/tensor.js';
import { ropeTables } from '../../ts/model/rope.js';

const C = 32, HS = 8, P = 24;
const shapes: BlockShape[] = [
  { hidden: C, attention: 'gqa', heads: 4, headDim: HS, kvHeads: 2, ffn: 'swiglu', ffnWidth: 48 },
  { hidden: C, attention: 'linear', ffn: 'noop' },
  { hidden: C, attention: 'gqa', heads: 4, headDim: HS, kvHeads: 1, ffn: 'linear' },
  { hidden: C, attention: 'noop', ffn: 'swiglu', ffnWidth: 40 },
  { hidden: C, attention: 'gqa', heads: 4, headDim: HS, kvHeads: 4, ffn: 'noop' },
  { hidden: C, attention: 'noop', ffn: 'linear' },
];
const made: Array<{ dispose(): void }> = [];
afterAll(() => made.forEach((t) => t.dispose()));
const keep = <T extends { dispose(): void }>(t: T) => (made.push(t), t);

let seed = 7;
const rand = (n: number, scale: number) => Float32Array.from({ length: n }, () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return scale * ((seed / 2 ** 32) * 2 - 1);
});

function blocksOf(dtype: 'float32' | 'bfloat16'): Block[] {
  return shapes.map((s) => {
    const b = keep(new Block({ ...s, dtype }));
    for (const p of b.params()) b.param(p.name).copyFrom(p.shape.length === 1 ? rand(p.numel, 0.2).map((v) => 1 + v) : rand(p.numel, 0.3));
    return b;
  });
}

const { cos: c32, sin: s32 } = ropeTables(HS, P, 10000);
const rope = (past: number, T: number) => ({
  cos: keep(tensor(c32, [P, HS / 2])), sin: keep(tensor(s32, [P, HS / 2])),
  pos: keep(ids(Int32Array.from({ length: T }, (_, t) => past + t), [T])),
});
const caches = (blocks: Block[], B: number, dtype: 'float32' | 'bfloat16') =>
  blocks.map((b) => b.shape.attention === 'gqa' ? { k: keep(zeros([B, P, b.shape.kvHeads!, HS], dtype)), v: keep(zeros([B, P, b.shape.kvHeads!, HS], dtype)) } : null);
const bits = (t: Tensor) => Array.from(t.toArray());

describe('Block.forwardCachedStack', () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    it(`equals forwardCached block by block, bit for bit, caches included (${dtype}): a prefill, then decode steps`, async () => {
      const blocks = blocksOf(dtype), B = 2;
      const one = caches(blocks, B, dtype), stack = caches(blocks, B, dtype);
      let past = 0;
      for (const T of [5, 1, 1, 3]) {
        const x = keep(tensor(rand(B * T * C, 1), [B, T, C], 'float32'));
        const xd = dtype === 'float32' ? x : keep(tensor(x.toArray() as Float32Array, [B, T, C], 'bfloat16'));
        const r = rope(past, T);
        const before = bits(xd);
        let h = xd;
        for (const [i, b] of blocks.entries()) h = keep(await b.forwardCached(h, B, T, r, one[i], past));
        const got = keep(await Block.forwardCachedStack(blocks, xd, B, T, r, stack, past));
        expect(got.shape).toEqual([B, T, C]);
        expect(bits(got)).toEqual(bits(h));
        for (const [i, c] of one.entries()) if (c) expect([bits(stack[i]!.k), bits(stack[i]!.v)]).toEqual([bits(c.k), bits(c.v)]);
        expect(bits(xd)).toEqual(before);  // the layers after the first work in place on the output, not on x
        past += T;
      }
    });
  }

  it('refuses arguments that do not fit, naming them', async () => {
    const blocks = blocksOf('float32'), B = 1, T = 1;
    const x = keep(tensor(rand(C, 1), [B, T, C]));
    const r = rope(0, T);
    const cs = caches(blocks, B, 'float32');
    const call = (bs: unknown[], c = cs, xx: Tensor = x) => Block.forwardCachedStack(bs as Block[], xx, B, T, r, c, 0);
    await expect(call([])).rejects.toMatchObject({ code: 'ERR_PUZZLE_ARG', message: expect.stringContaining("'blocks' is empty") });
    await expect(call(blocks, cs.slice(1))).rejects.toMatchObject({ code: 'ERR_PUZZLE_ARG', message: expect.stringContaining("'kCaches' must be an array with one entry") });
    await expect(call(blocks, [null, ...cs.slice(1)])).rejects.toMatchObject({ code: 'ERR_PUZZLE_ARG', message: expect.stringContaining("'kCaches[0]' must be a Tensor") });
    const wrong = [...cs];
    wrong[2] = { k: cs[2]!.k, v: keep(zeros([B, P - 1, 1, HS])) };  // one row short of its keys' cache
    await expect(call(blocks, wrong)).rejects.toMatchObject({ code: 'ERR_PUZZLE_SHAPE', message: expect.stringContaining("'vCaches[2]'") });
    const bf = keep(new Block({ ...shapes[1], dtype: 'bfloat16' }));
    await expect(call([blocks[0], bf], cs.slice(0, 2))).rejects.toMatchObject({ code: 'ERR_PUZZLE_DTYPE', message: expect.stringContaining("'blocks[1]' is bfloat16") });
    const wide = keep(new Block({ ...shapes[1], hidden: 2 * C }));
    await expect(call([blocks[0], wide], cs.slice(0, 2))).rejects.toMatchObject({ code: 'ERR_PUZZLE_SHAPE', message: expect.stringContaining('hidden size 64') });
    await expect(call([blocks[0], {}], cs.slice(0, 2))).rejects.toMatchObject({ code: 'ERR_PUZZLE_ARG', message: expect.stringContaining("'blocks[1]' must be a Block") });
    const gone = new Block(shapes[1]);
    gone.dispose();
    await expect(call([blocks[0], gone], cs.slice(0, 2))).rejects.toMatchObject({ code: 'ERR_PUZZLE_DISPOSED', message: expect.stringContaining("'blocks[1]'") });
    await expect(Block.forwardCachedStack(blocks, x, B, T, r, cs, P)).rejects.toMatchObject({ code: 'ERR_PUZZLE_RANGE', message: expect.stringContaining("'kCaches[0]'") });
  });
});
