// Assembling a child from a search solution, global knowledge distillation and the DeciLM export,
// on a tiny pretrained parent and its library.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { assembleChild, readArchitecture } from '../../ts/distill/assemble.js';
import { gkd, gkdBackward } from '../../ts/distill/gkd.js';
import { buildLibrary } from '../../ts/library/build.js';
import { loadModel, saveModel } from '../../ts/model/hf.js';
import { batchTensor } from '../../ts/model/llama.js';
import { nextTokenTargets } from '../../ts/eval/lm.js';
import { packedFromArrays } from '../../ts/train/batches.js';
import { pretrain } from '../../ts/train/pretrain.js';
import { directionalError } from '../support/finite-diff.js';
import { synthetic, tinyRun } from '../support/tiny-run.js';

let parentDir = '';
let lib = '';
const train = packedFromArrays(synthetic(256, 17, 11));
const validation = packedFromArrays(synthetic(32, 17, 12));
const ARCH = ['attn-linear+ffn-w24', 'attn-kv1+ffn-noop'];

beforeAll(async () => {
  const r = await pretrain({ ...tinyRun(), steps: 150, checkpointEvery: 150, outDir: mkdtempSync(join(tmpdir(), 'puzzle-gparent-')) });
  parentDir = r.modelDir;
  lib = mkdtempSync(join(tmpdir(), 'puzzle-glib-'));
  await buildLibrary({
    parentDir, lib, train, validation, dataSpec: 'synthetic',
    space: { attention: [{ kvHeads: 1 }, 'linear', 'noop'], ffn: [{ fraction: 0.5 }, 'linear', 'noop'], ffnMultiple: 8 },
    settings: { batch: 8, steps: 25, lr: 3e-3, calibrationBatches: 2, validationBatches: 2 },
  });
}, 300_000);

describe('assemble', () => {
  it('builds the child from library entries and the parent; the parent architecture reproduces the parent', async () => {
    const child = assembleChild(lib, ARCH);
    expect(child.config.layers).toEqual([
      { attention: { kind: 'linear' }, ffn: { kind: 'swiglu', width: 24 } },
      { attention: { kind: 'gqa', kvHeads: 1 }, ffn: { kind: 'noop' } },
    ]);
    expect(child.numParams()).toBeLessThan(loadModel(parentDir).numParams());
    const parent = loadModel(parentDir);
    const same = assembleChild(lib, ['attn-kv2+ffn-w48', 'attn-kv2+ffn-w48']);
    const ids = batchTensor([Array.from(validation.get(0))]);
    const a = (await parent.forward(ids)).logits.toArray() as Float32Array;
    const b = (await same.forward(ids)).logits.toArray() as Float32Array;
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    expect(maxDiff).toBeLessThan(1e-5);
    [child, same, parent].forEach((m) => m.dispose());
  });

  it('reads puzzle search --json output and names what is wrong with a bad solution', () => {
    const dir = mkdtempSync(join(tmpdir(), 'puzzle-sol-'));
    const p = join(dir, 'solution.json');
    writeFileSync(p, JSON.stringify([{ status: 'optimal', layers: [{ layer: 1, variant: ARCH[1] }, { layer: 0, variant: ARCH[0] }] }]));
    expect(readArchitecture(p)).toEqual(ARCH);
    writeFileSync(p, JSON.stringify({ status: 'infeasible', layers: [] }));
    expect(() => readArchitecture(p)).toThrow(/"layers" list.*infeasible/);
    expect(() => assembleChild(lib, ['attn-kv3+ffn-w48', ARCH[1]])).toThrow(/layer 0: the library has no variant "attn-kv3\+ffn-w48"/);
    expect(() => assembleChild(lib, [ARCH[0]])).toThrow(/1 layers, the parent 2/);
  });
});

