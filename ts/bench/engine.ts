/**
 * Engine benchmarks shared by `puzzle selfcheck` and benchmarks/engine.ts: a decoder block
 * forward and forward+backward, a small whole-model training step, and GEMM throughput.
 */
import { Block } from '../core/block.js';
import { AdamW } from '../core/optim.js';
import * as ops from '../core/ops.js';
import { tensor, zeros, type Tensor } from '../core/tensor.js';
import { ropeTables } from '../model/rope.js';
import { normalInit } from '../model/llama.js';
import { timeIt, type Timing } from './timing.js';

export interface BlockBenchConfig {
  hidden: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  batch: number;
  seq: number;
}

/** Deterministic normal values (benchmarks must not depend on Math.random): the model initialiser's. */
export function randn(n: number, scale: number, seed = 1): Float32Array {
  return normalInit(n, scale, seed);
}

function initBlock(block: Block, seed: number): void {
  let k = seed;
  for (const p of block.params()) {
    if (p.shape.length === 1) block.param(p.name).fill(1);
    else block.param(p.name).copyFrom(randn(p.numel, 1 / Math.sqrt(p.shape[1]), k++));
  }
}

export function ropeFor(headDim: number, positions: number): { cos: Tensor; sin: Tensor } {
  const { cos, sin } = ropeTables(headDim, positions, 10000);
  return { cos: tensor(cos, [positions, headDim / 2]), sin: tensor(sin, [positions, headDim / 2]) };
}

/** tokens/s of block forward and forward+backward (all parameters trainable, input grad on). */
export async function benchBlock(cfg: BlockBenchConfig, repeats: number): Promise<{ forward: Timing; train: Timing; tokens: number }> {
  const headDim = cfg.hidden / cfg.heads;
  const block = new Block({ hidden: cfg.hidden, heads: cfg.heads, headDim, attention: 'gqa', kvHeads: cfg.kvHeads, ffn: 'swiglu', ffnWidth: cfg.ffn });
  initBlock(block, 7);
  const N = cfg.batch * cfg.seq;
  const x = tensor(randn(N * cfg.hidden, 1, 3), [cfg.batch, cfg.seq, cfg.hidden]);
  const dout = tensor(randn(N * cfg.hidden, 1e-2, 5), x.shape);
  const rope = ropeFor(headDim, cfg.seq);
  const forward = await timeIt(async () => {
    (await block.forward(x, cfg.batch, cfg.seq, rope, false)).dispose();
  }, repeats, 2);
  const train = await timeIt(async () => {
    (await block.forward(x, cfg.batch, cfg.seq, rope, true)).dispose();
    (await block.backward(dout, true))?.dispose();
  }, repeats, 2);
  block.dispose();
  x.dispose();
  dout.dispose();
  rope.cos.dispose();
  rope.sin.dispose();
  return { forward, train, tokens: N };
}

export interface ModelBenchConfig {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  vocab: number;
  batch: number;
  seq: number;
}

/**
 * One training step of a small Llama: embedding -> layers -> final norm -> LM head -> cross-entropy,
 * backward through all of it, AdamW on every parameter.
 */
export async function benchTrainStep(cfg: ModelBenchConfig, repeats: number): Promise<{ step: Timing; tokens: number }> {
  const headDim = cfg.hidden / cfg.heads;
  const N = cfg.batch * cfg.seq;
  const blocks = Array.from({ length: cfg.layers }, (_, i) => {
    const b = new Block({ hidden: cfg.hidden, heads: cfg.heads, headDim, attention: 'gqa', kvHeads: cfg.kvHeads, ffn: 'swiglu', ffnWidth: cfg.ffn });
    initBlock(b, 100 * i + 1);
    return b;
  });
  const embed = tensor(randn(cfg.vocab * cfg.hidden, 0.02, 11), [cfg.vocab, cfg.hidden]);
  const dembed = zeros(embed.shape);
  const normW = tensor(new Float32Array(cfg.hidden).fill(1), [cfg.hidden]);
  const dnormW = zeros([cfg.hidden]);
  const head = tensor(randn(cfg.vocab * cfg.hidden, 0.02, 13), [cfg.vocab, cfg.hidden]);
  const dhead = zeros(head.shape);
  const idsArr = new Int32Array(N);
  for (let i = 0; i < N; i++) idsArr[i] = (i * 7919 + 13) % cfg.vocab;
  const ids = tensor(idsArr, [cfg.batch, cfg.seq]);
  const targets = tensor(Int32Array.from(idsArr, (_, i) => idsArr[(i + 1) % N]), [N]);
  const rope = ropeFor(headDim, cfg.seq);
  const opt = new AdamW([
    ...blocks.map((b) => ({ param: b.paramBuffer(), grad: b.gradBuffer() })),
    { param: embed, grad: dembed }, { param: normW, grad: dnormW }, { param: head, grad: dhead },
  ], { lr: 1e-4 });
  const step = await timeIt(async () => {
    for (const b of blocks) b.zeroGrad();
    dembed.fill(0), dnormW.fill(0), dhead.fill(0);
    const acts: Tensor[] = [await ops.embeddingForward(ids, embed)];
    for (const b of blocks) acts.push(await b.forward(acts[acts.length - 1], cfg.batch, cfg.seq, rope, true));
    // A block keeps one set of saved activations, so each trains on its own forward above.
    const h = acts[acts.length - 1];
    const { out: normed, rstd } = await ops.rmsnormForward(h, normW, 1e-5);
    const logits = await ops.matmulForward(normed, head);
    const ce = await ops.crossEntropyForward(logits, targets);
    const dlogits = await ops.crossEntropyBackward(logits, ce.lse, targets, 1 / ce.count);
    const lm = await ops.matmulBackward(dlogits, normed, head);
    await ops.accumulate(dhead, lm.dweight);
    const nb = await ops.rmsnormBackward(lm.dinp, h, normW, rstd);
    await ops.accumulate(dnormW, nb.dweight);
    let d: Tensor = nb.dinp;
    for (let i = blocks.length - 1; i >= 0; i--) {
      const dx = (await blocks[i].backward(d, true))!;
      d.dispose();
      d = dx;
    }
    await ops.embeddingBackward(dembed, d, ids);
    await opt.step();
    for (const t of [...acts, normed, rstd, logits, ce.losses, ce.lse, dlogits, lm.dinp, lm.dweight, nb.dweight, d]) t.dispose();
  }, repeats, 1);
  for (const b of blocks) b.dispose();
  for (const t of [embed, dembed, normW, dnormW, head, dhead, ids, targets, rope.cos, rope.sin]) t.dispose();
  opt.dispose();
  return { step, tokens: N };
}

/** GFLOP/s of a linear layer's three GEMMs (forward, input grad, weight grad) at N x C -> OC. */
export async function benchLinear(N: number, C: number, OC: number, repeats: number): Promise<{ forward: Timing; backward: Timing; flops: number }> {
  const x = tensor(randn(N * C, 1, 1), [N, C]);
  const w = tensor(randn(OC * C, 0.05, 2), [OC, C]);
  const dy = tensor(randn(N * OC, 1, 3), [N, OC]);
  const forward = await timeIt(async () => (await ops.matmulForward(x, w)).dispose(), repeats, 2);
  const backward = await timeIt(async () => {
    const r = await ops.matmulBackward(dy, x, w);
    r.dinp.dispose();
    r.dweight.dispose();
  }, repeats, 2);
  x.dispose(), w.dispose(), dy.dispose();
  return { forward, backward, flops: 2 * N * C * OC };
}
