/**
 * Synthetic block libraries with the shape of the paper's 70B search space, for tests, benchmarks
 * and demos (no licensed data needed): 6 attention options (GQA with 8/4/2/1 KV heads, linear,
 * no-op) x 9 FFN options (100/87/75/50/25/20/10%, linear, no-op) = 54 variants per layer.
 *
 * Costs follow a simple roofline of an H100-like device at fp8 (decode steps read the weights and
 * the KV cache; prefill is compute-bound), so budgets trade off the way real ones do. Scores are
 * random but structured: cheaper options hurt more, and early and late layers are more sensitive.
 * Every number is a deterministic function of the seed.
 */
import type { BlockLibrary, DeciBlockConfig, LibraryLayer, NumberTable, Variant } from './library.js';
import { seededRandom } from './random.js';

export interface SyntheticOptions {
  /** Number of layers (default 80). */
  readonly layers?: number;
  /** Seed of the scores (default 1). */
  readonly seed?: number;
  /** The scenario's batch size (default 256) and sequence length (default 1200). */
  readonly batchSize?: number;
  readonly sequenceLength?: number;
  /** Further batch sizes to measure into `stats_by_batch` (default none). */
  readonly extraBatchSizes?: readonly number[];
}

const HIDDEN = 8192;
const QUERY_HEADS = 64;
const HEAD_DIM = 128;
const PARENT_FFN = 28672;
const BANDWIDTH = 3.35e12; // bytes/s
const FLOPS = 1.5e15; // fp8 dense, effective
const MIB = 1024 * 1024;

interface AttentionOption {
  readonly name: string;
  readonly kvHeads: number;
  readonly kind: 'gqa' | 'linear' | 'no_op';
  readonly penalty: number;
}

interface FfnOption {
  readonly name: string;
  readonly ratio: number;
  readonly kind: 'swiglu' | 'linear' | 'no_op';
  readonly penalty: number;
}

const ATTENTION: readonly AttentionOption[] = [
  { name: 'gqa8', kvHeads: 8, kind: 'gqa', penalty: 0 },
  { name: 'gqa4', kvHeads: 4, kind: 'gqa', penalty: 0.02 },
  { name: 'gqa2', kvHeads: 2, kind: 'gqa', penalty: 0.05 },
  { name: 'gqa1', kvHeads: 1, kind: 'gqa', penalty: 0.1 },
  { name: 'linear', kvHeads: 0, kind: 'linear', penalty: 0.3 },
  { name: 'no_op', kvHeads: 0, kind: 'no_op', penalty: 0.5 },
];

const FFN: readonly FfnOption[] = [
  { name: '100%', ratio: 1, kind: 'swiglu', penalty: 0 },
  { name: '87%', ratio: 0.87, kind: 'swiglu', penalty: 0.02 },
  { name: '75%', ratio: 0.75, kind: 'swiglu', penalty: 0.05 },
  { name: '50%', ratio: 0.5, kind: 'swiglu', penalty: 0.12 },
  { name: '25%', ratio: 0.25, kind: 'swiglu', penalty: 0.35 },
  { name: '20%', ratio: 0.2, kind: 'swiglu', penalty: 0.45 },
  { name: '10%', ratio: 0.1, kind: 'swiglu', penalty: 0.7 },
  { name: 'linear', ratio: 0, kind: 'linear', penalty: 1 },
  { name: 'no_op', ratio: 0, kind: 'no_op', penalty: 1.5 },
];

/** The name of the parent's variant on every layer of a synthetic library. */
export const SYNTHETIC_PARENT = 'attention=gqa8 ffn=100%';

