// `puzzle run` end to end with `device: cuda` (and its default mixed precision) against the same
// run on the CPU in bfloat16: every stage that runs models (BLD library, replace-1-block scores,
// GKD, evaluation) goes through the CUDA module, and
// what each stage wrote must agree with the CPU run's within the tolerances of tensor-core
// products. On a machine without a GPU the module is the one built for the CPU emulator
// (test/support/cuda-module.ts); the settings are small so that this takes minutes there.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseCudaModule, emulatedProfiler } from '../support/cuda-module.js';

const choice = chooseCudaModule();
// costs and the final speed from the GPU too: puzzle_cuda_profile, built for the emulator where
// no GPU answers (its timings are then the CPU's; only the contract is checked)
const profiler = 'where' in choice && choice.where === 'emulator' ? emulatedProfiler() : null;
if (profiler && 'path' in profiler) process.env.PUZZLE_CUDA_PROFILER = profiler.path;
const usable = 'where' in choice && !(profiler && 'skip' in profiler);

// Imported after PUZZLE_CUDA_MODULE is set (the addon reads it at the first CUDA question).
const { resolveConfig } = await import('../../ts/run/config.js');
const { runPipeline } = await import('../../ts/run/pipeline.js');

const ROOT = join(import.meta.dirname, '..', '..');
// a smaller space than the default (two trained attention and two FFN options per layer), one
// BLD step per variant, two GKD steps: every stage runs, nothing runs long
const SMALL = {
  parent: join(ROOT, 'models/default-parent'),
  library: { tokens: 64, batch: 2, seq: 32, space: { attention: [{ kvHeads: 4 }, { kvHeads: 2 }, 'linear'], ffn: [{ fraction: 1 }, { fraction: 0.5 }, 'noop'], ffnMultiple: 32 } },
  score: { sequences: 2, seq: 32 },
  profile: { batch: 1, prompt: 8, generate: 2, repeats: 1, children: 0 },
  search: { decode_speedup: 0, params: 0.8 },
  gkd: { steps: 2, batch: 2, seq: 32 },
  evaluate: { sequences: 2, seq: 32, task_items: 2, speed_rounds: 1 },
};

const json = (...p: string[]) => JSON.parse(readFileSync(join(...p), 'utf8'));
/** every per-variant JSON under dir/library/<kind>/layer-*, by layer and id */
function perVariant(dir: string, kind: 'subblocks' | 'scores'): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  const base = join(dir, 'library', kind);
  for (const layer of readdirSync(base))
    for (const f of readdirSync(join(base, layer))) if (f.endsWith('.json')) out.set(`${layer}/${f}`, json(base, layer, f));
  return out;
}
const relDiff = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

describe.runIf(('skip' in choice && choice.skip.startsWith('BUILD FAILED')) || (profiler !== null && 'skip' in profiler))('the emulated CUDA module and profiler', () => {
  it('build', () => {
    expect.fail('skip' in choice ? choice.skip : profiler && 'skip' in profiler ? profiler.skip : '');
  });
});

