// `puzzle search` end to end through commander: JSON and text output, several solutions, sweeps,
// exit codes, and errors that name the argument.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerSearchCommand } from '../../ts/cli/search.js';
import { saveLibrary, syntheticLibrary } from '../../ts/search/index.js';

let libraryDir: string;
beforeAll(() => {
  libraryDir = mkdtempSync(join(tmpdir(), 'puzzle-cli-'));
  saveLibrary(syntheticLibrary({ layers: 8, seed: 4 }), join(libraryDir, 'block_library.json'));
});
afterEach(() => {
  process.exitCode = undefined;
  vi.restoreAllMocks();
});

async function run(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err += String(chunk);
    return true;
  });
  const program = new Command('puzzle').exitOverride();
  registerSearchCommand(program);
  await program.parseAsync(['node', 'puzzle', 'search', '--library', libraryDir, ...args]);
  const code = Number(process.exitCode ?? 0);
  vi.restoreAllMocks();
  return { out, err, code };
}

describe('puzzle search', () => {
  it('prints one JSON object with status, objective, totals and layers', async () => {
    const { out, code } = await run('--memory', '0.7x', '--speedup', '1.3x', '--json');
    expect(code).toBe(0);
    const result = JSON.parse(out);
    expect(result.status).toBe('optimal');
    expect(typeof result.objective).toBe('number');
    expect(Object.keys(result.totals)).toEqual(expect.arrayContaining(['memory_mib', 'runtime_ms', 'throughput', 'num_params']));
    expect(result.layers).toHaveLength(8);
    expect(result.layers[0]).toMatchObject({ layer: 0, variant: expect.any(String), index: expect.any(Number) });
  });

  it('prints a list with several solutions, and a readable text report', async () => {
    const json = await run('--memory', '0.8x', '--solutions', '3', '--diversity', '0.5', '--json');
    const list = JSON.parse(json.out);
    expect(Array.isArray(list)).toBe(true);
    expect(list.map((r: { solution: number }) => r.solution)).toEqual([1, 2, 3]);
    const text = await run('--memory', '0.8x', '--layers');
    expect(text.out).toMatch(/^mip: optimal \(proven\)/);
    expect(text.out).toMatch(/--memory .* <= .* ok/);
    expect(text.out).toContain('attention=');
  });

  it('runs baselines and writes a sweep', async () => {
    const greedy = await run('--memory', '0.8x', '--baseline', 'greedy', '--json');
    expect(JSON.parse(greedy.out).method).toBe('greedy');
    const out = mkdtempSync(join(tmpdir(), 'puzzle-cli-sweep-'));
    const sweep = await run('--memory', '0.8x', '--sweep', 'throughput=1x..2x:4', '--out', out, '--threads', '2');
    expect(sweep.code).toBe(0);
    expect(sweep.out).toMatch(/sweep of --throughput over 4 points/);
    expect(readFileSync(join(out, 'sweep.csv'), 'utf8').split('\n')).toHaveLength(6);
  });

  it('exits 2 on infeasible budgets and reports the nearest feasible values', async () => {
    // More parameters than the parent has, and at most 10 GiB: two budgets, each infeasible with the other.
    const { out, code } = await run('--min', 'num_params=2x', '--memory', '10GiB', '--json');
    expect(code).toBe(2);
    const result = JSON.parse(out);
    expect(result.status).toBe('infeasible');
    expect(result.layers).toEqual([]);
    const params = result.nearest_feasible.find((n: { budget: string }) => n.budget === 'min:num_params');
    const memory = result.nearest_feasible.find((n: { budget: string }) => n.budget === 'memory');
    expect(params).toMatchObject({ option: '--min num_params', bound: 'lower' });
    expect(memory.feasible_at).toBeNull(); // no memory ceiling reaches twice the parent's parameters
    expect(params.feasible_at).toBeLessThan(params.target);
    const text = await run('--min', 'num_params=2x', '--memory', '10GiB');
    expect(text.out).toMatch(/infeasible: no architecture meets the budgets/);
    expect(text.out).toMatch(/--min num_params +allows at most/);
  });

  it('exits 1 with a message naming the argument', async () => {
    const bad = await run('--memory', 'lots');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/error \[bad_units\]: --memory: expected a size/);
    const sweep = await run('--sweep', 'memory=1x..2x:3');
    expect(sweep.err).toMatch(/give --out DIR/);
    const batches = await run('--batch-sizes', '7');
    expect(batches.err).toMatch(/no measurements at batch size 7/);
  });
});
