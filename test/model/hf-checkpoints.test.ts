// Checkpoints written by another tool (PyTorch, HF names): our loss equals PyTorch's to 1e-4.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadModel, openModelFolder } from '../../ts/model/hf.js';
import { batchTensor } from '../../ts/model/llama.js';
import { evaluateLm } from '../../ts/eval/lm.js';

const FIX = fileURLToPath(new URL('../fixtures/', import.meta.url));
const cases = ['llama-gqa-llama3-untied', 'llama-tied-bf16-sharded', 'decilm-mixed'];

describe('Hugging Face checkpoints from PyTorch', () => {
  for (const name of cases) {
    it(`${name}: loss and top-1 match PyTorch`, async () => {
      const dir = FIX + name;
      const expected = JSON.parse(readFileSync(`${dir}/expected.json`, 'utf8')) as { ids: number[][]; loss: number; top1: number; logits_first_row: number[] };
      const model = loadModel(dir);
      const ids = batchTensor(expected.ids);
      const m = await evaluateLm(model, [ids]);
      expect(Math.abs(m.loss - expected.loss) / expected.loss).toBeLessThan(1e-4);
      expect(m.top1).toBeCloseTo(expected.top1, 10);
      expect(m.tokens).toBe(2 * 22);
      model.dispose();
      ids.dispose();
    });
  }

  it('reads the layer structure of a DeciLM child', () => {
    const f = openModelFolder(FIX + 'decilm-mixed');
    expect(f.config.layers).toEqual([
      { attention: { kind: 'gqa', kvHeads: 1 }, ffn: { kind: 'swiglu', width: 256 } },
      { attention: { kind: 'linear' }, ffn: { kind: 'linear' } },
      { attention: { kind: 'noop' }, ffn: { kind: 'swiglu', width: 512 } },
      { attention: { kind: 'gqa', kvHeads: 4 }, ffn: { kind: 'noop' } },
    ]);
    expect(f.shape('model.layers.2.input_layernorm.weight')).toBeUndefined();
  });
});