/** Builds a synthetic library (see the file comment). */
export function syntheticLibrary(options: SyntheticOptions = {}): BlockLibrary {
  const layers = options.layers ?? 80;
  const batch = options.batchSize ?? 256;
  const sequence = options.sequenceLength ?? 1200;
  const random = seededRandom(options.seed ?? 1);
  const out: LibraryLayer[] = [];
  for (let i = 0; i < layers; i++) {
    // U-shaped sensitivity: first and last layers matter most.
    const edge = Math.abs((2 * i) / Math.max(1, layers - 1) - 1);
    const attentionWeight = (0.3 + 2 * edge ** 3) * (0.5 + random());
    const ffnWeight = (0.6 + 1.5 * edge ** 2) * (0.5 + random());
    const variants: Variant[] = [];
    for (const a of ATTENTION) {
      for (const f of FFN) {
        const kl = a.penalty * attentionWeight + f.penalty * ffnWeight + a.penalty * f.penalty * 0.5 * random();
        const noise = a.penalty + f.penalty === 0 ? 0 : 0.002 * random();
        const stats: Record<string, number> = { ...costs(a, f, batch, sequence) };
        const byBatch: Record<string, NumberTable> = {};
        for (const b of options.extraBatchSizes ?? []) {
          const c = costs(a, f, b, sequence);
          byBatch[String(b)] = { memory_mib: c.memory_mib, runtime_ms: c.runtime_ms, prefill_ms: c.prefill_ms };
        }
        const variant: Variant = {
          name: `attention=${a.name} ffn=${f.name}`,
          block: block(a, f),
          stats,
          metrics: { kl_div: kl + noise, lm_loss: 1.64 + 0.05 * (kl + noise) },
          ...(options.extraBatchSizes?.length ? { stats_by_batch: byBatch } : {}),
        };
        variants.push(variant);
      }
    }
    out.push({ variants, parent: SYNTHETIC_PARENT });
  }
  return { layers: out, scenario: { batch_size: batch, sequence_length: sequence, device: 'synthetic H100-like', dtype: 'fp8' }, source: 'synthetic' };
}

/** Roofline costs of one variant for `batch` sequences of `sequence` tokens (half prompt, half generated). */
function costs(a: AttentionOption, f: FfnOption, batch: number, sequence: number) {
  const width = Math.round((f.ratio * PARENT_FFN) / 256) * 256;
  const attentionParams = a.kind === 'gqa' ? 2 * HIDDEN * HIDDEN + 2 * HIDDEN * a.kvHeads * HEAD_DIM : a.kind === 'linear' ? HIDDEN * HIDDEN : 0;
  const ffnParams = f.kind === 'swiglu' ? 3 * HIDDEN * width : f.kind === 'linear' ? HIDDEN * HIDDEN : 0;
  const params = attentionParams + ffnParams;
  const kvPerTokenBytes = 2 * a.kvHeads * HEAD_DIM; // fp8: one byte per value
  const prompt = sequence / 2;
  const generated = sequence - prompt;
  // Decode: each step reads the weights once and the batch's KV cache (average length ~3/4 of the sequence).
  const decodeStep = Math.max((params + batch * kvPerTokenBytes * 0.75 * sequence) / BANDWIDTH, (2 * params * batch) / FLOPS);
  const prefill = (2 * params * batch * prompt) / FLOPS + (a.kind === 'gqa' ? (2 * batch * prompt * prompt * HIDDEN) / FLOPS : 0);
  const kv = (kvPerTokenBytes * sequence) / MIB;
  return {
    num_params: params,
    param_memory_mib: params / MIB,
    kv_cache_mib: kv,
    memory_mib: params / MIB + batch * kv,
    runtime_ms: 1000 * (prefill + generated * decodeStep),
    prefill_ms: 1000 * prefill,
  };
}

function block(a: AttentionOption, f: FfnOption): DeciBlockConfig {
  const width = Math.round((f.ratio * PARENT_FFN) / 256) * 256;
  return {
    attention: {
      n_heads_in_group: a.kind === 'gqa' ? QUERY_HEADS / a.kvHeads : null,
      no_op: a.kind === 'no_op',
      replace_with_linear: a.kind === 'linear',
    },
    ffn: {
      ffn_mult: f.kind === 'swiglu' ? (width * 3) / (2 * HIDDEN) : null,
      no_op: f.kind === 'no_op',
      replace_with_linear: f.kind === 'linear',
    },
  };
}
