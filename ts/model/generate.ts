/**
 * Text generation: prefill the prompt through the KV cache, then decode one token at a time,
 * greedy (temperature 0) or sampled with a seeded generator (temperature, optional top-k).
 */
import { PuzzleError } from '../core/errors.js';
import { ids as idsTensor } from '../core/tensor.js';
import { disposeCache, type LlamaModel } from './llama.js';

export interface GenerateOptions {
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  seed?: number;
  /** stop when one of these is produced */
  stopTokens?: number[];
}

export interface GenerateResult {
  tokens: number[];
  prefillMs: number;
  decodeMs: number;
}

function sampler(seed: number) {
  let s = (seed * 2654435761 + 1) >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

/** Picks the next token from one row of logits. */
export function pickToken(row: Float32Array, temperature: number, topK: number, rand: () => number): number {
  if (!(temperature > 0)) {
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    return best;
  }
  let idx = Array.from(row.keys());
  if (topK > 0 && topK < row.length) idx = idx.sort((a, b) => row[b] - row[a]).slice(0, topK);
  let mx = -Infinity;
  for (const i of idx) mx = Math.max(mx, row[i]);
  const w = idx.map((i) => Math.exp((row[i] - mx) / temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let r = rand() * total;
  for (let j = 0; j < idx.length; j++) {
    r -= w[j];
    if (r <= 0) return idx[j];
  }
  return idx[idx.length - 1];
}

export async function generate(model: LlamaModel, prompt: number[], opts: GenerateOptions): Promise<GenerateResult> {
  if (prompt.length === 0) throw new PuzzleError('ERR_PUZZLE_ARG', 'generate: the prompt has no tokens');
  const V = model.config.vocab;
  for (const [i, t] of prompt.entries())
    if (!Number.isInteger(t) || t < 0 || t >= V) throw new PuzzleError('ERR_PUZZLE_RANGE', `generate: prompt token ${i} = ${t} is outside [0, ${V})`);
  const cache = model.newCache(1, prompt.length + opts.maxNewTokens);
  const rand = sampler(opts.seed ?? 0);
  const out: number[] = [];
  try {
    const t0 = performance.now();
    const p = idsTensor(prompt, [1, prompt.length]);
    let logits = await model.forwardCached(p, cache);
    p.dispose();
    const t1 = performance.now();
    while (out.length < opts.maxNewTokens) {
      const all = logits.toArray() as Float32Array;
      logits.dispose();
      const next = pickToken(all.subarray(all.length - V), opts.temperature ?? 0, opts.topK ?? 0, rand);
      out.push(next);
      if (opts.stopTokens?.includes(next) || out.length === opts.maxNewTokens) break;
      const step = idsTensor([next], [1, 1]);
      logits = await model.forwardCached(step, cache);
      step.dispose();
    }
    return { tokens: out, prefillMs: t1 - t0, decodeMs: performance.now() - t1 };
  } finally {
    disposeCache(cache);
  }
}
