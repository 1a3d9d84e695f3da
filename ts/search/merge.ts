/**
 * Merging groups of layers: the step that lets a multiple-choice knapsack collapse.
 *
 * Two groups A and B become one group whose columns are the combinations (a, b); that is an
 * equivalent model. It stays small for two reasons. First the Lagrangian bound: forcing a and b
 * together raises the bound by d[a] + d[b] (their reduced costs), so a combination with
 * bound + d[a] + d[b] > incumbent cannot be part of a better solution and is never built; nor is
 * one that overruns a row even with the cheapest choice on every other group. Then dominance:
 * combinations are compared on summed objective and rows, and only the undominated ones are kept
 * (reduction.ts explains why that is exact). Repeated, this is a dynamic program over layers with
 * bounding; HiGHS is left a model of a few groups, often one.
 */
import type { Lagrangian } from './bounds.js';
import { fixingMargin } from './bounds.js';
import type { Instance, Row } from './instance.js';
import { layerCount } from './instance.js';
import type { Origin, Reduced } from './reduction.js';
import { undominated } from './reduction.js';
import { rowTolerance } from './tolerance.js';

/** A merged group under construction: pairs of the current model's columns and their sums. */
interface Planned {
  readonly left: Int32Array;
  /** -1 where the group is carried over unmerged. */
  readonly right: Int32Array;
  readonly cost: Float64Array;
  readonly coefs: readonly Float64Array[];
}

/**
 * One round of pairwise merges, smallest groups first. A pair is merged only if at most `cap`
 * combinations pass the bound and the model stays within `maxColumns` columns (or no larger than
 * it was): HiGHS copes far better with many small groups than with a few huge ones. Returns
 * undefined when no pair could be merged.
 */
export function mergeRound(red: Reduced, lag: Lagrangian, upperBound: number, cap: number, maxColumns: number): Reduced | undefined {
  const { inst } = red;
  const slack = upperBound + fixingMargin(lag, upperBound) - lag.bound;
  const room = rowRoom(inst);
  // Merging the last two groups builds whole solutions: then a combination costing more than the
  // incumbent cannot beat it either, so only the incumbent's equals survive.
  const ceiling = layerCount(inst) === 2 ? upperBound + fixingMargin(lag, upperBound) : Infinity;
  const size = (g: number) => inst.start[g + 1] - inst.start[g];
  const order = Array.from({ length: layerCount(inst) }, (_, g) => g).sort((a, b) => size(a) - size(b) || a - b);
  const planned: Planned[] = [];
  const limit = Math.max(maxColumns, inst.cost.length);
  let columns = inst.cost.length;
  let merged = false;
  for (let k = 0; k < order.length; k += 2) {
    const a = order[k];
    const b = order[k + 1];
    const combos = b === undefined ? undefined : combine(inst, lag, room, a, b, { slack, ceiling, cap });
    const growth = combos && b !== undefined ? combos.left.length - size(a) - size(b) : 0;
    if (combos && columns + growth <= limit) {
      planned.push(combos);
      columns += growth;
      merged = true;
      continue;
    }
    planned.push(carry(inst, a));
    if (b !== undefined) planned.push(carry(inst, b));
  }
  return merged ? build(red, planned) : undefined;
}

function columnsOf(inst: Instance, g: number): number[] {
  return Array.from({ length: inst.start[g + 1] - inst.start[g] }, (_, k) => inst.start[g] + k);
}

/** Group g unchanged. */
function carry(inst: Instance, g: number): Planned {
  const left = Int32Array.from(columnsOf(inst, g));
  return {
    left,
    right: new Int32Array(left.length).fill(-1),
    cost: Float64Array.from(left, (c) => inst.cost[c]),
    coefs: inst.rows.map((row) => Float64Array.from(left, (c) => row.coef[c])),
  };
}

/** What each row leaves once every group takes its cheapest column in that row. */
interface Room {
  /** Per row: upper bound minus the sum of per-group minima (plus the feasibility tolerance). */
  readonly spare: Float64Array;
  /** Per group, per row: the group's minimum. */
  readonly least: readonly Float64Array[];
}

