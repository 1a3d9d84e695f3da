// The exact search against brute force on small random libraries: optimal values, ties at the
// budget, infeasible budgets (with the nearest feasible budget), maximisation and floors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HighsPool, SearchResult } from '../../ts/search/index.js';
import { createHighsPool, search, solveExact, verifyChoice } from '../../ts/search/index.js';
import { toChoice } from '../../ts/search/instance.js';
import { compile, prepare } from '../../ts/search/problem.js';
import type { Limits } from './fixtures.js';
import { allChoices, bruteForce, fits, indices, randomLibrary, rng, smallestFeasible, total } from './fixtures.js';

let pool: HighsPool;
beforeAll(() => {
  pool = createHighsPool(1);
});
afterAll(async () => {
  await pool.close();
});

/** Limits between the cheapest and the dearest architecture, so some bind and some do not. */
function limitsFor(seed: number, library: ReturnType<typeof randomLibrary>, names: (keyof Limits)[]): Limits {
  const random = rng(seed * 7 + 3);
  const limits: Record<string, number> = {};
  for (const name of names) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const choice of allChoices(library)) {
      const v = total(library, choice, name);
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    // Integer fixtures: pick an attained-looking integer so ties at the budget happen.
    limits[name] = Math.round(lo + (hi - lo) * (0.15 + 0.7 * random()));
  }
  return limits;
}

function expectFeasibleAndOptimal(result: SearchResult, library: ReturnType<typeof randomLibrary>, limits: Limits, best: number): void {
  expect(result.status).toBe('optimal');
  expect(fits(library, indices(result), limits)).toBe(true);
  expect(result.objective).toBeCloseTo(best, 9);
  expect(total(library, indices(result), 'kl_div')).toBeCloseTo(best, 9);
}

describe('MIP vs brute force', () => {
  it('finds the brute-force optimum on random instances with many ties (one to three budgets)', async () => {
    for (let seed = 1; seed <= 30; seed++) {
      const library = randomLibrary({ layers: 3 + (seed % 3), variants: 2 + (seed % 4), seed, ties: true });
      const names = (['memory_mib', 'runtime_ms', 'num_params'] as const).slice(0, 1 + (seed % 3));
      const limits = limitsFor(seed, library, [...names]);
      const [result] = await search(library, { max: limits, pool });
      const reference = bruteForce(library, limits);
      if (!reference) {
        expect(result!.status).toBe('infeasible');
        expect(result!.layers).toEqual([]);
        continue;
      }
      expectFeasibleAndOptimal(result!, library, limits, reference.value);
      expect(reference.choices.map((c) => c.join())).toContain(indices(result!).join());
    }
  });

  it('finds the brute-force optimum with real-valued costs and scores', async () => {
    for (let seed = 100; seed < 115; seed++) {
      const library = randomLibrary({ layers: 4, variants: 4, seed });
      const limits = limitsFor(seed, library, ['memory_mib', 'runtime_ms']);
      const [result] = await search(library, { max: limits, pool });
      const reference = bruteForce(library, limits);
      if (!reference) expect(result!.status).toBe('infeasible');
      else expectFeasibleAndOptimal(result!, library, limits, reference.value);
    }
  });

  it('stays exact through pruning, fixing and merging on larger instances (7 layers x 5 variants)', async () => {
    let merged = 0;
    for (let seed = 50; seed < 62; seed++) {
      const library = randomLibrary({ layers: 7, variants: 5, seed, ties: seed % 2 === 0 });
      const limits = limitsFor(seed, library, seed % 4 === 0 ? ['memory_mib', 'runtime_ms', 'num_params'] : ['memory_mib', 'runtime_ms']);
      const problem = prepare(library, { max: limits });
      // mergeAbove 0: merge even these small models, so the reductions really run.
      const outcome = await solveExact(compile(problem, problem.batches[0]!), pool, { mergeAbove: 0 });
      const reference = bruteForce(library, limits);
      if (!reference) {
        expect(outcome.status).toBe('infeasible');
        continue;
      }
      expect(outcome.status).toBe('optimal');
      const choice = toChoice(compile(problem, problem.batches[0]!), outcome.columns!);
      expect(fits(library, choice, limits)).toBe(true);
      expect(outcome.objective).toBeCloseTo(reference.value, 9);
      if (outcome.sizes.groups < 7) merged++;
    }
    expect(merged).toBeGreaterThan(3);
  });

  it('accepts an architecture exactly at the budget (a tie with the limit)', async () => {
    const library = randomLibrary({ layers: 4, variants: 3, seed: 5, ties: true });
    // The budget equals the memory of a specific architecture: that one must stay feasible.
    const target = [1, 2, 0, 1];
    const limit = total(library, target, 'memory_mib');
    const [result] = await search(library, { max: { memory_mib: limit }, pool });
    const reference = bruteForce(library, { memory_mib: limit })!;
    expectFeasibleAndOptimal(result!, library, { memory_mib: limit }, reference.value);
    expect(total(library, indices(result!), 'memory_mib')).toBeLessThanOrEqual(limit);
  });

  it('maximises, and honours floors (--min)', async () => {
    for (let seed = 200; seed < 210; seed++) {
      const library = randomLibrary({ layers: 4, variants: 3, seed, ties: true });
      const limits = limitsFor(seed, library, ['memory_mib']);
      const [max] = await search(library, { max: limits, objective: 'num_params', maximize: true, pool });
      const reference = bruteForce(library, limits, 'num_params', 'max');
      expect(max!.objective).toBe(reference?.value ?? null);

      const floor = limitsFor(seed + 1, library, ['num_params']).num_params!;
      const [withFloor] = await search(library, { min: { num_params: floor }, pool });
      const best = bruteForce(library, {}, 'kl_div', 'min', (c) => total(library, c, 'num_params') >= floor);
      if (!best) expect(withFloor!.status).toBe('infeasible');
      else {
        expect(withFloor!.objective).toBeCloseTo(best.value, 9);
        expect(total(library, indices(withFloor!), 'num_params')).toBeGreaterThanOrEqual(floor);
      }
    }
  });
});

