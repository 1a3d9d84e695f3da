/**
 * The block library as the search sees it: for every layer, the variants it may use, each with its
 * measured costs (`stats`) and its replace-1-block scores (`metrics`), plus the scenario the costs
 * were measured in. Loaders (our JSON file, NVIDIA's demo format) produce this type; the search
 * consumes nothing else.
 *
 * Field names are snake_case because the type is also the on-disk JSON (library-file.ts) and
 * the stat keys themselves (memory_mib, runtime_ms) are snake_case in every format we read.
 */
import { SearchError } from './errors.js';

/** Well-known stat names. Any other numeric stat can still be budgeted with `--max NAME=VALUE`. */
export const STAT = {
  /** Total memory of the layer for the scenario's batch (parameters + KV cache), MiB. */
  memory: 'memory_mib',
  /** Parameter memory, shared by the batch, MiB. With `kv_cache`, memory = params + batch x KV. */
  paramMemory: 'param_memory_mib',
  /** KV-cache memory for ONE sequence of the scenario's sequence length, MiB. */
  kvCache: 'kv_cache_mib',
  /** Time for the whole scenario run (batch_size x sequence_length tokens), ms. */
  runtime: 'runtime_ms',
  /** Latency contribution, ms; when absent, latency budgets use `runtime_ms`. */
  latency: 'latency_ms',
  /** Prefill time (time to first token) for the scenario, ms. */
  prefill: 'prefill_ms',
  /** Parameter count. */
  params: 'num_params',
} as const;

/** The scenario the stats were measured in (NVIDIA's `measurement_info.json`). */
export interface Scenario {
  /** Sequences processed together; `runtime_ms` is the time for the whole batch. */
  readonly batch_size: number;
  /** Tokens per sequence in one scenario run. */
  readonly sequence_length: number;
  /** Hardware, e.g. "NVIDIA H100 80GB HBM3" (NVIDIA's file calls it `gpu`). */
  readonly device?: string;
  /** Numeric format of the measurement, e.g. "fp8". */
  readonly dtype?: string;
}

/**
 * The DeciLM / nemotron-nas per-layer block config (METHOD.md section 8). `n_heads_in_group`
 * = query heads / KV heads; `ffn_mult` sets the FFN width.
 */
export interface DeciBlockConfig {
  readonly attention: {
    readonly n_heads_in_group: number | null;
    readonly no_op: boolean;
    readonly replace_with_linear: boolean;
  };
  readonly ffn: {
    readonly ffn_mult: number | null;
    readonly no_op: boolean;
    readonly replace_with_linear: boolean;
  };
}

/** A variant's architecture: DeciLM-style where known, otherwise whatever its source described. */
export type BlockConfig = DeciBlockConfig | Readonly<Record<string, unknown>>;

/** Numeric table such as `{ memory_mib: 1437.1, runtime_ms: 817 }`. */
export type NumberTable = Readonly<Record<string, number>>;

/** One choice for one layer. */
export interface Variant {
  /** Unique within its layer; the same name on every layer means "the same option" (uniform baseline). */
  readonly name: string;
  readonly block?: BlockConfig;
  /** Costs measured for the library's scenario (see {@link STAT}). */
  readonly stats: NumberTable;
  /** Replace-1-block scores, e.g. `kl_div`, `lm_loss`; the search sums them over layers. */
  readonly metrics: NumberTable;
  /**
   * Stats measured at other batch sizes (same device, dtype, sequence length), keyed by batch size.
   * At batch b they are laid over `stats`; this is what a batch-size sweep searches over.
   */
  readonly stats_by_batch?: Readonly<Record<string, NumberTable>>;
}

export interface LibraryLayer {
  readonly variants: readonly Variant[];
  /** Name of the parent's own variant on this layer; needed for budgets relative to the parent. */
  readonly parent?: string;
}

export interface BlockLibrary {
  readonly layers: readonly LibraryLayer[];
  /** Needed to turn throughput into a runtime budget; NVIDIA's format keeps it in a separate file. */
  readonly scenario?: Scenario;
  /** Where the library came from (a path), for messages. */
  readonly source?: string;
}

/**
 * Stats that do not change with the batch size. At a batch size other than the scenario's, only
 * these are taken from `stats`; everything else (runtimes, total memory) must be measured at that
 * batch in `stats_by_batch`, so a missing measurement is an error instead of a silently wrong cost.
 */
const BATCH_INDEPENDENT = new Set(['num_params', 'param_memory_mib', 'kv_cache_mib', 'num_kv_heads', 'ffn_intermediate_size']);

/** The stats of `variant` at batch size `batch` (see {@link Variant.stats_by_batch}). */
export function statsAt(variant: Variant, batch: number, scenario: Scenario | undefined): NumberTable {
  if (scenario === undefined || batch === scenario.batch_size) return variant.stats;
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(variant.stats)) {
    if (BATCH_INDEPENDENT.has(key) || key.endsWith('_num_params')) out[key] = value;
  }
  return { ...out, ...variant.stats_by_batch?.[String(batch)] };
}

