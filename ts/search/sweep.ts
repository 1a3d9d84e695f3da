/**
 * Pareto sweeps: the same search repeated while one budget moves over a range
 * (`--sweep throughput=1x..3x:25`), its points spread over a pool of HiGHS worker threads. The
 * range is resolved to absolute values once (relative ends against the parent) and spaced evenly
 * in the budget's human unit; every point is an ordinary, verified search.
 */
import { availableParallelism } from 'node:os';
import type { Budget, BudgetSpec } from './budgets.js';
import { resolveBudgets } from './budgets.js';
import { SearchError } from './errors.js';
import { createHighsPool } from './highs-pool.js';
import type { BlockLibrary } from './library.js';
import type { SearchResult } from './result.js';
import type { SearchOptions } from './search.js';
import { search } from './search.js';

/** Which budget a sweep moves: a {@link BudgetSpec} key or `max:STAT` / `min:STAT`. */
export type SweepBudget = 'memory' | 'throughput' | 'speedup' | 'latency' | 'ttft' | 'params' | `max:${string}` | `min:${string}`;

export interface SweepSpec {
  readonly budget: SweepBudget;
  /** Range ends in the budget's units ("1x", "6000", "60GiB"). */
  readonly from: string;
  readonly to: string;
  readonly points: number;
}

export interface SweepPoint {
  readonly index: number;
  /** The budget's absolute target at this point, in `unit`. */
  readonly target: number;
  /** What the point's architecture achieves on the swept budget (null without one). */
  readonly achieved: number | null;
  /** True when no other point is at least as good on both the objective and the swept budget. */
  readonly pareto: boolean;
  readonly result: SearchResult;
}

export interface SweepResult {
  readonly budget: SweepBudget;
  readonly option: string;
  readonly unit: string;
  readonly bound: 'upper' | 'lower';
  readonly metric: string;
  readonly sense: 'min' | 'max';
  readonly method: SearchResult['method'];
  readonly threads: number;
  readonly wall_ms: number;
  readonly points: readonly SweepPoint[];
}

const SWEEP = /^\s*([a-z_]+(?::[A-Za-z0-9_.-]+)?)\s*=\s*([^.\s][^\s]*?)\s*\.\.\s*(\S+?)\s*:\s*(\d+)\s*$/;
const NAMED = new Set(['memory', 'throughput', 'speedup', 'latency', 'ttft', 'params']);

/** Parses "throughput=1x..3x:25" (budget=FROM..TO:POINTS). */
export function parseSweep(text: string): SweepSpec {
  const match = SWEEP.exec(text);
  const forms = 'BUDGET=FROM..TO:POINTS, e.g. "throughput=1x..3x:25" or "memory=40GiB..80GiB:9"';
  if (!match) throw new SearchError('bad_argument', `--sweep: expected ${forms}, got "${text}"`);
  const [, budget = '', from = '', to = '', count = ''] = match;
  if (!NAMED.has(budget) && !/^(max|min):/.test(budget)) {
    throw new SearchError('bad_argument', `--sweep: unknown budget "${budget}"; expected one of ${[...NAMED].join(', ')}, max:STAT or min:STAT`);
  }
  const points = Number(count);
  if (points < 1 || points > 10_000) throw new SearchError('bad_argument', `--sweep: the number of points must be 1..10000, got ${count}`);
  return { budget: budget as SweepBudget, from, to, points };
}

/** Runs the sweep on `threads` worker threads (default: the machine's parallelism). */
export async function paretoSweep(library: BlockLibrary, options: SearchOptions, sweep: SweepSpec, threads = availableParallelism()): Promise<SweepResult> {
  const begun = performance.now();
  const solutions = options.solutions ?? 1;
  if (solutions !== 1) throw new SearchError('bad_argument', '--sweep gives one architecture per point; drop --solutions');
  const low = resolveOne(library, sweep, sweep.from);
  const high = resolveOne(library, sweep, sweep.to);
  const targets = Array.from({ length: sweep.points }, (_, k) =>
    sweep.points === 1 ? low.target : low.target + ((high.target - low.target) * k) / (sweep.points - 1),
  );
  const pool = options.pool ?? createHighsPool(threads);
  try {
    const results = new Array<SearchResult>(targets.length);
    let next = 0;
    // Each runner takes the next point; HiGHS solves queue on the pool's workers.
    const runner = async () => {
      for (let k = next++; k < targets.length; k = next++) {
        const [result] = await search(library, { ...pointSpec(options, sweep, targets[k] as number), pool });
        results[k] = result as SearchResult;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, pool.size) }, runner));
    const points = results.map((result, index) => ({ index, target: targets[index] as number, achieved: achievedOn(result, low), pareto: false, result }));
    const first = results[0] as SearchResult;
    return {
      budget: sweep.budget,
      option: low.option,
      unit: low.unit,
      bound: low.bound,
      metric: first.metric,
      sense: first.sense,
      method: first.method,
      threads: pool.size,
      wall_ms: performance.now() - begun,
      points: markPareto(points, low.bound, first.sense),
    };
  } finally {
    if (!options.pool) await pool.close();
  }
}

/** The swept budget resolved with `value` as its amount. */
function resolveOne(library: BlockLibrary, sweep: SweepSpec, value: string): Budget {
  const [budget] = resolveBudgets(library, pointSpec({}, sweep, value));
  if (!budget) throw new SearchError('bad_argument', `--sweep: cannot resolve "${value}"`);
  return budget;
}

/** `options` with the swept budget set to `value` (and a competing throughput/speedup removed). */
function pointSpec(options: SearchOptions, sweep: SweepSpec, value: string | number): SearchOptions {
  const spec: Record<string, unknown> = { ...options };
  const [kind, stat] = sweep.budget.split(':') as [string, string | undefined];
  if (stat !== undefined) {
    const table = { ...((kind === 'max' ? options.max : options.min) ?? {}), [stat]: value };
    spec[kind] = table;
  } else if (kind === 'throughput' || kind === 'speedup') {
    delete spec['throughput'];
    delete spec['speedup'];
    // Resolved targets are absolute tokens/s; only the user's own range ends may be relative.
    spec[typeof value === 'number' ? 'throughput' : kind] = value;
  } else {
    spec[kind as keyof BudgetSpec] = value;
  }
  return spec as SearchOptions;
}

function achievedOn(result: SearchResult, budget: Budget): number | null {
  return result.budgets.find((check) => check.budget === budget.id)?.value ?? null;
}

/** Flags the points no other point beats on both the objective and the swept budget. */
function markPareto(points: SweepPoint[], bound: 'upper' | 'lower', sense: 'min' | 'max'): SweepPoint[] {
  const better = (a: number, b: number, higher: boolean) => (higher ? a >= b : a <= b);
  const strictly = (a: number, b: number, higher: boolean) => (higher ? a > b : a < b);
  return points.map((p) => {
    const po = p.result.objective;
    const pa = p.achieved;
    if (po === null || pa === null) return p;
    const dominated = points.some((q) => {
      const qo = q.result.objective;
      const qa = q.achieved;
      if (q === p || qo === null || qa === null) return false;
      const objective = better(qo, po, sense === 'max');
      const budget = better(qa, pa, bound === 'lower');
      return objective && budget && (strictly(qo, po, sense === 'max') || strictly(qa, pa, bound === 'lower'));
    });
    return { ...p, pareto: !dominated };
  });
}
