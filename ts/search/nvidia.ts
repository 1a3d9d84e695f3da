/**
 * Reader for the public demo format of NVIDIA's Puzzle MIP code:
 *
 *   block_library.json      {"layer_0": {"<variant name>": {"stats": {...}, "metrics": {...}}}}
 *   measurement_info.json   {"batch_size", "sequence_length", "gpu", "dtype"}
 *   parent_block_stats.json {"stats": {...}, "metrics": {...}}   (one parent layer; optional)
 *
 * Its `memory_mib` is already the layer's total for the scenario's batch (parameters and KV cache
 * together), so it is kept as is. The format marks no parent; variant names spell it out, e.g.
 * "attention = 8 kv heads (parent * 100%)\t&&\tffn = intermediate size 29e3 (parent * 100%)", and
 * the variant whose two halves are both "(parent * 100%)" is the parent. Where names do not say,
 * the variant whose stats equal parent_block_stats.json is taken.
 */
import { SearchError } from './errors.js';
import type { BlockConfig, BlockLibrary, LibraryLayer, NumberTable, Scenario, Variant } from './library.js';
import { isRecord, validateScenario } from './library.js';

/** Parsed contents of the format's files. */
export interface NvidiaFiles {
  readonly blockLibrary: unknown;
  readonly measurementInfo?: unknown;
  readonly parentBlockStats?: unknown;
}

const LAYER_KEY = /^layer_(\d+)$/;
const PARENT_PART = /\(parent \* 100%\)/;

/** True when `value` looks like NVIDIA's block_library.json (top-level keys `layer_N`). */
export function isNvidiaLibrary(value: unknown): boolean {
  if (!isRecord(value)) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((k) => LAYER_KEY.test(k));
}

/** Converts NVIDIA's files into a {@link BlockLibrary}; `source` names the file in messages. */
export function fromNvidia(files: NvidiaFiles, source: string): BlockLibrary {
  const raw = files.blockLibrary;
  if (!isNvidiaLibrary(raw)) {
    throw new SearchError('bad_library', `${source}: expected NVIDIA's block_library.json with top-level keys "layer_0", "layer_1", ...`);
  }
  const table = raw as Record<string, unknown>;
  const count = Object.keys(table).length;
  const layers: LibraryLayer[] = [];
  const parentStats = parentStatsOf(files.parentBlockStats);
  for (let i = 0; i < count; i++) {
    const key = `layer_${i}`;
    const entry = table[key];
    if (entry === undefined) throw new SearchError('bad_library', `${source}: has ${count} layers but no "${key}"; layers must be numbered 0..${count - 1}`);
    layers.push(readLayer(entry, `${source}: ${key}`, parentStats));
  }
  const scenario: Scenario | undefined =
    files.measurementInfo === undefined ? undefined : validateScenario(files.measurementInfo, `${source}: measurement_info.json`);
  return scenario ? { layers, scenario, source } : { layers, source };
}

function readLayer(entry: unknown, where: string, parentStats: NumberTable | undefined): LibraryLayer {
  if (!isRecord(entry) || Object.keys(entry).length === 0) {
    throw new SearchError('bad_library', `${where} must be a non-empty object of variants`);
  }
  const variants: Variant[] = Object.entries(entry).map(([name, body]) => readVariant(name, body, `${where}["${name}"]`));
  const named = variants.find((v) => isParentName(v.name));
  const measured = parentStats === undefined ? undefined : variants.find((v) => sameStats(v.stats, parentStats));
  const parent = named ?? measured;
  return parent ? { variants, parent: parent.name } : { variants };
}

function readVariant(name: string, body: unknown, where: string): Variant {
  if (!isRecord(body)) throw new SearchError('bad_library', `${where} must be an object with "stats" and "metrics"`);
  const stats = numbers(body['stats'], `${where}.stats`);
  const metrics = numbers(body['metrics'], `${where}.metrics`);
  const block = describe(name, stats);
  return block ? { name, block, stats, metrics } : { name, stats, metrics };
}

/** Keeps the numeric entries of a stats/metrics object; other values cannot be budgeted. */
function numbers(value: unknown, where: string): NumberTable {
  if (!isRecord(value)) throw new SearchError('bad_library', `${where} must be an object of numbers`);
  const out: Record<string, number> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v === 'number' && Number.isFinite(v)) out[key] = v;
  }
  return out;
}

function isParentName(name: string): boolean {
  const parts = name.split('&&');
  return parts.length === 2 && parts.every((p) => PARENT_PART.test(p));
}

/**
 * A free-form block description from the name and stats. The library does not carry the model's
 * query-head count or hidden size, so DeciLM's `n_heads_in_group` / `ffn_mult` cannot be derived.
 */
function describe(name: string, stats: NumberTable): BlockConfig | undefined {
  const [attention, ffn] = name.split('&&').map((p) => p.replace(/^\s*\w+\s*=\s*/, '').trim());
  if (attention === undefined || ffn === undefined) return undefined;
  const kind = (text: string) => ({ no_op: text.startsWith('no_op'), replace_with_linear: text.startsWith('linear') });
  const kvHeads = stats['num_kv_heads'] ?? Number(/^(\d+) kv heads/.exec(attention)?.[1] ?? Number.NaN);
  const width = stats['ffn_intermediate_size'];
  return {
    attention: { ...kind(attention), num_kv_heads: Number.isFinite(kvHeads) ? kvHeads : null },
    ffn: { ...kind(ffn), intermediate_size: width ?? null },
  };
}

function parentStatsOf(value: unknown): NumberTable | undefined {
  if (!isRecord(value) || !isRecord(value['stats'])) return undefined;
  return numbers(value['stats'], 'parent_block_stats.json');
}

function sameStats(a: NumberTable, b: NumberTable): boolean {
  const keys = ['memory_mib', 'runtime_ms', 'num_params'].filter((k) => k in b);
  return keys.length > 0 && keys.every((k) => a[k] === b[k]);
}
