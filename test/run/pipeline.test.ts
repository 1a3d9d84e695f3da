// `puzzle run` end to end on the shipped parent with tiny settings: the run directory contract,
// config validation, refusal of changed settings, and resume after kill -9 at random points.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { applySets, loadRunConfig, resolveConfig } from '../../ts/run/config.js';
import { runPipeline } from '../../ts/run/pipeline.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHILD = fileURLToPath(new URL('../support/run-child.ts', import.meta.url));

// Deterministic budgets (parameters, not measured time), so a resumed run must reproduce an
// uninterrupted one exactly.
const TINY = {
  parent: join(ROOT, 'models/default-parent'),
  library: { tokens: 1024, batch: 2, seq: 32 },
  score: { sequences: 2, seq: 32 },
  profile: { batch: 1, prompt: 8, generate: 2, repeats: 1, children: 0 },
  search: { decode_speedup: 0, params: 0.8 },
  gkd: { steps: 6, batch: 2, seq: 32 },
  evaluate: { sequences: 2, seq: 32, task_items: 4, speed_rounds: 1 },
};

function configFile(extra: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'puzzle-runcfg-'));
  const p = join(dir, 'run.json');
  writeFileSync(p, JSON.stringify({ ...TINY, ...extra }));
  return p;
}

function child(config: string, out: string, killAfterLines: number | null): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', CHILD, config, out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = 0;
    let err = '';
    let killed = false;
    p.stdout.on('data', (d: Buffer) => {
      lines += d.toString().split('\n').length - 1;
      if (killAfterLines !== null && !killed && lines >= killAfterLines) {
        killed = true;
        p.kill('SIGKILL');
      }
    });
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve(false) : code === 0 ? resolve(true) : reject(new Error(err))));
  });
}

const file = (run: string, ...p: string[]) => readFileSync(join(run, ...p));

describe('run config', () => {
  it('names the field and what was expected', () => {
    expect(() => resolveConfig({ gkd: { stepz: 3 } }, 'x.yaml')).toThrow(/x\.yaml: "gkd\.stepz": unknown setting; expected one of steps, batch/);
    expect(() => resolveConfig({ library: { tokens: 'many' } }, 'x.yaml')).toThrow(/"library\.tokens": expected an integer >= 0, got "many"/);
    expect(() => resolveConfig({ search: { decode_speedup: 0 } }, 'x.yaml')).toThrow(/no budget/);
    expect(() => resolveConfig({ flavour: 1 }, 'x.yaml')).toThrow(/"flavour": unknown setting/);
    expect(applySets({}, ['gkd.steps=7', 'search.objective=lm_loss_increase', 'library.coupled=true'])).toEqual({ gkd: { steps: 7 }, search: { objective: 'lm_loss_increase' }, library: { coupled: true } });
    expect(() => applySets({}, ['gkd.steps'])).toThrow(/--set gkd\.steps: expected KEY=VALUE/);
    const dir = mkdtempSync(join(tmpdir(), 'puzzle-yaml-'));
    writeFileSync(join(dir, 'c.yaml'), 'gkd:\n  steps: 12\nsearch:\n  params: 0.5\n');
    const c = loadRunConfig(join(dir, 'c.yaml'), ['gkd.batch=3']);
    expect(c.gkd).toMatchObject({ steps: 12, batch: 3 });
    expect(c.search.params).toBe(0.5);
    expect(existsSync(join(c.parent, 'config.json'))).toBe(true); // the demo parent, found from anywhere
    writeFileSync(join(dir, 'bad.yaml'), 'gkd: [1, 2\n');
    expect(() => loadRunConfig(join(dir, 'bad.yaml'))).toThrow(/bad\.yaml: not valid YAML or JSON/);
  });

  it('a run directory that cannot be created is a clear error, and nothing is written', async () => {
    // a regular file where a folder must go: refused for every user, root included
    const dir = mkdtempSync(join(tmpdir(), 'puzzle-ro-'));
    const blocker = join(dir, 'not-a-folder');
    writeFileSync(blocker, 'x');
    const c = loadRunConfig(configFile());
    await expect(runPipeline(c, join(blocker, 'run'))).rejects.toThrow(/cannot create the run directory .*not-a-folder\/run/);
    expect(readFileSync(blocker, 'utf8')).toBe('x');
    // a parent that is not a model folder names the setting
    await expect(runPipeline({ ...c, parent: dir }, join(dir, 'run2'))).rejects.toThrow(/parent: .* is not a model folder/);
    expect(existsSync(join(dir, 'run2'))).toBe(false);
  });
});

