/**
 * Fast feasible solutions for the multiple-choice knapsack, to hand HiGHS a good incumbent and to
 * give reduced-cost fixing (bounds.ts) a tight upper bound. Heuristics only: they never decide the
 * answer, HiGHS proves it. A solution is one column per layer.
 *
 * - repair: from any start, move layers to cheaper-in-resources variants until every row holds,
 *   preferring moves that fix the most violation per unit of objective lost;
 * - local search: best-improving single-layer swaps, then (on small instances) two-layer swaps
 *   that trade resource between layers.
 * Feasibility here is strict (`<=` in plain summation, no tolerance), so HiGHS always accepts it.
 */
import type { Lagrangian } from './bounds.js';
import { fixingMargin } from './bounds.js';
import type { Instance } from './instance.js';
import { columnsCost, layerCount } from './instance.js';
import { maxAbs } from './tolerance.js';

export interface Incumbent {
  readonly columns: Int32Array;
  readonly cost: number;
}

/** Row activities of a solution, summed in layer order. */
export function activities(inst: Instance, columns: ArrayLike<number>): Float64Array {
  return Float64Array.from(inst.rows, (row) => {
    let sum = 0;
    for (let i = 0; i < columns.length; i++) sum += row.coef[columns[i]];
    return sum;
  });
}

/** True when every row holds strictly (no tolerance). */
export function strictlyFeasible(inst: Instance, columns: ArrayLike<number>): boolean {
  const act = activities(inst, columns);
  return inst.rows.every((row, r) => act[r] <= row.upper);
}

/** The best feasible solution found from the given starts, or undefined when none was found. */
export function findIncumbent(inst: Instance, starts: readonly Int32Array[], pairMoves: boolean): Incumbent | undefined {
  let best: Incumbent | undefined;
  const consider = (columns: Int32Array | undefined) => {
    if (!columns || !strictlyFeasible(inst, columns)) return;
    const cost = columnsCost(inst, columns);
    if (!best || cost < best.cost) best = { columns, cost };
  };
  for (const start of [...starts, leastResources(inst)]) {
    const repaired = repair(inst, Int32Array.from(start));
    if (repaired) consider(improve(inst, repaired, false));
  }
  if (best && pairMoves) consider(improve(inst, Int32Array.from(best.columns), true));
  return best;
}

/**
 * Depth-first search for the best strictly feasible solution, groups smallest first and columns in
 * order of Lagrangian reduced cost. A partial choice is abandoned when its bound
 * (lag.bound + its reduced costs; every other group can add 0) cannot beat the best found, or when
 * a row cannot be met even with the cheapest columns on the remaining groups. Finds the optimum of
 * the model when it finishes within `nodeLimit` visits; otherwise it returns the best found so far,
 * which is all a heuristic owes. `best` seeds the search.
 */
export function depthFirst(inst: Instance, lag: Lagrangian, best: Incumbent | undefined, nodeLimit: number): Incumbent | undefined {
  const groups = layerCount(inst);
  const rows = inst.rows;
  const order = Array.from({ length: groups }, (_, g) => g).sort((a, b) => inst.start[a + 1] - inst.start[a] - (inst.start[b + 1] - inst.start[b]));
  const columns = order.map((g) => {
    const out: number[] = [];
    for (let c = inst.start[g]; c < inst.start[g + 1]; c++) out.push(c);
    return out.sort((x, y) => lag.reduced[x] - lag.reduced[y]);
  });
  // after[r][k]: the least row r can take on the groups after position k.
  const after = rows.map((row) => {
    const suffix = new Float64Array(groups + 1);
    for (let k = groups - 1; k >= 0; k--) {
      let min = Infinity;
      for (const c of columns[k] as number[]) min = Math.min(min, row.coef[c]);
      suffix[k] = suffix[k + 1] + min;
    }
    return suffix;
  });
  const act = new Float64Array(rows.length);
  const chosen = new Int32Array(groups);
  let found = best;
  let nodes = 0;
  const visit = (k: number, reduced: number): void => {
    if (k === groups) {
      const candidate = Int32Array.from(chosen);
      const cost = columnsCost(inst, candidate);
      if ((!found || cost < found.cost) && strictlyFeasible(inst, candidate)) found = { columns: candidate, cost };
      return;
    }
    for (const c of columns[k] as number[]) {
      if (++nodes > nodeLimit) return;
      const limit = found ? found.cost + fixingMargin(lag, found.cost) : Infinity;
      if (lag.bound + reduced + lag.reduced[c] > limit) break;
      if (!rows.every((row, r) => act[r] + row.coef[c] + after[r][k + 1] <= row.upper)) continue;
      rows.forEach((row, r) => {
        act[r] += row.coef[c];
      });
      chosen[order[k] as number] = c;
      visit(k + 1, reduced + lag.reduced[c]);
      rows.forEach((row, r) => {
        act[r] -= row.coef[c];
      });
    }
  };
  visit(0, 0);
  return found;
}

