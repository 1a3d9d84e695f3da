// safetensors and HF folder IO: round trips, sharding, and every kind of lying file.
import { mkdtempSync, readFileSync, writeFileSync, cpSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openSafetensors, readFloat32, writeSafetensors } from '../../ts/model/safetensors.js';
import { loadModel, saveModel } from '../../ts/model/hf.js';
import { batchTensor } from '../../ts/model/llama.js';
import { evaluateLm } from '../../ts/eval/lm.js';
import { PuzzleError } from '../../ts/core/errors.js';

const FIX = fileURLToPath(new URL('../fixtures/', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'puzzle-st-'));

function rawFile(header: object, data: Buffer, lenOverride?: number): string {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(lenOverride ?? h.length));
  const p = join(tmp(), 'x.safetensors');
  writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PuzzleError);
    return (e as PuzzleError).code + ': ' + (e as Error).message;
  }
  return 'no error';
}

describe('safetensors', () => {
  it('round-trips F32 and BF16 (round to nearest even)', () => {
    const p = join(tmp(), 'a.safetensors');
    const x = Float32Array.from([1, -2.5, 3.14159, 1e-3, 65504, -0]);
    writeSafetensors(p, { a: { dtype: 'F32', shape: [2, 3], data: x }, b: { dtype: 'BF16', shape: [6], data: x } }, { k: 'v' });
    const f = openSafetensors(p);
    expect(f.metadata).toEqual({ k: 'v' });
    expect(Array.from(readFloat32(f, 'a'))).toEqual(Array.from(x));
    const b = readFloat32(f, 'b');
    expect(b[2]).toBeCloseTo(3.140625, 6);
    for (let i = 0; i < 6; i++) expect(Math.abs(b[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) / 128);
  });

  it('rejects truncated and lying headers, naming the file', () => {
    const four = Buffer.alloc(16);
    expect(code(() => rawFile({}, four, 10_000) && openSafetensors(rawFile({}, four, 10_000)))).toMatch(/ERR_PUZZLE_SAFETENSORS.*does not fit/);
    expect(code(() => openSafetensors(rawFile({ a: { dtype: 'F32', shape: [5], data_offsets: [0, 16] } }, four)))).toMatch(/needs 20 bytes but data_offsets span 16/);
    expect(code(() => openSafetensors(rawFile({ a: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, four)))).toMatch(/beyond the data section/);
    expect(code(() => openSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, four)))).toMatch(/contiguous/);
    expect(code(() => openSafetensors(rawFile({ a: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, four)))).toMatch(/unknown dtype/);
    const p = join(tmp(), 'short.safetensors');
    writeFileSync(p, Buffer.alloc(3));
    expect(code(() => openSafetensors(p))).toMatch(/short\.safetensors.*too short/);
    expect(code(() => openSafetensors(join(tmp(), 'missing.safetensors')))).toMatch(/ERR_PUZZLE_FILE.*missing\.safetensors/);
  });
});

describe('HF folders', () => {
  it('save -> load round-trips a model exactly, sharded, and leaves no temporary files', async () => {
    const expected = JSON.parse(readFileSync(FIX + 'llama-gqa-llama3-untied/expected.json', 'utf8')) as { ids: number[][]; loss: number };
    const model = loadModel(FIX + 'llama-gqa-llama3-untied');
    const parent = tmp();
    const out = join(parent, 'copy');
    saveModel(model, out, { maxShardBytes: 100_000 });
    expect(existsSync(join(out, 'model.safetensors.index.json'))).toBe(true);
    expect(readdirSync(parent)).toEqual(['copy']);
    const again = loadModel(out);
    const ids = batchTensor(expected.ids);
    expect((await evaluateLm(again, [ids])).loss).toBe((await evaluateLm(model, [ids])).loss);
    model.dispose(), again.dispose(), ids.dispose();
  });

  it('a config that does not match the tensors is refused with the tensor named', () => {
    const d = join(tmp(), 'm');
    cpSync(FIX + 'llama-gqa-llama3-untied', d, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, num_key_value_heads: 4 }));
    expect(code(() => loadModel(d))).toMatch(/ERR_PUZZLE_CONFIG.*k_proj.weight.*\[32,64\].*\[64,64\]/);
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 2 }));
    expect(code(() => loadModel(d))).toMatch(/model\.layers\.2\..*not part of the architecture/);
    writeFileSync(join(d, 'config.json'), '{ not json');
    expect(code(() => loadModel(d))).toMatch(/config\.json is not valid JSON/);
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, num_key_value_heads: 3 }));
    expect(code(() => loadModel(d))).toMatch(/num_key_value_heads 3 must divide/);
  });
});
