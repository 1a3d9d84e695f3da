/**
 * An {@link Instance} as a HiGHS model (typed arrays, column-wise), and the shapes of a solve
 * request and its answer as they travel to and from a worker thread.
 *
 * Budget rows and the objective are scaled by powers of two (exact in floating point) so that their
 * largest magnitudes are about 1: HiGHS's absolute feasibility tolerance (set to 1e-9) then means
 * the same relative tolerance the independent verification uses (tolerance.ts), and a parameter
 * count objective (~1e9 per column) no longer trips the dual simplex's "excessive dual values".
 * The typed-array API is used rather than LP text, which silently accepts NaN, drops coefficients
 * below 1e-9 and rejects many names; small_matrix_value is lowered to its minimum so no
 * coefficient is dropped here either.
 */
import type { Instance } from './instance.js';
import { layerCount } from './instance.js';
import { maxAbs } from './tolerance.js';

/** HiGHS's `ModelData`, restricted to what we send (plain data: it crosses to a worker). */
export interface HighsModel {
  readonly numCols: number;
  readonly numRows: number;
  readonly colCost: Float64Array;
  readonly colLower: Float64Array;
  readonly colUpper: Float64Array;
  readonly rowLower: Float64Array;
  readonly rowUpper: Float64Array;
  readonly matrix: {
    readonly format: 'csc';
    readonly numRows: number;
    readonly numCols: number;
    readonly starts: Int32Array;
    readonly indices: Int32Array;
    readonly values: Float64Array;
  };
  /** Present for a MIP (every column binary); absent for the LP relaxation. */
  readonly integrality?: Int32Array;
}

export type HighsOptionValue = boolean | number | string;

/** One solve for a worker. Its typed arrays are moved (transferred) to the worker when posted. */
export interface HighsJob {
  readonly model: HighsModel;
  readonly options: Readonly<Record<string, HighsOptionValue>>;
  /** A feasible MIP start (full column vector), handed to HiGHS with setSolution. */
  readonly start?: Float64Array;
}

/** What came back. Numbers HiGHS reports as infinite arrive as null. */
export interface HighsAnswer {
  /** `highs.constants.modelStatus` code (7 optimal, 8 infeasible, 13 time limit, ...). */
  readonly modelStatus: number;
  /** True when HiGHS holds a feasible primal solution (`primal_solution_status` = 2). */
  readonly feasible: boolean;
  readonly objective: number | null;
  /** MIP only: best proven bound and relative gap. */
  readonly bound: number | null;
  readonly gap: number | null;
  readonly nodes: number;
  readonly colValue: Float64Array | null;
  /** LP only: row duals (HiGHS sign convention: <= rows at their bound have duals <= 0). */
  readonly rowDual: Float64Array | null;
  /** Seconds HiGHS spent in run(). */
  readonly seconds: number;
}

/** HiGHS model status codes we act on. */
export const MODEL_STATUS = { optimal: 7, infeasible: 8, timeLimit: 13, interrupted: 17 } as const;

/** Options for every solve: quiet, tight tolerances, nothing dropped. */
export const BASE_OPTIONS: Readonly<Record<string, HighsOptionValue>> = {
  output_flag: false,
  small_matrix_value: 1e-12,
  primal_feasibility_tolerance: 1e-9,
};

/**
 * Options for proven-optimal MIP solves (mip_rel_gap 0, as the method requires). With a strong
 * incumbent supplied, HiGHS's primal heuristics only cost time (they spent most of it in sub-MIPs
 * on reduced NVIDIA instances), so they are switched off; the proof is unaffected.
 */
export function mipOptions(timeLimitSeconds: number | undefined, haveIncumbent: boolean): Record<string, HighsOptionValue> {
  const options: Record<string, HighsOptionValue> = {
    ...BASE_OPTIONS,
    mip_rel_gap: 0,
    mip_abs_gap: 0,
    mip_feasibility_tolerance: 1e-9,
  };
  if (haveIncumbent) {
    Object.assign(options, {
      mip_heuristic_effort: 0,
      mip_heuristic_run_feasibility_jump: false,
      mip_heuristic_run_rins: false,
      mip_heuristic_run_rens: false,
      mip_heuristic_run_root_reduced_cost: false,
    });
  }
  if (timeLimitSeconds !== undefined) options['time_limit'] = timeLimitSeconds;
  return options;
}

/** The power of two that brings a row's (or the objective's) largest magnitude into (0.5, 1]; 1 for all zeros. */
export function rowScale(coef: Float64Array, upper: number): number {
  const max = Math.max(Math.abs(upper), maxAbs(coef));
  if (!(max > 0) || !Number.isFinite(max)) return 1;
  return 2 ** -Math.ceil(Math.log2(max));
}

/** A HiGHS model and the power-of-two factors it was scaled by. */
export interface ScaledModel {
  readonly model: HighsModel;
  /** HiGHS's objective = objectiveScale x ours. */
  readonly objectiveScale: number;
  /** HiGHS's budget row r = rowScales[r] x ours. */
  readonly rowScales: readonly number[];
}

/** Builds the HiGHS model of `inst`: binary (integer) or its LP relaxation. */
export function toHighsModel(inst: Instance, integer: boolean): ScaledModel {
  const layers = layerCount(inst);
  const n = inst.cost.length;
  const numRows = layers + inst.rows.length;
  const rowScales = inst.rows.map((row) => rowScale(row.coef, row.upper));
  const objectiveScale = rowScale(inst.cost, 0);
  const starts = new Int32Array(n + 1);
  const indices: number[] = [];
  const values: number[] = [];
  for (let i = 0; i < layers; i++) {
    for (let c = inst.start[i]; c < inst.start[i + 1]; c++) {
      starts[c] = indices.length;
      indices.push(i);
      values.push(1);
      inst.rows.forEach((row, r) => {
        const v = row.coef[c] * rowScales[r];
        if (v !== 0) {
          indices.push(layers + r);
          values.push(v);
        }
      });
    }
  }
  starts[n] = indices.length;
  const rowLower = new Float64Array(numRows).fill(-Infinity);
  const rowUpper = new Float64Array(numRows);
  for (let i = 0; i < layers; i++) {
    rowLower[i] = 1;
    rowUpper[i] = 1;
  }
  inst.rows.forEach((row, r) => {
    rowUpper[layers + r] = row.upper * rowScales[r];
  });
  const model: HighsModel = {
    numCols: n,
    numRows,
    colCost: Float64Array.from(inst.cost, (v) => v * objectiveScale),
    colLower: new Float64Array(n),
    colUpper: new Float64Array(n).fill(1),
    rowLower,
    rowUpper,
    matrix: { format: 'csc', numRows, numCols: n, starts, indices: Int32Array.from(indices), values: Float64Array.from(values) },
  };
  // Integer in [0, 1] is binary; HiGHS's variableType.integer is 1.
  return { model: integer ? { ...model, integrality: new Int32Array(n).fill(1) } : model, objectiveScale, rowScales };
}

/** The chosen column on every layer of a 0/1 column vector (the largest value in the layer). */
export function chosenColumns(inst: Instance, colValue: Float64Array): Int32Array {
  const layers = layerCount(inst);
  const out = new Int32Array(layers);
  for (let i = 0; i < layers; i++) {
    let best = inst.start[i];
    for (let c = best + 1; c < inst.start[i + 1]; c++) if (colValue[c] > colValue[best]) best = c;
    out[i] = best;
  }
  return out;
}
