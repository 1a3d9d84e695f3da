/**
 * Proven-optimal solution of one {@link Instance}, fast. The matrix is not simply handed to HiGHS;
 * it is first shrunk to an equivalent model, every step exact:
 *
 * 1. a row that alone cannot be met proves infeasibility without a solver;
 * 2. columns that cannot fit and rows that cannot bind go, then variants dominated within their
 *    layer (reduction.ts);
 * 3. rows the LP relaxation does not price are left out for now (they are added back if the
 *    answer breaks them);
 * 4. HiGHS solves the LP relaxation; its duals give Lagrange multipliers (bounds.ts);
 * 5. heuristics find a strong feasible incumbent (incumbent.ts: local search, then a bounded
 *    depth-first search that often finds the optimum outright);
 * 6. columns whose Lagrangian bound exceeds the incumbent cannot improve on it and are dropped;
 * 7. groups of layers are merged into bound-filtered, undominated combinations (merge.ts);
 *    4-7 repeat while merging succeeds, often down to a single group;
 * 8. HiGHS solves the remaining MIP with mip_rel_gap = 0, started from the incumbent.
 * The answer is re-checked row by row against the original instance: a row left out in step 3 that
 * it breaks is put back, and a solution HiGHS's tolerance let slip past a row is cut off exactly
 * (a no-good cut); either way the model is solved again. No infeasible solution leaves this file.
 */
import { fixByReducedCost, fixingMargin, lagrangian, rowAloneInfeasible } from './bounds.js';
import { SearchError } from './errors.js';
import type { HighsPool } from './highs-pool.js';
import { solveLp, solveMip } from './highs-solve.js';
import type { Incumbent } from './incumbent.js';
import { activities, depthFirst, findIncumbent } from './incumbent.js';
import type { Instance, Row } from './instance.js';
import { columnsCost, diversityRow, layerCount, toChoice, withRows } from './instance.js';
import { mergeRound } from './merge.js';
import type { Reduced } from './reduction.js';
import { contract, dropSlack, expand, keepColumns, pruneDominated, unreduced } from './reduction.js';
import { rowTolerance } from './tolerance.js';

/** Two-layer swaps are O(columns^2); they run once the model is this small. */
const PAIR_SEARCH_LIMIT = 800;
/** Re-solves allowed after a solution breaks a row by more than the tolerance. */
const MAX_CUTS = 3;
/** Most combinations a merge may weigh (before dominance); larger merges are skipped. */
const MERGE_CAP = 1 << 16;
/** Below this many columns HiGHS is instant and merging is not worth a round. */
const MERGE_ABOVE = 24;
/** Merging may grow the model up to this many columns (HiGHS slows on a few huge groups). */
const MERGED_COLUMNS = 8192;
/** Node budget of the depth-first incumbent search per round, and once more when merging stalls. */
const DEPTH_FIRST_NODES = 200_000;
const DEPTH_FIRST_STALLED = 2_000_000;
/** A merged model this small counts as collapsed and goes to HiGHS as it is. */
const COLLAPSED = 64;

export interface ExactOptions {
  /** HiGHS time limit in seconds; without it the solve runs to proven optimality. */
  readonly timeLimitSeconds?: number;
  /** Known feasible solutions (columns of `inst`) to seed the incumbent search. */
  readonly hints?: readonly Int32Array[];
  /** Merging is skipped on models of at most this many columns (default 24); tests set 0 to exercise it. */
  readonly mergeAbove?: number;
}

/** How the instance shrank before HiGHS saw the MIP. */
export interface ModelSizes {
  readonly layers: number;
  readonly rows: number;
  readonly columns: number;
  readonly afterPruning: number;
  /** Groups and columns of the model HiGHS finally solved. */
  readonly groups: number;
  readonly afterFixing: number;
  /** LP solves (one per shrinking round). */
  readonly rounds: number;
}

export interface ExactOutcome {
  /** optimal: proven; infeasible: proven; time_limit: stopped early (columns may hold the best found). */
  readonly status: 'optimal' | 'infeasible' | 'time_limit';
  /** The solution, one column of `inst` per layer. */
  readonly columns?: Int32Array;
  /** Objective of `columns`, re-added in plain TypeScript. */
  readonly objective?: number;
  /** Best proven lower bound (equal to the objective when optimal). */
  readonly bound?: number;
  readonly gap?: number;
  /** What established the status: "highs", "lp-relaxation" or "row:<id>". */
  readonly proof: string;
  readonly sizes: ModelSizes;
  /** The LP relaxation's value and the heuristic incumbent's objective (diagnostics). */
  readonly lpBound?: number;
  readonly incumbent?: number;
  readonly nodes: number;
  readonly highsSeconds: number;
  readonly wallMs: number;
}

