/**
 * Measured cost of one subblock variant (or a whole model) for a scenario: prefill time for
 * batch x prompt tokens through the KV-cache path, and decode time integrated over the
 * generation (decode steps timed at a few cache lengths, trapezoid rule over every step).
 * Weights are constant-filled: the dense kernels' speed does not depend on the values.
 */
import { Block } from '../core/block.js';
import * as ops from '../core/ops.js';
import { ids as idsTensor, tensor, zeros, type Tensor } from '../core/tensor.js';
import { summarize, timeIt, type Timing } from '../bench/timing.js';
import type { LayerSpec, ModelConfig } from '../model/config.js';
import { blockShape, LlamaModel, disposeCache } from '../model/llama.js';
import { ropeTables } from '../model/rope.js';
import type { ProfileScenario } from './scenario.js';

export interface MeasuredTime {
  prefill: Timing;
  /** ms for all `generate` decode steps */
  decodeMs: number;
  /** ms per decode step at each sampled cache length */
  decodeSamples: Array<{ length: number; ms: Timing }>;
}

function ropeFor(c: ModelConfig, positions: number) {
  const { cos, sin } = ropeTables(c.headDim, positions, c.ropeTheta, c.ropeScaling);
  return { cos: tensor(cos, [positions, c.headDim / 2]), sin: tensor(sin, [positions, c.headDim / 2]) };
}

/** Cache lengths where decode steps are timed: first and last step and evenly between. */
export function sampleLengths(s: ProfileScenario): number[] {
  const n = Math.min(s.decodeSamples, s.generate);
  if (n === 1) return [s.prompt];
  return Array.from({ length: n }, (_, i) => s.prompt + Math.round((i * (s.generate - 1)) / (n - 1)));
}

/** Integrates per-step medians over every decode step (piecewise linear in the cache length). */
export function integrateDecode(samples: Array<{ length: number; ms: number }>, s: ProfileScenario): number {
  let total = 0;
  for (let step = 0; step < s.generate; step++) {
    const L = s.prompt + step;
    let j = 0;
    while (j + 1 < samples.length && samples[j + 1].length < L) j++;
    const a = samples[j];
    const b = samples[Math.min(j + 1, samples.length - 1)];
    total += b.length === a.length ? a.ms : a.ms + ((b.ms - a.ms) * (L - a.length)) / (b.length - a.length);
  }
  return total;
}

/** One decoder layer of the given spec (either half may be a no-op to isolate a subblock). */
export async function measureLayer(c: ModelConfig, layer: LayerSpec, s: ProfileScenario): Promise<MeasuredTime> {
  const block = new Block(blockShape(c, layer));
  for (const p of block.params()) block.param(p.name).fill(p.shape.length === 1 ? 1 : 0.01);
  const Tmax = s.prompt + s.generate;
  const rope = ropeFor(c, Tmax);
  const cache = layer.attention.kind === 'gqa'
    ? { k: zeros([s.batch, Tmax, layer.attention.kvHeads, c.headDim]), v: zeros([s.batch, Tmax, layer.attention.kvHeads, c.headDim]) }
    : null;
  const x = tensor(new Float32Array(s.batch * s.prompt * c.hidden).fill(0.5), [s.batch, s.prompt, c.hidden]);
  const x1 = tensor(new Float32Array(s.batch * c.hidden).fill(0.5), [s.batch, 1, c.hidden]);
  const posP = idsTensor(Int32Array.from({ length: s.prompt }, (_, t) => t), [s.prompt]);
  try {
    const prefill = await timeIt(async () => {
      (await block.forwardCached(x, s.batch, s.prompt, { ...rope, pos: posP }, cache, 0)).dispose();
    }, s.repeats, s.warmup);
    const decodeSamples: MeasuredTime['decodeSamples'] = [];
    for (const L of sampleLengths(s)) {
      const pos = idsTensor([L], [1]);
      const ms = await timeIt(async () => {
        (await block.forwardCached(x1, s.batch, 1, { ...rope, pos }, cache, L)).dispose();
      }, s.repeats, s.warmup);
      pos.dispose();
      decodeSamples.push({ length: L, ms });
    }
    return { prefill, decodeSamples, decodeMs: integrateDecode(decodeSamples.map((d) => ({ length: d.length, ms: d.ms.median })), s) };
  } finally {
    [x, x1, posP, rope.cos, rope.sin, cache?.k, cache?.v].forEach((t) => t?.dispose());
    block.dispose();
  }
}

/** The non-block part: embedding, final norm and LM head, for prefill and each decode step. */
export async function measureHead(c: ModelConfig, s: ProfileScenario): Promise<MeasuredTime> {
  const embed = tensor(new Float32Array(c.vocab * c.hidden).fill(0.01), [c.vocab, c.hidden]);
  const norm = tensor(new Float32Array(c.hidden).fill(1), [c.hidden]);
  const head = c.tieEmbeddings ? embed : tensor(new Float32Array(c.vocab * c.hidden).fill(0.01), [c.vocab, c.hidden]);
  const run = async (ids: Tensor) => {
    const h = await ops.embeddingForward(ids, embed);
    const n = await ops.rmsnormForward(h, norm, c.eps);
    const logits = await ops.matmulForward(n.out, head);
    [h, n.out, n.rstd, logits].forEach((t) => t.dispose());
  };
  const idsP = idsTensor(new Int32Array(s.batch * s.prompt), [s.batch, s.prompt]);
  const ids1 = idsTensor(new Int32Array(s.batch), [s.batch, 1]);
  try {
    const prefill = await timeIt(() => run(idsP), s.repeats, s.warmup);
    const step = await timeIt(() => run(ids1), s.repeats, s.warmup);
    return { prefill, decodeSamples: [{ length: s.prompt, ms: step }], decodeMs: step.median * s.generate };
  } finally {
    [idsP, ids1, embed, norm].forEach((t) => t.dispose());
    if (!c.tieEmbeddings) head.dispose();
  }
}

/** A whole model end to end: prefill the prompt, then every decode step (what additivity is checked against). */
export async function measureModel(c: ModelConfig, s: ProfileScenario): Promise<{ prefill: Timing; decode: Timing }> {
  const model = new LlamaModel(c);
  model.embed.fill(0.01);
  model.head?.fill(0.01);
  for (const b of model.blocks) for (const p of b.params()) b.param(p.name).fill(p.shape.length === 1 ? 1 : 0.01);
  const prefills: number[] = [];
  const decodes: number[] = [];
  const idsP = idsTensor(new Int32Array(s.batch * s.prompt).fill(1), [s.batch, s.prompt]);
  const ids1 = idsTensor(new Int32Array(s.batch).fill(1), [s.batch, 1]);
  try {
    for (let r = 0; r < s.warmup + s.repeats; r++) {
      const cache = model.newCache(s.batch, s.prompt + s.generate);
      let t0 = performance.now();
      (await model.forwardCached(idsP, cache)).dispose();
      const pre = performance.now() - t0;
      t0 = performance.now();
      for (let g = 0; g < s.generate; g++) (await model.forwardCached(ids1, cache)).dispose();
      const dec = performance.now() - t0;
      disposeCache(cache);
      if (r >= s.warmup) prefills.push(pre), decodes.push(dec);
    }
    return { prefill: summarize(prefills), decode: summarize(decodes) };
  } finally {
    idsP.dispose();
    ids1.dispose();
    model.dispose();
  }
}
