/**
 * `puzzle profile`: the cost of every option of the search space on this machine for a
 * scenario, measured with constant weights (no library, no checkpoint: a config.json is
 * enough) on small stacks of one layer kind, so even a 70B-sized block fits, plus the
 * additivity check: the sum of per-subblock times against whole models measured end to end.
 */
import { createRng } from '../data/prng.js';
import type { AttentionSpec, FfnSpec, LayerSpec, ModelConfig } from '../model/config.js';
import { defaultSpace, layerVariants, type SearchSpaceConfig } from '../library/space.js';
import { measureModel, type MeasuredTime } from './measure.js';
import { summarize, type Timing } from '../bench/timing.js';
import { deviceFingerprint, type DeviceFingerprint, type ProfileScenario } from './scenario.js';

export interface SubblockCost {
  id: string;
  kind: 'attention' | 'ffn' | 'empty';
  spec: AttentionSpec | FfnSpec | null;
  num_params: number;
  param_memory_mib: number;
  /** KV cache of ONE sequence of prompt + generate tokens */
  kv_cache_mib: number;
  prefill_ms: number;
  prefill_spread: number;
  decode_ms: number;
  /** prefill + decode for the whole scenario batch */
  runtime_ms: number;
}

export interface CostTable {
  version: 1;
  scenario: ProfileScenario;
  device: DeviceFingerprint;
  date: string;
  /** layers stacked per measurement (see stackDepth) */
  stackDepth: number;
  model: { hidden: number; heads: number; headDim: number; vocab: number; layers: number };
  /** embedding + final norm + LM head */
  head: { prefill_ms: number; decode_ms: number; runtime_ms: number; num_params: number };
  /** the fixed cost of calling an empty block (both halves no-op); subtracted once per layer
   * when an attention and an FFN measurement are added, since each includes it */
  empty: SubblockCost;
  subblocks: SubblockCost[];
}

const MIB = 1024 * 1024;

export function cost(id: string, kind: SubblockCost['kind'], spec: SubblockCost['spec'], c: ModelConfig, s: ProfileScenario, m: MeasuredTime): SubblockCost {
  let params = 0;
  let kv = 0;
  if (kind === 'attention' && spec) {
    const a = spec as AttentionSpec;
    if (a.kind === 'gqa') {
      params = c.hidden + 2 * c.hidden * c.heads * c.headDim + 2 * c.hidden * a.kvHeads * c.headDim;
      kv = 2 * a.kvHeads * c.headDim * 4 * (s.prompt + s.generate);
    } else if (a.kind === 'linear') params = c.hidden + c.hidden * c.hidden;
  } else if (kind === 'ffn' && spec) {
    const f = spec as FfnSpec;
    params = f.kind === 'swiglu' ? c.hidden + 3 * c.hidden * f.width : f.kind === 'linear' ? c.hidden + c.hidden * c.hidden : 0;
  }
  return {
    id, kind, spec, num_params: params, param_memory_mib: (params * 4) / MIB, kv_cache_mib: kv / MIB,
    prefill_ms: m.prefill.median, prefill_spread: m.prefill.spread, decode_ms: m.decodeMs, runtime_ms: m.prefill.median + m.decodeMs,
  };
}

export type ProfileEvent = { kind: 'measured'; cost: SubblockCost; done: number; total: number } | { kind: 'progress'; done: number; total: number };

/**
 * How many copies of a layer are stacked to measure it: as many as the model has (up to 8), so
 * the weights compete for caches as they do in the real model, within about 4 GiB of weights.
 */
export function stackDepth(c: ModelConfig): number {
  const p = c.layers[0];
  const ffn = p.ffn.kind === 'swiglu' ? 3 * c.hidden * p.ffn.width : c.hidden * c.hidden;
  const bytes = 4 * (2 * c.hidden * c.heads * c.headDim + 2 * c.hidden * c.heads * c.headDim + ffn);
  return Math.max(1, Math.min(8, c.layers.length, Math.floor(4 * 2 ** 30 / bytes)));
}

/**
 * Every option of the space, each measured as a whole model made of `k` copies of a layer that
 * holds just that subblock (the other half a no-op), minus the model with no layers, divided by
 * k: the same code path, call pattern and cache pressure as the real model.
 */
/** Rounds over all measurements: each round measures everything once, the fastest round wins. */
export const PROFILE_ROUNDS = 3;

/**
 * Measures every model of `models` in `rounds` interleaved rounds and keeps, per model, the
 * fastest prefill and decode seen: a burst of load from elsewhere on a shared machine slows
 * whatever runs during it, and interleaving spreads each model over the whole profile's time,
 * so the minimum comes from a quiet moment for every model alike.
 */
async function measureRounds(models: ModelConfig[], s: ProfileScenario, rounds: number, onRound?: (i: number) => void): Promise<Array<{ prefill: Timing; decode: Timing }>> {
  const best: Array<{ prefill: Timing; decode: Timing }> = [];
  const perRound = { ...s, repeats: Math.max(1, Math.ceil(s.repeats / rounds)) };
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < models.length; i++) {
      const m = await measureModel(models[i], perRound);
      const b = best[i];
      if (!b) best[i] = { prefill: m.prefill, decode: m.decode };
      else {
        const merge = (x: Timing, y: Timing): Timing => summarize([...x.samples, ...y.samples]);
        best[i] = { prefill: merge(b.prefill, m.prefill), decode: merge(b.decode, m.decode) };
      }
      onRound?.(r * models.length + i + 1);
    }
  }
  return best;
}

