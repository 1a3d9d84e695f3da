/**
 * Budgets in human units -> linear constraints on summed per-layer costs.
 *
 * A {@link BudgetSpec} is what a person writes (`memory: "80GiB"`, `speedup: "2x"`); a
 * {@link Budget} is the same target made absolute (relative amounts resolved against the parent's
 * totals at the library's own batch size); {@link budgetRow} turns it into `sum(cost) <= limit`
 * or `>= limit` at a given batch size. Throughput is linearised exactly: T tokens/s at batch b
 * means runtime <= b x sequence_length / T seconds.
 */
import type { At, CostKey } from './costs.js';
import { choiceTotal, costLabel, keyFor, referenceAt, tokensPerRun } from './costs.js';
import { SearchError } from './errors.js';
import type { BlockLibrary } from './library.js';
import { parentChoice, STAT } from './library.js';
import type { Amount } from './units.js';
import { parseCount, parseDuration, parseMemory, parseSpeedup, parseStatValue, parseThroughput } from './units.js';

/** Budgets as a person states them; strings take units ("80GiB", "2x"), numbers are canonical. */
export interface BudgetSpec {
  /** Upper bound on memory, MiB ("80GiB", "80000", "0.9x"). */
  readonly memory?: string | number;
  /** Lower bound on throughput, tokens/s ("6000", "2x" of the parent). */
  readonly throughput?: string | number;
  /** Lower bound on throughput as a multiple of the parent's ("2x"); exclusive with `throughput`. */
  readonly speedup?: string | number;
  /** Upper bound on latency, ms ("50ms"): sums `latency_ms`, or `runtime_ms` when absent. */
  readonly latency?: string | number;
  /** Upper bound on time to first token, ms: sums `prefill_ms`. */
  readonly ttft?: string | number;
  /** Upper bound on parameter count ("7B"). */
  readonly params?: string | number;
  /** Upper bounds on any stat or metric, summed over layers: `{ kv_cache_mib: "2GiB" }`. */
  readonly max?: Readonly<Record<string, string | number>>;
  /** Lower bounds on any stat or metric, summed over layers. */
  readonly min?: Readonly<Record<string, string | number>>;
}

/** One resolved budget. */
export interface Budget {
  /** `memory`, `throughput`, `latency`, `ttft`, `params`, `max:NAME` or `min:NAME`. */
  readonly id: string;
  /** The option it came from, for messages ("--memory"). */
  readonly option: string;
  /** The per-layer cost summed over layers. */
  readonly key: CostKey;
  /** Whether `target` bounds the human quantity from above or below. */
  readonly bound: 'upper' | 'lower';
  /** The absolute target in `unit`. */
  readonly target: number;
  /** "MiB", "tok/s", "ms" or "" (counts and other stats). */
  readonly unit: string;
  /** True for throughput: the human quantity is tokens per run / summed runtime. */
  readonly throughput: boolean;
}

/** A budget as a linear constraint at one batch size: `sum(key) <= limit` or `>= limit`. */
export interface BudgetRow {
  readonly key: CostKey;
  readonly sense: '<=' | '>=';
  readonly limit: number;
}

/** Resolves every budget in `spec` against `library` (relative amounts need its parent). */
export function resolveBudgets(library: BlockLibrary, spec: BudgetSpec): Budget[] {
  if (spec.throughput !== undefined && spec.speedup !== undefined) {
    throw new SearchError('bad_argument', '--throughput and --speedup both set a throughput target; give one of them');
  }
  const out: Budget[] = [];
  const add = (id: string, option: string, key: CostKey, bound: Budget['bound'], unit: string, amount: Amount, throughput = false) => {
    const target = amount.kind === 'absolute' ? amount.value : amount.factor * parentValue(library, key, throughput, option);
    out.push({ id, option, key, bound, target, unit, throughput });
  };
  const runtime: CostKey = { kind: 'stat', name: STAT.runtime };
  if (spec.memory !== undefined) add('memory', '--memory', { kind: 'memory' }, 'upper', 'MiB', parseMemory(spec.memory, '--memory'));
  if (spec.throughput !== undefined) add('throughput', '--throughput', runtime, 'lower', 'tok/s', parseThroughput(spec.throughput, '--throughput'), true);
  if (spec.speedup !== undefined) add('throughput', '--speedup', runtime, 'lower', 'tok/s', parseSpeedup(spec.speedup, '--speedup'), true);
  if (spec.latency !== undefined) add('latency', '--latency', { kind: 'stat', name: latencyStat(library) }, 'upper', 'ms', parseDuration(spec.latency, '--latency'));
  if (spec.ttft !== undefined) add('ttft', '--ttft', { kind: 'stat', name: STAT.prefill }, 'upper', 'ms', parseDuration(spec.ttft, '--ttft'));
  if (spec.params !== undefined) add('params', '--params', { kind: 'stat', name: STAT.params }, 'upper', '', parseCount(spec.params, '--params'));
  for (const [bound, table] of [['upper', spec.max], ['lower', spec.min]] as const) {
    for (const [name, value] of Object.entries(table ?? {})) {
      const option = bound === 'upper' ? `--max ${name}` : `--min ${name}`;
      const key = keyFor(library, name, 'stat');
      add(`${bound === 'upper' ? 'max' : 'min'}:${name}`, option, key, bound, unitOf(name), parseStatValue(name, value, option));
    }
  }
  return out;
}

/** The linear constraint for `budget` at batch size `at`. */
export function budgetRow(budget: Budget, at: At): BudgetRow {
  if (!budget.throughput) return { key: budget.key, sense: budget.bound === 'upper' ? '<=' : '>=', limit: budget.target };
  // tokens/s >= T  <=>  runtime_ms <= 1000 x tokens / T (both positive).
  return { key: budget.key, sense: '<=', limit: (1000 * tokensPerRun(at, budget.option)) / budget.target };
}

/** The human quantity for a summed cost: the sum itself, or tokens/s for throughput. */
export function humanValue(budget: Budget, sum: number, at: At): number {
  return budget.throughput ? (1000 * tokensPerRun(at, budget.option)) / sum : sum;
}

/** Throughput in tokens/s of a summed runtime at batch `at`. */
export function throughputOf(runtimeMs: number, at: At): number {
  return (1000 * tokensPerRun(at, 'throughput')) / runtimeMs;
}

/** A copy of `budget` with a new absolute target (Pareto sweeps move one budget). */
export function withTarget(budget: Budget, target: number): Budget {
  return { ...budget, target };
}

/** Latency budgets sum `latency_ms` where the library measures it, `runtime_ms` otherwise. */
function latencyStat(library: BlockLibrary): string {
  const all = library.layers.every((layer) => layer.variants.every((v) => STAT.latency in v.stats));
  return all ? STAT.latency : STAT.runtime;
}

function parentValue(library: BlockLibrary, key: CostKey, throughput: boolean, option: string): number {
  const choice = parentChoice(library);
  if (choice === undefined) {
    throw new SearchError('no_parent', `${option}: a relative amount ("2x") needs the parent's variant on every layer, and this library does not mark one`);
  }
  const at = referenceAt(library);
  const sum = choiceTotal(library, choice, key, at, `${option} (parent)`);
  if (!throughput) return sum;
  if (!(sum > 0)) throw new SearchError('bad_library', `${option}: the parent's summed ${costLabel(key)} is ${sum}, so its throughput is undefined`);
  return (1000 * tokensPerRun(at, option)) / sum;
}

function unitOf(stat: string): string {
  if (stat.endsWith('_mib') || stat === STAT.memory) return 'MiB';
  if (stat.endsWith('_ms')) return 'ms';
  return '';
}
