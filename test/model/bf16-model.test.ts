// A LlamaModel in mixed precision ('bfloat16': bf16 blocks with float32 master weights, float32
// embedding, norm, head and losses) against the same weights in float32: logits, hidden states,
// gradients of a training step, cached generation; the cast op it is built on; and the errors.
import { describe, expect, it } from 'vitest';
import * as ops from '../../ts/core/ops.js';
import { ids, tensor } from '../../ts/core/tensor.js';
import { Block } from '../../ts/core/block.js';
import { LlamaModel, blockShape } from '../../ts/model/llama.js';
import { tinyConfig, synthetic } from '../support/tiny-run.js';
import { trainLayer, DEFAULT_BLD, type VariantJob } from '../../ts/library/bld.js';
import { gkdBackward } from '../../ts/distill/gkd.js';
import { packedFromArrays } from '../../ts/train/batches.js';
import { expectError } from '../support/expect-error.js';

function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) num += (a[i] - b[i]) ** 2, den += b[i] ** 2;
  return Math.sqrt(num / Math.max(den, 1e-30));
}
const relNum = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
// every activation rounded to 8 significant bits between ops, summed in float32
const TOL = 2e-2;

describe('cast', () => {
  it('rounds float32 to bfloat16 as the host conversion does, and widens exactly', async () => {
    const x = Float32Array.from({ length: 101 }, (_, i) => Math.sin(i * 1.7) * 10 ** ((i % 9) - 4));
    const f = tensor(x, [101]);
    const h = await ops.cast(f, 'bfloat16');
    expect(h.dtype).toBe('bfloat16');
    expect(Array.from(h.toArray())).toEqual(Array.from(tensor(x, [101], 'bfloat16').toArray()));
    const back = await ops.cast(h, 'float32');
    expect(back.dtype).toBe('float32');
    expect(Array.from(back.toArray())).toEqual(Array.from(h.toArray()));
    expect(await ops.cast(f, 'float32')).toBe(f);  // already that dtype: the tensor itself
  });

  it('names a bad argument', async () => {
    const f = tensor(new Float32Array(4), [4]);
    f.dispose();
    await expectError(() => ops.cast(f, 'bfloat16'), 'ERR_PUZZLE_DISPOSED', "'x'");
  });
});