type Sizes = { -readonly [K in keyof ModelSizes]: ModelSizes[K] };

/** Solves `inst` to proven optimality (or proven infeasibility) through `pool`. */
export async function solveExact(inst: Instance, pool: HighsPool, options: ExactOptions = {}): Promise<ExactOutcome> {
  const begun = performance.now();
  const sizes: Sizes = { layers: layerCount(inst), rows: inst.rows.length, columns: inst.cost.length, afterPruning: 0, groups: 0, afterFixing: 0, rounds: 0 };
  let highsSeconds = 0;
  let nodes = 0;
  const done = (outcome: Omit<ExactOutcome, 'sizes' | 'wallMs' | 'nodes' | 'highsSeconds'>): ExactOutcome => ({
    ...outcome,
    nodes,
    highsSeconds,
    sizes: { ...sizes },
    wallMs: performance.now() - begun,
  });

  const impossible = rowAloneInfeasible(inst, (row) => rowTolerance(row.upper, row.coef));
  if (impossible !== undefined) return done({ status: 'infeasible', proof: `row:${impossible}` });

  // Without unpriced rows, dominance and merging bite much harder. The relaxation's optimum is
  // the true optimum as soon as it also meets the rows left out.
  const first = pruneDominated(dropSlack(unreduced(inst))).inst;
  const lp = await solveLp(pool, first);
  highsSeconds += lp.seconds;
  if (lp.status === 'infeasible') return done({ status: 'infeasible', proof: 'lp-relaxation' });
  const priced = new Set(first.rows.filter((_, r) => lp.priced[r]).map((row) => row.id));
  let working: Instance = { ...inst, rows: inst.rows.filter((row) => priced.has(row.id)) };
  let cuts = 0;

  for (;;) {
    const shrunk = await shrink(working, pool, options, sizes);
    highsSeconds += shrunk.highsSeconds;
    if (shrunk.infeasible) return done({ status: 'infeasible', proof: 'lp-relaxation' });
    const { red } = shrunk;
    sizes.groups = layerCount(red.inst);
    sizes.afterFixing = red.inst.cost.length;
    const start = shrunk.incumbent && contract(red, shrunk.incumbent.columns);
    const mip = await solveMip(pool, red.inst, start, options.timeLimitSeconds);
    highsSeconds += mip.seconds;
    nodes += mip.nodes;
    const base = {
      proof: 'highs',
      ...(lp.objective !== null ? { lpBound: lp.objective } : {}),
      ...(shrunk.incumbent ? { incumbent: shrunk.incumbent.cost } : {}),
    };
    if (mip.status === 'infeasible') {
      if (start) throw new SearchError('solver_failed', 'HiGHS reported infeasible although a feasible solution is known');
      return done({ status: 'infeasible', ...base });
    }
    if (!mip.columns) return done({ status: 'time_limit', ...base, ...(mip.bound !== null ? { bound: mip.bound } : {}) });

    const columns = expand(red, mip.columns);
    const slipped = brokenRows(working, columns);
    if (slipped.length > 0) {
      // Within HiGHS's tolerance but past ours: cut off exactly this solution and solve again.
      if (++cuts > MAX_CUTS) throw new SearchError('solver_failed', `HiGHS kept returning solutions that break row "${slipped[0]?.id}"`);
      working = withRows(working, [diversityRow(working, toChoice(working, columns), sizes.layers - 1, `cut ${cuts}`)]);
      continue;
    }
    const missing = brokenRows(inst, columns);
    if (missing.length > 0) {
      if (mip.status === 'stopped') return done({ status: 'time_limit', ...base });
      working = withRows(working, missing);
      continue;
    }
    const objective = columnsCost(inst, columns);
    return done({
      status: mip.status === 'optimal' ? 'optimal' : 'time_limit',
      columns,
      objective,
      bound: Math.min(mip.bound ?? objective, objective),
      gap: mip.status === 'optimal' ? 0 : (mip.gap ?? Number.POSITIVE_INFINITY),
      ...base,
    });
  }
}

interface Shrunk {
  readonly red: Reduced;
  readonly infeasible: boolean;
  /** Best feasible solution found, as original columns. */
  readonly incumbent?: Incumbent;
  readonly highsSeconds: number;
}

