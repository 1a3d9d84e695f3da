/**
 * Human units for budgets: "80GiB", "6000", "2x", "50ms", "7B".
 *
 * Every parser returns an {@link Amount}: either an absolute value in the search's canonical unit
 * (MiB, tokens/s, milliseconds, a plain count) or a factor relative to the parent model ("2x",
 * "90%"), which budgets.ts resolves against the parent's measured totals. A bare number means the
 * canonical unit. Errors name the argument (`what`) and show accepted forms.
 */
import { SearchError } from './errors.js';

/** A parsed quantity: absolute in the canonical unit, or a multiple of the parent's value. */
export type Amount =
  | { readonly kind: 'absolute'; readonly value: number }
  | { readonly kind: 'relative'; readonly factor: number };

const MIB = 1024 * 1024;

/** Memory suffix -> MiB per unit. SI suffixes (GB) are decimal bytes, IEC ones (GiB) binary. */
const MEMORY_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1 / MIB,
  kb: 1e3 / MIB,
  mb: 1e6 / MIB,
  gb: 1e9 / MIB,
  tb: 1e12 / MIB,
  kib: 1 / 1024,
  mib: 1,
  gib: 1024,
  tib: 1024 * 1024,
};

/** Duration suffix -> milliseconds per unit. */
const DURATION_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  us: 1e-3,
  'µs': 1e-3,
  ms: 1,
  s: 1e3,
  sec: 1e3,
  min: 60e3,
};

/** Count suffix -> multiplier. B (billion) and G are the same; parameter counts use B. */
const COUNT_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  k: 1e3,
  m: 1e6,
  b: 1e9,
  g: 1e9,
  t: 1e12,
};

/** Accepted spellings of "tokens per second" after an optional k/M prefix. */
const THROUGHPUT_SUFFIXES = new Set(['', 'tok/s', 'tokens/s', 'token/s', 't/s', '/s', 'tps']);

// A decimal number (thousands may be grouped with "," or "_"), then an optional unit.
const QUANTITY = /^([+-]?(?:\d{1,3}(?:[,_]\d{3})+|\d+)?(?:\.\d+)?(?:e[+-]?\d+)?)\s*(.*)$/i;

interface Split {
  readonly number: number;
  readonly unit: string;
}

function split(text: string, what: string, forms: string): Split {
  const trimmed = text.trim();
  const match = QUANTITY.exec(trimmed);
  const digits = match?.[1]?.replace(/[,_]/g, '') ?? '';
  const number = digits === '' || digits === '+' || digits === '-' ? Number.NaN : Number(digits);
  if (!match || !Number.isFinite(number)) {
    throw new SearchError('bad_units', `${what}: expected ${forms}, got "${text}"`);
  }
  return { number, unit: (match[2] ?? '').replace(/\s+/g, '') };
}

/** "2x", "1.5X", "90%" -> a relative amount; anything else -> undefined. */
function relative(parts: Split, what: string, text: string): Amount | undefined {
  const unit = parts.unit.toLowerCase();
  if (unit !== 'x' && unit !== '%') return undefined;
  const factor = unit === '%' ? parts.number / 100 : parts.number;
  if (!(factor > 0)) {
    throw new SearchError('bad_units', `${what}: a relative amount must be positive, got "${text}"`);
  }
  return { kind: 'relative', factor };
}

function positive(value: number, what: string, text: string): Amount {
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new SearchError('bad_units', `${what}: expected a non-negative amount, got "${text}"`);
  }
  return { kind: 'absolute', value };
}

function fromNumber(value: number, what: string): Amount {
  return positive(value, what, String(value));
}

/** Memory in MiB: "80GiB", "81920MiB", "80000" (MiB), "85.9GB", "0.9x" (of the parent). */
export function parseMemory(text: string | number, what = 'memory'): Amount {
  if (typeof text === 'number') return fromNumber(text, what);
  const forms = 'a size like "80GiB", "80000MiB", "85.9GB", "80000" (MiB) or "0.9x" (of the parent)';
  const parts = split(text, what, forms);
  const rel = relative(parts, what, text);
  if (rel) return rel;
  const scale = MEMORY_UNITS[parts.unit.toLowerCase()];
  if (scale === undefined) throw new SearchError('bad_units', `${what}: unknown size unit "${parts.unit}"; expected ${forms}`);
  return positive(parts.number * scale, what, text);
}

/** Throughput in tokens/s: "6000", "6k", "6000tok/s", "2x" (of the parent's measured throughput). */
export function parseThroughput(text: string | number, what = 'throughput'): Amount {
  if (typeof text === 'number') return strictlyPositive(fromNumber(text, what), what, String(text));
  const forms = 'tokens per second like "6000", "6k", "6000tok/s" or "2x" (of the parent)';
  const parts = split(text, what, forms);
  const rel = relative(parts, what, text);
  if (rel) return rel;
  let unit = parts.unit.toLowerCase();
  let scale = 1;
  if (unit.startsWith('k') || (unit.startsWith('m') && unit !== 'ms')) {
    scale = unit.startsWith('k') ? 1e3 : 1e6;
    unit = unit.slice(1);
  }
  if (!THROUGHPUT_SUFFIXES.has(unit)) {
    throw new SearchError('bad_units', `${what}: unknown throughput unit "${parts.unit}"; expected ${forms}`);
  }
  return strictlyPositive(positive(parts.number * scale, what, text), what, text);
}