describe('a bfloat16 LlamaModel', () => {
  const config = tinyConfig();
  const tok = ids([1, 5, 9, 2, 23, 7, 0, 12, 3, 4], [2, 5]);
  const tgt = ids([5, 9, 2, 23, 7, 0, 12, 3, 4, 6], [10]);

  it('matches the float32 model: logits, hidden states (float32) and every gradient of a step', async () => {
    const m32 = LlamaModel.random(config, 7), m16 = LlamaModel.random(config, 7, 0.02, 'cpu', 'bfloat16');
    expect(m16.dtype).toBe('bfloat16');
    expect(m16.blocks.every((b) => b.dtype === 'bfloat16')).toBe(true);
    const grads: Array<Map<string, Float32Array>> = [];
    const outs = [] as Array<{ logits: Float32Array; hidden: Float32Array[] }>;
    for (const m of [m32, m16]) {
      const r = await m.forward(tok, { train: true, hidden: true });
      expect(r.hidden.every((h) => h.dtype === 'float32')).toBe(true);
      outs.push({ logits: r.logits.toArray() as Float32Array, hidden: r.hidden.map((h) => h.toArray() as Float32Array) });
      const ce = await ops.crossEntropyForward(r.logits, tgt);
      const d = await ops.crossEntropyBackward(r.logits, ce.lse, tgt, 1 / ce.count);
      m.zeroGrad();
      // an extra float32 gradient on layer 0's output, as GKD's per-layer cosine loss gives
      const extra = tensor(Float32Array.from({ length: r.hidden[0].numel }, (_, i) => Math.cos(i) * 1e-3), r.hidden[0].shape);
      await m.backward(d, [extra, null]);
      const g = new Map<string, Float32Array>();
      for (const p of m.paramGroups()) g.set(`${grads.length}:${g.size}`, p.grad.toArray() as Float32Array);
      grads.push(g);
    }
    expect(rel(outs[1].logits, outs[0].logits)).toBeLessThan(TOL);
    for (const [i, h] of outs[1].hidden.entries()) expect(rel(h, outs[0].hidden[i]), `hidden ${i}`).toBeLessThan(TOL);
    // and the bf16 model really rounded: not the float32 model's bits
    expect(rel(outs[1].logits, outs[0].logits)).toBeGreaterThan(0);
    const [g32, g16] = grads.map((g) => [...g.values()]);
    expect(g16.length).toBe(g32.length);
    for (const [i, g] of g16.entries()) expect(rel(g, g32[i]), `gradient group ${i}`).toBeLessThan(5e-2);
  });

  it('generates over a bfloat16 KV cache as its full forward does', async () => {
    const m = LlamaModel.random(config, 11, 0.02, 'cpu', 'bfloat16');
    const cache = m.newCache(2, 8);
    expect(cache.layers[0]!.k.dtype).toBe('bfloat16');
    const prompt = ids([1, 5, 9, 2, 23, 7, 0, 12], [2, 4]);
    const pre = await m.forwardCached(prompt, cache);
    const step = await m.forwardCached(ids([3, 4], [2, 1]), cache);
    const full = await m.forward(ids([1, 5, 9, 2, 3, 23, 7, 0, 12, 4], [2, 5]));
    const V = config.vocab;
    const f = full.logits.toArray();
    const want = new Float32Array(2 * V), wantPre = new Float32Array(2 * 4 * V);
    for (let b = 0; b < 2; b++) {
      want.set(f.subarray((b * 5 + 4) * V, (b * 5 + 5) * V), b * V);
      wantPre.set(f.subarray(b * 5 * V, (b * 5 + 4) * V), b * 4 * V);
    }
    expect(rel(pre.toArray(), wantPre)).toBeLessThan(TOL);
    expect(rel(step.toArray(), want)).toBeLessThan(TOL);
  });

  it('forInference serves the same logits from the bf16 weights alone, then refuses their float32 views; a float32 model is left as it is', async () => {
    const m = LlamaModel.random(config, 13, 0.02, 'cpu', 'bfloat16');
    const prompt = ids([1, 5, 9, 2, 23, 7, 0, 12], [2, 4]);
    const run = async () => {
      const cache = m.newCache(2, 6);
      const pre = (await m.forwardCached(prompt, cache)).toArray();
      const step = (await m.forwardCached(ids([3, 4], [2, 1]), cache)).toArray();
      return [Array.from(pre), Array.from(step), Array.from((await m.forward(prompt)).logits.toArray())];
    };
    const before = await run();
    expect(m.forInference()).toBe(m);
    expect(await run()).toEqual(before);  // bit for bit
    await expectError(() => m.blocks[0].param('mlp.up_proj.weight'), 'ERR_PUZZLE_STATE', 'dropMasterWeights');
    const f32 = LlamaModel.random(config, 13);
    f32.forInference();
    expect(f32.blocks[0].param('mlp.up_proj.weight').numel).toBeGreaterThan(0);
  });

  it('refuses blocks of another dtype, and a dtype it does not have', () => {
    const c = tinyConfig();
    const blocks = c.layers.map((l, i) => new Block({ ...blockShape(c, l), dtype: i === 1 ? 'bfloat16' : 'float32' }));
    expect(() => new LlamaModel(c, blocks)).toThrow(/block 1 is bfloat16, the model float32/);
    expect(() => new LlamaModel(c, undefined, 'cpu', 'float16' as 'bfloat16')).toThrow(/dtype must be 'float32' or 'bfloat16', got 'float16'/);
  });

  it('trains BLD variants and takes GKD steps as the float32 model does', async () => {
    const c = tinyConfig();
    const data = packedFromArrays(synthetic(6, 9, 3));
    const L = c.layers[1];
    const jobs = [
      { id: 'ffn-linear', layer: { attention: L.attention, ffn: { kind: 'linear' } }, trains: ['ffn'] },
      { id: 'attn-kv1', layer: { attention: { kind: 'gqa', kvHeads: 1 }, ffn: L.ffn }, trains: ['attention'] },
    ] as VariantJob[];
    const settings = { ...DEFAULT_BLD, batch: 2, steps: 2, lr: 1e-3, calibrationBatches: 1, validationBatches: 1 };
    const res = [] as Awaited<ReturnType<typeof trainLayer>>[];
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const parent = LlamaModel.random(c, 5, 0.02, 'cpu', dtype);
      res.push(await trainLayer({ parent, layer: 1, jobs, train: data, validation: data, settings }));
    }
    for (const [i, v] of res[1].entries()) {
      expect(v.block.dtype).toBe('bfloat16');
      expect(relNum(v.valNmseInit, res[0][i].valNmseInit), `${v.job.id} init`).toBeLessThan(5e-2);
      expect(relNum(v.valNmseFinal, res[0][i].valNmseFinal), `${v.job.id} final`).toBeLessThan(5e-2);
    }
    const input = ids([1, 5, 9, 2, 23, 7, 0, 12], [2, 4]), targets = ids([5, 9, 2, 23, 7, 0, 12, 3], [8]);
    const losses = [] as number[];
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const parent = LlamaModel.random(c, 6, 0.02, 'cpu', dtype), child = LlamaModel.random(c, 7, 0.02, 'cpu', dtype);
      child.zeroGrad();
      losses.push((await gkdBackward(parent, child, input, targets, { cosine: 1, kl: 1, lm: 0.5 })).loss);
    }
    expect(relNum(losses[1], losses[0])).toBeLessThan(2e-2);
  });
});
