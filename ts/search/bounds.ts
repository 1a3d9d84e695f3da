/**
 * Lagrangian bounds and reduced-cost fixing for the multiple-choice knapsack.
 *
 * For any multipliers lambda >= 0 on the `<=` rows,
 *   L(lambda) = sum_i min_{c in layer i} (cost[c] + lambda . coef[c]) - lambda . upper
 * is a lower bound on every feasible solution (each layer must pick one column, and every feasible
 * solution pays at most lambda . upper through the rows). Forcing column c into its layer raises
 * the bound by its reduced cost d[c] = cost[c] + lambda . coef[c] - (that layer's minimum). So if
 * L + d[c] exceeds the objective of a known feasible solution, no solution better than that one
 * uses c, and c can be dropped without losing an optimum. Any lambda >= 0 is valid, so the
 * multipliers (here: the LP relaxation's duals from HiGHS) only affect how much is dropped, never
 * correctness. The bound is computed here in plain TypeScript from the instance itself.
 */
import type { Instance } from './instance.js';
import { layerCount } from './instance.js';

export interface Lagrangian {
  /** L(lambda): a lower bound on the optimum. */
  readonly bound: number;
  /** Reduced cost of every column (>= 0; 0 for each layer's Lagrangian minimiser). */
  readonly reduced: Float64Array;
  /** The Lagrangian minimiser's column on every layer. */
  readonly argmin: Int32Array;
  /** Magnitude of the terms summed, to size the rounding margin of comparisons against the bound. */
  readonly scale: number;
}

/** Evaluates L(lambda) and the reduced costs; negative multipliers are treated as 0. */
export function lagrangian(inst: Instance, lambda: ArrayLike<number>): Lagrangian {
  const rows = inst.rows;
  const n = inst.cost.length;
  const adjusted = Float64Array.from(inst.cost);
  let bound = 0;
  let scale = 0;
  rows.forEach((row, r) => {
    const l = Math.max(0, lambda[r] ?? 0);
    if (l === 0) return;
    for (let c = 0; c < n; c++) adjusted[c] += l * row.coef[c];
    bound -= l * row.upper;
    scale += Math.abs(l * row.upper);
  });
  const reduced = new Float64Array(n);
  const argmin = new Int32Array(layerCount(inst));
  for (let i = 0; i < argmin.length; i++) {
    let best = inst.start[i];
    for (let c = best + 1; c < inst.start[i + 1]; c++) if (adjusted[c] < adjusted[best]) best = c;
    const min = adjusted[best];
    for (let c = inst.start[i]; c < inst.start[i + 1]; c++) reduced[c] = adjusted[c] - min;
    argmin[i] = best;
    bound += min;
    scale += Math.abs(min);
  }
  return { bound, reduced, argmin, scale };
}

/**
 * Columns that may appear in a solution with objective <= `upperBound`: keep[c] = 1 unless
 * bound + reduced[c] exceeds it by more than a rounding margin. The margin is generous (1e-7 of
 * the magnitudes involved) because keeping a useless column costs nothing, dropping a needed one
 * would break exactness.
 */
export function fixByReducedCost(lag: Lagrangian, upperBound: number): Uint8Array {
  const margin = fixingMargin(lag, upperBound);
  const keep = new Uint8Array(lag.reduced.length);
  for (let c = 0; c < keep.length; c++) keep[c] = lag.bound + lag.reduced[c] <= upperBound + margin ? 1 : 0;
  return keep;
}

/** Rounding margin for comparisons of `lag.bound + reduced costs` against an upper bound. */
export function fixingMargin(lag: Lagrangian, upperBound: number): number {
  return 1e-7 * (1 + Math.abs(upperBound) + lag.scale);
}

/**
 * True when one row alone rules out every solution: even the cheapest column of every layer in
 * that row exceeds its bound. A quick, solver-free infeasibility proof.
 */
export function rowAloneInfeasible(inst: Instance, tolerance: (row: Instance['rows'][number]) => number): string | undefined {
  for (const row of inst.rows) {
    let least = 0;
    for (let i = 0; i < layerCount(inst); i++) {
      let min = Infinity;
      for (let c = inst.start[i]; c < inst.start[i + 1]; c++) min = Math.min(min, row.coef[c]);
      least += min;
    }
    if (least > row.upper + tolerance(row)) return row.id;
  }
  return undefined;
}