/**
 * Steps 2 and 4-7: prune, then LP + incumbent + fixing + merging while merging succeeds. When the
 * merges do not collapse the model (many rows, e.g. diversity constraints, keep dominance weak),
 * HiGHS gets the layer-by-layer model instead, fixed with the best incumbent found: its branch
 * and bound does far better on many small groups than on a few large ones.
 */
async function shrink(inst: Instance, pool: HighsPool, options: ExactOptions, sizes: Sizes): Promise<Shrunk> {
  const layered = pruneDominated(dropSlack(unreduced(inst)));
  sizes.afterPruning = layered.inst.cost.length;
  let red = layered;
  let layeredLambda: Float64Array | undefined;
  let best: Incumbent | undefined;
  let highsSeconds = 0;
  let escalated = false;
  const finish = (): Shrunk => {
    if (!best || !layeredLambda || layerCount(red.inst) === 1 || red.inst.cost.length <= COLLAPSED) return { red, infeasible: false, highsSeconds, ...(best ? { incumbent: best } : {}) };
    const fixed = keepColumns(layered, fixByReducedCost(lagrangian(layered.inst, layeredLambda), best.cost));
    return { red: fixed.inst.cost.length < red.inst.cost.length ? fixed : red, infeasible: false, incumbent: best, highsSeconds };
  };
  for (let round = 0; ; round++) {
    sizes.rounds = round + 1;
    const lp = await solveLp(pool, red.inst);
    highsSeconds += lp.seconds;
    if (lp.status === 'infeasible') return { red, infeasible: true, highsSeconds };
    if (round === 0) layeredLambda = lp.lambda;
    const starts = [lagrangian(red.inst, lp.lambda).argmin];
    if (lp.rounded) starts.push(lp.rounded);
    for (const known of [...(round === 0 ? (options.hints ?? []) : []), ...(best ? [best.columns] : [])]) {
      const lowered = contract(red, known);
      if (lowered) starts.push(lowered);
    }
    const heuristic = findIncumbent(red.inst, starts, red.inst.cost.length <= PAIR_SEARCH_LIMIT);
    // A bounded depth-first search from there; when it completes, it has the model's optimum.
    const found = depthFirst(red.inst, lagrangian(red.inst, lp.lambda), heuristic, DEPTH_FIRST_NODES);
    if (found && (!best || found.cost < best.cost)) best = { columns: expand(red, found.columns), cost: found.cost };
    if (!best) return finish();

    const fixed = keepColumns(red, fixByReducedCost(lagrangian(red.inst, lp.lambda), best.cost));
    // Rows may have gone slack; then dominance judges fewer rows and prunes more.
    const trimmed = dropSlack(fixed);
    red = trimmed.inst.rows.length < fixed.inst.rows.length ? pruneDominated(trimmed) : trimmed;
    const lag = lagrangian(red.inst, carryMultipliers(red.inst, fixed.inst, lp.lambda));
    const closed = lag.bound >= best.cost - fixingMargin(lag, best.cost);
    const merged = closed || red.inst.cost.length <= (options.mergeAbove ?? MERGE_ABOVE) ? undefined : mergeRound(red, lag, best.cost, MERGE_CAP, MERGED_COLUMNS);
    if (merged) {
      red = merged;
      continue;
    }
    // Merging stalled before the model collapsed: a longer search for a better incumbent usually
    // unblocks it (a tighter bound drops more columns and combinations). Tried once.
    const stalled = !closed && layerCount(red.inst) > 1 && red.inst.cost.length > COLLAPSED;
    const seed = contract(red, best.columns);
    const better = stalled && !escalated ? depthFirst(red.inst, lag, seed && { columns: seed, cost: best.cost }, DEPTH_FIRST_STALLED) : undefined;
    escalated ||= stalled;
    if (!better || better.cost >= best.cost) return finish();
    best = { columns: expand(red, better.columns), cost: better.cost };
  }
}

/** Multipliers of `from`'s rows carried over to the rows `to` kept (rows are only dropped; ids are unique). */
function carryMultipliers(to: Instance, from: Instance, lambda: Float64Array): Float64Array {
  const ids = from.rows.map((row) => row.id);
  return Float64Array.from(to.rows, (row) => lambda[ids.indexOf(row.id)] ?? 0);
}

/** The rows of `inst` that the solution breaks by more than the tolerance. */
function brokenRows(inst: Instance, columns: Int32Array): Row[] {
  const act = activities(inst, columns);
  return inst.rows.filter((row, r) => act[r] > row.upper + rowTolerance(row.upper, row.coef));
}
