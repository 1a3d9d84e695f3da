// Verification re-checks a solution from the library alone and catches every kind of wrong answer.
import { describe, expect, it } from 'vitest';
import { assertVerified, SearchError, verifyChoice } from '../../ts/search/index.js';
import { prepare } from '../../ts/search/problem.js';
import { allChoices, fits, randomLibrary, total } from './fixtures.js';

const library = randomLibrary({ layers: 4, variants: 3, seed: 17 });
const limits = { memory_mib: 4 * 16, runtime_ms: 4 * 8 };
const problem = prepare(library, { max: limits });
const at = problem.batches[0]!;
const feasible = [...allChoices(library)].find((c) => fits(library, c, limits))!;
const infeasible = [...allChoices(library)].find((c) => !fits(library, c, limits))!;

describe('verification', () => {
  it('accepts a feasible solution and re-adds its costs', () => {
    const v = verifyChoice(library, at, problem.objective, problem.budgets, feasible, { claimedObjective: total(library, feasible, 'kl_div') });
    expect(v.ok).toBe(true);
    expect(v.objective).toBeCloseTo(total(library, feasible, 'kl_div'), 12);
    expect(v.checks.find((c) => c.budget === 'max:memory_mib')!.value).toBeCloseTo(total(library, feasible, 'memory_mib'), 12);
    expect(() => assertVerified(v, 'test')).not.toThrow();
  });

  it('catches a solution over budget', () => {
    const v = verifyChoice(library, at, problem.objective, problem.budgets, infeasible);
    expect(v.ok).toBe(false);
    expect(v.problems.join()).toMatch(/--max (memory_mib|runtime_ms)/);
    expect(v.checks.some((c) => !c.ok)).toBe(true);
    try {
      assertVerified(v, 'the test solution');
      throw new Error('expected a throw');
    } catch (error) {
      expect(error).toBeInstanceOf(SearchError);
      expect((error as SearchError).code).toBe('verification_failed');
    }
  });

  it('catches a wrong layer count, an index out of range and a non-integer index', () => {
    expect(verifyChoice(library, at, problem.objective, problem.budgets, feasible.slice(1)).ok).toBe(false);
    expect(verifyChoice(library, at, problem.objective, problem.budgets, [...feasible.slice(1), 3]).problems[0]).toMatch(/layer 3: variant index 3/);
    expect(verifyChoice(library, at, problem.objective, problem.budgets, [0.5, 0, 0, 0]).ok).toBe(false);
    expect(verifyChoice(library, at, problem.objective, problem.budgets, [-1, 0, 0, 0]).ok).toBe(false);
  });

  it('catches a misreported objective and a broken diversity limit', () => {
    const wrong = verifyChoice(library, at, problem.objective, problem.budgets, feasible, { claimedObjective: total(library, feasible, 'kl_div') + 0.01 });
    expect(wrong.ok).toBe(false);
    expect(wrong.problems[0]).toMatch(/claimed objective/);
    const twin = verifyChoice(library, at, problem.objective, problem.budgets, feasible, { diversity: { earlier: [feasible], maxShared: 2 } });
    expect(twin.ok).toBe(false);
    expect(twin.problems[0]).toMatch(/shares 4 layers with solution 1; at most 2/);
  });
});
