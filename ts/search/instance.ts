/**
 * The search as pure numbers, in one canonical form:
 *
 *   minimise  sum_c cost[c] x[c]
 *   s.t.      sum_{c in layer i} x[c] = 1          for every layer i (multiple choice)
 *             sum_c row.coef[c] x[c] <= row.upper   for every row (budgets, diversity)
 *             x binary
 *
 * Columns are the variants, layer-major: layer i owns columns start[i] .. start[i+1]-1. Maximised
 * objectives are negated and `>=` budgets multiplied by -1, so every later stage (pruning,
 * bounds, heuristics, HiGHS) handles exactly one form.
 */
import type { At, CostKey } from './costs.js';
import { costColumn } from './costs.js';
import type { BudgetRow } from './budgets.js';
import type { BlockLibrary } from './library.js';

export interface Row {
  /** What the row is, for reports ("memory", "diversity vs #1"). */
  readonly id: string;
  readonly coef: Float64Array;
  readonly upper: number;
}

export interface Instance {
  /** Length layers + 1; layer i owns columns start[i] .. start[i+1]-1. */
  readonly start: Int32Array;
  /** Objective coefficient per column (minimised). */
  readonly cost: Float64Array;
  readonly rows: readonly Row[];
}

/** Number of layers of an instance. */
export function layerCount(inst: Instance): number {
  return inst.start.length - 1;
}

/** Number of columns (variants over all layers) of an instance. */
export function columnCount(inst: Instance): number {
  return inst.cost.length;
}

/** The objective term of a search. */
export interface Objective {
  /** A metric (kl_div, lm_loss) or stat (num_params), summed over layers. */
  readonly key: CostKey;
  readonly sense: 'min' | 'max';
}

/** A named budget row ready to compile. */
export interface NamedRow extends BudgetRow {
  readonly id: string;
  readonly purpose: string;
}

/** Layer offsets of a library's columns. */
export function layerStarts(library: BlockLibrary): Int32Array {
  const start = new Int32Array(library.layers.length + 1);
  library.layers.forEach((layer, i) => {
    start[i + 1] = start[i] + layer.variants.length;
  });
  return start;
}

/** Compiles objective and budget rows into the canonical form. */
export function buildInstance(library: BlockLibrary, at: At, objective: Objective, rows: readonly NamedRow[]): Instance {
  const start = layerStarts(library);
  const score = costColumn(library, objective.key, at, 'objective');
  const cost = objective.sense === 'min' ? score : score.map((v) => -v);
  const compiled = rows.map((row): Row => {
    const coef = costColumn(library, row.key, at, row.purpose);
    return row.sense === '<=' ? { id: row.id, coef, upper: row.limit } : { id: row.id, coef: coef.map((v) => -v), upper: -row.limit };
  });
  return { start, cost, rows: compiled };
}

/**
 * The diversity row against an earlier solution: the new solution may share at most `maxShared`
 * layers with it (x[i, earlier[i]] summed over layers <= maxShared).
 */
export function diversityRow(inst: Instance, earlier: readonly number[], maxShared: number, id: string): Row {
  const coef = new Float64Array(columnCount(inst));
  earlier.forEach((j, i) => {
    coef[inst.start[i] + j] = 1;
  });
  return { id, coef, upper: maxShared };
}

/** The same instance with extra rows. */
export function withRows(inst: Instance, rows: readonly Row[]): Instance {
  return { ...inst, rows: [...inst.rows, ...rows] };
}

/** Objective value of a choice given as one column per layer. */
export function columnsCost(inst: Instance, columns: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < columns.length; i++) total += inst.cost[columns[i]];
  return total;
}

/** Converts a per-layer variant index choice to column indices, and back. */
export function toColumns(inst: Instance, choice: readonly number[]): Int32Array {
  return Int32Array.from(choice, (j, i) => inst.start[i] + j);
}

export function toChoice(inst: Instance, columns: ArrayLike<number>): number[] {
  return Array.from({ length: columns.length }, (_, i) => columns[i] - inst.start[i]);
}
