/**
 * The search entry point: the exact MIP (optionally N diverse solutions, optionally over several
 * batch sizes) or one of the paper's baselines under the same budgets. Every returned architecture
 * has passed verify.ts; infeasible budgets come back as `infeasible` with the nearest feasible
 * value of each budget, never as an architecture.
 */
import { bestUniform, greedy, randomFeasible, withinRows } from './baselines.js';
import type { At } from './costs.js';
import { keyFor } from './costs.js';
import { mostLenient, nearestFeasible } from './diagnose.js';
import { SearchError } from './errors.js';
import type { ExactOutcome } from './exact.js';
import { solveExact } from './exact.js';
import type { HighsPool } from './highs-pool.js';
import { createHighsPool } from './highs-pool.js';
import type { Instance, Row } from './instance.js';
import { columnsCost, diversityRow, toChoice, withRows } from './instance.js';
import { STAT } from './library.js';
import type { BlockLibrary } from './library.js';
import type { Problem, ProblemSpec } from './problem.js';
import { compile, prepare } from './problem.js';
import { seededRandom } from './random.js';
import type { BatchOutcome, Method, SearchResult, SolverReport, Status } from './result.js';
import { describeChoice } from './result.js';
import type { DiversityCheck } from './verify.js';
import { assertVerified, verifyChoice } from './verify.js';

export interface SearchOptions extends ProblemSpec {
  /** `mip` (default) or a baseline: `greedy`, `max-params`, `random`, `uniform`. */
  readonly method?: Method;
  /** Number of solutions (MIP: diverse ones; random: independent draws). Default 1. */
  readonly solutions?: number;
  /** Diverse MIP solutions share at most diversity x layers with every earlier one. Default 0.2. */
  readonly diversity?: number;
  /** Seed of the random baseline. Default 0. */
  readonly seed?: number;
  /** HiGHS time limit per solve, seconds; without it every solve is run to proven optimality. */
  readonly timeLimitSeconds?: number;
  /** Compute the nearest feasible budgets when infeasible. Default true. */
  readonly diagnose?: boolean;
  /** Worker pool to solve on (sweeps share one); a private one-thread pool otherwise. */
  readonly pool?: HighsPool;
}

/** Attempts per random draw before the random baseline falls back to a random-objective MIP. */
const RANDOM_ATTEMPTS = 1000;

/**
 * Searches `library`. Returns one result per solution found (at least one, which carries the
 * status when nothing was found).
 */
export async function search(library: BlockLibrary, options: SearchOptions = {}): Promise<SearchResult[]> {
  const problem = prepare(library, options);
  const method = options.method ?? 'mip';
  const solutions = options.solutions ?? 1;
  if (!Number.isInteger(solutions) || solutions < 1) throw new SearchError('bad_argument', `--solutions must be a positive integer, got ${solutions}`);
  if (solutions > 1 && method !== 'mip' && method !== 'random') {
    throw new SearchError('bad_argument', `--solutions ${solutions}: the ${method} baseline gives one architecture; only the MIP and random give several`);
  }
  const pool = options.pool ?? createHighsPool(1);
  try {
    return method === 'mip' ? await searchMip(problem, options, solutions, pool) : await searchBaseline(problem, method, options, solutions, pool);
  } finally {
    if (!options.pool) await pool.close();
  }
}

interface Attempt {
  readonly at: At;
  readonly inst: Instance;
  readonly outcome: ExactOutcome;
}