/**
 * Batch sizes the library has measurements for: the scenario's own, plus every size that all
 * variants have in `stats_by_batch`.
 */
export function measuredBatchSizes(library: BlockLibrary): number[] {
  const sizes = new Set<number>();
  if (library.scenario) sizes.add(library.scenario.batch_size);
  let common: Set<string> | undefined;
  for (const layer of library.layers) {
    for (const variant of layer.variants) {
      const keys = new Set(Object.keys(variant.stats_by_batch ?? {}));
      common = common === undefined ? keys : new Set([...common].filter((k) => keys.has(k)));
    }
  }
  for (const key of common ?? []) sizes.add(Number(key));
  return [...sizes].sort((a, b) => a - b);
}

/** Index of the parent's variant on every layer, or undefined when any layer lacks one. */
export function parentChoice(library: BlockLibrary): number[] | undefined {
  const choice: number[] = [];
  for (const layer of library.layers) {
    if (layer.parent === undefined) return undefined;
    const index = layer.variants.findIndex((v) => v.name === layer.parent);
    if (index < 0) return undefined;
    choice.push(index);
  }
  return choice;
}

/** Total number of variants over all layers (the MIP's column count). */
export function variantCount(library: BlockLibrary): number {
  return library.layers.reduce((sum, layer) => sum + layer.variants.length, 0);
}

/**
 * Checks an untrusted value (parsed JSON or an API argument) against {@link BlockLibrary} and
 * returns it typed. Messages point at the offending field, prefixed by `source`.
 */
export function validateLibrary(value: unknown, source: string): BlockLibrary {
  const fail = (where: string, expected: string): never => {
    throw new SearchError('bad_library', `${source}: ${where} ${expected}`);
  };
  if (!isRecord(value)) return fail('the library', 'must be a JSON object');
  const layers = value['layers'];
  if (!Array.isArray(layers) || layers.length === 0) return fail('"layers"', 'must be a non-empty array');
  const scenario = value['scenario'] === undefined ? undefined : validateScenario(value['scenario'], `${source}: "scenario"`);
  layers.forEach((layer: unknown, i) => {
    const where = `layers[${i}]`;
    if (!isRecord(layer)) return fail(where, 'must be an object');
    const variants = layer['variants'];
    if (!Array.isArray(variants) || variants.length === 0) return fail(`${where}.variants`, 'must be a non-empty array');
    const names = new Set<string>();
    variants.forEach((variant: unknown, j) => {
      const at = `${where}.variants[${j}]`;
      if (!isRecord(variant)) return fail(at, 'must be an object');
      const name = variant['name'];
      if (typeof name !== 'string' || name === '') return fail(`${at}.name`, 'must be a non-empty string');
      if (names.has(name)) return fail(`${at}.name`, `repeats "${name}"; names must be unique within a layer`);
      names.add(name);
      checkTable(variant['stats'], `${at}.stats`, fail);
      checkTable(variant['metrics'], `${at}.metrics`, fail);
      const block = variant['block'];
      if (block !== undefined && !isRecord(block)) fail(`${at}.block`, 'must be an object when present');
      const byBatch = variant['stats_by_batch'];
      if (byBatch !== undefined) {
        if (!isRecord(byBatch)) return fail(`${at}.stats_by_batch`, 'must be an object keyed by batch size');
        for (const [batch, table] of Object.entries(byBatch)) {
          if (!/^[1-9]\d*$/.test(batch)) fail(`${at}.stats_by_batch`, `has key "${batch}"; keys must be positive integer batch sizes`);
          checkTable(table, `${at}.stats_by_batch["${batch}"]`, fail);
        }
      }
      return undefined;
    });
    const parent = layer['parent'];
    if (parent !== undefined && (typeof parent !== 'string' || !names.has(parent))) {
      fail(`${where}.parent`, `must name one of the layer's variants, got ${JSON.stringify(parent)}`);
    }
    return undefined;
  });
  const out: BlockLibrary = { layers: layers as LibraryLayer[], source };
  return scenario ? { ...out, scenario } : out;
}

/** Checks a scenario object; accepts NVIDIA's `gpu` as a synonym of `device`. */
export function validateScenario(value: unknown, where: string): Scenario {
  if (!isRecord(value)) throw new SearchError('bad_library', `${where} must be an object`);
  const positiveInt = (key: string): number => {
    const v = value[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new SearchError('bad_library', `${where}.${key} must be a positive integer, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const text = (key: string): string | undefined => {
    const v = value[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new SearchError('bad_library', `${where}.${key} must be a string`);
    return v;
  };
  const device = text('device') ?? text('gpu');
  const dtype = text('dtype');
  return {
    batch_size: positiveInt('batch_size'),
    sequence_length: positiveInt('sequence_length'),
    ...(device !== undefined ? { device } : {}),
    ...(dtype !== undefined ? { dtype } : {}),
  };
}

function checkTable(value: unknown, where: string, fail: (where: string, expected: string) => never): void {
  if (!isRecord(value)) fail(where, 'must be an object of numbers');
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${where}.${key}`, `must be a finite number, got ${JSON.stringify(v)}`);
  }
}

/** True for a plain object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