/** Per layer, the column using the least of all rows together (each row scaled to its size). */
function leastResources(inst: Instance): Int32Array {
  const scales = inst.rows.map(rowSize);
  const out = new Int32Array(layerCount(inst));
  for (let i = 0; i < out.length; i++) {
    let best = inst.start[i];
    let bestUse = Infinity;
    for (let c = inst.start[i]; c < inst.start[i + 1]; c++) {
      let use = 0;
      inst.rows.forEach((row, r) => {
        use += row.coef[c] / scales[r];
      });
      if (use < bestUse || (use === bestUse && inst.cost[c] < inst.cost[best])) {
        best = c;
        bestUse = use;
      }
    }
    out[i] = best;
  }
  return out;
}

function rowSize(row: Instance['rows'][number]): number {
  const max = Math.max(Math.abs(row.upper), maxAbs(row.coef));
  return max > 0 ? max : 1;
}

function violation(inst: Instance, act: Float64Array, scales: readonly number[]): number {
  let total = 0;
  inst.rows.forEach((row, r) => {
    if (act[r] > row.upper) total += (act[r] - row.upper) / scales[r];
  });
  return total;
}

/** Moves layers until every row holds; undefined when stuck. Mutates and returns `columns`. */
export function repair(inst: Instance, columns: Int32Array): Int32Array | undefined {
  const scales = inst.rows.map(rowSize);
  const costScale = Math.max(1e-12, maxAbs(inst.cost));
  const moved = new Float64Array(inst.rows.length);
  for (let step = 0; step < 4 * columns.length + 16; step++) {
    const act = activities(inst, columns);
    const before = violation(inst, act, scales);
    if (before === 0) return columns;
    let bestScore = 0;
    let bestLayer = -1;
    let bestColumn = -1;
    for (let i = 0; i < columns.length; i++) {
      const cur = columns[i];
      for (let c = inst.start[i]; c < inst.start[i + 1]; c++) {
        if (c === cur) continue;
        inst.rows.forEach((row, r) => {
          moved[r] = act[r] - row.coef[cur] + row.coef[c];
        });
        const gain = before - violation(inst, moved, scales);
        if (gain <= 0) continue;
        const score = gain / (Math.max(0, inst.cost[c] - inst.cost[cur]) + 1e-9 * costScale);
        if (score > bestScore) {
          bestScore = score;
          bestLayer = i;
          bestColumn = c;
        }
      }
    }
    if (bestLayer < 0) return undefined;
    columns[bestLayer] = bestColumn;
  }
  return undefined;
}

/**
 * Local search from a feasible solution: best-improving single swaps until none is left, then
 * (when `pairs`) best-improving two-layer swaps, repeated. Every accepted move keeps strict
 * feasibility, checked by re-summing; the objective strictly decreases, so it terminates.
 */
export function improve(inst: Instance, columns: Int32Array, pairs: boolean): Int32Array {
  for (let round = 0; round < 10_000; round++) {
    if (singleSwap(inst, columns)) continue;
    if (pairs && pairSwap(inst, columns)) continue;
    break;
  }
  return columns;
}

function fits(inst: Instance, act: Float64Array, out: number, into: number, out2 = -1, into2 = -1): boolean {
  return inst.rows.every((row, r) => {
    let v = act[r] - row.coef[out] + row.coef[into];
    if (out2 >= 0) v += row.coef[into2] - row.coef[out2];
    return v <= row.upper;
  });
}

/** Applies `next` if it is strictly feasible when re-summed; returns whether it did. */
function accept(inst: Instance, columns: Int32Array, next: Int32Array): boolean {
  if (!strictlyFeasible(inst, next) || !(columnsCost(inst, next) < columnsCost(inst, columns))) return false;
  columns.set(next);
  return true;
}

function singleSwap(inst: Instance, columns: Int32Array): boolean {
  const act = activities(inst, columns);
  let bestDelta = 0;
  let bestLayer = -1;
  let bestColumn = -1;
  for (let i = 0; i < columns.length; i++) {
    const cur = columns[i];
    for (let c = inst.start[i]; c < inst.start[i + 1]; c++) {
      const delta = inst.cost[c] - inst.cost[cur];
      if (delta < bestDelta && fits(inst, act, cur, c)) {
        bestDelta = delta;
        bestLayer = i;
        bestColumn = c;
      }
    }
  }
  if (bestLayer < 0) return false;
  const next = Int32Array.from(columns);
  next[bestLayer] = bestColumn;
  return accept(inst, columns, next);
}

function pairSwap(inst: Instance, columns: Int32Array): boolean {
  const act = activities(inst, columns);
  const layers = columns.length;
  let bestDelta = 0;
  let best: [number, number, number, number] | undefined;
  for (let i = 0; i < layers; i++) {
    const cur = columns[i];
    for (let c = inst.start[i]; c < inst.start[i + 1]; c++) {
      const delta1 = inst.cost[c] - inst.cost[cur];
      // One of the two swaps must improve the objective; let it be the first.
      if (delta1 >= 0) continue;
      for (let k = 0; k < layers; k++) {
        if (k === i) continue;
        const cur2 = columns[k];
        for (let c2 = inst.start[k]; c2 < inst.start[k + 1]; c2++) {
          const delta = delta1 + inst.cost[c2] - inst.cost[cur2];
          if (delta < bestDelta && fits(inst, act, cur, c, cur2, c2)) {
            bestDelta = delta;
            best = [i, c, k, c2];
          }
        }
      }
    }
  }
  if (!best) return false;
  const next = Int32Array.from(columns);
  next[best[0]] = best[1];
  next[best[2]] = best[3];
  return accept(inst, columns, next);
}
