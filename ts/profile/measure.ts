/**
 * Measured time of a model for a scenario: prefill of batch x prompt tokens through the
 * KV-cache path, then every decode step of the generation. Weights are constant-filled: the
 * dense kernels' speed does not depend on the values.
 */
import { ids as idsTensor } from '../core/tensor.js';
import { summarize, type Timing } from '../bench/timing.js';
import type { ModelConfig } from '../model/config.js';
import { LlamaModel, disposeCache } from '../model/llama.js';
import type { ProfileScenario } from './scenario.js';

export interface MeasuredTime {
  prefill: Timing;
  /** ms for all `generate` decode steps */
  decodeMs: number;
}

/** A whole model end to end: prefill the prompt, then every decode step. */
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