async function searchMip(problem: Problem, options: SearchOptions, solutions: number, pool: HighsPool): Promise<SearchResult[]> {
  const begun = performance.now();
  const alpha = options.diversity ?? 0.2;
  if (!(alpha >= 0 && alpha < 1)) throw new SearchError('bad_argument', `--diversity must be in [0, 1), got ${alpha}`);
  const solve = { ...(options.timeLimitSeconds !== undefined ? { timeLimitSeconds: options.timeLimitSeconds } : {}) };
  const attempts = await Promise.all(
    problem.batches.map(async (at): Promise<Attempt> => {
      const inst = compile(problem, at);
      return { at, inst, outcome: await solveExact(inst, pool, solve) };
    }),
  );
  const batches = attempts.length > 1 ? attempts.map(batchOutcome(problem)) : undefined;
  const found = attempts.filter((a) => a.outcome.columns !== undefined);
  const best = found.sort((a, b) => (a.outcome.objective ?? 0) - (b.outcome.objective ?? 0) || a.at.batch - b.at.batch)[0];
  if (!best) {
    const stopped = attempts.some((a) => a.outcome.status === 'time_limit');
    const nearest = stopped || options.diagnose === false ? undefined : mostLenient(await Promise.all(problem.batches.map((at) => nearestFeasible(problem, at, pool))));
    return [empty(problem, 'mip', stopped ? 'time_limit' : 'infeasible', attempts[0]?.at ?? problem.batches[0], performance.now() - begun, {
      ...(batches ? { batches } : {}),
      ...(nearest ? { nearest_feasible: nearest } : {}),
      solver: solverReport(problem, attempts[0]?.outcome),
    })];
  }

  const results = [solved(problem, 'mip', best, 1, performance.now() - begun, { ...(batches ? { batches } : {}) })];
  const layers = problem.library.layers.length;
  const maxShared = Math.floor(alpha * layers + 1e-9);
  const chosen = [toChoice(best.inst, best.outcome.columns as Int32Array)];
  while (results.length < solutions) {
    const started = performance.now();
    const rows: Row[] = chosen.map((earlier, k) => diversityRow(best.inst, earlier, maxShared, `diversity vs #${k + 1}`));
    const outcome = await solveExact(withRows(best.inst, rows), pool, solve);
    if (!outcome.columns) {
      const why = outcome.status === 'time_limit' ? 'the time limit was reached' : `no further architecture shares at most ${maxShared} of ${layers} layers with every earlier one`;
      results[0] = { ...(results[0] as SearchResult), note: `found ${results.length} of ${solutions} solutions: ${why}` };
      break;
    }
    const diversity: DiversityCheck = { earlier: chosen.slice(), maxShared };
    results.push(solved(problem, 'mip', { at: best.at, inst: best.inst, outcome }, results.length + 1, performance.now() - started, {}, diversity));
    chosen.push(toChoice(best.inst, outcome.columns));
  }
  return results;
}

async function searchBaseline(problem: Problem, method: Exclude<Method, 'mip'>, options: SearchOptions, solutions: number, pool: HighsPool): Promise<SearchResult[]> {
  const results: SearchResult[] = [];
  for (let k = 0; k < solutions; k++) {
    const begun = performance.now();
    let best: { at: At; columns: Int32Array; inst: Instance; note: string } | undefined;
    let miss = '';
    for (const at of problem.batches) {
      const inst = compile(problem, at);
      const found = await runBaseline(problem, method, inst, at, (options.seed ?? 0) + k, pool);
      if (!found.columns) {
        miss = found.note;
        continue;
      }
      if (!best || columnsCost(inst, found.columns) < columnsCost(best.inst, best.columns)) best = { at, inst, columns: found.columns, note: found.note };
    }
    if (best) {
      results.push(baselineResult(problem, method, best.at, toChoice(best.inst, best.columns), k + 1, performance.now() - begun, best.note));
      continue;
    }
    results.push(await baselineMiss(problem, method, miss, pool, performance.now() - begun));
    break;
  }
  return results;
}

/** One baseline at one batch size: its columns (if it found any) and a note for the report. */
async function runBaseline(problem: Problem, method: Exclude<Method, 'mip'>, inst: Instance, at: At, seed: number, pool: HighsPool): Promise<{ columns?: Int32Array; note: string }> {
  switch (method) {
    case 'greedy': {
      const { columns, overranAt } = greedy(inst);
      if (withinRows(inst, columns)) return { columns, note: 'greedy: budgets split evenly over layers, easiest layers first' };
      return { note: `greedy overran its share of the budgets at layer ${overranAt ?? '?'} and ended over budget` };
    }
    case 'uniform': {
      const names = problem.library.layers.map((layer) => layer.variants.map((v) => v.name));
      const { columns, name, options } = bestUniform(inst, names);
      if (columns) return { columns, note: `uniform: "${name}" on every layer (best of ${options} uniform options that fit)` };
      return { note: `none of the ${options} uniform options (one variant name on every layer) meets the budgets` };
    }
    case 'random': {
      const random = seededRandom(seed);
      const columns = randomFeasible(inst, random, RANDOM_ATTEMPTS);
      if (columns) return { columns, note: `random: seed ${seed}, a random variant per layer among those that keep the budgets reachable` };
      // Budgets so tight that sampling keeps dead-ending: a MIP with a random objective still gives a random feasible point.
      const shuffled = { ...inst, cost: Float64Array.from(inst.cost, () => random()) };
      const outcome = await solveExact(shuffled, pool);
      if (outcome.columns) return { columns: outcome.columns, note: `random: seed ${seed}, sampling dead-ended, so a MIP with a random objective chose` };
      return { note: 'no random architecture meets the budgets' };
    }
    case 'max-params': {
      const key = keyFor(problem.library, STAT.params, 'stat');
      const outcome = await solveExact(compile(problem, at, { key, sense: 'max' }), pool);
      if (outcome.columns) return { columns: outcome.columns, note: `max-params: the most parameters under the budgets (${-(outcome.objective ?? 0)}), proven optimal for that objective` };
      return { note: 'no architecture meets the budgets' };
    }
  }
}