export async function profileSpace(c: ModelConfig, s: ProfileScenario, space?: SearchSpaceConfig, onEvent?: (e: ProfileEvent) => void, rounds = PROFILE_ROUNDS): Promise<CostTable> {
  const sp = space ?? defaultSpace(c);
  const v = layerVariants(c, 0, sp);
  const noopA: AttentionSpec = { kind: 'noop' };
  const noopF: FfnSpec = { kind: 'noop' };
  const k = stackDepth(c);
  // layer stacks run with a tiny vocabulary, so a large LM head's time (and its noise) does not
  // swamp the layers; the base they are measured against has the same tiny head
  const small: ModelConfig = { ...c, vocab: 256, tieEmbeddings: true };
  const stack = (layer: LayerSpec): ModelConfig => ({ ...small, layers: Array.from({ length: k }, () => layer) });
  const kinds: Array<{ id: string; kind: SubblockCost['kind']; spec: SubblockCost['spec']; layer: LayerSpec }> = [
    { id: 'empty', kind: 'empty', spec: null, layer: { attention: noopA, ffn: noopF } },
    ...v.attention.map((a) => ({ id: a.id, kind: 'attention' as const, spec: a.spec, layer: { attention: a.spec as AttentionSpec, ffn: noopF } })),
    ...v.ffn.map((f) => ({ id: f.id, kind: 'ffn' as const, spec: f.spec, layer: { attention: noopA, ffn: f.spec as FfnSpec } })),
  ];
  const models = [{ ...c, layers: [] }, { ...small, layers: [] }, ...kinds.map((x) => stack(x.layer))];
  const total = models.length * rounds;
  const m = await measureRounds(models, s, rounds, (done) => onEvent?.({ kind: 'progress', done, total }));
  const [h, base] = m;
  // the fastest repeat is the estimate: on a shared machine contention only ever slows a run
  // down, so the minimum is the one least disturbed by it (the spread is kept beside it)
  const head = { prefill_ms: h.prefill.min, decode_ms: h.decode.min, runtime_ms: h.prefill.min + h.decode.min, num_params: c.vocab * c.hidden * (c.tieEmbeddings ? 1 : 2) + c.hidden };
  const costs = kinds.map((x, i) => {
    const t = m[i + 2];
    const measured: MeasuredTime = { prefill: { ...t.prefill, median: (t.prefill.min - base.prefill.min) / k }, decodeMs: (t.decode.min - base.decode.min) / k };
    return cost(x.id, x.kind, x.spec, c, s, measured);
  });
  const [empty, ...subblocks] = costs;
  for (const x of subblocks) onEvent?.({ kind: 'measured', cost: x, done: total, total });
  return {
    version: 1, scenario: s, device: deviceFingerprint(), date: new Date().toISOString(), stackDepth: k,
    model: { hidden: c.hidden, heads: c.heads, headDim: c.headDim, vocab: c.vocab, layers: c.layers.length }, head, empty, subblocks,
  };
}

/** Predicted prefill and decode time of an architecture from the table (additivity). */
export function predict(t: CostTable, layers: LayerSpec[], ids: (l: LayerSpec) => [string, string]): { prefill: number; decode: number } {
  let prefill = t.head.prefill_ms;
  let decode = t.head.decode_ms;
  for (const l of layers) {
    const [a, f] = ids(l);
    const ca = t.subblocks.find((x) => x.id === a)!;
    const cf = t.subblocks.find((x) => x.id === f)!;
    prefill += ca.prefill_ms + cf.prefill_ms - t.empty.prefill_ms;
    decode += ca.decode_ms + cf.decode_ms - t.empty.decode_ms;
  }
  return { prefill, decode };
}

export interface AdditivityRow {
  name: string;
  predictedPrefill: number;
  measuredPrefill: number;
  predictedDecode: number;
  measuredDecode: number;
}

/** The parent and `children` random architectures from the space, measured end to end. */
export async function additivityCheck(c: ModelConfig, t: CostTable, s: ProfileScenario, space: SearchSpaceConfig | undefined, children: number, layers: number, seed = 0): Promise<AdditivityRow[]> {
  const sp = space ?? defaultSpace(c);
  const v = layerVariants(c, 0, sp);
  const rng = createRng(seed);
  const idOf = (l: LayerSpec): [string, string] => [
    v.attention.find((x) => JSON.stringify(x.spec) === JSON.stringify(l.attention))!.id,
    v.ffn.find((x) => JSON.stringify(x.spec) === JSON.stringify(l.ffn))!.id,
  ];
  const archs: Array<{ name: string; layers: LayerSpec[] }> = [{ name: 'parent', layers: c.layers.slice(0, layers) }];
  for (let k = 0; k < children; k++)
    archs.push({ name: `child ${k + 1}`, layers: Array.from({ length: layers }, () => ({ attention: v.attention[rng.int(v.attention.length)].spec as AttentionSpec, ffn: v.ffn[rng.int(v.ffn.length)].spec as FfnSpec })) });
  const rows: AdditivityRow[] = [];
  const measured = await measureRounds(archs.map((a) => ({ ...c, layers: a.layers })), s, PROFILE_ROUNDS);
  archs.forEach((a, i) => {
    const p = predict(t, a.layers, idOf);
    rows.push({ name: a.name, predictedPrefill: p.prefill, measuredPrefill: measured[i].prefill.min, predictedDecode: p.decode, measuredDecode: measured[i].decode.min });
  });
  return rows;
}