function rowRoom(inst: Instance): Room {
  const groups = layerCount(inst);
  const least = Array.from({ length: groups }, (_, g) =>
    Float64Array.from(inst.rows, (row) => {
      let min = Infinity;
      for (let c = inst.start[g]; c < inst.start[g + 1]; c++) min = Math.min(min, row.coef[c]);
      return min;
    }),
  );
  const spare = Float64Array.from(inst.rows, (row, r) => row.upper + rowTolerance(row.upper, row.coef) - least.reduce((sum, mins) => sum + mins[r], 0));
  return { spare, least };
}

/** Limits of one merge: the reduced-cost slack, an objective ceiling, and the most pairs kept. */
interface Limits {
  readonly slack: number;
  readonly ceiling: number;
  readonly cap: number;
}

/** Pairs looked at before a merge is abandoned as too costly (keeps the worst case bounded). */
const WORK_LIMIT = 1 << 24;

/**
 * The undominated pairs (x, y) of groups a and b with d[x] + d[y] <= slack and cost <= ceiling
 * that fit every row even with the cheapest choice on all other groups; undefined when more than
 * `cap` pairs pass or the enumeration gets too long (or, through rounding, no pair passes).
 */
function combine(inst: Instance, lag: Lagrangian, room: Room, a: number, b: number, limits: Limits): Planned | undefined {
  const { slack, ceiling, cap } = limits;
  const byReduced = (g: number) => columnsOf(inst, g).sort((x, y) => lag.reduced[x] - lag.reduced[y]);
  const right = byReduced(b);
  const leastA = room.least[a] as Float64Array;
  const leastB = room.least[b] as Float64Array;
  const fits = (x: number, y: number) => inst.rows.every((row, r) => row.coef[x] - leastA[r] + row.coef[y] - leastB[r] <= room.spare[r]);
  const xs: number[] = [];
  const ys: number[] = [];
  let work = 0;
  for (const x of byReduced(a)) {
    for (const y of right) {
      if (lag.reduced[x] + lag.reduced[y] > slack) break;
      if (++work > WORK_LIMIT) return undefined;
      if (!fits(x, y) || inst.cost[x] + inst.cost[y] > ceiling) continue;
      xs.push(x);
      ys.push(y);
      if (xs.length > cap) return undefined;
    }
  }
  if (xs.length === 0) return undefined;
  const cost = Float64Array.from(xs, (x, k) => inst.cost[x] + inst.cost[ys[k]]);
  const coefs = inst.rows.map((row) => Float64Array.from(xs, (x, k) => row.coef[x] + row.coef[ys[k]]));
  const kept = Int32Array.from(undominated(Array.from(xs, (_, k) => k), cost, coefs));
  return {
    left: kept.map((k) => xs[k]),
    right: kept.map((k) => ys[k]),
    cost: Float64Array.from(kept, (k) => cost[k]),
    coefs: coefs.map((coef) => Float64Array.from(kept, (k) => coef[k])),
  };
}

/** The reduced model whose groups are `planned`. */
function build(red: Reduced, planned: readonly Planned[]): Reduced {
  const total = planned.reduce((sum, group) => sum + group.left.length, 0);
  const start = new Int32Array(planned.length + 1);
  const cost = new Float64Array(total);
  const coefs = red.inst.rows.map(() => new Float64Array(total));
  const origin: Origin[] = [];
  planned.forEach((group, g) => {
    cost.set(group.cost, start[g]);
    coefs.forEach((coef, r) => coef.set(group.coefs[r], start[g]));
    group.left.forEach((x, k) => {
      const y = group.right[k];
      origin.push(y < 0 ? red.origin[x] : [red.origin[x], red.origin[y]]);
    });
    start[g + 1] = start[g] + group.left.length;
  });
  const rows: Row[] = red.inst.rows.map((row, r) => ({ id: row.id, coef: coefs[r], upper: row.upper }));
  return { inst: { start, cost, rows }, origin };
}
