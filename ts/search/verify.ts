/**
 * Independent verification of a chosen architecture. After every solve (MIP or baseline) the
 * choice is re-checked from the library itself, not from the solver's matrix: exactly one
 * variant per layer, every cost re-added in plain TypeScript and held against its budget, the
 * diversity limit against every earlier solution, and the objective against what the solver
 * claimed. A failure here is a bug, and is thrown rather than reported as a result.
 */
import type { Budget } from './budgets.js';
import { budgetRow, humanValue } from './budgets.js';
import type { At } from './costs.js';
import { choiceTotal, costColumn } from './costs.js';
import { SearchError } from './errors.js';
import type { Objective } from './instance.js';
import type { BlockLibrary } from './library.js';
import { rowTolerance } from './tolerance.js';

/** One budget held against a solution, in the user's units. */
export interface BudgetCheck {
  /** `memory`, `throughput`, `latency`, `ttft`, `params`, `max:NAME`, `min:NAME`. */
  readonly budget: string;
  readonly option: string;
  /** The user's target and whether it is a ceiling (`upper`) or a floor (`lower`). */
  readonly target: number;
  readonly bound: 'upper' | 'lower';
  /** What the solution achieves, in `unit`. */
  readonly value: number;
  readonly unit: string;
  readonly ok: boolean;
}

export interface Verification {
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly checks: readonly BudgetCheck[];
  /** The objective re-added over layers (in the metric's own sign). */
  readonly objective: number;
}

/** Extra conditions for one of several diverse solutions. */
export interface DiversityCheck {
  readonly earlier: readonly (readonly number[])[];
  /** Most layers it may share with each earlier solution. */
  readonly maxShared: number;
}

/** Re-checks `choice` (variant index per layer) from scratch. */
export function verifyChoice(
  library: BlockLibrary,
  at: At,
  objective: Objective,
  budgets: readonly Budget[],
  choice: readonly number[],
  options: { diversity?: DiversityCheck; claimedObjective?: number } = {},
): Verification {
  const problems: string[] = [];
  if (choice.length !== library.layers.length) {
    problems.push(`the solution has ${choice.length} layers, the library ${library.layers.length}`);
    return { ok: false, problems, checks: [], objective: Number.NaN };
  }
  choice.forEach((j, i) => {
    const count = library.layers[i]?.variants.length ?? 0;
    if (!Number.isInteger(j) || j < 0 || j >= count) problems.push(`layer ${i}: variant index ${j} is not one of its ${count} variants`);
  });
  if (problems.length > 0) return { ok: false, problems, checks: [], objective: Number.NaN };

  const checks = budgets.map((budget): BudgetCheck => {
    const row = budgetRow(budget, at);
    const sum = choiceTotal(library, choice, row.key, at, budget.option);
    const slack = rowTolerance(row.limit, costColumn(library, row.key, at, budget.option));
    const ok = row.sense === '<=' ? sum <= row.limit + slack : sum >= row.limit - slack;
    const value = humanValue(budget, sum, at);
    if (!ok) problems.push(`${budget.option}: the solution reaches ${value} ${budget.unit}, past the ${budget.bound === 'upper' ? 'ceiling' : 'floor'} of ${budget.target}`.trimEnd());
    return { budget: budget.id, option: budget.option, target: budget.target, bound: budget.bound, value, unit: budget.unit, ok };
  });

  const value = choiceTotal(library, choice, objective.key, at, 'objective');
  if (options.claimedObjective !== undefined) {
    const scale = Math.max(1, Math.abs(value), Math.abs(options.claimedObjective));
    if (Math.abs(value - options.claimedObjective) > 1e-9 * scale) {
      problems.push(`the solver claimed objective ${options.claimedObjective}, the re-added sum is ${value}`);
    }
  }
  const diversity = options.diversity;
  diversity?.earlier.forEach((earlier, k) => {
    const shared = choice.filter((j, i) => earlier[i] === j).length;
    if (shared > diversity.maxShared) problems.push(`shares ${shared} layers with solution ${k + 1}; at most ${diversity.maxShared} allowed`);
  });
  return { ok: problems.length === 0, problems, checks, objective: value };
}

/** Throws `verification_failed` unless `verification.ok`. */
export function assertVerified(verification: Verification, what: string): void {
  if (!verification.ok) {
    throw new SearchError('verification_failed', `${what} failed verification (a bug, please report it): ${verification.problems.join('; ')}`);
  }
}
