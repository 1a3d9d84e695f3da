// The block library on a tiny pretrained parent: space, init, BLD, store, resume and shards.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { pretrain } from '../../ts/train/pretrain.js';
import { packedFromArrays } from '../../ts/train/batches.js';
import { buildLibrary } from '../../ts/library/build.js';
import { defaultSpace, layerVariants } from '../../ts/library/space.js';
import { checkLibrary, entryPaths } from '../../ts/library/store.js';
import { loadModel } from '../../ts/model/hf.js';
import { composeBlock } from '../../ts/library/compose.js';
import { tensor } from '../../ts/core/tensor.js';
import { synthetic, tinyRun } from '../support/tiny-run.js';

let parentDir = '';
let builtLib = '';
const train = packedFromArrays(synthetic(256, 17, 11));
const validation = packedFromArrays(synthetic(32, 17, 12));
const settings = { batch: 8, steps: 25, lr: 3e-3, calibrationBatches: 2, validationBatches: 2 };
const space = { attention: [{ kvHeads: 1 }, 'linear', 'noop'] as const, ffn: [{ fraction: 0.5 }, 'linear', 'noop'] as const, ffnMultiple: 8 };

beforeAll(async () => {
  const out = mkdtempSync(join(tmpdir(), 'puzzle-parent-'));
  const r = await pretrain({ ...tinyRun(), steps: 150, checkpointEvery: 150, outDir: out });
  parentDir = r.modelDir;
}, 300_000);

describe('search space', () => {
  it('default space of a GQA parent', () => {
    const m = loadModel(parentDir);
    const s = defaultSpace(m.config);
    expect(s.attention).toEqual([{ kvHeads: 2 }, { kvHeads: 1 }, 'linear', 'noop']);
    const v = layerVariants(m.config, 0, { ...s, ffnMultiple: 8 });
    expect(v.attention.map((x) => x.id)).toEqual(['attn-kv2', 'attn-kv1', 'attn-linear', 'attn-noop']);
    expect(v.ffn.map((x) => x.id)).toEqual(['ffn-w48', 'ffn-w40', 'ffn-w24', 'ffn-w16', 'ffn-w8', 'ffn-linear', 'ffn-noop']);
    expect(v.attention[0].parent && v.ffn[0].parent).toBe(true);
    m.dispose();
  });
});

