/**
 * The one feasibility tolerance of the search. A budget `sum <= limit` holds when the sum exceeds
 * the limit by at most 2e-9 of the row's magnitude (the larger of |limit| and the largest
 * per-variant cost in it). HiGHS is run with absolute tolerances of 1e-9 on rows scaled to
 * magnitude ~1 (highs-job.ts), which this bound contains, and sums added in different orders
 * differ by far less; the brute-force tests use the same definition.
 */

/** Relative feasibility tolerance, per unit of row magnitude. */
export const FEASIBILITY_TOLERANCE = 2e-9;

/** Largest absolute value of an array (0 when empty). */
export function maxAbs(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i]));
  return max;
}

/** Allowed excess of a row's sum over `limit`, given the row's per-variant costs. */
export function rowTolerance(limit: number, costs: ArrayLike<number>): number {
  return FEASIBILITY_TOLERANCE * Math.max(Math.abs(limit), maxAbs(costs));
}
