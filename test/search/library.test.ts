// Loading libraries: our JSON format, NVIDIA's demo format (a tiny one made here), scenarios,
// parents, memory = params + batch x KV, batch-size sweeps, and the errors people see.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HighsPool } from '../../ts/search/index.js';
import { createHighsPool, loadLibrary, measuredBatchSizes, parentChoice, saveLibrary, search, SearchError, syntheticLibrary } from '../../ts/search/index.js';
import { randomLibrary } from './fixtures.js';

let pool: HighsPool;
beforeAll(() => {
  pool = createHighsPool(1);
});
afterAll(async () => {
  await pool.close();
});

const dir = () => mkdtempSync(join(tmpdir(), 'puzzle-search-'));
const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    if (error instanceof SearchError) return `${error.code}: ${error.message}`;
    throw error;
  }
  return 'no error';
};

/** NVIDIA's naming pattern, with made-up numbers. */
function nvidiaName(kv: number | 'no_op', ffn: number | 'no_op'): string {
  const attention = kv === 'no_op' ? 'attention = no_op (parent * 0%)' : `attention = ${kv} kv heads (parent * ${(kv / 8) * 100}%)`;
  const mlp = ffn === 'no_op' ? 'ffn = no_op (parent * 0%)' : `ffn = intermediate size ${Math.round(ffn / 1000)}e3 (parent * ${Math.round((ffn / 1000) * 100)}%)`;
  return `${attention}\t&&\t${mlp}`;
}

function writeNvidia(path: string, namedParent = true): void {
  const library: Record<string, Record<string, unknown>> = {};
  for (let i = 0; i < 3; i++) {
    const layer: Record<string, unknown> = {};
    for (const kv of [8, 'no_op'] as const) {
      for (const ffn of [1000, 500, 'no_op'] as const) {
        const attention = kv === 'no_op' ? 0 : 100;
        const mlp = ffn === 'no_op' ? 0 : ffn / 10;
        let name = nvidiaName(kv, ffn);
        if (!namedParent) name = name.replace(/\(parent \* 100%\)/g, '(full)');
        layer[name] = {
          stats: { memory_mib: attention + mlp, runtime_ms: (attention + mlp) / 2, num_params: (attention + mlp) * 1e6, num_kv_heads: kv === 'no_op' ? 0 : kv, ffn_intermediate_size: ffn === 'no_op' ? 0 : ffn },
          metrics: { kl_div: kv === 8 && ffn === 1000 ? 0 : (i + 1) * (kv === 'no_op' ? 1 : 0.1) + (ffn === 1000 ? 0 : ffn === 500 ? 0.05 : 2), lm_loss: 1.6 },
        };
      }
    }
    library[`layer_${i}`] = layer;
  }
  writeFileSync(join(path, 'block_library.json'), JSON.stringify(library));
  writeFileSync(join(path, 'measurement_info.json'), JSON.stringify({ batch_size: 8, sequence_length: 100, gpu: 'Test GPU', dtype: 'fp8' }));
  writeFileSync(join(path, 'parent_block_stats.json'), JSON.stringify({ stats: { memory_mib: 200, runtime_ms: 100, num_params: 200e6 }, metrics: { kl_div: 0 } }));
}