describe('puzzle run', () => {
  it('killed at 10+ random points, it resumes to the same results as an uninterrupted run', async () => {
    const cfg = configFile();
    const ref = mkdtempSync(join(tmpdir(), 'puzzle-run-ref-'));
    expect(await child(cfg, ref, null)).toBe(true);
    // the run directory contract
    for (const p of ['manifest.json', 'DONE', 'report.json', 'summary.md', 'plots/pareto.svg', 'plots/layers.svg', 'costs.json', 'evaluate.json',
      'search/solution.json', 'search/baselines.json', 'search/pareto.json', 'library/block_library.json', 'model/config.json', 'model/model.safetensors', 'model/tokenizer.json'])
      expect(existsSync(join(ref, p)), p).toBe(true);
    const report = JSON.parse(file(ref, 'report.json').toString());
    expect(report.search.status).toBe('optimal');
    expect(report.evaluate.child.tokens).toBeGreaterThan(0);
    expect(JSON.parse(file(ref, 'model', 'config.json').toString()).block_configs).toHaveLength(8);

    const run = mkdtempSync(join(tmpdir(), 'puzzle-run-kill-'));
    let kills = 0;
    for (let attempt = 0; attempt < 40 && !existsSync(join(run, 'DONE')); attempt++) {
      const done = await child(cfg, run, kills < 10 ? 1 + Math.floor(Math.random() * 60) : null);
      if (!done) kills++;
    }
    expect(kills).toBeGreaterThanOrEqual(10);
    expect(existsSync(join(run, 'DONE'))).toBe(true);
    // the same architecture (the costs are measured again after a kill; the budget is not timed)
    const sol = (r: string) => JSON.parse(file(r, 'search', 'solution.json').toString())[0] as { layers: unknown; objective: number };
    expect(sol(run).layers).toEqual(sol(ref).layers);
    expect(sol(run).objective).toBe(sol(ref).objective);
    expect(file(run, 'model', 'model.safetensors').equals(file(ref, 'model', 'model.safetensors'))).toBe(true);
    const a = JSON.parse(file(run, 'evaluate.json').toString()), b = JSON.parse(file(ref, 'evaluate.json').toString());
    expect({ ...a.child, model: null }).toEqual({ ...b.child, model: null });
    expect(a.parent).toEqual(b.parent);

    // a finished run with changed settings is refused, naming the difference
    const changed = loadRunConfig(cfg, ['gkd.steps=7']);
    await expect(runPipeline(changed, run)).rejects.toThrow(/finished stage "gkd" with other settings \(gkd\.steps: 6 -> 7\)/);
    // settings that only touch a later stage restart from there
    const r = await runPipeline(loadRunConfig(cfg, ['evaluate.task_items=2']), run, { restartFrom: 'evaluate' });
    expect((r.report.evaluate as { child: { tasks: Record<string, { items: number }> } }).child.tasks.agreement.items).toBe(2);
    // a new budget from the search on: a new child, distilled from scratch (no stale checkpoint)
    const before = JSON.parse(file(run, 'model', 'config.json').toString()).block_configs;
    await runPipeline(loadRunConfig(cfg, ['evaluate.task_items=2', 'search.params=0.6']), run, { restartFrom: 'search' });
    const layers = (JSON.parse(file(run, 'search', 'solution.json').toString())[0] as { layers: Array<{ variant: string }> }).layers.map((l) => l.variant);
    const after = JSON.parse(file(run, 'model', 'config.json').toString()).block_configs;
    expect(after).not.toEqual(before);
    const { childConfig } = await import('../../ts/distill/assemble.js');
    const { toHfConfig } = await import('../../ts/model/config.js');
    const { openModelFolder } = await import('../../ts/model/hf.js');
    const expected = toHfConfig(childConfig(openModelFolder(TINY.parent).config, join(run, 'library'), layers), { forceDeci: true }).block_configs;
    expect(after).toEqual(expected);
  }, 900_000);
});
