/**
 * The unigram baseline: next-token probabilities = token frequencies of the training split
 * (add-one smoothed). What a language model must beat to be one.
 */
import type { Packed } from '../data/pack.js';
import { sequenceAt } from '../data/pack.js';
import type { LmMetrics } from './lm.js';

export class Unigram {
  readonly logp: Float64Array;
  readonly best: number;
  constructor(train: Packed, vocab: number) {
    const counts = new Float64Array(vocab).fill(1);
    let total = vocab;
    for (let i = 0; i < train.count; i++) {
      const s = sequenceAt(train, i);
      for (let t = 1; t < s.length; t++) counts[s[t]]++, total++;
    }
    this.logp = counts.map((c) => Math.log(c / total));
    let b = 0;
    for (let v = 1; v < vocab; v++) if (counts[v] > counts[b]) b = v;
    this.best = b;
  }

  /** Next-token metrics over packed sequences (every position after the first). */
  evaluate(test: Packed, maxSequences = Infinity): LmMetrics {
    let lossSum = 0, correct = 0, tokens = 0;
    for (let i = 0; i < Math.min(test.count, maxSequences); i++) {
      const s = sequenceAt(test, i);
      for (let t = 1; t < s.length; t++) {
        lossSum -= this.logp[s[t]];
        if (s[t] === this.best) correct++;
        tokens++;
      }
    }
    const loss = lossSum / tokens;
    return { tokens, loss, perplexity: Math.exp(loss), top1: correct / tokens };
  }

  /** Total log-probability of a token sequence (all tokens after the first). */
  logProb(ids: ArrayLike<number>): number {
    let s = 0;
    for (let t = 1; t < ids.length; t++) s += this.logp[ids[t]];
    return s;
  }
}