describe('loading', () => {
  it('round-trips our own format through a directory and a file path', () => {
    const path = dir();
    const library = randomLibrary({ layers: 3, variants: 2, seed: 1 });
    saveLibrary(library, join(path, 'block_library.json'));
    const fromDir = loadLibrary(path);
    const fromFile = loadLibrary(join(path, 'block_library.json'));
    expect(fromDir.layers).toEqual(library.layers);
    expect(fromFile.scenario).toEqual(library.scenario);
  });

  it('reads NVIDIA\'s demo format: scenario, parent by name, block description', async () => {
    const path = dir();
    writeNvidia(path);
    const library = loadLibrary(path);
    expect(library.layers).toHaveLength(3);
    expect(library.scenario).toEqual({ batch_size: 8, sequence_length: 100, device: 'Test GPU', dtype: 'fp8' });
    expect(library.layers[0]!.parent).toBe(nvidiaName(8, 1000));
    expect(parentChoice(library)).toEqual([0, 0, 0]);
    const noOp = library.layers[0]!.variants.find((v) => v.name.startsWith('attention = no_op'))!;
    expect(noOp.block).toMatchObject({ attention: { no_op: true, num_kv_heads: 0 } });
    // 2x the parent's throughput = half its runtime (3 x 100 ms -> 150 ms), tokens = 8 x 100.
    const [result] = await search(library, { speedup: '2x', pool });
    expect(result!.status).toBe('optimal');
    expect(result!.totals!.runtime_ms).toBeLessThanOrEqual(150);
    expect(result!.totals!.speedup).toBeGreaterThanOrEqual(2 - 1e-9);
    expect(result!.budgets[0]!.target).toBeCloseTo((2 * 8 * 100 * 1000) / 300, 9);
  });

  it('finds NVIDIA\'s parent from parent_block_stats.json when names do not say', () => {
    const path = dir();
    writeNvidia(path, false);
    expect(parentChoice(loadLibrary(path))).toEqual([0, 0, 0]);
  });

  it('lets --scenario replace the scenario', () => {
    const path = dir();
    writeNvidia(path);
    writeFileSync(join(path, 'other.json'), JSON.stringify({ batch_size: 64, sequence_length: 2048, device: 'B200' }));
    expect(loadLibrary(path, { scenario: join(path, 'other.json') }).scenario).toEqual({ batch_size: 64, sequence_length: 2048, device: 'B200' });
  });

  it('explains what is wrong with a bad file', () => {
    const path = dir();
    expect(code(() => loadLibrary(join(path, 'missing.json')))).toMatch(/^bad_library: --library .*missing\.json: cannot read it \(ENOENT\)/);
    writeFileSync(join(path, 'broken.json'), '{"layers": [');
    expect(code(() => loadLibrary(join(path, 'broken.json')))).toMatch(/not valid JSON/);
    writeFileSync(join(path, 'other.json'), '{"hello": 1}');
    expect(code(() => loadLibrary(join(path, 'other.json')))).toMatch(/not a block library/);
    const twice = { format: 'puzzle-block-library', version: 1, layers: [{ variants: [{ name: 'a', stats: {}, metrics: {} }, { name: 'a', stats: {}, metrics: {} }] }] };
    writeFileSync(join(path, 'twice.json'), JSON.stringify(twice));
    expect(code(() => loadLibrary(join(path, 'twice.json')))).toMatch(/layers\[0\]\.variants\[1\]\.name repeats "a"/);
    const text = { format: 'puzzle-block-library', version: 1, layers: [{ variants: [{ name: 'a', stats: { memory_mib: 'lots' }, metrics: {} }] }] };
    writeFileSync(join(path, 'text.json'), JSON.stringify(text));
    expect(code(() => loadLibrary(join(path, 'text.json')))).toMatch(/stats\.memory_mib must be a finite number, got "lots"/);
    writeFileSync(join(path, 'gap.json'), JSON.stringify({ layer_0: { a: { stats: {}, metrics: {} } }, layer_2: { a: { stats: {}, metrics: {} } } }));
    expect(code(() => loadLibrary(join(path, 'gap.json')))).toMatch(/no "layer_1"/);
  });

  it('needs a parent for relative budgets and a scenario for throughput', async () => {
    const library = randomLibrary({ layers: 2, variants: 2, seed: 1 });
    const orphan = { ...library, layers: library.layers.map((l) => ({ variants: l.variants })) };
    await expect(search(orphan, { memory: '0.5x', pool })).rejects.toThrow(/needs the parent's variant/);
    const { scenario: _scenario, ...bare } = library;
    await expect(search(bare, { throughput: 100, pool })).rejects.toThrow(/--throughput needs the scenario/);
    await expect(search(library, { objective: 'accuracy', pool })).rejects.toThrow(/no stat or metric "accuracy"/);
  });
});

describe('memory and batch sizes', () => {
  it('counts memory as parameters + batch x KV cache', async () => {
    const library = syntheticLibrary({ layers: 4, seed: 3, batchSize: 16, extraBatchSizes: [64] });
    const [r] = await search(library, { memory: '100GiB', pool });
    const chosen = r!.layers.map((l, i) => library.layers[i]!.variants[l.index]!.stats);
    const expected = chosen.reduce((sum, s) => sum + s['param_memory_mib']! + 16 * s['kv_cache_mib']!, 0);
    expect(r!.totals!.memory_mib).toBeCloseTo(expected, 6);
  });

  it('solves at several batch sizes and keeps the best', async () => {
    const library = syntheticLibrary({ layers: 6, seed: 5, batchSize: 64, extraBatchSizes: [8, 256] });
    expect(measuredBatchSizes(library)).toEqual([8, 64, 256]);
    const spec = { memory: '40GiB', throughput: '1.2x' };
    const each = await Promise.all([8, 64, 256].map(async (b) => (await search(library, { ...spec, batchSizes: [b], pool }))[0]!));
    const [best] = await search(library, { ...spec, batchSizes: [8, 64, 256], pool });
    const feasible = each.filter((r) => r.objective !== null);
    const min = Math.min(...feasible.map((r) => r.objective!));
    expect(best!.objective).toBeCloseTo(min, 12);
    expect(best!.batches).toHaveLength(3);
    expect(best!.batch_size).toBe(feasible.find((r) => r.objective === min)!.batch_size);
    await expect(search(library, { ...spec, batchSizes: [32], pool })).rejects.toThrow(/no measurements at batch size 32 \(it has: 8, 64, 256\)/);
  });
});
