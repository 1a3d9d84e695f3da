/**
 * Model configuration: Hugging Face Llama `config.json` (old and new keys) and the DeciLM /
 * nemotron-nas variant with per-layer `block_configs`, parsed into one internal shape where
 * every layer says what its attention and FFN are.
 */
import { PuzzleError } from '../core/errors.js';
import type { RopeScaling } from './rope.js';
import { blockConfigToLayer, layerToBlockConfig, type DeciBlockConfig } from './decilm.js';

export type AttentionSpec = { kind: 'gqa'; kvHeads: number } | { kind: 'linear' } | { kind: 'noop' };
export type FfnSpec = { kind: 'swiglu'; width: number } | { kind: 'linear' } | { kind: 'noop' };
export interface LayerSpec {
  attention: AttentionSpec;
  ffn: FfnSpec;
}

export interface ModelConfig {
  hidden: number;
  heads: number;
  headDim: number;
  vocab: number;
  layers: LayerSpec[];
  eps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositions: number;
  tieEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  /** storage dtype the checkpoint declared (math is fp32 here) */
  dtype: 'float32' | 'bfloat16' | 'float16';
}

type Json = Record<string, unknown>;

function num(j: Json, key: string, file: string, opts: { int?: boolean; min?: number } = {}): number {
  const v = j[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || (opts.int && !Number.isInteger(v)) || (opts.min !== undefined && v < opts.min))
    throw new PuzzleError('ERR_PUZZLE_CONFIG', `${file}: "${key}" must be ${opts.int ? 'an integer' : 'a number'}${opts.min !== undefined ? ` >= ${opts.min}` : ''}, got ${JSON.stringify(v)}`);
  return v;
}

function optNum(j: Json, key: string, file: string, def: number, int = false): number {
  return j[key] === undefined || j[key] === null ? def : num(j, key, file, { int });
}

/** Parses a config.json object (Llama or DeciLM). `file` names it in errors. */
export function parseConfig(j: Json, file = 'config.json'): ModelConfig {
  if (typeof j !== 'object' || j === null) throw new PuzzleError('ERR_PUZZLE_CONFIG', `${file}: expected a JSON object`);
  const modelType = String(j.model_type ?? 'llama');
  if (!['llama', 'nemotron-nas', 'deci'].includes(modelType))
    throw new PuzzleError('ERR_PUZZLE_CONFIG', `${file}: model_type "${modelType}" is not supported (expected "llama" or "nemotron-nas")`);
  const hidden = num(j, 'hidden_size', file, { int: true, min: 1 });
  const heads = num(j, 'num_attention_heads', file, { int: true, min: 1 });
  const nLayers = num(j, 'num_hidden_layers', file, { int: true, min: 1 });
  const vocab = num(j, 'vocab_size', file, { int: true, min: 1 });
  const headDim = optNum(j, 'head_dim', file, hidden / heads, true);
  if (!Number.isInteger(headDim) || headDim % 2)
    throw new PuzzleError('ERR_PUZZLE_CONFIG', `${file}: head_dim ${headDim} must be an even integer (hidden_size / num_attention_heads when absent)`);
  // RoPE: new style rope_parameters {rope_theta, rope_type, ...} or old rope_theta + rope_scaling
  const rp = (j.rope_parameters ?? null) as Json | null;
  const ropeTheta = rp && typeof rp.rope_theta === 'number' ? rp.rope_theta : optNum(j, 'rope_theta', file, 10000);
  let ropeScaling = (rp ?? j.rope_scaling ?? null) as RopeScaling | null;
  const ropeKind = ropeScaling?.rope_type ?? ropeScaling?.type;
  if (!ropeKind || ropeKind === 'default') ropeScaling = null;
  else if (ropeKind !== 'llama3')
    throw new PuzzleError('ERR_PUZZLE_CONFIG', `${file}: rope type "${ropeKind}" is not supported (expected "default" or "llama3")`);
  const dtypeName = String(j.dtype ?? j.torch_dtype ?? 'float32');
  const dtype = dtypeName === 'bfloat16' ? 'bfloat16' : dtypeName === 'float16' ? 'float16' : 'float32';

  let layers: LayerSpec[];
  if (modelType === 'llama') {
    const kv = optNum(j, 'num_key_value_heads', file, heads, true);
    if (heads % kv) throw new PuzzleError('ERR_PUZZLE_CONFIG', `${file}: num_key_value_heads ${kv} must divide num_attention_heads ${heads}`);
    const width = num(j, 'intermediate_size', file, { int: true, min: 1 });
    layers = Array.from({ length: nLayers }, () => ({ attention: { kind: 'gqa', kvHeads: kv }, ffn: { kind: 'swiglu', width } }));
  } else {
    const bc = j.block_configs;
    if (!Array.isArray(bc) || bc.length !== nLayers)
      throw new PuzzleError('ERR_PUZZLE_CONFIG', `${file}: "block_configs" must be a list of ${nLayers} entries (num_hidden_layers)`);
    layers = bc.map((b, i) => blockConfigToLayer(b as DeciBlockConfig, { hidden, heads }, `${file}: block_configs[${i}]`));
  }
  return {
    hidden, heads, headDim, vocab, layers,
    eps: optNum(j, 'rms_norm_eps', file, 1e-5),
    ropeTheta, ropeScaling,
    maxPositions: optNum(j, 'max_position_embeddings', file, 2048, true),
    tieEmbeddings: Boolean(j.tie_word_embeddings ?? false),
    bosTokenId: typeof j.bos_token_id === 'number' ? j.bos_token_id : null,
    eosTokenId: (typeof j.eos_token_id === 'number' || Array.isArray(j.eos_token_id)) ? (j.eos_token_id as number | number[]) : null,
    dtype,
  };
}

