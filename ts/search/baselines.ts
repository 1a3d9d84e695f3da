/**
 * The paper's baselines, on the same canonical instance as the MIP (minimised objective, `<=`
 * rows), so they face exactly the same budgets. "Maximise parameters" is a MIP with another
 * objective and lives in search.ts; the ones here need no solver.
 */
import type { Instance } from './instance.js';
import { columnsCost, layerCount } from './instance.js';
import { activities } from './incumbent.js';
import { shuffle } from './random.js';
import { maxAbs, rowTolerance } from './tolerance.js';

/** True when every row holds within the search's feasibility tolerance (as verification judges). */
export function withinRows(inst: Instance, columns: ArrayLike<number>): boolean {
  const act = activities(inst, columns);
  return inst.rows.every((row, r) => act[r] <= row.upper + rowTolerance(row.upper, row.coef));
}

/** A greedy result: the columns, and the first layer (in visiting order) that overran, if any. */
export interface GreedyResult {
  readonly columns: Int32Array;
  readonly overranAt?: number;
}

/**
 * The paper's greedy: every budget is split evenly over the layers; layers are visited from
 * easiest to hardest (lowest mean objective over their variants first); each takes its
 * best-scoring variant that fits its share plus whatever earlier layers left unused. Where
 * nothing fits, it takes the variant that overruns least (relative to each row's size) and
 * carries the debt, so the result may break a budget; the caller checks.
 * Ties go to the lower index.
 */
export function greedy(inst: Instance): GreedyResult {
  const layers = layerCount(inst);
  const mean = (i: number) => {
    let sum = 0;
    for (let c = inst.start[i]; c < inst.start[i + 1]; c++) sum += inst.cost[c];
    return sum / (inst.start[i + 1] - inst.start[i]);
  };
  const order = Array.from({ length: layers }, (_, i) => i).sort((a, b) => mean(a) - mean(b) || a - b);
  const sizes = inst.rows.map((row) => Math.max(Math.abs(row.upper), maxAbs(row.coef)) || 1);
  const carry = new Float64Array(inst.rows.length);
  const columns = new Int32Array(layers);
  let overranAt: number | undefined;
  for (const i of order) {
    const available = inst.rows.map((row, r) => carry[r] + row.upper / layers);
    let best = -1;
    let leastOverrun = Infinity;
    let leastColumn = -1;
    for (let c = inst.start[i]; c < inst.start[i + 1]; c++) {
      let overrun = 0;
      inst.rows.forEach((row, r) => {
        overrun = Math.max(overrun, (row.coef[c] - available[r]) / sizes[r]);
      });
      if (overrun <= 0 && (best < 0 || inst.cost[c] < inst.cost[best])) best = c;
      if (overrun < leastOverrun) {
        leastOverrun = overrun;
        leastColumn = c;
      }
    }
    if (best < 0) {
      best = leastColumn;
      overranAt ??= i;
    }
    columns[i] = best;
    inst.rows.forEach((row, r) => {
      carry[r] = available[r] - row.coef[best];
    });
  }
  return overranAt === undefined ? { columns } : { columns, overranAt };
}

/**
 * Random architectures from the library that meet the budgets: layers are filled in random order,
 * each with a uniformly random variant among those that still leave every row satisfiable by the
 * cheapest choices on the layers not yet filled. With one row that look-ahead is exact; with
 * several an attempt can still dead-end and is retried. Not uniform over the feasible set.
 */
export function randomFeasible(inst: Instance, random: () => number, attempts: number): Int32Array | undefined {
  const layers = layerCount(inst);
  const least = inst.rows.map((row) =>
    Float64Array.from({ length: layers }, (_, i) => {
      let min = Infinity;
      for (let c = inst.start[i]; c < inst.start[i + 1]; c++) min = Math.min(min, row.coef[c]);
      return min;
    }),
  );
  for (let attempt = 0; attempt < attempts; attempt++) {
    const columns = new Int32Array(layers);
    const used = new Float64Array(inst.rows.length);
    const ahead = least.map((mins) => mins.reduce((a, b) => a + b, 0));
    let ok = true;
    for (const i of shuffle(Array.from({ length: layers }, (_, k) => k), random)) {
      inst.rows.forEach((_, r) => {
        ahead[r] -= least[r][i];
      });
      const fitting: number[] = [];
      for (let c = inst.start[i]; c < inst.start[i + 1]; c++) {
        if (inst.rows.every((row, r) => used[r] + row.coef[c] + ahead[r] <= row.upper)) fitting.push(c);
      }
      if (fitting.length === 0) {
        ok = false;
        break;
      }
      const pick = fitting[Math.floor(random() * fitting.length)];
      columns[i] = pick;
      inst.rows.forEach((row, r) => {
        used[r] += row.coef[pick];
      });
    }
    if (ok && withinRows(inst, columns)) return columns;
  }
  return undefined;
}

/**
 * Uniform architectures: the same option on every layer, for each variant name present on all
 * layers. Returns the feasible one with the best objective (ties: first name in layer 0's order),
 * or undefined when none is feasible, plus how many uniform options there were.
 */
export function bestUniform(inst: Instance, names: readonly (readonly string[])[]): { columns?: Int32Array; name?: string; options: number } {
  const common = (names[0] ?? []).filter((name) => names.every((layer) => layer.includes(name)));
  let best: { columns: Int32Array; name: string; cost: number } | undefined;
  for (const name of common) {
    const columns = Int32Array.from(names, (layer, i) => inst.start[i] + layer.indexOf(name));
    if (!withinRows(inst, columns)) continue;
    const cost = columnsCost(inst, columns);
    if (!best || cost < best.cost) best = { columns, name, cost };
  }
  return best ? { columns: best.columns, name: best.name, options: common.length } : { options: common.length };
}
