/**
 * Language-model metrics over token batches: next-token loss, perplexity, top-1 accuracy, and,
 * against a teacher, KL(teacher || model) and top-1 agreement. Every position after the first
 * of each sequence is scored (the last position has no next token).
 */
import * as ops from '../core/ops.js';
import { ids as idsTensor, type Tensor } from '../core/tensor.js';
import type { LlamaModel } from '../model/llama.js';

export interface LmTotals {
  tokens: number;
  lossSum: number;
  correct: number;
  klSum: number;
  agree: number;
}

export interface LmMetrics {
  tokens: number;
  loss: number;
  perplexity: number;
  top1: number;
  kl?: number;
  agreement?: number;
}

/** Next-token targets for ids[B, T]: ids shifted left, the last position ignored. */
export function nextTokenTargets(ids: Int32Array, B: number, T: number): Tensor {
  const t = new Int32Array(B * T).fill(ops.IGNORE_INDEX);
  for (let b = 0; b < B; b++) for (let i = 0; i + 1 < T; i++) t[b * T + i] = ids[b * T + i + 1];
  return idsTensor(t, [B * T]);
}

/** Row-wise argmax of a [N, V] float array. */
export function argmaxRows(x: Float32Array, V: number): Int32Array {
  const N = x.length / V;
  const out = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    let best = 0;
    let bv = x[n * V];
    for (let v = 1; v < V; v++) if (x[n * V + v] > bv) { bv = x[n * V + v]; best = v; }
    out[n] = best;
  }
  return out;
}

export function emptyTotals(): LmTotals {
  return { tokens: 0, lossSum: 0, correct: 0, klSum: 0, agree: 0 };
}

/** Adds one batch ids[B, T] to the totals. */
export async function accumulateBatch(totals: LmTotals, model: LlamaModel, ids: Tensor, teacher?: LlamaModel): Promise<void> {
  const [B, T] = ids.shape;
  const V = model.config.vocab;
  const idArr = ids.toArray() as Int32Array;
  const targets = nextTokenTargets(idArr, B, T);
  const { logits } = await model.forward(ids);
  const ce = await ops.crossEntropyForward(logits, targets); // rows = the last dimension
  totals.tokens += ce.count;
  totals.lossSum += ce.loss * ce.count;
  const la = logits.toArray() as Float32Array;
  const pred = argmaxRows(la, V);
  const tg = targets.toArray() as Int32Array;
  for (let i = 0; i < tg.length; i++) if (tg[i] !== ops.IGNORE_INDEX && pred[i] === tg[i]) totals.correct++;
  if (teacher) {
    const { logits: tl } = await teacher.forward(ids);
    const kl = await ops.klForward(tl, logits);
    const rows = kl.losses.toArray() as Float32Array;
    const tpred = argmaxRows(tl.toArray() as Float32Array, V);
    for (let i = 0; i < tg.length; i++) {
      if (tg[i] === ops.IGNORE_INDEX) continue;
      totals.klSum += rows[i];
      if (tpred[i] === pred[i]) totals.agree++;
    }
    tl.dispose();
    kl.losses.dispose();
  }
  ce.losses.dispose();
  ce.lse.dispose();
  logits.dispose();
  targets.dispose();
}

export function finish(t: LmTotals, withTeacher: boolean): LmMetrics {
  const loss = t.tokens ? t.lossSum / t.tokens : NaN;
  const m: LmMetrics = { tokens: t.tokens, loss, perplexity: Math.exp(loss), top1: t.tokens ? t.correct / t.tokens : NaN };
  if (withTeacher) {
    m.kl = t.tokens ? t.klSum / t.tokens : NaN;
    m.agreement = t.tokens ? t.agree / t.tokens : NaN;
  }
  return m;
}

/** Metrics over a list of id batches (each [B, T]). */
export async function evaluateLm(model: LlamaModel, batches: Tensor[], teacher?: LlamaModel): Promise<LmMetrics> {
  const totals = emptyTotals();
  for (const b of batches) await accumulateBatch(totals, model, b, teacher);
  return finish(totals, Boolean(teacher));
}
