/**
 * The block library on disk (a tested contract):
 *   LIBDIR/library.json                 what was asked: parent, data, space, settings, fingerprints
 *   LIBDIR/subblocks/layer-NNN/ID.safetensors   the subblock's weights (names as in an HF layer)
 *   LIBDIR/subblocks/layer-NNN/ID.json          its entry, written after the weights: done marker
 *   LIBDIR/manifest.json                the merged, checked list of every entry (after merge)
 * Entries are separate files, so shards building disjoint layers into shared storage never
 * write the same file, and an interrupted build resumes at the first entry without a .json.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PuzzleError } from '../core/errors.js';
import type { Block } from '../core/block.js';
import type { AttentionSpec, FfnSpec } from '../model/config.js';
import { layerToBlockConfig, type DeciBlockConfig } from '../model/decilm.js';
import { openSafetensors, readFloat32, writeSafetensors, type TensorToWrite } from '../model/safetensors.js';
import { writeJsonAtomic } from '../run/atomic.js';

export interface LibraryHeader {
  version: 1;
  parentDir: string;
  parentFingerprint: string;
  dataSpec: string;
  dataFingerprint: string;
  layers: number;
  hidden: number;
  heads: number;
  /** every (layer, id) the library must hold */
  expected: Array<{ layer: number; id: string }>;
  settings: Record<string, unknown>;
}

export interface LibraryEntry {
  layer: number;
  id: string;
  kind: 'attention' | 'ffn' | 'pair';
  /** the DeciLM block config half (or both halves for a pair) this entry implements */
  blockConfig: Partial<DeciBlockConfig>;
  attention?: AttentionSpec;
  ffn?: FfnSpec;
  init: string;
  tokens: number;
  valNmseInit: number;
  valNmseBld: number;
  parentFingerprint: string;
  dataFingerprint: string;
  file: string;
}

export const layerDir = (lib: string, layer: number) => join(lib, 'subblocks', `layer-${String(layer).padStart(3, '0')}`);

export function readHeader(lib: string): LibraryHeader {
  const p = join(lib, 'library.json');
  if (!existsSync(p)) throw new PuzzleError('ERR_PUZZLE_LIBRARY', `${lib} is not a block library (no library.json)`);
  return JSON.parse(readFileSync(p, 'utf8')) as LibraryHeader;
}

export function writeHeader(lib: string, h: LibraryHeader): void {
  const p = join(lib, 'library.json');
  if (existsSync(p)) {
    const old = readHeader(lib);
    const same = old.parentFingerprint === h.parentFingerprint && old.dataFingerprint === h.dataFingerprint &&
      JSON.stringify(old.expected) === JSON.stringify(h.expected) && JSON.stringify(old.settings) === JSON.stringify(h.settings);
    if (!same)
      throw new PuzzleError('ERR_PUZZLE_LIBRARY', `${lib} was started with another parent, data, space or settings; build into a new folder or delete it`);
    return;
  }
  mkdirSync(lib, { recursive: true });
  writeJsonAtomic(p, h);
}

export function entryPaths(lib: string, layer: number, id: string) {
  const d = layerDir(lib, layer);
  return { dir: d, weights: join(d, `${id}.safetensors`), json: join(d, `${id}.json`) };
}

export function hasEntry(lib: string, layer: number, id: string): boolean {
  return existsSync(entryPaths(lib, layer, id).json);
}

/** Stores the trained subblock(s) of `block` (only the parameters of the trained part). */
export function storeEntry(lib: string, entry: Omit<LibraryEntry, 'file' | 'blockConfig'>, block: Block, dims: { hidden: number; heads: number }, trains: Array<'attention' | 'ffn'>): void {
  const p = entryPaths(lib, entry.layer, entry.id);
  mkdirSync(p.dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const info of block.params()) {
    const attn = info.name.startsWith('self_attn.') || info.name === 'input_layernorm.weight';
    if (!trains.includes(attn ? 'attention' : 'ffn')) continue;
    tensors[info.name] = { dtype: 'F32', shape: info.shape, data: block.param(info.name).toArray() as Float32Array };
  }
  writeSafetensors(p.weights, tensors, { layer: String(entry.layer), id: entry.id });
  const full = layerToBlockConfig({ attention: entry.attention ?? { kind: 'noop' }, ffn: entry.ffn ?? { kind: 'noop' } }, dims);
  const blockConfig: Partial<DeciBlockConfig> = {};
  if (trains.includes('attention')) blockConfig.attention = full.attention;
  if (trains.includes('ffn')) blockConfig.ffn = full.ffn;
  writeJsonAtomic(p.json, { ...entry, blockConfig, file: `${entry.id}.safetensors` } satisfies LibraryEntry);
}

export function readEntry(lib: string, layer: number, id: string): LibraryEntry {
  const p = entryPaths(lib, layer, id).json;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as LibraryEntry;
  } catch (err) {
    throw new PuzzleError('ERR_PUZZLE_LIBRARY', `cannot read library entry ${p}: ${(err as Error).message}`);
  }
}

/** Copies an entry's weights into the matching parameters of `block`. */
export function loadEntryWeights(lib: string, entry: LibraryEntry, block: Block): void {
  const f = openSafetensors(join(layerDir(lib, entry.layer), entry.file));
  for (const name of f.tensors.keys()) block.param(name).copyFrom(readFloat32(f, name));
}

export interface CheckResult {
  complete: boolean;
  missing: Array<{ layer: number; id: string }>;
  problems: string[];
  entries: LibraryEntry[];
}

/** Verifies every expected entry exists, is readable and belongs to this parent and data. */
export function checkLibrary(lib: string): CheckResult {
  const h = readHeader(lib);
  const missing: CheckResult['missing'] = [];
  const problems: string[] = [];
  const entries: LibraryEntry[] = [];
  for (const { layer, id } of h.expected) {
    if (!hasEntry(lib, layer, id)) {
      missing.push({ layer, id });
      continue;
    }
    const e = readEntry(lib, layer, id);
    if (e.parentFingerprint !== h.parentFingerprint) problems.push(`layer ${layer} ${id}: built from another parent`);
    if (e.dataFingerprint !== h.dataFingerprint) problems.push(`layer ${layer} ${id}: built on other data`);
    try {
      openSafetensors(join(layerDir(lib, layer), e.file));
    } catch (err) {
      problems.push(`layer ${layer} ${id}: ${(err as Error).message}`);
    }
    entries.push(e);
  }
  // stray entries (from another space) are reported, not silently merged
  const sub = join(lib, 'subblocks');
  if (existsSync(sub))
    for (const d of readdirSync(sub))
      for (const f of readdirSync(join(sub, d)).filter((x) => x.endsWith('.json'))) {
        const layer = Number(d.slice(6));
        const id = f.slice(0, -5);
        if (!h.expected.some((x) => x.layer === layer && x.id === id)) problems.push(`unexpected entry ${d}/${f}`);
      }
  return { complete: missing.length === 0 && problems.length === 0, missing, problems, entries };
}

/** Writes manifest.json when the library is complete and consistent. */
export function mergeLibrary(lib: string): CheckResult {
  const r = checkLibrary(lib);
  if (r.complete) writeJsonAtomic(join(lib, 'manifest.json'), { ...readHeader(lib), entries: r.entries });
  return r;
}