describe('infeasible budgets', () => {
  it('reports infeasible with the smallest feasible value of each budget, never an architecture', async () => {
    for (let seed = 300; seed < 312; seed++) {
      const library = randomLibrary({ layers: 4, variants: 3, seed, ties: seed % 2 === 0 });
      let least = Infinity;
      for (const choice of allChoices(library)) least = Math.min(least, total(library, choice, 'memory_mib'));
      const limits: Limits = { memory_mib: least - 1, runtime_ms: limitsFor(seed, library, ['runtime_ms']).runtime_ms! };
      const [result] = await search(library, { max: limits, pool });
      expect(result!.status).toBe('infeasible');
      expect(result!.layers).toEqual([]);
      expect(result!.objective).toBeNull();
      const memory = result!.nearest_feasible!.find((n) => n.budget === 'max:memory_mib')!;
      const expected = smallestFeasible(library, 'memory_mib', limits);
      if (expected === undefined) expect(memory.feasible_at).toBeNull();
      else expect(memory.feasible_at).toBeCloseTo(expected, 9);
      // That value really is feasible, and the search agrees.
      if (expected !== undefined) {
        const [fixed] = await search(library, { max: { ...limits, memory_mib: expected }, pool });
        expect(fixed!.status).toBe('optimal');
      }
    }
  });

  it('gives the largest feasible throughput when a throughput target is out of reach', async () => {
    const library = randomLibrary({ layers: 3, variants: 3, seed: 9, ties: true });
    let fastest = Infinity;
    for (const choice of allChoices(library)) fastest = Math.min(fastest, total(library, choice, 'runtime_ms'));
    const best = (1000 * 40) / fastest; // 40 tokens per run (batch 4 x 10)
    const [result] = await search(library, { throughput: best * 1.01, pool });
    expect(result!.status).toBe('infeasible');
    const entry = result!.nearest_feasible!.find((n) => n.budget === 'throughput')!;
    expect(entry.bound).toBe('lower');
    expect(entry.feasible_at).toBeCloseTo(best, 6);
    const [ok] = await search(library, { throughput: best, pool });
    expect(ok!.status).toBe('optimal');
    expect(ok!.totals!.throughput).toBeGreaterThanOrEqual(best * (1 - 1e-9));
  });
});

describe('never an infeasible solution', () => {
  it('every returned architecture passes independent verification on 60 random instances', async () => {
    for (let seed = 400; seed < 460; seed++) {
      const library = randomLibrary({ layers: 2 + (seed % 5), variants: 2 + (seed % 3), seed, ties: seed % 3 === 0 });
      const limits = limitsFor(seed, library, ['memory_mib', 'runtime_ms', 'num_params']);
      const [result] = await search(library, { max: limits, pool });
      if (result!.status !== 'optimal') {
        expect(bruteForce(library, limits)).toBeUndefined();
        continue;
      }
      expect(fits(library, indices(result!), limits)).toBe(true);
      const problem = prepare(library, { max: limits });
      const check = verifyChoice(library, problem.batches[0]!, problem.objective, problem.budgets, indices(result!));
      expect(check.ok).toBe(true);
      expect(result!.budgets.every((b) => b.ok)).toBe(true);
    }
  });
});
