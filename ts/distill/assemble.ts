/**
 * A search solution made into a model (METHOD.md section 7): every layer's block composed from
 * the library's entries (a coupled pair where the library holds one, else the decoupled
 * attention and FFN halves), the parent's embedding, final norm and LM head around them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { PuzzleError } from '../core/errors.js';
import type { Block } from '../core/block.js';
import type { DeviceName } from '../core/tensor.js';
import { composeBlock } from '../library/compose.js';
import { checkLibrary, readHeader, type LibraryEntry } from '../library/store.js';
import type { ModelConfig } from '../model/config.js';
import { loadModel } from '../model/hf.js';
import { LlamaModel, type ModelDType } from '../model/llama.js';

/** One variant name per layer, as the search reports them ("attn-kv2+ffn-w384"). */
export type Architecture = string[];

/**
 * Reads an architecture from `puzzle search --json` output (one result or a list: the first is
 * taken unless `solution` picks another), or from a plain JSON list of variant names.
 */
export function readArchitecture(path: string, solution = 0): Architecture {
  if (!existsSync(path)) throw new PuzzleError('ERR_PUZZLE_FILE', `--solution ${path} does not exist`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new PuzzleError('ERR_PUZZLE_ARG', `--solution ${path} is not JSON (${(err as Error).message})`);
  }
  if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return raw as string[];
  const list = Array.isArray(raw) ? raw : [raw];
  const r = list[solution] as { status?: string; layers?: Array<{ layer: number; variant: string }> } | undefined;
  if (!r || !Array.isArray(r.layers) || r.layers.length === 0)
    throw new PuzzleError('ERR_PUZZLE_ARG', `--solution ${path}: expected puzzle search --json output with a "layers" list (solution ${solution}), or a JSON list of variant names${r?.status ? `; the search says ${r.status}` : ''}`);
  return [...r.layers].sort((a, b) => a.layer - b.layer).map((l) => l.variant);
}

/** The library entries that make up `variant` on `layer`. */
function entriesFor(byKey: Map<string, LibraryEntry>, layer: number, variant: string): { attention: LibraryEntry; ffn: LibraryEntry } {
  const pair = byKey.get(`${layer}/${variant}`);
  if (pair?.kind === 'pair') return { attention: pair, ffn: pair };
  const [a, f, ...rest] = variant.split('+');
  const attention = byKey.get(`${layer}/${a}`);
  const ffn = byKey.get(`${layer}/${f}`);
  if (rest.length || !attention || attention.kind !== 'attention' || !ffn || ffn.kind !== 'ffn')
    throw new PuzzleError('ERR_PUZZLE_ARG', `layer ${layer}: the library has no variant "${variant}" (expected ATTENTION+FFN of its entries, e.g. attn-kv2+ffn-w384)`);
  return { attention, ffn };
}

/** The child's config: the parent's with every layer's subblocks replaced. */
export function childConfig(parent: ModelConfig, lib: string, arch: Architecture): ModelConfig {
  const check = checkLibrary(lib);
  const byKey = new Map(check.entries.map((e) => [`${e.layer}/${e.id}`, e]));
  return { ...parent, layers: arch.map((v, i) => {
    const { attention, ffn } = entriesFor(byKey, i, v);
    return { attention: attention.attention!, ffn: ffn.ffn! };
  }) };
}

/** Builds the child in memory on `device`, in `dtype` (weights from the library and the parent). */
export function assembleChild(lib: string, arch: Architecture, parentDir?: string, device: DeviceName = 'cpu', dtype: ModelDType = 'float32'): LlamaModel {
  const header = readHeader(lib);
  const check = checkLibrary(lib);
  if (!check.complete) throw new PuzzleError('ERR_PUZZLE_LIBRARY', `${lib} is incomplete (${check.missing.length} missing); finish puzzle library build first`);
  const parent = loadModel(parentDir ?? header.parentDir);  // read on the host: only its embedding, norm and head are copied
  try {
    if (arch.length !== parent.config.layers.length)
      throw new PuzzleError('ERR_PUZZLE_ARG', `the architecture has ${arch.length} layers, the parent ${parent.config.layers.length}`);
    const byKey = new Map(check.entries.map((e) => [`${e.layer}/${e.id}`, e]));
    const blocks: Block[] = [];
    try {
      arch.forEach((v, i) => {
        const { attention, ffn } = entriesFor(byKey, i, v);
        blocks.push(composeBlock(parent.config, lib, attention, ffn, device, dtype));
      });
    } catch (err) {
      blocks.forEach((b) => b.dispose());
      throw err;
    }
    const config: ModelConfig = { ...parent.config, layers: blocks.map((_, i) => {
      const { attention, ffn } = entriesFor(byKey, i, arch[i]);
      return { attention: attention.attention!, ffn: ffn.ffn! };
    }) };
    const child = new LlamaModel(config, blocks, device, dtype);
    child.embed.copyFrom(parent.embed.toArray() as Float32Array);
    child.norm.copyFrom(parent.norm.toArray() as Float32Array);
    if (child.head && parent.head) child.head.copyFrom(parent.head.toArray() as Float32Array);
    return child;
  } finally {
    parent.dispose();
  }
}
