// KV-cache inference equals the full forward, for every kind of layer; generation is deterministic.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../ts/model/hf.js';
import { batchTensor, disposeCache, LlamaModel } from '../../ts/model/llama.js';
import type { LlamaModel as Model } from '../../ts/model/llama.js';
import { generate } from '../../ts/model/generate.js';
import { expectClose } from '../support/golden.js';
import { TOL } from '../support/tolerances.js';
import { tinyConfig } from '../support/tiny-run.js';

const FIX = fileURLToPath(new URL('../fixtures/', import.meta.url));

describe('inference with a KV cache', () => {
  /** Prefill 15 tokens, then decode the rest one at a time; the logits must equal one full forward. */
  async function cachedEqualsFull(model: Model, ids: number[][], tol: typeof TOL.block | 'bf16'): Promise<void> {
    const full = await model.forward(batchTensor(ids));
    const want = full.logits.toArray() as Float32Array;
    const V = model.config.vocab;
    const T = ids[0].length;
    const cache = model.newCache(ids.length, T);
    const got = new Float32Array(want.length);
    const place = (l: Float32Array, t0: number, n: number) => {
      for (let b = 0; b < ids.length; b++) got.set(l.subarray(b * n * V, (b + 1) * n * V), (b * T + t0) * V);
    };
    const pre = await model.forwardCached(batchTensor(ids.map((r) => r.slice(0, 15))), cache);
    place(pre.toArray() as Float32Array, 0, 15);
    for (let t = 15; t < T; t++) {
      const step = await model.forwardCached(batchTensor(ids.map((r) => [r[t]])), cache);
      place(step.toArray() as Float32Array, t, 1);
    }
    expect(cache.length).toBe(T);
    if (tol !== 'bf16') {
      expectClose(got, want, tol, 'cached logits');
    } else {
      // the two paths round their activations to 8 significant bits at different points (a
      // fused residual is rounded once, a separate add twice): compared as a whole, as
      // bf16-model.test.ts compares bf16 logits
      let num = 0, den = 0;
      for (let i = 0; i < want.length; i++) num += (got[i] - want[i]) ** 2, den += want[i] ** 2;
      expect(Math.sqrt(num / den), 'relative L2 error of the cached logits').toBeLessThan(2e-2);
    }
    disposeCache(cache);
  }

  for (const name of ['llama-gqa-llama3-untied', 'decilm-mixed']) {
    it(`${name}: prefill 15 + decode 8 one at a time = one full forward`, async () => {
      const { ids } = JSON.parse(readFileSync(`${FIX}${name}/expected.json`, 'utf8')) as { ids: number[][] };
      const model = loadModel(FIX + name);
      await cachedEqualsFull(model, ids, TOL.block);
      model.dispose();
    });
  }

  // The cached forward of a GQA layer fuses differently per FFN kind (the residual into each
  // product, the norm into the next one): every kind after GQA attention, in both precisions.
  for (const dtype of ['float32', 'bfloat16'] as const) {
    it(`GQA followed by each FFN kind (${dtype}): prefill + decode = one full forward`, async () => {
      const config = tinyConfig();
      config.layers = [{ kind: 'swiglu', width: 48 } as const, { kind: 'linear' } as const, { kind: 'noop' } as const]
        .map((ffn) => ({ attention: { kind: 'gqa', kvHeads: 2 }, ffn }));
      const model = LlamaModel.random(config, 3, 0.2, 'cpu', dtype);
      const ids = [0, 1].map((b) => Array.from({ length: 20 }, (_, t) => (t * 7 + b * 5 + 3) % config.vocab));
      await cachedEqualsFull(model, ids, dtype === 'float32' ? TOL.block : 'bf16');
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