function strictlyPositive(amount: Amount, what: string, text: string): Amount {
  if (amount.kind === 'absolute' && amount.value === 0) {
    throw new SearchError('bad_units', `${what}: a throughput target must be above zero, got "${text}"`);
  }
  return amount;
}

/** A duration in milliseconds: "50ms", "0.05s", "50" (ms), "800us", "0.8x" (of the parent). */
export function parseDuration(text: string | number, what = 'latency'): Amount {
  if (typeof text === 'number') return fromNumber(text, what);
  const forms = 'a duration like "50ms", "0.05s", "50" (ms) or "0.8x" (of the parent)';
  const parts = split(text, what, forms);
  const rel = relative(parts, what, text);
  if (rel) return rel;
  const scale = DURATION_UNITS[parts.unit.toLowerCase()];
  if (scale === undefined) throw new SearchError('bad_units', `${what}: unknown time unit "${parts.unit}"; expected ${forms}`);
  return positive(parts.number * scale, what, text);
}

/** A count: "7B", "70M", "1.5e9", "500k", "0.5x" (of the parent). */
export function parseCount(text: string | number, what = 'params'): Amount {
  if (typeof text === 'number') return fromNumber(text, what);
  const forms = 'a count like "7B", "70M", "500k", "7000000000" or "0.5x" (of the parent)';
  const parts = split(text, what, forms);
  const rel = relative(parts, what, text);
  if (rel) return rel;
  const scale = COUNT_UNITS[parts.unit.toLowerCase()];
  if (scale === undefined) throw new SearchError('bad_units', `${what}: unknown count suffix "${parts.unit}"; expected ${forms}`);
  return positive(parts.number * scale, what, text);
}

/** A speedup factor over the parent: "2x", "2", "150%". Always relative. */
export function parseSpeedup(text: string | number, what = 'speedup'): Amount {
  const forms = 'a factor like "2x", "1.5" or "150%"';
  if (typeof text === 'number') {
    if (!(text > 0) || !Number.isFinite(text)) throw new SearchError('bad_units', `${what}: expected ${forms}, got "${text}"`);
    return { kind: 'relative', factor: text };
  }
  const parts = split(text, what, forms);
  const rel = relative(parts, what, text);
  if (rel) return rel;
  if (parts.unit !== '' || !(parts.number > 0)) throw new SearchError('bad_units', `${what}: expected ${forms}, got "${text}"`);
  return { kind: 'relative', factor: parts.number };
}

/**
 * A bound on an arbitrary stat, parsed by the stat's naming convention: names ending in `_mib`
 * take sizes, `_ms` durations, anything else counts with k/M/B suffixes.
 */
export function parseStatValue(stat: string, text: string | number, what = stat): Amount {
  if (stat.endsWith('_mib')) return parseMemory(text, what);
  if (stat.endsWith('_ms')) return parseDuration(text, what);
  if (typeof text === 'number') {
    if (!Number.isFinite(text)) throw new SearchError('bad_units', `${what}: expected a finite number, got "${text}"`);
    return { kind: 'absolute', value: text };
  }
  // Stats may legitimately be negative (e.g. a log-likelihood), so no sign check here.
  const forms = 'a number like "1200", "7B" or "0.5x" (of the parent)';
  const parts = split(text, what, forms);
  const rel = relative(parts, what, text);
  if (rel) return rel;
  const scale = COUNT_UNITS[parts.unit.toLowerCase()];
  if (scale === undefined) throw new SearchError('bad_units', `${what}: unknown suffix "${parts.unit}"; expected ${forms}`);
  return { kind: 'absolute', value: parts.number * scale };
}

/** Formats MiB for people: "79,994.6 MiB". */
export function formatMiB(mib: number): string {
  return `${formatNumber(mib, 1)} MiB`;
}

/** Formats a count with an SI suffix: "51.2B". */
export function formatCount(count: number): string {
  const abs = Math.abs(count);
  if (abs >= 1e12) return `${trim(count / 1e12)}T`;
  if (abs >= 1e9) return `${trim(count / 1e9)}B`;
  if (abs >= 1e6) return `${trim(count / 1e6)}M`;
  if (abs >= 1e3) return `${trim(count / 1e3)}k`;
  return trim(count);
}

/** Thousands-grouped fixed-point number: 6538.93 -> "6,538.9". */
export function formatNumber(value: number, digits: number): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function trim(value: number): string {
  return Number(value.toPrecision(4)).toString();
}
