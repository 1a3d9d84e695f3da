/**
 * When budgets are infeasible, say by how much: for each budget, the loosest-needed value (the
 * smallest ceiling, or the largest floor) that would make the search feasible with every other
 * budget left as it is. Each is itself an exact MIP: minimise (or maximise) that budget's summed
 * cost subject to the other budgets.
 */
import { humanValue } from './budgets.js';
import type { At } from './costs.js';
import { solveExact } from './exact.js';
import type { HighsPool } from './highs-pool.js';
import type { Problem } from './problem.js';
import { budgetRows, compile } from './problem.js';
import type { NearestFeasible } from './result.js';

/** Nearest feasible value of every budget at batch `at`. */
export async function nearestFeasible(problem: Problem, at: At, pool: HighsPool): Promise<NearestFeasible[]> {
  const out: NearestFeasible[] = [];
  for (const budget of problem.budgets) {
    const others = problem.budgets.filter((b) => b !== budget);
    const [row] = budgetRows(problem, at, [budget]);
    if (!row) continue;
    const inst = compile(problem, at, { key: row.key, sense: row.sense === '<=' ? 'min' : 'max' }, others);
    const result = await solveExact(inst, pool);
    let feasibleAt: number | null = null;
    if (result.status === 'optimal' && result.objective !== undefined) {
      // The instance minimised the (possibly negated) summed cost; undo the sign.
      const sum = row.sense === '<=' ? result.objective : -result.objective;
      feasibleAt = humanValue(budget, sum, at);
    }
    out.push({ budget: budget.id, option: budget.option, bound: budget.bound, target: budget.target, feasible_at: feasibleAt, unit: budget.unit, batch_size: at.batch });
  }
  return out;
}

/** Across batch sizes, keep for each budget the most lenient value (lowest ceiling needed, highest floor allowed). */
export function mostLenient(perBatch: readonly (readonly NearestFeasible[])[]): NearestFeasible[] {
  const best = new Map<string, NearestFeasible>();
  for (const list of perBatch) {
    for (const entry of list) {
      const current = best.get(entry.budget);
      if (!current || better(entry, current)) best.set(entry.budget, entry);
    }
  }
  return [...best.values()];
}

function better(a: NearestFeasible, b: NearestFeasible): boolean {
  if (a.feasible_at === null) return false;
  if (b.feasible_at === null) return true;
  // A ceiling is easiest to meet when the needed value is smallest; a floor (throughput) when largest.
  return a.bound === 'upper' ? a.feasible_at < b.feasible_at : a.feasible_at > b.feasible_at;
}
