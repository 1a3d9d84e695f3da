// KV-cache inference equals the full forward, for every kind of layer; generation is deterministic.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../ts/model/hf.js';
import { batchTensor, disposeCache } from '../../ts/model/llama.js';
import { generate } from '../../ts/model/generate.js';
import { expectClose } from '../support/golden.js';
import { TOL } from '../support/tolerances.js';

const FIX = fileURLToPath(new URL('../fixtures/', import.meta.url));

describe('inference with a KV cache', () => {
  for (const name of ['llama-gqa-llama3-untied', 'decilm-mixed']) {
    it(`${name}: prefill 15 + decode 8 one at a time = one full forward`, async () => {
      const { ids } = JSON.parse(readFileSync(`${FIX}${name}/expected.json`, 'utf8')) as { ids: number[][] };
      const model = loadModel(FIX + name);
      const full = await model.forward(batchTensor(ids));
      const want = full.logits.toArray() as Float32Array;
      const V = model.config.vocab;
      const T = ids[0].length;
      const cache = model.newCache(2, T);
      const got = new Float32Array(want.length);
      const place = (l: Float32Array, t0: number, n: number) => {
        for (let b = 0; b < 2; b++) got.set(l.subarray(b * n * V, (b + 1) * n * V), (b * T + t0) * V);
      };
      const pre = await model.forwardCached(batchTensor(ids.map((r) => r.slice(0, 15))), cache);
      place(pre.toArray() as Float32Array, 0, 15);
      for (let t = 15; t < T; t++) {
        const step = await model.forwardCached(batchTensor(ids.map((r) => [r[t]])), cache);
        place(step.toArray() as Float32Array, t, 1);
      }
      expect(cache.length).toBe(T);
      expectClose(got, want, TOL.block, 'cached logits');
      disposeCache(cache);
      model.dispose();
    });
  }

  it('generation: greedy is deterministic, sampling follows the seed, bad prompts are refused', async () => {
    const model = loadModel(FIX + 'llama-gqa-llama3-untied');
    const a = await generate(model, [5, 6, 7], { maxNewTokens: 10 });
    const b = await generate(model, [5, 6, 7], { maxNewTokens: 10 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).toHaveLength(10);
    const s1 = await generate(model, [5, 6, 7], { maxNewTokens: 10, temperature: 1, seed: 3 });
    const s2 = await generate(model, [5, 6, 7], { maxNewTokens: 10, temperature: 1, seed: 3 });
    expect(s1.tokens).toEqual(s2.tokens);
    await expect(generate(model, [5, 1000], { maxNewTokens: 2 })).rejects.toMatchObject({ code: 'ERR_PUZZLE_RANGE' });
    model.dispose();
  });
});
