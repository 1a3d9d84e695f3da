// `puzzle eval` on pre-tokenised JSONL scores exactly those sequences: PyTorch's loss to 1e-4.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runEval } from '../../ts/eval/run.js';
import { PuzzleError } from '../../ts/core/errors.js';

const FIX = fileURLToPath(new URL('../fixtures/', import.meta.url));

describe('puzzle eval', () => {
  for (const name of ['llama-gqa-llama3-untied', 'llama-tied-bf16-sharded', 'decilm-mixed']) {
    it(`${name}: pre-tokenised input, teacher = itself`, async () => {
      const expected = JSON.parse(readFileSync(`${FIX}${name}/expected.json`, 'utf8')) as { ids: number[][]; loss: number; top1: number };
      const data = join(mkdtempSync(join(tmpdir(), 'puzzle-eval-')), 'ids.jsonl');
      writeFileSync(data, expected.ids.map((r) => JSON.stringify({ input_ids: r })).join('\n') + '\n');
      const r = await runEval({ model: FIX + name, data, teacher: FIX + name });
      expect(r.split).toBe('as-given');
      expect(r.tokens).toBe(44);
      expect(Math.abs(r.loss - expected.loss) / expected.loss).toBeLessThan(1e-4);
      expect(r.top1).toBeCloseTo(expected.top1, 10);
      expect(r.kl).toBeLessThan(1e-6);
      expect(r.agreement).toBe(1);
    });
  }

  it('token ids beyond the vocabulary are refused with the file and position', async () => {
    const data = join(mkdtempSync(join(tmpdir(), 'puzzle-eval-')), 'bad.jsonl');
    writeFileSync(data, JSON.stringify({ input_ids: [1, 2, 500] }) + '\n');
    const err = await runEval({ model: FIX + 'decilm-mixed', data }).catch((e) => e);
    expect(err).toBeInstanceOf(PuzzleError);
    expect(err.message).toMatch(/bad\.jsonl.*input_ids\[2\] = 500 is outside the model's vocabulary \[0, 97\)/);
  });
});
