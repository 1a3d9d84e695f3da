/**
 * Smaller equivalent models. A {@link Reduced} model is an {@link Instance} whose "layers" are
 * groups of original layers and whose columns are combinations of original variants, one per
 * layer of the group; `origin[c]` tells which original columns column c stands for. Costs and
 * row coefficients of a combination are the sums of its parts, so choosing one column per group
 * is exactly choosing one variant per original layer. Three exact operations shrink it:
 *
 * - keepColumns: drop columns proven useless (reduced-cost fixing, bounds.ts);
 * - pruneDominated: drop a column when another in its group is no worse in the objective and
 *   in every row (all rows are `<=`). Any solution using it stays feasible and no worse after the
 *   swap, so the optimum survives. Diversity rows take part like any row, so a variant used by an
 *   earlier solution is only ever replaced by another such variant. Exact ties keep the first
 *   column, so every dropped column has a kept dominator;
 * - dropSlack: drop a column that alone overruns a row (even with the cheapest choice on every
 *   other group), then drop rows that no choice at all can break. Dominance is judged on fewer
 *   rows afterwards, so it prunes more;
 * - merge (merge.ts): join two groups into one whose columns are their surviving combinations.
 */
import type { Instance, Row } from './instance.js';
import { layerCount } from './instance.js';
import { rowTolerance } from './tolerance.js';

/**
 * The original columns behind a reduced column: one original column, or the pair of origins it was
 * merged from (a tree, so merging never copies lists).
 */
export type Origin = number | readonly [Origin, Origin];

export interface Reduced {
  readonly inst: Instance;
  readonly origin: readonly Origin[];
}

/** An instance as a reduced model of itself: one group per layer, one original column per column. */
export function unreduced(inst: Instance): Reduced {
  return { inst, origin: Array.from({ length: inst.cost.length }, (_, c) => c) };
}

/** Calls `visit` on every original column of `origin`; stops early when it returns false. */
export function everyOriginal(origin: Origin, visit: (column: number) => boolean): boolean {
  return typeof origin === 'number' ? visit(origin) : everyOriginal(origin[0], visit) && everyOriginal(origin[1], visit);
}

/**
 * Keeps the columns with keep[c] != 0. A group left empty keeps all its columns instead: callers
 * only drop columns proven useless, and an empty group would turn a rounding error in that proof
 * into a false "infeasible".
 */
export function keepColumns(red: Reduced, keep: Uint8Array): Reduced {
  const { inst } = red;
  const groups = layerCount(inst);
  const picked: number[] = [];
  const start = new Int32Array(groups + 1);
  for (let g = 0; g < groups; g++) {
    const before = picked.length;
    for (let c = inst.start[g]; c < inst.start[g + 1]; c++) if (keep[c]) picked.push(c);
    if (picked.length === before) for (let c = inst.start[g]; c < inst.start[g + 1]; c++) picked.push(c);
    start[g + 1] = picked.length;
  }
  const take = (values: Float64Array) => Float64Array.from(picked, (c) => values[c]);
  const rows: Row[] = inst.rows.map((row) => ({ id: row.id, coef: take(row.coef), upper: row.upper }));
  return { inst: { start, cost: take(inst.cost), rows }, origin: picked.map((c) => red.origin[c]) };
}

/** Drops every column dominated within its group (see the file comment). */
export function pruneDominated(red: Reduced): Reduced {
  const { inst } = red;
  const keep = new Uint8Array(inst.cost.length);
  const coefs = inst.rows.map((row) => row.coef);
  for (let g = 0; g < layerCount(inst); g++) {
    const members: number[] = [];
    for (let c = inst.start[g]; c < inst.start[g + 1]; c++) members.push(c);
    for (const c of undominated(members, inst.cost, coefs)) keep[c] = 1;
  }
  return keepColumns(red, keep);
}

/**
 * The members no other member dominates (no worse in `cost` and every `coefs` row, exact ties
 * resolved towards the smaller index), in ascending lexicographic order.
 */
export function undominated(members: number[], cost: ArrayLike<number>, coefs: readonly ArrayLike<number>[]): number[] {
  // Lexicographic order (cost, rows..., index): a dominator always sorts before what it
  // dominates, so each member only needs checking against the members kept before it.
  members.sort((a, b) => {
    if (cost[a] !== cost[b]) return cost[a] - cost[b];
    for (const coef of coefs) if (coef[a] !== coef[b]) return coef[a] - coef[b];
    return a - b;
  });
  const kept: number[] = [];
  if (coefs.length === 1) {
    // One row: a sweep, since a member survives only by using strictly less of it.
    const coef = coefs[0];
    for (const j of members) if (kept.length === 0 || coef[j] < coef[kept[kept.length - 1]]) kept.push(j);
    return kept;
  }
  for (const j of members) {
    if (kept.some((k) => cost[k] <= cost[j] && coefs.every((coef) => coef[k] <= coef[j]))) continue;
    kept.push(j);
  }
  return kept;
}

/**
 * Drops columns that cannot fit and rows that cannot bind (see the file comment). A column is only
 * dropped when it overruns by more than the feasibility tolerance, so nothing feasible is lost.
 */
export function dropSlack(red: Reduced): Reduced {
  const { inst } = red;
  const groups = layerCount(inst);
  const keep = new Uint8Array(inst.cost.length).fill(1);
  const rows: Row[] = [];
  for (const row of inst.rows) {
    let least = 0;
    let most = 0;
    const mins = new Float64Array(groups);
    for (let g = 0; g < groups; g++) {
      let min = Infinity;
      let max = -Infinity;
      for (let c = inst.start[g]; c < inst.start[g + 1]; c++) {
        min = Math.min(min, row.coef[c]);
        max = Math.max(max, row.coef[c]);
      }
      mins[g] = min;
      least += min;
      most += max;
    }
    const room = row.upper - least + rowTolerance(row.upper, row.coef);
    for (let g = 0; g < groups; g++) {
      for (let c = inst.start[g]; c < inst.start[g + 1]; c++) if (row.coef[c] - mins[g] > room) keep[c] = 0;
    }
    if (most > row.upper) rows.push(row);
  }
  const kept = keepColumns({ inst: { ...inst, rows }, origin: red.origin }, keep);
  // Dropping columns can leave more rows unable to bind; one more pass settles it.
  return rows.length < inst.rows.length || kept.inst.cost.length < inst.cost.length ? dropSlack(kept) : kept;
}

/** A solution of the reduced model (one column per group) as original columns, in layer order. */
export function expand(red: Reduced, columns: ArrayLike<number>): Int32Array {
  const out: number[] = [];
  for (let g = 0; g < columns.length; g++) everyOriginal(red.origin[columns[g]], (c) => out.push(c) > 0);
  // Original columns are numbered layer-major, so ascending order is layer order.
  return Int32Array.from(out).sort();
}

/** An original solution as columns of the reduced model; undefined if one of its combinations was dropped. */
export function contract(red: Reduced, original: ArrayLike<number>): Int32Array | undefined {
  const wanted = new Set<number>(Array.from(original));
  const out = new Int32Array(layerCount(red.inst));
  for (let g = 0; g < out.length; g++) {
    let found = -1;
    for (let c = red.inst.start[g]; c < red.inst.start[g + 1] && found < 0; c++) {
      if (everyOriginal(red.origin[c], (p) => wanted.has(p))) found = c;
    }
    if (found < 0) return undefined;
    out[g] = found;
  }
  return out;
}
