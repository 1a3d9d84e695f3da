/**
 * `puzzle library build`: every layer x every option of the search space, initialised and
 * trained by BLD, stored entry by entry. Resumable (finished entries are skipped) and shardable
 * (shard i of N takes the layers with layer % N == i).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PuzzleError } from '../core/errors.js';
import { Block } from '../core/block.js';
import { loadModel } from '../model/hf.js';
import { blockShape, type ModelDType } from '../model/llama.js';
import type { PackedSequences } from '../train/batches.js';
import { DEFAULT_BLD, coupledJob, decoupledJob, trainLayer, type BldSettings, type VariantJob } from './bld.js';
import { defaultSpace, layerVariants, type SearchSpaceConfig } from './space.js';
import { hasEntry, mergeLibrary, storeEntry, writeHeader, type CheckResult } from './store.js';
import type { DeviceName } from '../core/tensor.js';

/** Fingerprint of a model folder: its config and the names, sizes of its weight files. */
export function folderFingerprint(dir: string): string {
  const h = createHash('sha256');
  h.update(readFileSync(join(dir, 'config.json')));
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors')).sort()) h.update(`${f}:${statSync(join(dir, f)).size}`);
  return h.digest('hex').slice(0, 16);
}

export function dataFingerprint(train: PackedSequences, validation: PackedSequences): string {
  const h = createHash('sha256');
  for (const d of [train, validation]) {
    h.update(`${d.count}x${d.seqLen}`);
    for (let i = 0; i < Math.min(d.count, 64); i++) h.update(Buffer.from(d.get(i).buffer, d.get(i).byteOffset, d.get(i).byteLength));
  }
  return h.digest('hex').slice(0, 16);
}

export type LibraryEvent =
  | { kind: 'layer'; layer: number; layers: number; variants: number; skipped: number }
  | { kind: 'step'; layer: number; step: number; steps: number }
  | { kind: 'entry'; layer: number; id: string; valNmseInit: number; valNmseBld: number };

export interface BuildOptions {
  parentDir: string;
  lib: string;
  train: PackedSequences;
  validation: PackedSequences;
  dataSpec: string;
  space?: SearchSpaceConfig;
  settings?: Partial<BldSettings>;
  /** train attention x FFN pairs together instead of each subblock beside the frozen parent */
  coupled?: boolean;
  /** restrict to some layers (ablations) */
  layers?: number[];
  shard?: { index: number; count: number };
  /** where the parent runs and the variants train (default cpu) */
  device?: DeviceName;
  /** 'bfloat16': the parent and the variants in mixed precision (default float32) */
  dtype?: ModelDType;
  onEvent?: (e: LibraryEvent) => void;
}

export async function buildLibrary(o: BuildOptions): Promise<CheckResult> {
  const parent = loadModel(o.parentDir, o.device, o.dtype);
  const c = parent.config;
  const space = o.space ?? defaultSpace(c);
  const settings: BldSettings = { ...DEFAULT_BLD, ...o.settings };
  const shard = o.shard ?? { index: 0, count: 1 };
  if (!(shard.count >= 1 && shard.index >= 0 && shard.index < shard.count))
    throw new PuzzleError('ERR_PUZZLE_ARG', `--shard ${shard.index}/${shard.count}: expected i/N with 0 <= i < N`);
  const layers = o.layers ?? c.layers.map((_, i) => i);
  const pfp = folderFingerprint(o.parentDir);
  const dfp = dataFingerprint(o.train, o.validation);
  const jobsOf = (layer: number): { parentSubs: ReturnType<typeof layerVariants>; jobs: VariantJob[] } => {
    const v = layerVariants(c, layer, space);
    const p = c.layers[layer];
    const jobs = o.coupled
      ? v.attention.flatMap((a) => v.ffn.map((f) => coupledJob(a, f))).filter((j) => !(j.layer.attention === p.attention && j.layer.ffn === p.ffn))
      : [...v.attention, ...v.ffn].filter((s) => !s.parent).map((s) => decoupledJob(p, s));
    return { parentSubs: v, jobs };
  };
  const expected = layers.flatMap((layer) => {
    const { parentSubs, jobs } = jobsOf(layer);
    const parents = o.coupled ? [] : [parentSubs.attention[0].id, parentSubs.ffn[0].id];
    return [...parents, ...jobs.map((j) => j.id)].map((id) => ({ layer, id }));
  });
  writeHeader(o.lib, {
    version: 1, parentDir: o.parentDir, parentFingerprint: pfp, dataSpec: o.dataSpec, dataFingerprint: dfp,
    layers: c.layers.length, hidden: c.hidden, heads: c.heads, expected, settings: { ...settings, coupled: Boolean(o.coupled), space },
  });
  const dims = { hidden: c.hidden, heads: c.heads };
  try {
    for (const layer of layers) {
      if (layer % shard.count !== shard.index) continue;
      const { parentSubs, jobs } = jobsOf(layer);
      const p = c.layers[layer];
      // the parent's own subblocks are entries too (weights copied, no training)
      if (!o.coupled)
        for (const s of [parentSubs.attention[0], parentSubs.ffn[0]]) {
          if (hasEntry(o.lib, layer, s.id)) continue;
          const b = new Block(blockShape(c, p));
          for (const info of b.params()) b.param(info.name).copyFrom(parent.blocks[layer].param(info.name).toArray() as Float32Array);
          storeEntry(o.lib, {
            layer, id: s.id, kind: s.kind, attention: s.kind === 'attention' ? p.attention : undefined, ffn: s.kind === 'ffn' ? p.ffn : undefined,
            init: 'parent', tokens: 0, valNmseInit: 0, valNmseBld: 0, parentFingerprint: pfp, dataFingerprint: dfp,
          }, b, dims, [s.kind]);
          b.dispose();
        }
      const todo = jobs.filter((j) => !hasEntry(o.lib, layer, j.id));
      o.onEvent?.({ kind: 'layer', layer, layers: c.layers.length, variants: jobs.length, skipped: jobs.length - todo.length });
      if (!todo.length) continue;
      const trained = await trainLayer({
        parent, layer, jobs: todo, train: o.train, validation: o.validation, settings,
        onProgress: (step, steps) => o.onEvent?.({ kind: 'step', layer, step, steps }),
      });
      for (const t of trained) {
        const init = [t.job.trains.includes('ffn') && t.job.layer.ffn.kind === 'swiglu' ? settings.ffnInit : null,
          t.job.layer.attention.kind === 'linear' || t.job.layer.ffn.kind === 'linear' ? settings.linearInit : null,
          t.job.layer.attention.kind === 'gqa' && t.job.trains.includes('attention') ? 'mean-pool-kv' : null].filter(Boolean).join('+') || 'none';
        storeEntry(o.lib, {
          layer, id: t.job.id, kind: t.job.trains.length === 2 ? 'pair' : t.job.trains[0], attention: t.job.layer.attention, ffn: t.job.layer.ffn,
          init, tokens: t.tokens, valNmseInit: t.valNmseInit, valNmseBld: t.valNmseFinal, parentFingerprint: pfp, dataFingerprint: dfp,
        }, t.block, dims, t.job.trains);
        o.onEvent?.({ kind: 'entry', layer, id: t.job.id, valNmseInit: t.valNmseInit, valNmseBld: t.valNmseFinal });
        t.block.dispose();
      }
    }
  } finally {
    parent.dispose();
  }
  return mergeLibrary(o.lib);
}