describe('GKD', () => {
  it('the combined loss gradient (cosine + KL + LM) matches finite differences', async () => {
    const parent = loadModel(parentDir);
    const child = assembleChild(lib, ARCH);
    const ids = batchTensor([0, 1].map((i) => Array.from(validation.get(i))));
    const targets = nextTokenTargets(ids.toArray() as Int32Array, 2, 17);
    const w = { cosine: 0.7, kl: 1, lm: 0.3 };
    const block = child.blocks[0];
    const p = block.paramBuffer();
    const x0 = p.toArray() as Float32Array;
    child.zeroGrad();
    await gkdBackward(parent, child, ids, targets, w);
    const grad = block.gradBuffer().toArray() as Float32Array;
    const loss = async (x: Float32Array) => {
      p.copyFrom(x);
      child.zeroGrad();
      return (await gkdBackward(parent, child, ids, targets, w)).loss;
    };
    const r = await directionalError(x0, loss, grad, 3, 1e-2);
    expect(r.rel, JSON.stringify(r)).toBeLessThan(2e-2);
    [parent, child, ids, targets].forEach((m) => m.dispose());
  }, 60_000);

  it('lowers the validation KL to the parent, exports DeciLM, and resumes after a crash to identical weights', async () => {
    const parent = loadModel(parentDir);
    const work = mkdtempSync(join(tmpdir(), 'puzzle-gkd-'));
    const childDir = join(work, 'child');
    const c = assembleChild(lib, ARCH);
    saveModel(c, childDir, { forceDeci: true });
    c.dispose();
    const base = { parent, childDir, train, validation, steps: 80, batch: 4, lr: 5e-3, evalEvery: 80, evalBatches: 2, checkpointEvery: 5 };
    const whole = await gkd({ ...base, outDir: join(work, 'whole') });
    expect(whole.final!.kl!, `KL ${whole.before!.kl} -> ${whole.final!.kl}`).toBeLessThan(0.85 * whole.before!.kl!);
    expect(whole.final!.agreement!).toBeGreaterThanOrEqual(whole.before!.agreement!);
    // crash at step 12 (after the checkpoint at 10), then run again: same weights as uninterrupted
    const out = join(work, 'crashed');
    await expect(gkd({ ...base, outDir: out, onEvent: (e) => { if (e.kind === 'step' && e.step === 12) throw new Error('crash'); } })).rejects.toThrow('crash');
    expect(existsSync(join(out, 'model'))).toBe(false);
    const resumed = await gkd({ ...base, outDir: out });
    expect(resumed.history.map((h) => h.loss)).toEqual(whole.history.map((h) => h.loss));
    expect(readFileSync(join(out, 'model', 'model.safetensors')).equals(readFileSync(join(whole.modelDir, 'model.safetensors')))).toBe(true);
    // other settings on the same checkpoint are refused
    await expect(gkd({ ...base, outDir: out, steps: 81 })).rejects.toMatchObject({ code: 'ERR_PUZZLE_CHECKPOINT' });
    // the export is DeciLM with the exact keys, reads back with identical logits
    const cfg = JSON.parse(readFileSync(join(whole.modelDir, 'config.json'), 'utf8'));
    expect(cfg.architectures).toEqual(['DeciLMForCausalLM']);
    expect(cfg.block_configs[0].attention).toEqual({ n_heads_in_group: null, no_op: false, replace_with_linear: true });
    expect(cfg.block_configs[1].ffn).toEqual({ ffn_mult: null, no_op: true, replace_with_linear: false });
    const st = readFileSync(join(whole.modelDir, 'model.safetensors'));
    const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString());
    expect(Object.keys(header).filter((k) => k.startsWith('model.layers.1.mlp') || k.startsWith('model.layers.1.post_attention'))).toEqual([]);
    expect(header['model.layers.0.self_attn.linear_attn.weight']).toBeDefined();
    rmSync(join(out, 'checkpoint'), { recursive: true });
    parent.dispose();
  }, 300_000);
});
