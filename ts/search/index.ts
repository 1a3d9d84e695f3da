/**
 * The search stage of Puzzle (METHOD.md section 6): pick one block variant per layer to optimise
 * the summed replace-1-block score under memory / throughput / latency / parameter budgets, with
 * a mixed-integer program solved to proven optimality by HiGHS (WebAssembly, on worker threads).
 *
 * Typical use:
 * ```ts
 * const library = loadLibrary('path/to/library');              // ours or NVIDIA's demo format
 * const [best] = await search(library, { memory: '80GiB', throughput: 6000 });
 * if (best.status === 'optimal') console.log(best.objective, best.totals, best.layers);
 * ```
 */

// Library: the data the search reads.
export type { BlockConfig, BlockLibrary, DeciBlockConfig, LibraryLayer, NumberTable, Scenario, Variant } from './library.js';
/** Well-known stat names, measured-batch helpers and validation of untrusted library data. */
export { measuredBatchSizes, parentChoice, STAT, statsAt, validateLibrary, validateScenario, variantCount } from './library.js';
/** Load a library from a directory or file (our format or NVIDIA's), or save one in our format. */
export { LIBRARY_FILE, LIBRARY_FORMAT, loadLibrary, saveLibrary } from './load.js';
export type { LoadOptions } from './load.js';
/** Convert NVIDIA's parsed demo files (block_library.json and friends) into a library. */
export { fromNvidia, isNvidiaLibrary } from './nvidia.js';
export type { NvidiaFiles } from './nvidia.js';
/** Deterministic libraries shaped like the paper's 70B space, for tests, benchmarks and demos. */
export { SYNTHETIC_PARENT, syntheticLibrary } from './synthetic.js';
export type { SyntheticOptions } from './synthetic.js';

// Units and budgets.
/** Parse human amounts: "80GiB", "6000", "2x", "50ms", "7B". */
export { formatCount, formatMiB, parseCount, parseDuration, parseMemory, parseSpeedup, parseStatValue, parseThroughput } from './units.js';
export type { Amount } from './units.js';
/** Resolve budgets in human units against a library (relative amounts need its parent). */
export { budgetRow, resolveBudgets } from './budgets.js';
export type { Budget, BudgetRow, BudgetSpec } from './budgets.js';

// Searching.
/** Run the exact MIP (optionally diverse solutions / several batch sizes) or a baseline. */
export { search } from './search.js';
export type { SearchOptions } from './search.js';
export type { ProblemSpec } from './problem.js';
export type { BatchOutcome, LayerChoice, Method, NearestFeasible, SearchResult, SolverReport, Status, Totals } from './result.js';
/** Pareto sweeps over one budget, spread over worker threads, and their CSV / JSON / SVG files. */
export { paretoSweep, parseSweep } from './sweep.js';
export type { SweepBudget, SweepPoint, SweepResult, SweepSpec } from './sweep.js';
export { sweepCsv, writeSweep } from './sweep-files.js';
export type { SweepFiles } from './sweep-files.js';
export { sweepSvg } from './svg.js';
/** Plain-text reports, as the CLI prints them. */
export { formatResult, formatSweep } from './report-text.js';
/** Independent re-check of an architecture against a library and budgets. */
export { assertVerified, verifyChoice } from './verify.js';
export type { BudgetCheck, DiversityCheck, Verification } from './verify.js';
/** A pool of HiGHS worker threads, to share between searches (close it when done). */
export { createHighsPool } from './highs-pool.js';
export type { HighsPool } from './highs-pool.js';

// Lower level: the canonical instance and its exact solver, for callers building their own models.
export { buildInstance, diversityRow, withRows } from './instance.js';
export type { Instance, NamedRow, Objective, Row } from './instance.js';
export { solveExact } from './exact.js';
export type { ExactOptions, ExactOutcome, ModelSizes } from './exact.js';
export type { At, CostKey } from './costs.js';
export { SearchError } from './errors.js';
