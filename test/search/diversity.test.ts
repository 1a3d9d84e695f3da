// N diverse solutions: each shares at most floor(alpha x L) layers with every earlier one, and each
// is optimal given the earlier ones (checked by brute force).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HighsPool } from '../../ts/search/index.js';
import { createHighsPool, search } from '../../ts/search/index.js';
import { bruteForce, fits, indices, randomLibrary } from './fixtures.js';

let pool: HighsPool;
beforeAll(() => {
  pool = createHighsPool(1);
});
afterAll(async () => {
  await pool.close();
});

const shared = (a: readonly number[], b: readonly number[]) => a.filter((j, i) => b[i] === j).length;

describe('diversity', () => {
  it('guarantees the overlap limit, and each solution is the best one meeting it', async () => {
    for (let seed = 1; seed <= 8; seed++) {
      const library = randomLibrary({ layers: 5, variants: 4, seed, ties: seed % 2 === 0 });
      const limits = { memory_mib: 5 * 18 };
      const alpha = [0.2, 0.4, 0.6][seed % 3]!;
      const maxShared = Math.floor(alpha * 5 + 1e-9);
      const results = await search(library, { max: limits, solutions: 4, diversity: alpha, pool });
      const chosen: number[][] = [];
      for (const result of results) {
        const choice = indices(result);
        expect(result.status).toBe('optimal');
        expect(fits(library, choice, limits)).toBe(true);
        for (const earlier of chosen) expect(shared(choice, earlier)).toBeLessThanOrEqual(maxShared);
        const reference = bruteForce(library, limits, 'kl_div', 'min', (c) => chosen.every((e) => shared(c, e) <= maxShared));
        expect(result.objective).toBeCloseTo(reference!.value, 9);
        chosen.push(choice);
      }
      // Fewer than asked only when brute force agrees nothing else qualifies.
      if (results.length < 4) {
        expect(bruteForce(library, limits, 'kl_div', 'min', (c) => chosen.every((e) => shared(c, e) <= maxShared))).toBeUndefined();
        expect(results[0]!.note).toMatch(/found \d of 4 solutions/);
      }
      expect(results.map((r) => r.solution)).toEqual(results.map((_, k) => k + 1));
    }
  });

  it('returns distinct solutions with alpha 0 (no layer in common)', async () => {
    const library = randomLibrary({ layers: 4, variants: 3, seed: 42 });
    const results = await search(library, { solutions: 3, diversity: 0, pool });
    expect(results).toHaveLength(3);
    for (let a = 0; a < 3; a++) for (let b = a + 1; b < 3; b++) expect(shared(indices(results[a]!), indices(results[b]!))).toBe(0);
  });

  it('rejects a diversity outside [0, 1)', async () => {
    const library = randomLibrary({ layers: 2, variants: 2, seed: 1 });
    await expect(search(library, { solutions: 2, diversity: 1, pool })).rejects.toThrow(/--diversity must be in \[0, 1\)/);
  });
});