describe.runIf(usable)('puzzle run with device: cuda', () => {
  it('runs every stage on the GPU, and what each stage wrote agrees with the CPU run', async () => {
    const work = mkdtempSync(join(tmpdir(), 'puzzle-run-cuda-'));
    const cpu = join(work, 'cpu'), gpu = join(work, 'cuda');
    // mixed precision on both sides: explicit on the CPU, the default (auto) on cuda
    await runPipeline(resolveConfig({ ...SMALL, device: 'cpu', dtype: 'bfloat16' }, 'cpu.json'), cpu);
    await runPipeline(resolveConfig({ ...SMALL, device: 'cuda', profile: { ...SMALL.profile, device: 'cuda' } }, 'cuda.json'), gpu);

    // where each model stage ran is recorded, and said in the summary
    const report = json(gpu, 'report.json');
    for (const s of ['library', 'score', 'gkd', 'evaluate']) expect(report.ran_on[s], s).toMatch(/^cuda: .*, bfloat16$/);
    expect(json(cpu, 'report.json').ran_on.library).toBe('cpu, bfloat16');
    expect(readFileSync(join(gpu, 'summary.md'), 'utf8')).toMatch(/models trained and evaluated on cuda: .*, bfloat16/);
    // the costs and the parent-against-child speed measured on the GPU, blocks in bf16
    const costs = json(gpu, 'costs.json');
    expect(costs.device.kind).toBe('cuda');
    expect(costs.scenario.dtype).toBe('bfloat16');
    expect(json(gpu, 'evaluate.json').speed.scenario.device).toBe('cuda');
    expect(json(cpu, 'costs.json').device.kind).toBe('cpu');

    // BLD: the training-free init and one step, per variant (NMSE of the layer output)
    const libC = perVariant(cpu, 'subblocks'), libG = perVariant(gpu, 'subblocks');
    expect([...libG.keys()].sort()).toEqual([...libC.keys()].sort());
    let trained = 0;
    for (const [k, c] of libC) {
      const g = libG.get(k)!;
      if (c.valNmseInit === undefined) continue;
      trained++;
      expect(relDiff(g.valNmseInit, c.valNmseInit), `${k} init NMSE ${g.valNmseInit} vs ${c.valNmseInit}`).toBeLessThan(0.05);
      expect(relDiff(g.valNmseBld, c.valNmseBld), `${k} BLD NMSE ${g.valNmseBld} vs ${c.valNmseBld}`).toBeLessThan(0.05);
    }
    expect(trained).toBeGreaterThanOrEqual(8 * 4);
    // and it really ran elsewhere: the GPU's products never reproduce the CPU's bits
    expect([...libC].filter(([k, c]) => c.valNmseBld !== undefined && c.valNmseBld !== libG.get(k)!.valNmseBld).length).toBeGreaterThan(trained / 2);

    // replace-1-block scores: the child's LM loss and its KL from the parent
    const scC = perVariant(cpu, 'scores'), scG = perVariant(gpu, 'scores');
    expect(scG.size).toBe(scC.size);
    expect([...scC].filter(([k, c]) => c.lm_loss !== scG.get(k)!.lm_loss).length).toBeGreaterThan(scC.size / 2);
    for (const [k, c] of scC) {
      const g = scG.get(k)!;
      expect(relDiff(g.lm_loss, c.lm_loss), `${k} lm_loss`).toBeLessThan(1e-2);
      expect(Math.abs(g.kl_div - c.kl_div), `${k} kl_div ${g.kl_div} vs ${c.kl_div}`).toBeLessThan(0.01 + 0.1 * c.kl_div);
    }

    // GKD from the same assembled child (when the search chose the same one), and the evaluation
    const solC = json(cpu, 'search', 'solution.json')[0], solG = json(gpu, 'search', 'solution.json')[0];
    expect(relDiff(solG.objective, solC.objective)).toBeLessThan(0.1);
    const gkdC = json(cpu, 'stages', 'gkd.done.json').summary, gkdG = json(gpu, 'stages', 'gkd.done.json').summary;
    const evC = json(cpu, 'evaluate.json'), evG = json(gpu, 'evaluate.json');
    expect(relDiff(evG.parent.loss, evC.parent.loss), 'parent held-out loss').toBeLessThan(1e-2);
    expect(evG.parent.loss).not.toBe(evC.parent.loss);
    expect(gkdG.after.loss).not.toBe(gkdC.after.loss);
    if (JSON.stringify(solG.layers.map((l: { variant: string }) => l.variant)) === JSON.stringify(solC.layers.map((l: { variant: string }) => l.variant))) {
      expect(relDiff(gkdG.before.loss, gkdC.before.loss), 'child loss before GKD').toBeLessThan(1e-2);
      expect(relDiff(gkdG.after.loss, gkdC.after.loss), 'child loss after GKD').toBeLessThan(2e-2);
      expect(relDiff(evG.child.loss, evC.child.loss), 'child held-out loss').toBeLessThan(2e-2);
    }
  }, 1_200_000);
});
