// The GPU from Node: device tensors, every op, Block (fp32 and bf16) and LlamaModel on 'cuda',
// against the CPU engine. Where a GPU answers this runs on it. Elsewhere it runs on the whole CUDA
// module built for the CPU emulator (test/support/cuda-module.ts), so the bindings' device paths
// and the kernels behind them are exercised by every `npm test`, GPU or not. Shapes are tiny
// because the emulator is slow; cuda_check (benchmarks/gpu/check.sh) covers real sizes.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseCudaModule } from '../support/cuda-module.js';

const choice = chooseCudaModule();
const usable = 'where' in choice;

// Imported after PUZZLE_CUDA_MODULE is set (the addon reads it at the first CUDA question).
const { loadAddon } = await import('../../ts/native/loader.js');
const ops = await import('../../ts/core/ops.js');
const { tensor, zeros, ids, to } = await import('../../ts/core/tensor.js');
const { Block } = await import('../../ts/core/block.js');
const { AdamW } = await import('../../ts/core/optim.js');
const { LlamaModel } = await import('../../ts/model/llama.js');
const { randn } = await import('../../ts/bench/engine.js');
const { trainLayer, DEFAULT_BLD } = await import('../../ts/library/bld.js');
const { gkdBackward } = await import('../../ts/distill/gkd.js');
const { packedFromArrays } = await import('../../ts/train/batches.js');
const { buildLibrary } = await import('../../ts/library/build.js');
const { scoreLibrary } = await import('../../ts/score/replace1.js');
const { loadModel, saveModel } = await import('../../ts/model/hf.js');
const { runEval } = await import('../../ts/eval/run.js');
const { cpSync, mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
const { tmpdir } = await import('node:os');
type Tensor = import('../../ts/core/tensor.js').Tensor;

if (usable) console.log(`device tests on ${choice.where}: ${loadAddon().cudaInfo().description}`);

/** relative L2 error of a against b */
function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) num += (a[i] - b[i]) ** 2, den += b[i] ** 2;
  return Math.sqrt(num / Math.max(den, 1e-30));
}
// Tolerances, CUDA against CPU (relative L2): elementwise and reductions are fp32 on both sides;
// matrix products run on the tensor cores with bf16 operands (fp32 accumulation); bf16 storage
// rounds every activation to 8 bits.
// Adam divides by sqrt(v): a near-zero gradient's small GPU-CPU difference becomes a difference of
// up to lr in its update, so weights after a step get a looser bound.
const TOL = { f32: 1e-5, mma: 1e-2, bf16: 2e-2, adam: 3e-2 };
function expectRel(gpu: Tensor, cpu: Tensor, tol: number, label: string): void {
  expect(gpu.device, label).toBe('cuda');
  const e = rel(gpu.toArray(), cpu.toArray());
  expect(e, `${label}: relative L2 error ${e.toExponential(2)}`).toBeLessThanOrEqual(tol);
}
const gpuCopy = (t: Tensor) => to(t, 'cuda');

describe.runIf('skip' in choice && choice.skip.startsWith('BUILD FAILED'))('the emulated CUDA module', () => {
  it('builds', () => {
    expect.fail('skip' in choice ? choice.skip : '');
  });
});

