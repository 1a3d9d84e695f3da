/**
 * The search space: which attention and FFN options every layer may take. A subblock variant
 * is identified everywhere by its DeciLM block config half (METHOD.md section 8), so what the
 * library holds is what the export writes.
 */
import { PuzzleError } from '../core/errors.js';
import type { AttentionSpec, FfnSpec, LayerSpec, ModelConfig } from '../model/config.js';

export type AttentionOption = { kvHeads: number } | 'linear' | 'noop';
export type FfnOption = { fraction: number } | { width: number } | 'linear' | 'noop';

export interface SearchSpaceConfig {
  attention: AttentionOption[];
  ffn: FfnOption[];
  /** FFN widths are rounded to a multiple of this (at least one multiple) */
  ffnMultiple: number;
}

export type SubblockKind = 'attention' | 'ffn';

export interface Subblock {
  kind: SubblockKind;
  /** stable id, e.g. "attn-kv2", "attn-linear", "ffn-w384", "ffn-noop" */
  id: string;
  spec: AttentionSpec | FfnSpec;
  /** true for the parent's own subblock (needs no training) */
  parent: boolean;
}

/** Default space: every KV count dividing the heads up to the parent's, linear, no-op; FFN at 100/75/50/25/10%, linear, no-op. */
export function defaultSpace(c: ModelConfig): SearchSpaceConfig {
  const p = c.layers[0];
  const kvMax = p.attention.kind === 'gqa' ? p.attention.kvHeads : c.heads;
  const kvs: AttentionOption[] = [];
  for (let k = kvMax; k >= 1; k--) if (c.heads % k === 0 && kvMax % k === 0) kvs.push({ kvHeads: k });
  const width = p.ffn.kind === 'swiglu' ? p.ffn.width : 4 * c.hidden;
  return {
    attention: [...kvs, 'linear', 'noop'],
    ffn: [{ fraction: 1 }, { fraction: 0.75 }, { fraction: 0.5 }, { fraction: 0.25 }, { fraction: 0.1 }, 'linear', 'noop'],
    ffnMultiple: width >= 4096 ? 256 : 32,
  };
}

export function attentionId(a: AttentionSpec): string {
  return a.kind === 'gqa' ? `attn-kv${a.kvHeads}` : `attn-${a.kind}`;
}

export function ffnId(f: FfnSpec): string {
  return f.kind === 'swiglu' ? `ffn-w${f.width}` : `ffn-${f.kind}`;
}

/** The subblock variants of one layer of the parent (deduplicated, parent first). */
export function layerVariants(c: ModelConfig, layer: number, space: SearchSpaceConfig): { attention: Subblock[]; ffn: Subblock[] } {
  const p = c.layers[layer];
  if (!p) throw new PuzzleError('ERR_PUZZLE_ARG', `layer ${layer} does not exist (the parent has ${c.layers.length})`);
  const attention: Subblock[] = [{ kind: 'attention', id: attentionId(p.attention), spec: p.attention, parent: true }];
  for (const o of space.attention) {
    let spec: AttentionSpec;
    if (o === 'linear' || o === 'noop') spec = { kind: o };
    else {
      if (!Number.isInteger(o.kvHeads) || o.kvHeads < 1 || c.heads % o.kvHeads)
        throw new PuzzleError('ERR_PUZZLE_CONFIG', `search space: kvHeads ${o.kvHeads} must divide the ${c.heads} query heads`);
      if (p.attention.kind === 'gqa' && p.attention.kvHeads % o.kvHeads)
        throw new PuzzleError('ERR_PUZZLE_CONFIG', `search space: kvHeads ${o.kvHeads} must divide the parent's ${p.attention.kvHeads} KV heads (groups are mean-pooled)`);
      spec = { kind: 'gqa', kvHeads: o.kvHeads };
    }
    const id = attentionId(spec);
    if (!attention.some((s) => s.id === id)) attention.push({ kind: 'attention', id, spec, parent: false });
  }
  const parentWidth = p.ffn.kind === 'swiglu' ? p.ffn.width : 0;
  const ffn: Subblock[] = [{ kind: 'ffn', id: ffnId(p.ffn), spec: p.ffn, parent: true }];
  for (const o of space.ffn) {
    let spec: FfnSpec;
    if (o === 'linear' || o === 'noop') spec = { kind: o };
    else {
      const raw = 'width' in o ? o.width : o.fraction * parentWidth;
      if (!(raw > 0)) throw new PuzzleError('ERR_PUZZLE_CONFIG', `search space: FFN option ${JSON.stringify(o)} gives no width`);
      const m = space.ffnMultiple;
      const width = Math.min(parentWidth || Infinity, Math.max(m, Math.round(raw / m) * m));
      spec = { kind: 'swiglu', width };
    }
    const id = ffnId(spec);
    if (!ffn.some((s) => s.id === id)) ffn.push({ kind: 'ffn', id, spec, parent: false });
  }
  return { attention, ffn };
}

/** A layer made of one attention and one FFN subblock. */
export function composeLayer(a: Subblock, f: Subblock): LayerSpec {
  return { attention: a.spec as AttentionSpec, ffn: f.spec as FfnSpec };
}