/** True when every layer is the same GQA + SwiGLU block: a plain Llama. */
export function isUniformLlama(c: ModelConfig): boolean {
  const a = c.layers[0];
  return c.layers.every((l) => l.attention.kind === 'gqa' && l.ffn.kind === 'swiglu' &&
    a.attention.kind === 'gqa' && a.ffn.kind === 'swiglu' &&
    l.attention.kvHeads === a.attention.kvHeads && l.ffn.width === a.ffn.width);
}

/** config.json for a model: LlamaForCausalLM when uniform, else DeciLMForCausalLM (nemotron-nas). */
export function toHfConfig(c: ModelConfig, opts: { forceDeci?: boolean } = {}): Json {
  const common: Json = {
    hidden_size: c.hidden, num_attention_heads: c.heads, head_dim: c.headDim, num_hidden_layers: c.layers.length,
    vocab_size: c.vocab, rms_norm_eps: c.eps, rope_theta: c.ropeTheta, rope_scaling: c.ropeScaling,
    max_position_embeddings: c.maxPositions, tie_word_embeddings: c.tieEmbeddings,
    bos_token_id: c.bosTokenId, eos_token_id: c.eosTokenId, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
    initializer_range: 0.02, torch_dtype: c.dtype,
  };
  if (!opts.forceDeci && isUniformLlama(c)) {
    const l = c.layers[0] as { attention: { kind: 'gqa'; kvHeads: number }; ffn: { kind: 'swiglu'; width: number } };
    return { architectures: ['LlamaForCausalLM'], model_type: 'llama', ...common, num_key_value_heads: l.attention.kvHeads, intermediate_size: l.ffn.width };
  }
  return {
    architectures: ['DeciLMForCausalLM'], model_type: 'nemotron-nas', ...common,
    num_key_value_heads: null, intermediate_size: null,
    block_configs: c.layers.map((l) => layerToBlockConfig(l, { hidden: c.hidden, heads: c.heads })),
  };
}

/** Parameters of one layer (weights only; norms included). */
export function layerParams(c: ModelConfig, l: LayerSpec): number {
  const C = c.hidden;
  let n = 0;
  if (l.attention.kind === 'gqa') n += C + 2 * C * c.heads * c.headDim + 2 * C * l.attention.kvHeads * c.headDim;
  else if (l.attention.kind === 'linear') n += C + C * C;
  if (l.ffn.kind === 'swiglu') n += C + 3 * C * l.ffn.width;
  else if (l.ffn.kind === 'linear') n += C + C * C;
  return n;
}

export function modelParams(c: ModelConfig): number {
  return c.layers.reduce((s, l) => s + layerParams(c, l), 0) + c.vocab * c.hidden * (c.tieEmbeddings ? 1 : 2) + c.hidden;
}
