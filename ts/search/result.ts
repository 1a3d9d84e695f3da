/**
 * What a search returns, shaped as the JSON that `puzzle search --json` prints (snake_case keys,
 * numbers in the user's units), and the code that describes a chosen architecture.
 */
import { throughputOf } from './budgets.js';
import type { At, CostKey } from './costs.js';
import { choiceTotal } from './costs.js';
import type { BlockConfig, BlockLibrary } from './library.js';
import { parentChoice, STAT } from './library.js';
import type { BudgetCheck } from './verify.js';

/** How the architecture was chosen. */
export type Method = 'mip' | 'greedy' | 'max-params' | 'random' | 'uniform';

/**
 * - `optimal`: proven optimal (MIP; for max-params, optimal for its own objective);
 * - `feasible`: meets every budget, optimality not claimed (greedy, random, uniform);
 * - `time_limit`: the solver stopped early; `layers` holds the best found, if any;
 * - `infeasible`: proven that no architecture meets the budgets (see `nearest_feasible`);
 * - `no_solution`: a baseline found nothing that meets the budgets (the budgets may still be feasible).
 */
export type Status = 'optimal' | 'feasible' | 'time_limit' | 'infeasible' | 'no_solution';

/** Summed costs and scores of an architecture. Keys appear when every chosen variant has the stat. */
export interface Totals {
  memory_mib?: number;
  runtime_ms?: number;
  /** Tokens per second of the scenario at this batch size. */
  throughput?: number;
  /** Throughput over the parent's at the library's own batch size. */
  speedup?: number;
  num_params?: number;
  prefill_ms?: number;
  latency_ms?: number;
  /** Summed metrics (kl_div, lm_loss, ...). */
  [metric: string]: number | undefined;
}

export interface LayerChoice {
  readonly layer: number;
  readonly variant: string;
  /** Index of the variant within its layer in the library. */
  readonly index: number;
  readonly block?: BlockConfig;
}

/** How the solver got there. */
export interface SolverReport {
  /** "optimal", "infeasible", "time_limit". */
  readonly status: string;
  /** What proved it: "highs" (the MIP), "lp-relaxation" (infeasible LP) or "row:<id>" (one budget alone). */
  readonly proof: string;
  readonly columns: number;
  readonly after_pruning: number;
  /** Groups and columns of the equivalent model HiGHS solved last. */
  readonly final_groups: number;
  readonly final_columns: number;
  readonly rounds: number;
  readonly nodes: number;
  readonly lp_bound: number | null;
  readonly incumbent: number | null;
  readonly highs_ms: number;
}

/** For an infeasible search: how far each budget alone would have to move. */
export interface NearestFeasible {
  readonly budget: string;
  readonly option: string;
  /** Whether the budget is a ceiling (memory, latency) or a floor (throughput). */
  readonly bound: 'upper' | 'lower';
  readonly target: number;
  /** The loosest-needed value (smallest ceiling or largest floor) that makes the search feasible
   * with every other budget unchanged; null when this budget alone cannot. */
  readonly feasible_at: number | null;
  readonly unit: string;
  readonly batch_size: number;
}

/** The outcome at one batch size of a batch-size sweep. */
export interface BatchOutcome {
  readonly batch_size: number;
  readonly status: Status;
  readonly objective: number | null;
}

export interface SearchResult {
  readonly method: Method;
  readonly status: Status;
  /** Summed objective over layers, in the metric's own sign; null without a solution. */
  readonly objective: number | null;
  readonly metric: string;
  readonly sense: 'min' | 'max';
  /** Best proven bound on the objective (MIP only). */
  readonly bound: number | null;
  readonly gap: number | null;
  readonly batch_size: number;
  readonly totals: Totals | null;
  readonly budgets: readonly BudgetCheck[];
  readonly layers: readonly LayerChoice[];
  /** 1-based rank among diverse solutions. */
  readonly solution: number;
  readonly solver: SolverReport | null;
  readonly time_ms: number;
  readonly batches?: readonly BatchOutcome[];
  readonly nearest_feasible?: readonly NearestFeasible[];
  readonly note?: string;
}

/** Totals and layer list of `choice`. */
export function describeChoice(library: BlockLibrary, at: At, choice: readonly number[]): { totals: Totals; layers: LayerChoice[] } {
  const totals: Totals = {};
  const sum = (key: CostKey, pick = choice, where = at) => totalIfKnown(library, pick, key, where);
  const put = (name: string, value: number | undefined) => {
    if (value !== undefined && Number.isFinite(value)) totals[name] = value;
  };
  put('memory_mib', sum({ kind: 'memory' }));
  const runtime = sum({ kind: 'stat', name: STAT.runtime });
  put('runtime_ms', runtime);
  if (runtime !== undefined && at.scenario) {
    put('throughput', throughputOf(runtime, at));
    const parent = parentChoice(library);
    const parentAt: At = { batch: at.scenario.batch_size, scenario: at.scenario };
    const parentRuntime = parent && sum({ kind: 'stat', name: STAT.runtime }, parent, parentAt);
    if (parentRuntime) put('speedup', throughputOf(runtime, at) / throughputOf(parentRuntime, parentAt));
  }
  put('num_params', sum({ kind: 'stat', name: STAT.params }));
  put('prefill_ms', sum({ kind: 'stat', name: STAT.prefill }));
  put('latency_ms', sum({ kind: 'stat', name: STAT.latency }));
  for (const metric of Object.keys(library.layers[0]?.variants[0]?.metrics ?? {})) put(metric, sum({ kind: 'metric', name: metric }));
  const layers = choice.map((index, layer): LayerChoice => {
    const variant = library.layers[layer].variants[index];
    return variant.block ? { layer, variant: variant.name, index, block: variant.block } : { layer, variant: variant.name, index };
  });
  return { totals, layers };
}

/** The summed cost, or undefined when some chosen variant lacks it (totals report what is known). */
function totalIfKnown(library: BlockLibrary, choice: readonly number[], key: CostKey, at: At): number | undefined {
  try {
    return choiceTotal(library, choice, key, at, 'totals');
  } catch {
    return undefined;
  }
}
