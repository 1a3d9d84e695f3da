/**
 * What each variant costs or scores, read from the library in ONE place. The MIP builder, the
 * baselines and the independent verification all go through these functions, so a cost means
 * the same thing everywhere (verification re-adds them separately from the solver's matrix).
 */
import { SearchError } from './errors.js';
import type { BlockLibrary, Scenario, Variant } from './library.js';
import { STAT, statsAt } from './library.js';

/**
 * A per-variant quantity that the search sums over layers:
 * - `memory`: parameter memory + batch x KV-cache memory where the library separates them
 *   (`param_memory_mib` + b x `kv_cache_mib`), else the scenario's total `memory_mib`;
 * - `stat`: a stat at the batch size in use (runtime_ms, prefill_ms, num_params, ...);
 * - `metric`: a replace-1-block score (kl_div, lm_loss, ...), independent of hardware.
 */
export type CostKey =
  | { readonly kind: 'memory' }
  | { readonly kind: 'stat'; readonly name: string }
  | { readonly kind: 'metric'; readonly name: string };

/** Where the search runs: the batch size, and the scenario that gives it meaning. */
export interface At {
  readonly batch: number;
  readonly scenario?: Scenario;
}

/** The batch size a library's own stats were measured at (1 when it states no scenario). */
export function referenceAt(library: BlockLibrary): At {
  return library.scenario ? { batch: library.scenario.batch_size, scenario: library.scenario } : { batch: 1 };
}

/** Tokens processed by one scenario run at this batch size; throughput = tokens / runtime. */
export function tokensPerRun(at: At, purpose: string): number {
  if (!at.scenario) {
    throw new SearchError(
      'no_scenario',
      `${purpose} needs the scenario's batch_size and sequence_length; pass --scenario FILE (e.g. NVIDIA's measurement_info.json)`,
    );
  }
  return at.batch * at.scenario.sequence_length;
}

/** A short human name for a cost, for messages and reports. */
export function costLabel(key: CostKey): string {
  return key.kind === 'memory' ? 'memory' : key.name;
}

/**
 * The name's kind in this library: a metric if variants have it under `metrics`, otherwise a stat.
 * `prefer` decides when a name is both (objectives prefer metrics, budgets stats).
 */
export function keyFor(library: BlockLibrary, name: string, prefer: 'stat' | 'metric'): CostKey {
  if (name === STAT.memory) return { kind: 'memory' };
  const first = library.layers[0]?.variants[0];
  const inStats = first !== undefined && name in first.stats;
  const inMetrics = first !== undefined && name in first.metrics;
  if (inStats && inMetrics) return { kind: prefer, name };
  if (inMetrics) return { kind: 'metric', name };
  if (inStats) return { kind: 'stat', name };
  const known = first ? [...Object.keys(first.metrics), ...Object.keys(first.stats)].join(', ') : 'none';
  throw new SearchError('missing_stat', `the library has no stat or metric "${name}" (it has: ${known})`);
}

/** One variant's value of `key` at `at`, or an error naming the layer, variant and purpose. */
export function variantCost(variant: Variant, key: CostKey, at: At, where: string): number {
  const value = rawCost(variant, key, at);
  if (value === undefined) {
    const batch = at.scenario && at.batch !== at.scenario.batch_size ? ` at batch size ${at.batch}` : '';
    const need = key.kind === 'memory' ? `"${STAT.memory}" or "${STAT.paramMemory}" + "${STAT.kvCache}"` : `"${key.name}"`;
    throw new SearchError('missing_stat', `${where}: variant "${variant.name}" has no ${need}${batch}`);
  }
  return value;
}

function rawCost(variant: Variant, key: CostKey, at: At): number | undefined {
  if (key.kind === 'metric') return variant.metrics[key.name];
  const stats = statsAt(variant, at.batch, at.scenario);
  if (key.kind === 'stat') return stats[key.name];
  const params = stats[STAT.paramMemory];
  const kv = stats[STAT.kvCache];
  if (params !== undefined && kv !== undefined) return params + at.batch * kv;
  return stats[STAT.memory];
}

/** `key` for every variant, layer-major (the MIP's column order). `purpose` names the user's option. */
export function costColumn(library: BlockLibrary, key: CostKey, at: At, purpose: string): Float64Array {
  const out: number[] = [];
  library.layers.forEach((layer, i) => {
    for (const variant of layer.variants) out.push(variantCost(variant, key, at, `${purpose}: layer ${i}`));
  });
  return Float64Array.from(out);
}

/** Sum of `key` over a choice of one variant index per layer, added in plain layer order. */
export function choiceTotal(library: BlockLibrary, choice: readonly number[], key: CostKey, at: At, purpose: string): number {
  let total = 0;
  choice.forEach((j, i) => {
    const variant = library.layers[i]?.variants[j];
    if (variant === undefined) throw new SearchError('bad_argument', `${purpose}: layer ${i} has no variant ${j}`);
    total += variantCost(variant, key, at, `${purpose}: layer ${i}`);
  });
  return total;
}
