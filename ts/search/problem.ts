/**
 * A search request made concrete: the objective, the resolved budgets and the batch sizes, checked
 * against the library once, and compiled to an {@link Instance} per batch size.
 */
import type { Budget, BudgetSpec } from './budgets.js';
import { budgetRow, resolveBudgets } from './budgets.js';
import type { At } from './costs.js';
import { keyFor, referenceAt } from './costs.js';
import { SearchError } from './errors.js';
import type { Instance, NamedRow, Objective } from './instance.js';
import { buildInstance } from './instance.js';
import type { BlockLibrary } from './library.js';
import { measuredBatchSizes } from './library.js';

/** What to optimise and under which budgets. */
export interface ProblemSpec extends BudgetSpec {
  /** Metric (or stat) summed over layers; default `kl_div`. */
  readonly objective?: string;
  /** Maximise the objective instead of minimising it. */
  readonly maximize?: boolean;
  /** Batch sizes to solve at, keeping the best; default: the library's own. */
  readonly batchSizes?: readonly number[];
}

export interface Problem {
  readonly library: BlockLibrary;
  readonly objective: Objective;
  readonly metric: string;
  readonly budgets: readonly Budget[];
  readonly batches: readonly At[];
}

/** Checks `spec` against `library` and resolves every human amount. */
export function prepare(library: BlockLibrary, spec: ProblemSpec): Problem {
  const metric = spec.objective ?? 'kl_div';
  const objective: Objective = { key: keyFor(library, metric, 'metric'), sense: spec.maximize ? 'max' : 'min' };
  const budgets = resolveBudgets(library, spec);
  return { library, objective, metric, budgets, batches: batchesOf(library, spec.batchSizes) };
}

function batchesOf(library: BlockLibrary, sizes: readonly number[] | undefined): At[] {
  const reference = referenceAt(library);
  if (sizes === undefined || sizes.length === 0) return [reference];
  const measured = measuredBatchSizes(library);
  const scenario = library.scenario;
  if (!scenario) throw new SearchError('no_scenario', '--batch-sizes needs the library scenario; pass --scenario FILE');
  return [...new Set(sizes)].map((batch) => {
    if (!Number.isInteger(batch) || batch < 1) throw new SearchError('bad_argument', `--batch-sizes: ${batch} is not a positive integer`);
    if (!measured.includes(batch)) {
      throw new SearchError('missing_stat', `--batch-sizes ${batch}: the library has no measurements at batch size ${batch} (it has: ${measured.join(', ')})`);
    }
    return { batch, scenario };
  });
}

/** The budget rows of `problem` at batch `at`. */
export function budgetRows(problem: Problem, at: At, budgets: readonly Budget[] = problem.budgets): NamedRow[] {
  return budgets.map((budget) => ({ ...budgetRow(budget, at), id: budget.id, purpose: budget.option }));
}

/** The canonical instance of `problem` at batch `at`, optionally with another objective. */
export function compile(problem: Problem, at: At, objective: Objective = problem.objective, budgets: readonly Budget[] = problem.budgets): Instance {
  return buildInstance(problem.library, at, objective, budgetRows(problem, at, budgets));
}