describe('library build', () => {
  it('builds every layer x option, BLD beats init, and the store checks out', async () => {
    const lib = mkdtempSync(join(tmpdir(), 'puzzle-lib-'));
    const r = await buildLibrary({ parentDir, lib, train, validation, dataSpec: 'synthetic', space: { ...space, attention: [...space.attention], ffn: [...space.ffn] }, settings });
    expect(r.complete).toBe(true);
    builtLib = lib;
    expect(r.entries).toHaveLength(2 * (4 + 4)); // 2 layers x (parent + 3 options) x 2 kinds
    for (const e of r.entries) {
      if (e.init === 'parent' || e.id.endsWith('noop')) continue;
      expect(e.valNmseBld, `${e.layer} ${e.id}`).toBeLessThan(e.valNmseInit);
    }
    const kv1 = r.entries.find((e) => e.id === 'attn-kv1')!;
    expect(kv1.blockConfig).toEqual({ attention: { n_heads_in_group: 4, no_op: false, replace_with_linear: false } });
    const half = r.entries.find((e) => e.id === 'ffn-w24')!;
    expect(half.blockConfig.ffn?.intermediate_size).toBe(24);
    // the parent's two halves composed back together are exactly the parent layer
    const parent = loadModel(parentDir);
    const pa = r.entries.find((e) => e.layer === 1 && e.id === 'attn-kv2')!;
    const pf = r.entries.find((e) => e.layer === 1 && e.id === 'ffn-w48')!;
    const block = composeBlock(parent.config, lib, pa, pf);
    const x = tensor(new Float32Array(2 * 5 * 32).map((_, i) => Math.sin(i)), [2, 5, 32]);
    const rope = parent.ropeFor(5);
    const a = await block.forward(x, 2, 5, rope, false);
    const b = await parent.blocks[1].forward(x, 2, 5, rope, false);
    expect(Array.from(a.toArray())).toEqual(Array.from(b.toArray()));
    parent.dispose();
  }, 300_000);

  it('two shards built separately equal one build; a lost entry is rebuilt on resume', async () => {
    const opts = { parentDir, train, validation, dataSpec: 'synthetic', space: { ...space, attention: [...space.attention], ffn: [...space.ffn] }, settings };
    const one = mkdtempSync(join(tmpdir(), 'puzzle-lib1-'));
    await buildLibrary({ ...opts, lib: one });
    const sharded = mkdtempSync(join(tmpdir(), 'puzzle-lib2-'));
    const a = await buildLibrary({ ...opts, lib: sharded, shard: { index: 0, count: 2 } });
    expect(a.complete).toBe(false);
    const b = await buildLibrary({ ...opts, lib: sharded, shard: { index: 1, count: 2 } });
    expect(b.complete).toBe(true);
    for (const e of b.entries) {
      const x = readFileSync(entryPaths(one, e.layer, e.id).weights);
      const y = readFileSync(entryPaths(sharded, e.layer, e.id).weights);
      expect(y.equals(x), `${e.layer} ${e.id}`).toBe(true);
    }
    // an interrupted build: the entry being written is missing; resuming rebuilds exactly it
    rmSync(entryPaths(sharded, 1, 'ffn-linear').json);
    expect(checkLibrary(sharded).missing).toEqual([{ layer: 1, id: 'ffn-linear' }]);
    const c = await buildLibrary({ ...opts, lib: sharded });
    expect(c.complete).toBe(true);
  }, 300_000);
});

describe('replace-1-block scoring', () => {
  it('parent entries score zero, others positive; a lost score is recomputed identically', async () => {
    const { scoreLibrary, scorePath } = await import('../../ts/score/replace1.js');
    const { batchTensor } = await import('../../ts/model/llama.js');
    const parent = loadModel(parentDir);
    const batches = [0, 1].map((k) => batchTensor(Array.from({ length: 4 }, (_, j) => Array.from(validation.get(k * 4 + j)))));
    const scores = await scoreLibrary(parent, builtLib, batches);
    expect(scores).toHaveLength(16);
    for (const s of scores) {
      expect(s.tokens).toBe(2 * 4 * 16);
      if (s.id === 'attn-kv2' || s.id === 'ffn-w48') {
        expect(s.kl_div).toBeLessThan(1e-6);
        expect(s.top1_agreement).toBe(1);
      } else expect(s.kl_div, `${s.layer} ${s.id}`).toBeGreaterThan(1e-5);
    }
    // downstream tasks: with a parent half swapped in, the accuracy is the parent's own
    const { evaluateChoices } = await import('../../ts/eval/choice.js');
    const tok = { bosId: null, encode: async (t: string) => Int32Array.from(t, (ch) => ch.charCodeAt(0) % 24) };
    const items = [{ candidates: ['abcab', 'abcba', 'bbbbb'], answer: 0 }, { candidates: ['hello', 'world'], answer: 1 }, { candidates: ['xyzzy', 'zzyzx'], answer: 0 }];
    rmSync(scorePath(builtLib, 1, 'ffn-w48'));
    rmSync(scorePath(builtLib, 1, 'attn-linear'));
    const withTasks = await scoreLibrary(parent, builtLib, batches, undefined, { tokenizer: tok, tasks: [{ name: 'toy', items }] });
    const own = (await evaluateChoices(parent, tok, items)).accuracy;
    expect(withTasks.find((x) => x.layer === 1 && x.id === 'ffn-w48')!.tasks).toEqual({ toy: own });
    expect(withTasks.every((x) => x.tasks && x.tasks.toy >= 0 && x.tasks.toy <= 1)).toBe(true);
    const noop = scores.find((s) => s.layer === 0 && s.id === 'ffn-noop')!;
    rmSync(scorePath(builtLib, 0, 'ffn-noop'));
    const again = await scoreLibrary(parent, builtLib, batches);
    expect({ ...again.find((s) => s.layer === 0 && s.id === 'ffn-noop'), tasks: undefined }).toEqual({ ...noop, tasks: undefined });
    parent.dispose();
  }, 300_000);
});

