// The paper's baselines under the same budgets: greedy worked by hand, seeded random draws that
// always meet the budgets, uniform options, and maximise-parameters.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockLibrary, HighsPool } from '../../ts/search/index.js';
import { createHighsPool, search } from '../../ts/search/index.js';
import { allChoices, fits, indices, randomLibrary, total } from './fixtures.js';

let pool: HighsPool;
beforeAll(() => {
  pool = createHighsPool(1);
});
afterAll(async () => {
  await pool.close();
});

/** Three layers, three variants; memory only. Scores and costs chosen to make the walk readable. */
function tiny(): BlockLibrary {
  const v = (name: string, kl: number, memory: number) => ({ name, stats: { memory_mib: memory, runtime_ms: 1, num_params: memory }, metrics: { kl_div: kl } });
  return {
    layers: [
      // mean kl 2.0 (hardest, visited last)
      { variants: [v('big', 0, 10), v('mid', 2, 6), v('small', 4, 2)], parent: 'big' },
      // mean kl 1.0 (easiest, visited first)
      { variants: [v('big', 0, 10), v('mid', 1, 6), v('small', 2, 2)], parent: 'big' },
      // mean kl 1.5 (visited second)
      { variants: [v('big', 0, 10), v('mid', 1.5, 5), v('small', 3, 3)], parent: 'big' },
    ],
    scenario: { batch_size: 1, sequence_length: 1 },
  };
}

describe('greedy', () => {
  it('splits the budget evenly, visits easiest layers first and carries what is left (by hand)', async () => {
    // Budget 21 -> 7 per layer.
    // Layer 1 (easiest): share 7 -> best fitting is "mid" (6), carry 1.
    // Layer 2: 7 + 1 = 8 -> "mid" (5), carry 3.
    // Layer 0 (hardest): 7 + 3 = 10 -> "big" (10), carry 0.
    const [result] = await search(tiny(), { memory: 21, method: 'greedy', pool });
    expect(result!.status).toBe('feasible');
    expect(result!.layers.map((l) => l.variant)).toEqual(['big', 'mid', 'mid']);
    expect(result!.objective).toBe(2.5);
    expect(result!.totals!.memory_mib).toBe(21);
    // The MIP is never worse under the same budget.
    const [mip] = await search(tiny(), { memory: 21, pool });
    expect(mip!.objective!).toBeLessThanOrEqual(2.5);
  });

  it('reports no_solution (not an architecture) when it overruns a feasible budget', async () => {
    // Budget 8 -> 2.67 per layer: only "small" fits each share, total 7 <= 8: feasible.
    const [ok] = await search(tiny(), { memory: 8, method: 'greedy', pool });
    expect(ok!.layers.map((l) => l.variant)).toEqual(['small', 'small', 'small']);
    // Budget 6.5: per-layer share 2.17; layer 2's smallest is 3, so greedy overruns and ends over budget;
    // the MIP shows 6.5 is infeasible too (least memory is 7), so the result is "infeasible".
    const [bad] = await search(tiny(), { memory: 6.5, method: 'greedy', pool });
    expect(bad!.status).toBe('infeasible');
    expect(bad!.layers).toEqual([]);
    expect(bad!.nearest_feasible![0]!.feasible_at).toBe(7);
  });
});

describe('random, uniform, max-params', () => {
  it('random draws are seeded, differ by seed and always meet the budgets', async () => {
    const library = randomLibrary({ layers: 6, variants: 4, seed: 3 });
    let least = Infinity;
    for (const c of allChoices(library)) least = Math.min(least, total(library, c, 'memory_mib'));
    const limits = { memory_mib: least + 8 };
    const a = await search(library, { max: limits, method: 'random', seed: 7, solutions: 5, pool });
    const b = await search(library, { max: limits, method: 'random', seed: 7, solutions: 5, pool });
    expect(a.map(indices)).toEqual(b.map(indices));
    expect(new Set(a.map((r) => indices(r).join())).size).toBeGreaterThan(1);
    for (const r of a) {
      expect(r.status).toBe('feasible');
      expect(fits(library, indices(r), limits)).toBe(true);
    }
  });

  it('random still finds a feasible point when budgets leave almost no room', async () => {
    const library = randomLibrary({ layers: 5, variants: 4, seed: 11 });
    let least = Infinity;
    for (const c of allChoices(library)) least = Math.min(least, total(library, c, 'memory_mib'));
    const [r] = await search(library, { max: { memory_mib: least }, method: 'random', seed: 1, pool });
    expect(r!.status).toBe('feasible');
    expect(total(library, indices(r!), 'memory_mib')).toBeCloseTo(least, 9);
  });

  it('uniform picks the best option used on every layer', async () => {
    const [r] = await search(tiny(), { memory: 21, method: 'uniform', pool });
    // big x3 = 30 (too much), mid x3 = 17 (kl 4.5), small x3 = 7 (kl 9): mid wins.
    expect(r!.layers.map((l) => l.variant)).toEqual(['mid', 'mid', 'mid']);
    expect(r!.objective).toBe(4.5);
  });

  it('max-params maximises parameters under the budgets', async () => {
    const library = randomLibrary({ layers: 4, variants: 3, seed: 21, ties: true });
    const limits = { memory_mib: 60 };
    const [r] = await search(library, { max: limits, method: 'max-params', pool });
    let most = -Infinity;
    for (const c of allChoices(library)) if (fits(library, c, limits)) most = Math.max(most, total(library, c, 'num_params'));
    expect(r!.totals!.num_params).toBe(most);
    expect(r!.method).toBe('max-params');
  });

  it('refuses several solutions from a deterministic baseline', async () => {
    await expect(search(tiny(), { memory: 21, method: 'greedy', solutions: 2, pool })).rejects.toThrow(/one architecture/);
  });
});
