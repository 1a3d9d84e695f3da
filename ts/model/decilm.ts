/**
 * DeciLM / nemotron-nas block configs (METHOD.md section 8) <-> our layer specs.
 *   kv_heads = num_attention_heads / n_heads_in_group
 *   intermediate_size = round_up(int(2 * ffn_mult * hidden / 3), 256)
 * A width that is not a multiple of 256 cannot be expressed by ffn_mult alone; we then also
 * write `intermediate_size` into the block's ffn config (our loader prefers it) and say so.
 */
import { PuzzleError } from '../core/errors.js';
import type { LayerSpec } from './config.js';

export interface DeciBlockConfig {
  attention: { n_heads_in_group: number | null; no_op: boolean; replace_with_linear: boolean };
  ffn: { ffn_mult: number | null; no_op: boolean; replace_with_linear: boolean; intermediate_size?: number };
}

const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;

/** transformers' DeciLM: _find_multiple(int(2 * ffn_mult * n_embd / 3), 256) */
export function widthFromFfnMult(ffnMult: number, hidden: number): number {
  return roundUp(Math.trunc((2 * ffnMult * hidden) / 3), 256);
}

/**
 * The shortest decimal ffn_mult whose width round-trips exactly, or null when the width is not
 * a multiple of 256 (not representable by ffn_mult).
 */
export function ffnMultForWidth(width: number, hidden: number): number | null {
  if (width % 256 !== 0) return null;
  const exact = (1.5 * width) / hidden;
  for (let digits = 1; digits <= 12; digits++) {
    const m = Number(exact.toFixed(digits));
    if (widthFromFfnMult(m, hidden) === width) return m;
  }
  return widthFromFfnMult(exact, hidden) === width ? exact : null;
}

export function layerToBlockConfig(l: LayerSpec, dims: { hidden: number; heads: number }): DeciBlockConfig {
  const a = l.attention;
  const f = l.ffn;
  const attention = {
    n_heads_in_group: a.kind === 'gqa' ? dims.heads / a.kvHeads : null,
    no_op: a.kind === 'noop',
    replace_with_linear: a.kind === 'linear',
  };
  if (f.kind !== 'swiglu') return { attention, ffn: { ffn_mult: null, no_op: f.kind === 'noop', replace_with_linear: f.kind === 'linear' } };
  const mult = ffnMultForWidth(f.width, dims.hidden);
  return {
    attention,
    ffn: mult !== null
      ? { ffn_mult: mult, no_op: false, replace_with_linear: false }
      // not a multiple of 256: the nearest ffn_mult for other tools, the exact width for ours
      : { ffn_mult: Number(((1.5 * f.width) / dims.hidden).toFixed(6)), no_op: false, replace_with_linear: false, intermediate_size: f.width },
  };
}

export function blockConfigToLayer(b: DeciBlockConfig, dims: { hidden: number; heads: number }, where: string): LayerSpec {
  if (!b || typeof b !== 'object' || !b.attention || !b.ffn)
    throw new PuzzleError('ERR_PUZZLE_CONFIG', `${where}: expected {"attention": {...}, "ffn": {...}}`);
  let attention: LayerSpec['attention'];
  if (b.attention.no_op) attention = { kind: 'noop' };
  else if (b.attention.replace_with_linear) attention = { kind: 'linear' };
  else {
    const g = b.attention.n_heads_in_group;
    if (typeof g !== 'number' || !Number.isInteger(g) || g < 1 || dims.heads % g)
      throw new PuzzleError('ERR_PUZZLE_CONFIG', `${where}: attention.n_heads_in_group must be an integer dividing num_attention_heads ${dims.heads}, got ${JSON.stringify(g)}`);
    attention = { kind: 'gqa', kvHeads: dims.heads / g };
  }
  let ffn: LayerSpec['ffn'];
  if (b.ffn.no_op) ffn = { kind: 'noop' };
  else if (b.ffn.replace_with_linear) ffn = { kind: 'linear' };
  else if (typeof b.ffn.intermediate_size === 'number') ffn = { kind: 'swiglu', width: b.ffn.intermediate_size };
  else {
    if (typeof b.ffn.ffn_mult !== 'number' || !(b.ffn.ffn_mult > 0))
      throw new PuzzleError('ERR_PUZZLE_CONFIG', `${where}: ffn.ffn_mult must be a positive number, got ${JSON.stringify(b.ffn.ffn_mult)}`);
    ffn = { kind: 'swiglu', width: widthFromFfnMult(b.ffn.ffn_mult, dims.hidden) };
  }
  return { attention, ffn };
}
