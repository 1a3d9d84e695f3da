/**
 * LP and MIP solves of an {@link Instance} on the worker pool, with HiGHS's scaling undone: every
 * number returned is in the instance's own units.
 */
import { SearchError } from './errors.js';
import { BASE_OPTIONS, chosenColumns, MODEL_STATUS, mipOptions, toHighsModel } from './highs-job.js';
import type { HighsPool } from './highs-pool.js';
import type { Instance } from './instance.js';
import { layerCount } from './instance.js';

/** A scaled row dual below minus this counts as priced (rows and objective are scaled to ~1). */
const PRICED_DUAL = 1e-9;

export interface LpSolve {
  readonly status: 'optimal' | 'infeasible' | 'other';
  /** The LP relaxation's optimum: a lower bound on the MIP. */
  readonly objective: number | null;
  /** Lagrange multiplier (>= 0) of every row; zeros when the LP gave no duals. */
  readonly lambda: Float64Array;
  /** Whether each row's dual is non-zero (all true when the LP gave no duals). */
  readonly priced: readonly boolean[];
  /** The relaxation's rounding: per layer, its largest column. */
  readonly rounded: Int32Array | null;
  readonly seconds: number;
}

export interface MipSolve {
  readonly status: 'optimal' | 'infeasible' | 'stopped';
  /** Columns of the solution (one per layer), when HiGHS holds a feasible one. */
  readonly columns: Int32Array | null;
  readonly bound: number | null;
  readonly gap: number | null;
  readonly nodes: number;
  readonly seconds: number;
}

/** Solves the LP relaxation of `inst`. */
export async function solveLp(pool: HighsPool, inst: Instance): Promise<LpSolve> {
  const { model, objectiveScale, rowScales } = toHighsModel(inst, false);
  const answer = await pool.solve({ model, options: BASE_OPTIONS });
  const layers = layerCount(inst);
  const status = answer.modelStatus === MODEL_STATUS.optimal ? 'optimal' : answer.modelStatus === MODEL_STATUS.infeasible ? 'infeasible' : 'other';
  const duals = status === 'optimal' ? answer.rowDual : null;
  // HiGHS's duals of `<=` rows at their bound are <= 0; lambda = -dual, rescaled to our units.
  const lambda = Float64Array.from(rowScales, (scale, r) => (duals ? Math.max(0, -(duals[layers + r] ?? 0)) * (scale / objectiveScale) : 0));
  return {
    status,
    objective: answer.objective === null ? null : answer.objective / objectiveScale,
    lambda,
    priced: rowScales.map((_, r) => !duals || (duals[layers + r] ?? 0) < -PRICED_DUAL),
    rounded: answer.colValue ? chosenColumns(inst, answer.colValue) : null,
    seconds: answer.seconds,
  };
}

/** Solves `inst` as a binary program, proven optimal unless `timeLimitSeconds` stops it. */
export async function solveMip(pool: HighsPool, inst: Instance, start: Int32Array | undefined, timeLimitSeconds?: number): Promise<MipSolve> {
  const { model, objectiveScale } = toHighsModel(inst, true);
  const answer = await pool.solve({
    model,
    options: mipOptions(timeLimitSeconds, start !== undefined),
    ...(start ? { start: oneHot(inst, start) } : {}),
  });
  const stopped = answer.modelStatus === MODEL_STATUS.timeLimit || answer.modelStatus === MODEL_STATUS.interrupted;
  if (answer.modelStatus !== MODEL_STATUS.optimal && answer.modelStatus !== MODEL_STATUS.infeasible && !stopped) {
    throw new SearchError('solver_failed', `HiGHS ended with model status ${answer.modelStatus} (see highs.constants.modelStatus)`);
  }
  return {
    status: stopped ? 'stopped' : answer.modelStatus === MODEL_STATUS.optimal ? 'optimal' : 'infeasible',
    columns: answer.feasible && answer.colValue ? binaryColumns(inst, answer.colValue) : null,
    bound: answer.bound === null ? null : answer.bound / objectiveScale,
    gap: answer.gap,
    nodes: answer.nodes,
    seconds: answer.seconds,
  };
}

/** A full 0/1 column vector with a 1 at each of `columns`. */
function oneHot(inst: Instance, columns: Int32Array): Float64Array {
  const x = new Float64Array(inst.cost.length);
  for (const c of columns) x[c] = 1;
  return x;
}

/** The chosen columns of a MIP solution, after checking it really is one-hot per layer. */
function binaryColumns(inst: Instance, colValue: Float64Array): Int32Array {
  const columns = chosenColumns(inst, colValue);
  for (let i = 0; i < columns.length; i++) {
    for (let c = inst.start[i]; c < inst.start[i + 1]; c++) {
      const expected = c === columns[i] ? 1 : 0;
      if (Math.abs(colValue[c] - expected) > 1e-6) {
        throw new SearchError('solver_failed', `HiGHS returned a non-binary value ${colValue[c]} on layer ${i}`);
      }
    }
  }
  return columns;
}