describe('search input (library + scores + costs)', () => {
  it('joins every attention x FFN pair with summed scores and costs; refuses another device and a missing score', async () => {
    const { profileSpace } = await import('../../ts/profile/profile.js');
    const { scenario } = await import('../../ts/profile/scenario.js');
    const { buildSearchInput } = await import('../../ts/library/search-input.js');
    const { scorePath } = await import('../../ts/score/replace1.js');
    const { search } = await import('../../ts/search/index.js');
    const parent = loadModel(parentDir);
    const costs = await profileSpace(parent.config, scenario({ batch: 2, prompt: 8, generate: 2, repeats: 1, warmup: 0 }), space as never);
    const table = buildSearchInput(parent.config, builtLib, costs);
    expect(table.layers).toHaveLength(2);
    expect(table.scenario).toMatchObject({ batch_size: 2, sequence_length: 10 });
    const L0 = table.layers[0];
    expect(L0.variants).toHaveLength(4 * 4);
    expect(L0.parent).toBe('attn-kv2+ffn-w48');
    const parentV = L0.variants.find((v) => v.name === L0.parent)!;
    expect(parentV.metrics.kl_div).toBe(0);
    const score = (id: string) => JSON.parse(readFileSync(scorePath(builtLib, 0, id), 'utf8')) as { kl_div: number };
    const mixed = L0.variants.find((v) => v.name === 'attn-linear+ffn-noop')!;
    expect(mixed.metrics.kl_div).toBeCloseTo(score('attn-linear').kl_div + score('ffn-noop').kl_div, 12);
    const cost = (id: string) => costs.subblocks.find((c) => c.id === id)!;
    expect(mixed.stats.num_params).toBeCloseTo(cost('attn-linear').num_params + cost('ffn-noop').num_params + costs.head.num_params / 2, 6);
    expect(mixed.stats.runtime_ms).toBeCloseTo(cost('attn-linear').runtime_ms + cost('ffn-noop').runtime_ms - costs.empty.runtime_ms + costs.head.runtime_ms / 2, 9);
    expect(parentV.stats.memory_mib).toBeCloseTo(parentV.stats.param_memory_mib + 2 * parentV.stats.kv_cache_mib, 9);
    expect(mixed.block).toMatchObject({ attention: { replace_with_linear: true }, ffn: { no_op: true } });
    // the whole-model sums equal the parent's parameter count, so budgets mean what they say
    const total = table.layers.reduce((x, l) => x + l.variants.find((v) => v.name === l.parent)!.stats.num_params, 0);
    expect(total).toBeCloseTo(parent.numParams(), 3);
    // the search runs on it: at 60% of the parent's parameters it must drop something
    const [r] = await search(table, { params: 0.6 * total } as never);
    expect(r.status).toBe('optimal');
    // another device's table is refused, unless asked for explicitly
    const other = { ...costs, device: { ...costs.device, model: 'Some Other CPU' } };
    expect(() => buildSearchInput(parent.config, builtLib, other)).toThrow(/measured on .*Some Other CPU.*profile again here/);
    expect(buildSearchInput(parent.config, builtLib, other, { allowOtherDevice: true }).layers).toHaveLength(2);
    // a missing score names its file and the command that writes it
    const p = scorePath(builtLib, 1, 'ffn-linear');
    const saved = readFileSync(p);
    rmSync(p);
    expect(() => buildSearchInput(parent.config, builtLib, costs)).toThrow(/ffn-linear\.json is missing.*puzzle score/);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(p, saved);
    parent.dispose();
  }, 300_000);
});