describe.runIf(choice.where === 'emulator')('a GPU older than sm_80', () => {
  it('is refused at the probe with the reason, as ERR_PUZZLE_NO_GPU, not at its first kernel', () => {
    const addon = join(import.meta.dirname, '..', '..', 'build', 'Release', 'puzzle.node');
    const script = `const a = require(${JSON.stringify(addon)}); const i = a.cudaInfo();
      let code = '', message = '';
      try { a.Tensor.fromArray(new Float32Array([1]), [1], 'float32', 'cuda'); } catch (e) { code = e.code; message = e.message; }
      console.log(JSON.stringify({ devices: i.devices, reason: i.description, code, message }));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, EMU_SM: '75' } });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(got.devices).toBe(0);
    expect(got.reason).toMatch(/sm_75.*sm_80 or newer/);
    expect(got.code).toBe('ERR_PUZZLE_NO_GPU');
    expect(got.message).toMatch(/sm_75.*sm_80 or newer/);
  });
});

describe.runIf(usable)('tensors on the GPU', () => {
  it('round-trip float32, int32 and bfloat16 data, fill and zeros', () => {
    const x = randn(37, 1, 1);
    const g = tensor(x, [37], 'float32', 'cuda');
    expect(g.device).toBe('cuda');
    expect(Array.from(g.toArray())).toEqual(Array.from(x));
    const i = ids([3, -1, 7], [3], 'cuda');
    expect(Array.from(i.toArray())).toEqual([3, -1, 7]);
    const h = tensor(x, [37], 'bfloat16', 'cuda');
    expect(Array.from(h.toArray())).toEqual(Array.from(tensor(x, [37], 'bfloat16').toArray()));
    expect(Array.from(zeros([5], 'float32', 'cuda').toArray())).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(zeros([2], 'int32', 'cuda').fill(9).toArray())).toEqual([9, 9]);
    expect(Array.from(zeros([2], 'bfloat16', 'cuda').fill(1.5).toArray())).toEqual([1.5, 1.5]);
    g.copyFrom(new Float32Array(37).fill(2));
    expect(g.toArray()[36]).toBe(2);
    expect(Array.from(g.fill(0).toArray())).toEqual(new Array(37).fill(0));  // zero fill: a device memset
  });

  it('to() copies across and returns the tensor itself when it is already there', () => {
    const c = tensor([1, 2, 3]);
    const g = to(c, 'cuda');
    expect(to(g, 'cuda')).toBe(g);
    const back = to(g, 'cpu');
    expect(back.device).toBe('cpu');
    expect(Array.from(back.toArray())).toEqual([1, 2, 3]);
    c.fill(0);  // a copy, not a view
    expect(Array.from(g.toArray())).toEqual([1, 2, 3]);
  });

  it('refuses arguments from two devices, naming both', async () => {
    const a = tensor([1, 2, 3, 4]), b = tensor([1, 2, 3, 4], [4], 'float32', 'cuda');
    await expect(ops.add(a, b)).rejects.toMatchObject({ code: 'ERR_PUZZLE_DEVICE', message: "add: argument 'b' is on cuda but argument 'out' is on cpu; an op runs where its arguments live: move one with tensor.to()" });
    const blk = new Block({ hidden: 8, attention: 'noop', ffn: 'linear', device: 'cuda' });
    await expect(blk.forward(tensor(new Float32Array(8), [1, 1, 8]), 1, 1, null, false)).rejects.toMatchObject({
      code: 'ERR_PUZZLE_DEVICE',
      message: expect.stringContaining("argument 'x' is on cpu but the block is on cuda"),
    });
  });

  it('checks data on the device: ids out of range, non-finite values', async () => {
    const table = tensor(randn(40, 1, 2), [10, 4], 'float32', 'cuda');
    await expect(ops.embeddingForward(ids([1, 10], [2], 'cuda'), table)).rejects.toMatchObject({ code: 'ERR_PUZZLE_RANGE' });
    const logits = tensor(new Float32Array([0, 1, NaN, 2, 0, 1]), [2, 3], 'float32', 'cuda');
    await expect(ops.crossEntropyForward(logits, ids([0, 1]))).rejects.toMatchObject({
      code: 'ERR_PUZZLE_NAN',
      message: expect.stringContaining('flat index 2'),
    });
    const blk = new Block({ hidden: 8, attention: 'noop', ffn: 'linear', dtype: 'bfloat16', device: 'cuda' });
    const xs = new Float32Array(16);
    xs[11] = Infinity;
    await expect(blk.forward(tensor(xs, [1, 2, 8], 'bfloat16', 'cuda'), 1, 2, null, false)).rejects.toMatchObject({
      code: 'ERR_PUZZLE_NAN',
      message: expect.stringContaining('Block.forward: x holds a non-finite value at flat index 11'),
    });
  });
});

describe.runIf(usable)('every op on the GPU matches the CPU engine', () => {
  const N = 6, C = 24, OC = 20, V = 11;
  const x = tensor(randn(N * C, 1, 3), [N, C]);
  const w = tensor(randn(C, 0.5, 4), [C]);
  const W = tensor(randn(OC * C, 0.2, 5), [OC, C]);
  const dy = tensor(randn(N * OC, 1, 6), [N, OC]);

  it('embedding, rmsnorm, matmul forward and backward', async () => {
    const table = tensor(randn(V * C, 1, 7), [V, C]);
    const tok = ids([3, 0, 10, 3, 5, 1], [N]);
    const ec = await ops.embeddingForward(tok, table), eg = await ops.embeddingForward(tok, gpuCopy(table));
    expectRel(eg, ec, TOL.f32, 'embedding forward');
    const dtc = zeros([V, C]), dtg = zeros([V, C], 'float32', 'cuda');
    await ops.embeddingBackward(dtc, x, tok), await ops.embeddingBackward(dtg, gpuCopy(x), tok);
    expectRel(dtg, dtc, TOL.f32, 'embedding backward (repeated ids accumulate)');

    const rc = await ops.rmsnormForward(x, w, 1e-5), rg = await ops.rmsnormForward(gpuCopy(x), gpuCopy(w), 1e-5);
    expectRel(rg.out, rc.out, TOL.f32, 'rmsnorm forward');
    const rbc = await ops.rmsnormBackward(x, x, w, rc.rstd), rbg = await ops.rmsnormBackward(gpuCopy(x), gpuCopy(x), gpuCopy(w), rg.rstd);
    expectRel(rbg.dinp, rbc.dinp, TOL.f32, 'rmsnorm dinp'), expectRel(rbg.dweight, rbc.dweight, TOL.f32, 'rmsnorm dweight');

    const mc = await ops.matmulForward(x, W), mg = await ops.matmulForward(gpuCopy(x), gpuCopy(W));
    expectRel(mg, mc, TOL.mma, 'matmul forward');
    const bc = await ops.matmulBackward(dy, x, W, true), bg = await ops.matmulBackward(gpuCopy(dy), gpuCopy(x), gpuCopy(W), true);
    expectRel(bg.dinp, bc.dinp, TOL.mma, 'matmul dinp'), expectRel(bg.dweight, bc.dweight, TOL.mma, 'matmul dweight');
    expectRel(bg.dbias!, bc.dbias!, TOL.f32, 'matmul dbias');
  });

  it('rope, attention (GQA), swiglu and elementwise forward and backward', async () => {
    const B = 1, T = 9, NH = 4, NKV = 2, HS = 16;
    const cos = tensor(randn(T * HS / 2, 1, 8), [T, HS / 2]), sin = tensor(randn(T * HS / 2, 1, 9), [T, HS / 2]);
    const q = tensor(randn(B * T * NH * HS, 1, 10), [B, T, NH, HS]);
    const k = tensor(randn(B * T * NKV * HS, 1, 11), [B, T, NKV, HS]), v = tensor(randn(B * T * NKV * HS, 1, 12), [B, T, NKV, HS]);
    const [cg, sg] = [gpuCopy(cos), gpuCopy(sin)];
    expectRel(await ops.ropeForward(gpuCopy(q), cg, sg), await ops.ropeForward(q, cos, sin), TOL.f32, 'rope forward');
    expectRel(await ops.ropeBackward(gpuCopy(q), cg, sg), await ops.ropeBackward(q, cos, sin), TOL.f32, 'rope backward');

    const ac = await ops.attentionForward(q, k, v), ag = await ops.attentionForward(gpuCopy(q), gpuCopy(k), gpuCopy(v));
    expectRel(ag.out, ac.out, TOL.mma, 'attention forward'), expectRel(ag.lse, ac.lse, TOL.mma, 'attention lse');
    const dq = tensor(randn(q.numel, 1, 13), q.shape);
    const abc = await ops.attentionBackward(dq, q, k, v, ac.out, ac.lse);
    const abg = await ops.attentionBackward(gpuCopy(dq), gpuCopy(q), gpuCopy(k), gpuCopy(v), ag.out, ag.lse);
    for (const n of ['dq', 'dk', 'dv'] as const) expectRel(abg[n], abc[n], TOL.mma, `attention ${n}`);

    const gu = tensor(randn(N * 2 * C, 1, 14), [N, 2 * C]);
    expectRel(await ops.swigluForward(gpuCopy(gu)), await ops.swigluForward(gu), TOL.f32, 'swiglu forward');
    expectRel(await ops.swigluBackward(gpuCopy(x), gpuCopy(gu)), await ops.swigluBackward(x, gu), TOL.f32, 'swiglu backward');
    expectRel(await ops.add(gpuCopy(x), gpuCopy(x)), await ops.add(x, x), TOL.f32, 'add');
  });

  it('losses and the optimiser', async () => {
    const s = tensor(randn(N * V, 2, 15), [N, V]), t = tensor(randn(N * V, 2, 16), [N, V]);
    const tgt = ids([1, -100, 10, 0, 4, 4], [N]);  // targets made on the host, as trainers do
    const cc = await ops.crossEntropyForward(s, tgt), cg = await ops.crossEntropyForward(gpuCopy(s), tgt);
    expect(cg.count).toBe(5);
    expect(Math.abs(cg.loss - cc.loss)).toBeLessThan(1e-5 * Math.abs(cc.loss));
    expectRel(await ops.crossEntropyBackward(gpuCopy(s), cg.lse, tgt, 1 / 5), await ops.crossEntropyBackward(s, cc.lse, tgt, 1 / 5), TOL.f32, 'cross-entropy backward');
    const kc = await ops.klForward(t, s), kg = await ops.klForward(gpuCopy(t), gpuCopy(s));
    expect(Math.abs(kg.loss - kc.loss)).toBeLessThan(1e-5 * Math.abs(kc.loss) + 1e-7);
    expectRel(await ops.klBackward(gpuCopy(t), gpuCopy(s), 0.5), await ops.klBackward(t, s, 0.5), TOL.f32, 'KL backward');
    const oc = await ops.cosineForward(s, t), og = await ops.cosineForward(gpuCopy(s), gpuCopy(t));
    expect(Math.abs(og.loss - oc.loss)).toBeLessThan(1e-5);
    expectRel(await ops.cosineBackward(gpuCopy(s), gpuCopy(t), 1), await ops.cosineBackward(s, t, 1), TOL.f32, 'cosine backward');
    expect(Math.abs((await ops.nmseForward(gpuCopy(s), gpuCopy(t))) - (await ops.nmseForward(s, t)))).toBeLessThan(1e-5);
    expectRel(await ops.nmseBackward(gpuCopy(s), gpuCopy(t)), await ops.nmseBackward(s, t), TOL.f32, 'nmse backward');
    expect(Math.abs((await ops.sumSquares(gpuCopy(s))) / (await ops.sumSquares(s)) - 1)).toBeLessThan(1e-6);

    // three AdamW steps with clipping, the moments living beside the parameters
    const pc = tensor(randn(300, 1, 17), [300]), pg = gpuCopy(pc);
    const gc = tensor(randn(300, 3, 18), [300]), gg = gpuCopy(gc);
    const oc2 = new AdamW([{ param: pc, grad: gc }], { lr: 1e-2, clip: 1 }), og2 = new AdamW([{ param: pg, grad: gg }], { lr: 1e-2, clip: 1 });
    for (let i = 0; i < 3; i++) {
      const a = await oc2.step(), b = await og2.step();
      expect(Math.abs(b.gradNorm / a.gradNorm - 1)).toBeLessThan(1e-6);
    }
    expectRel(pg, pc, 1e-6, 'AdamW parameters after 3 steps');
  });
});

describe.runIf(usable)('blocks and a model on the GPU match the CPU engine', () => {
  const shape = { hidden: 32, heads: 4, headDim: 8, attention: 'gqa', kvHeads: 2, ffn: 'swiglu', ffnWidth: 48 } as const;
  const B = 2, T = 5, P = 16;
  const rope = { cos: tensor(randn(P * 4, 1, 20), [P, 4]), sin: tensor(randn(P * 4, 1, 21), [P, 4]) };
  const ropeG = { cos: gpuCopy(rope.cos), sin: gpuCopy(rope.sin) };

  function pair(dtype: 'float32' | 'bfloat16') {
    const c = new Block({ ...shape, dtype }), g = new Block({ ...shape, dtype, device: 'cuda' });
    expect(g.device).toBe('cuda');
    let seed = 30;
    for (const p of c.params()) {
      const vals = p.shape.length === 1 ? new Float32Array(p.numel).fill(1) : randn(p.numel, 0.2, seed++);
      c.param(p.name).copyFrom(vals), g.param(p.name).copyFrom(vals);
    }
    return { c, g };
  }

  for (const dtype of ['float32', 'bfloat16'] as const) {
    it(`a ${dtype} block: forward, backward (input and parameter gradients), prefill and decode over a KV cache`, async () => {
      const tol = dtype === 'float32' ? TOL.mma : TOL.bf16;
      const { c, g } = pair(dtype);
      const xv = randn(B * T * shape.hidden, 1, 40);
      const x = tensor(xv, [B, T, shape.hidden], dtype), xg = tensor(xv, [B, T, shape.hidden], dtype, 'cuda');
      const yc = await c.forward(x, B, T, rope, true), yg = await g.forward(xg, B, T, ropeG, true);
      expectRel(yg, yc, tol, `${dtype} block forward`);
      const dv = randn(B * T * shape.hidden, 1, 41);
      c.zeroGrad(), g.zeroGrad();
      const dxc = await c.backward(tensor(dv, x.shape, dtype), true), dxg = await g.backward(tensor(dv, x.shape, dtype, 'cuda'), true);
      expectRel(dxg!, dxc!, tol, `${dtype} block dx`);
      for (const p of c.params()) expectRel(g.grad(p.name), c.grad(p.name), tol, `${dtype} grad ${p.name}`);

      // prefill of 4 tokens, then one decode step, against the full forward of the CPU block
      const cache = { k: zeros([B, 8, 2, 8], dtype, 'cuda'), v: zeros([B, 8, 2, 8], dtype, 'cuda') };
      const C = shape.hidden;
      const firstRows = new Float32Array(B * 4 * C);
      for (let b = 0; b < B; b++) firstRows.set(xv.subarray(b * T * C, (b * T + 4) * C), b * 4 * C);
      const first = tensor(firstRows, [B, 4, C], dtype, 'cuda');
      const pre = await g.forwardCached(first, B, 4, { ...ropeG, pos: ids([0, 1, 2, 3], [4], 'cuda') }, cache, 0);
      expect(pre.device).toBe('cuda');
      const stepX = randn(B * shape.hidden, 1, 42);
      const step = await g.forwardCached(tensor(stepX, [B, 1, shape.hidden], dtype, 'cuda'), B, 1, { ...ropeG, pos: ids([4], [1], 'cuda') }, cache, 4);
      const full = new Float32Array(B * 5 * shape.hidden);
      for (let b = 0; b < B; b++) {
        full.set(xv.subarray(b * T * shape.hidden, (b * T + 4) * shape.hidden), b * 5 * shape.hidden);
        full.set(stepX.subarray(b * shape.hidden, (b + 1) * shape.hidden), (b * 5 + 4) * shape.hidden);
      }
      const ref = (await c.forward(tensor(full, [B, 5, shape.hidden], dtype), B, 5, rope, false)).toArray();
      const lastRows = new Float32Array(B * shape.hidden);
      for (let b = 0; b < B; b++) lastRows.set(ref.subarray((b * 5 + 4) * shape.hidden, (b * 5 + 5) * shape.hidden), b * shape.hidden);
      const e = rel(step.toArray(), lastRows);
      expect(e, `${dtype} decode step after a prefill: relative L2 error ${e.toExponential(2)}`).toBeLessThanOrEqual(tol);
    });
  }

  // Every kind of layer's cached forward (each its own fused ops) run in place on the device, as
  // Block.forwardCachedStack runs every layer after the first: bit for bit what the same blocks
  // give one call at a time (out of place), caches included, and near the CPU engine's. A fused
  // product that wrote an input other than its residual would read rows other blocks of its grid
  // had already written, and differ.
  for (const dtype of ['float32', 'bfloat16'] as const)
    it(`every attention and FFN kind, ${dtype}: in place through the stack = one call at a time, and = the CPU`, async () => {
      const tol = dtype === 'float32' ? TOL.mma : TOL.bf16;
      const kinds = (['gqa', 'linear', 'noop'] as const).flatMap((attention) => (['swiglu', 'linear', 'noop'] as const).map((ffn) => ({ attention, ffn })));
      // hidden 64: a 64-column product takes two blocks of the dot kernel, so one could read
      // what the other wrote
      const wide = { ...shape, hidden: 64, heads: 8 };
      const head = { ...wide, kvHeads: 1 };  // the first layer: the stack's only out-of-place one
      const shapes = [head, ...kinds.map((k) => ({ ...wide, ...k }))];
      let seed = 60;
      const made = shapes.map((sh) => {
        const c = new Block({ ...sh, dtype }), g = new Block({ ...sh, dtype, device: 'cuda' });
        for (const p of c.params()) {
          const vals = p.shape.length === 1 ? new Float32Array(p.numel).fill(1) : randn(p.numel, 0.2, seed++);
          c.param(p.name).copyFrom(vals), g.param(p.name).copyFrom(vals);
        }
        return { c, g, sh };
      });
      const cacheOf = (sh: (typeof shapes)[number], device: 'cpu' | 'cuda') =>
        sh.attention === 'gqa' ? { k: zeros([B, 8, sh.kvHeads, 8], dtype, device), v: zeros([B, 8, sh.kvHeads, 8], dtype, device) } : null;
      const one = made.map((m) => cacheOf(m.sh, 'cuda')), stack = made.map((m) => cacheOf(m.sh, 'cuda')), cpu = made.map((m) => cacheOf(m.sh, 'cpu'));
      let past = 0;
      for (const Tn of [3, 1]) {
        const xv = randn(B * Tn * wide.hidden, 1, 70 + Tn);
        const pos = Array.from({ length: Tn }, (_, t) => past + t);
        const rg = { ...ropeG, pos: ids(pos, [Tn], 'cuda') }, rc = { ...rope, pos: ids(pos, [Tn]) };
        let h = tensor(xv, [B, Tn, wide.hidden], dtype, 'cuda'), hc = tensor(xv, [B, Tn, wide.hidden], dtype);
        const x = h;
        for (const [i, m] of made.entries()) {
          h = await m.g.forwardCached(h, B, Tn, rg, one[i], past);
          hc = await m.c.forwardCached(hc, B, Tn, rc, cpu[i], past);
        }
        const got = await Block.forwardCachedStack(made.map((m) => m.g), x, B, Tn, rg, stack, past);
        expect(Array.from(got.toArray()), `${dtype} T${Tn}: the stack in place against one call at a time`).toEqual(Array.from(h.toArray()));
        for (const [i, c] of one.entries())
          if (c) expect([Array.from(stack[i]!.k.toArray()), Array.from(stack[i]!.v.toArray())]).toEqual([Array.from(c.k.toArray()), Array.from(c.v.toArray())]);
        expectRel(got, hc, 3 * tol, `${dtype} T${Tn}: ten layers on cuda against the CPU`);
        past += Tn;
      }
    });

  for (const dtype of ['float32', 'bfloat16'] as const) it(`a ${dtype} LlamaModel on cuda: logits, a training step and cached generation match the CPU model`, async () => {
    const config = {
      vocab: 40, hidden: 32, heads: 4, headDim: 8, eps: 1e-5, maxPositions: 64, ropeTheta: 10000, ropeScaling: null,
      tieEmbeddings: false, bosTokenId: null, eosTokenId: null, dtype: 'float32',
      layers: [
        { attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', width: 48 } },
        { attention: { kind: 'linear' }, ffn: { kind: 'noop' } },
      ],
    } as unknown as import('../../ts/model/config.js').ModelConfig;
    const mc = LlamaModel.random(config, 3, 0.02, 'cpu', dtype), mg = LlamaModel.random(config, 3, 0.02, 'cuda', dtype);
    expect(mg.device).toBe('cuda');
    expect(mg.blocks.every((b) => b.device === 'cuda' && b.dtype === dtype)).toBe(true);
    // both sides round the same bf16 activations; the GPU's products differ in summation order
    const TOLM = dtype === 'bfloat16' ? TOL.bf16 : TOL.mma;
    const tok = ids([1, 5, 9, 2, 33, 7, 0, 12], [1, 8]);  // host ids: the model copies them over
    // inference first (the training step below moves the weights apart by Adam's normalised updates)
    const cc = mc.newCache(1, 10), cg = mg.newCache(1, 10);
    expectRel(await mg.forwardCached(tok, cg), await mc.forwardCached(tok, cc), TOLM, 'cached prefill logits');
    expectRel(await mg.forwardCached(ids([4], [1, 1]), cg), await mc.forwardCached(ids([4], [1, 1]), cc), TOLM, 'decode-step logits');
    const lc = await mc.forward(tok, { train: true }), lg = await mg.forward(tok, { train: true });
    expectRel(lg.logits, lc.logits, TOLM, 'model logits');

    const tgt = ids([5, 9, 2, 33, 7, 0, 12, 3], [8]);
    const steps = [] as number[][];
    for (const [m, l] of [[mc, lc], [mg, lg]] as const) {
      const ce = await ops.crossEntropyForward(l.logits, tgt);
      const d = await ops.crossEntropyBackward(l.logits, ce.lse, tgt, 1 / ce.count);
      m.zeroGrad();
      await m.backward(d);
      const opt = new AdamW(m.paramGroups(), { lr: 1e-3 });
      steps.push([ce.loss, (await opt.step()).gradNorm]);
    }
    expect(Math.abs(steps[1][0] / steps[0][0] - 1), 'loss').toBeLessThan(1e-3);
    expect(Math.abs(steps[1][1] / steps[0][1] - 1), 'gradient norm').toBeLessThan(2e-2);
    for (const [[name, pc], [, pg]] of mc.namedParameters().map((e, i) => [e, mg.namedParameters()[i]] as const))
      expectRel(pg, pc, TOL.adam, `after one step: ${name}`);

  });
});

describe.runIf(usable)("the pipeline's training stages on the GPU match the CPU engine", () => {
  const config = {
    vocab: 40, hidden: 32, heads: 4, headDim: 8, eps: 1e-5, maxPositions: 64, ropeTheta: 10000, ropeScaling: null,
    tieEmbeddings: true, bosTokenId: null, eosTokenId: null, dtype: 'float32',
    layers: [
      { attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', width: 48 } },
      { attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', width: 48 } },
    ],
  } as unknown as import('../../ts/model/config.js').ModelConfig;
  const rows = Array.from({ length: 6 }, (_, i) => Int32Array.from({ length: 9 }, (_, t) => (i * 7 + t * 3) % 40));
  const data = packedFromArrays(rows);

  it('blockwise local distillation of layer 1: calibration, training-free init, two AdamW steps, validation', async () => {
    const pc = LlamaModel.random(config, 5), pg = LlamaModel.random(config, 5, 0.02, 'cuda');
    const L = config.layers[1];
    const jobs = [
      { id: 'ffn-linear', layer: { attention: L.attention, ffn: { kind: 'linear' } }, trains: ['ffn'] },
      { id: 'attn-kv1', layer: { attention: { kind: 'gqa', kvHeads: 1 }, ffn: L.ffn }, trains: ['attention'] },
    ] as import('../../ts/library/bld.js').VariantJob[];
    const settings = { ...DEFAULT_BLD, batch: 2, steps: 2, lr: 1e-3, calibrationBatches: 1, validationBatches: 1 };
    const rc = await trainLayer({ parent: pc, layer: 1, jobs, train: data, validation: data, settings });
    const rg = await trainLayer({ parent: pg, layer: 1, jobs, train: data, validation: data, settings });
    for (const [i, c] of rc.entries()) {
      const g = rg[i];
      expect(g.block.device).toBe('cuda');
      expect(Math.abs(g.valNmseInit / c.valNmseInit - 1), `${c.job.id} NMSE after init`).toBeLessThan(2e-2);
      expect(Math.abs(g.valNmseFinal / c.valNmseFinal - 1), `${c.job.id} NMSE after BLD`).toBeLessThan(2e-2);
      expect(c.valNmseFinal).toBeLessThan(c.valNmseInit);  // the steps did something
      for (const p of c.block.params()) expectRel(g.block.param(p.name), c.block.param(p.name), TOL.adam, `${c.job.id} ${p.name} after two steps`);
    }
  }, 900_000);

  it('a GKD micro-batch: cosine, KL and LM losses and the child gradients', async () => {
    const parents = [LlamaModel.random(config, 6), LlamaModel.random(config, 6, 0.02, 'cuda')];
    const children = [LlamaModel.random(config, 7), LlamaModel.random(config, 7, 0.02, 'cuda')];
    const input = ids(rows.slice(0, 2).flatMap((r) => Array.from(r.subarray(0, 8))), [2, 8]);
    const targets = ids(rows.slice(0, 2).flatMap((r) => Array.from(r.subarray(1, 9))), [16]);
    const w = { cosine: 1, kl: 1, lm: 0.5 };
    const out = [] as Array<{ cosine: number; kl: number; lm: number; loss: number }>;
    for (let d = 0; d < 2; d++) {
      children[d].zeroGrad();
      out.push(await gkdBackward(parents[d], children[d], input, targets, w));
    }
    for (const k of ['cosine', 'kl', 'lm', 'loss'] as const) expect(Math.abs(out[1][k] / out[0][k] - 1), k).toBeLessThan(1e-2);
    children[0].blocks.forEach((b, i) => expectRel(children[1].blocks[i].gradBuffer(), b.gradBuffer(), TOL.mma, `child block ${i} gradients`));
  }, 900_000);

  it('the score and evaluate stages: replace-1-block scores of a library, and held-out metrics, with the models on cuda', async () => {
    const work = mkdtempSync(join(tmpdir(), 'puzzle-dev-score-'));
    try {
      const parentDir = join(work, 'parent');
      const p = LlamaModel.random(config, 8);
      saveModel(p, parentDir);
      p.dispose();
      const lib = join(work, 'lib');
      await buildLibrary({
        parentDir, lib, train: data, validation: data, dataSpec: 'synthetic',
        space: { attention: [{ kvHeads: 1 }, 'noop'], ffn: ['linear', 'noop'], ffnMultiple: 8 },
        settings: { batch: 2, steps: 1, calibrationBatches: 1, validationBatches: 1 },
      });
      cpSync(lib, join(work, 'lib-gpu'), { recursive: true });  // scores are stored in the library
      const batches = [ids(rows.slice(0, 4).flatMap((r) => Array.from(r)), [4, 9])];
      const pc = loadModel(parentDir), pg = loadModel(parentDir, 'cuda');
      expect(pg.device).toBe('cuda');
      const sc = await scoreLibrary(pc, lib, batches), sg = await scoreLibrary(pg, join(work, 'lib-gpu'), batches);
      expect(sg.map((x) => `${x.layer}/${x.id}`)).toEqual(sc.map((x) => `${x.layer}/${x.id}`));
      expect(sc.length).toBeGreaterThan(4);
      for (const [i, c] of sc.entries()) {
        const g = sg[i], what = `${c.layer}/${c.id}`;
        expect(Math.abs(g.kl_div - c.kl_div), `${what} KL ${g.kl_div} against ${c.kl_div}`).toBeLessThanOrEqual(2e-2 * c.kl_div + 1e-5);
        expect(Math.abs(g.lm_loss / c.lm_loss - 1), `${what} LM loss`).toBeLessThan(1e-3);
        expect(g.tokens).toBe(c.tokens);
      }

      // the evaluate stage: a model (and a teacher) on cuda, over pre-tokenised sequences
      const jsonl = join(work, 'heldout.jsonl');
      writeFileSync(jsonl, rows.map((r) => JSON.stringify({ input_ids: Array.from(r) })).join('\n') + '\n');
      const ec = await runEval({ model: parentDir, teacher: parentDir, data: jsonl, batch: 3 });
      const eg = await runEval({ model: parentDir, teacher: parentDir, data: jsonl, batch: 3, device: 'cuda' });
      expect(eg.tokens).toBe(ec.tokens);
      expect(eg.tokens).toBeGreaterThan(0);
      expect(Math.abs(eg.loss / ec.loss - 1), 'eval loss').toBeLessThan(1e-3);
      expect(eg.kl!, 'KL of a model to itself').toBeLessThan(1e-6);
      expect(eg.agreement).toBe(1);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 900_000);
});