/** A baseline that found nothing: say whether the budgets are infeasible (proven by the MIP) or the baseline fell short. */
async function baselineMiss(problem: Problem, method: Method, note: string, pool: HighsPool, elapsed: number): Promise<SearchResult> {
  const begun = performance.now();
  const feasible = await Promise.all(problem.batches.map(async (at) => (await solveExact(compile(problem, at), pool)).columns !== undefined));
  const at = problem.batches[0] as At;
  if (feasible.some(Boolean)) {
    return empty(problem, method, 'no_solution', at, elapsed + performance.now() - begun, { note: `${note}; the budgets are feasible (the MIP finds an architecture)` });
  }
  const nearest = mostLenient(await Promise.all(problem.batches.map((b) => nearestFeasible(problem, b, pool))));
  return empty(problem, method, 'infeasible', at, elapsed + performance.now() - begun, { note, nearest_feasible: nearest });
}

function batchOutcome(problem: Problem): (attempt: Attempt) => BatchOutcome {
  return ({ at, outcome }) => ({
    batch_size: at.batch,
    status: outcome.status,
    objective: outcome.objective === undefined ? null : signed(problem, outcome.objective),
  });
}

/** The canonical (minimised) objective in the metric's own sign. */
function signed(problem: Problem, canonical: number): number {
  return problem.objective.sense === 'max' ? -canonical : canonical;
}

function solved(problem: Problem, method: Method, attempt: Attempt, rank: number, elapsed: number, extra: Partial<SearchResult>, diversity?: DiversityCheck): SearchResult {
  const { at, inst, outcome } = attempt;
  const choice = toChoice(inst, outcome.columns as Int32Array);
  const objective = signed(problem, outcome.objective as number);
  const verification = verifyChoice(problem.library, at, problem.objective, problem.budgets, choice, {
    claimedObjective: objective,
    ...(diversity ? { diversity } : {}),
  });
  assertVerified(verification, `the ${method} solution`);
  const { totals, layers } = describeChoice(problem.library, at, choice);
  return {
    method,
    status: outcome.status === 'optimal' ? 'optimal' : 'time_limit',
    objective: verification.objective,
    metric: problem.metric,
    sense: problem.objective.sense,
    bound: outcome.bound === undefined ? null : signed(problem, outcome.bound),
    gap: outcome.gap === undefined || !Number.isFinite(outcome.gap) ? null : outcome.gap,
    batch_size: at.batch,
    totals,
    budgets: verification.checks,
    layers,
    solution: rank,
    solver: solverReport(problem, outcome),
    time_ms: elapsed,
    ...extra,
  };
}

function baselineResult(problem: Problem, method: Method, at: At, choice: number[], rank: number, elapsed: number, note: string): SearchResult {
  const verification = verifyChoice(problem.library, at, problem.objective, problem.budgets, choice);
  assertVerified(verification, `the ${method} baseline's architecture`);
  const { totals, layers } = describeChoice(problem.library, at, choice);
  return {
    method,
    status: 'feasible',
    objective: verification.objective,
    metric: problem.metric,
    sense: problem.objective.sense,
    bound: null,
    gap: null,
    batch_size: at.batch,
    totals,
    budgets: verification.checks,
    layers,
    solution: rank,
    solver: null,
    time_ms: elapsed,
    note,
  };
}

function empty(problem: Problem, method: Method, status: Status, at: At, elapsed: number, extra: Partial<SearchResult>): SearchResult {
  return {
    method,
    status,
    objective: null,
    metric: problem.metric,
    sense: problem.objective.sense,
    bound: null,
    gap: null,
    batch_size: at.batch,
    totals: null,
    budgets: [],
    layers: [],
    solution: 1,
    solver: null,
    time_ms: elapsed,
    ...extra,
  };
}

function solverReport(problem: Problem, outcome: ExactOutcome | undefined): SolverReport | null {
  if (!outcome) return null;
  return {
    status: outcome.status,
    proof: outcome.proof,
    columns: outcome.sizes.columns,
    after_pruning: outcome.sizes.afterPruning,
    final_groups: outcome.sizes.groups,
    final_columns: outcome.sizes.afterFixing,
    rounds: outcome.sizes.rounds,
    nodes: outcome.nodes,
    lp_bound: outcome.lpBound === undefined ? null : signed(problem, outcome.lpBound),
    incumbent: outcome.incumbent === undefined ? null : signed(problem, outcome.incumbent),
    highs_ms: outcome.highsSeconds * 1000,
  };
}
