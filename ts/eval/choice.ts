/**
 * Multiple-choice evaluation by likelihood: each item is a set of candidate texts and the index
 * of the right one; the model picks the candidate with the highest total log-probability
 * (as BLiMP-style minimal pairs and cloze tasks are scored).
 */
import * as ops from '../core/ops.js';
import { ids as idsTensor } from '../core/tensor.js';
import type { LlamaModel } from '../model/llama.js';

export interface ChoiceItem {
  readonly candidates: readonly string[];
  readonly answer: number;
}

export interface TextEncoder {
  encode(text: string, opts?: { bos?: boolean }): Promise<Int32Array>;
  readonly bosId: number | null;
}

/** Summed log-probability of each token sequence (all positions after the first). */
export async function sequenceLogProbs(model: LlamaModel, seqs: number[][]): Promise<number[]> {
  const T = Math.max(...seqs.map((s) => s.length));
  const B = seqs.length;
  const inp = new Int32Array(B * T);
  const tgt = new Int32Array(B * T).fill(ops.IGNORE_INDEX);
  seqs.forEach((s, b) => {
    inp.set(s, b * T);
    for (let t = 0; t + 1 < s.length; t++) tgt[b * T + t] = s[t + 1];
  });
  const ids = idsTensor(inp, [B, T]);
  const targets = idsTensor(tgt, [B * T]);
  const { logits } = await model.forward(ids);
  const ce = await ops.crossEntropyForward(logits, targets);
  const rows = ce.losses.toArray() as Float32Array;
  const out = seqs.map((_, b) => {
    let s = 0;
    for (let t = 0; t < T; t++) s -= rows[b * T + t];
    return s;
  });
  for (const t of [ids, targets, logits, ce.losses, ce.lse]) t.dispose();
  return out;
}

export interface ChoiceResult {
  items: number;
  correct: number;
  accuracy: number;
}

/** Accuracy of likelihood-based choice; BOS is prepended when the tokenizer has one. */
export async function evaluateChoices(model: LlamaModel, tok: TextEncoder, items: readonly ChoiceItem[]): Promise<ChoiceResult> {
  let correct = 0;
  for (const item of items) {
    const seqs: number[][] = [];
    for (const c of item.candidates) seqs.push(Array.from(await tok.encode(c, { bos: tok.bosId !== null })));
    const lp = await sequenceLogProbs(model, seqs);
    let best = 0;
    for (let i = 1; i < lp.length; i++) if (lp[i] > lp[best]) best = i;
    if (best === item.answer) correct++;
  }
  return { items: items.length, correct, accuracy: items.length ? correct / items.length : NaN };
}
