/**
 * The search's input from our own stages: the block library (which variants exist per layer),
 * their replace-1-block scores (`puzzle score`) and the cost table (`puzzle profile`), joined
 * into the search's {@link BlockLibrary} (METHOD.md sections 4-6).
 *
 * Every layer offers every (attention, FFN) pair of its decoupled entries, plus coupled pairs
 * where the library holds them. A pair's score is the sum of its halves' replace-1-block scores
 * (each half was scored beside the parent's other half; the parent's own half scores 0), and
 * its cost is the sum of its halves' costs, minus the empty layer that both measurements
 * include. The non-block part (embedding, final norm, LM head) is the same for every child: it
 * is spread evenly over the layers, so the search's sums are whole-model costs and throughput
 * budgets mean what they say.
 */
import { existsSync, readFileSync } from 'node:fs';
import { PuzzleError } from '../core/errors.js';
import type { ModelConfig } from '../model/config.js';
import { layerToBlockConfig } from '../model/decilm.js';
import type { CostTable, SubblockCost } from '../profile/profile.js';
import { requireSameDevice } from '../profile/scenario.js';
import { scorePath, type ReplaceScore } from '../score/replace1.js';
import type { BlockLibrary, LibraryLayer, Variant } from '../search/library.js';
import { attentionId, ffnId } from './space.js';
import { checkLibrary, type LibraryEntry } from './store.js';

const MIB = 1024 * 1024;

export interface SearchInputOptions {
  /** accept a cost table measured on another device (never the default: costs are per device) */
  allowOtherDevice?: boolean;
}

/** Reads the cost table written by `puzzle profile --out`, with a clear error when it is not one. */
export function readCostTable(path: string): CostTable {
  let t: CostTable;
  try {
    t = JSON.parse(readFileSync(path, 'utf8')) as CostTable;
  } catch (err) {
    throw new PuzzleError('ERR_PUZZLE_ARG', `--costs ${path}: cannot read a cost table (${(err as Error).message}); write one with puzzle profile --out`);
  }
  if (t?.version !== 1 || !Array.isArray(t.subblocks) || !t.head || !t.empty || !t.scenario)
    throw new PuzzleError('ERR_PUZZLE_ARG', `--costs ${path}: not a puzzle cost table (expected version 1 with head, empty and subblocks); write one with puzzle profile --out`);
  return t;
}

function readScore(lib: string, e: LibraryEntry): ReplaceScore {
  const p = scorePath(lib, e.layer, e.id);
  if (!existsSync(p)) throw new PuzzleError('ERR_PUZZLE_LIBRARY', `${p} is missing: layer ${e.layer} ${e.id} has no score; run puzzle score --library ${lib}`);
  return JSON.parse(readFileSync(p, 'utf8')) as ReplaceScore;
}

/** Joins library, scores and costs into the search's input. */
export function buildSearchInput(parent: ModelConfig, lib: string, costs: CostTable, options: SearchInputOptions = {}): BlockLibrary {
  if (!options.allowOtherDevice) requireSameDevice(costs, 'the cost table');
  const m = costs.model;
  if (m.hidden !== parent.hidden || m.heads !== parent.heads || m.headDim !== parent.headDim || m.vocab !== parent.vocab || m.layers !== parent.layers.length)
    throw new PuzzleError('ERR_PUZZLE_CONFIG', `the cost table was measured for hidden ${m.hidden}, heads ${m.heads}, head dim ${m.headDim}, vocab ${m.vocab}, ${m.layers} layers; the parent has ${parent.hidden}, ${parent.heads}, ${parent.headDim}, ${parent.vocab}, ${parent.layers.length}: profile the parent's config`);
  const check = checkLibrary(lib);
  if (!check.complete) throw new PuzzleError('ERR_PUZZLE_LIBRARY', `${lib} is incomplete (${check.missing.length} missing, ${check.problems.length} problems); finish puzzle library build first`);
  const cost = new Map(costs.subblocks.map((c) => [c.id, c]));
  const costOf = (id: string): SubblockCost => {
    const c = cost.get(id);
    if (!c) throw new PuzzleError('ERR_PUZZLE_CONFIG', `the cost table has no row for ${id}; profile with the search space the library was built with`);
    return c;
  };
  const L = parent.layers.length;
  const s = costs.scenario;
  const share = { runtime: costs.head.runtime_ms / L, prefill: costs.head.prefill_ms / L, decode: costs.head.decode_ms / L, params: costs.head.num_params / L };
  const layers: LibraryLayer[] = [];
  for (let layer = 0; layer < L; layer++) {
    const entries = check.entries.filter((e) => e.layer === layer);
    const spec = parent.layers[layer];
    const parentA = attentionId(spec.attention);
    const parentF = ffnId(spec.ffn);
    const score = new Map(entries.map((e) => [e.id, readScore(lib, e)]));
    const base = score.get(parentA) ?? score.get(parentF);
    if (!base) throw new PuzzleError('ERR_PUZZLE_LIBRARY', `layer ${layer}: the library holds neither of the parent's own subblocks (${parentA}, ${parentF})`);
    const parentLoss = base.lm_loss;
    const variants: Variant[] = [];
    let parentName: string | undefined;
    const add = (name: string, a: LibraryEntry, f: LibraryEntry, halves: ReplaceScore[]) => {
      if (a.id === parentA && f.id === parentF) parentName = name;
      const ca = costOf(a.id), cf = costOf(f.id);
      const params = ca.num_params + cf.num_params + share.params;
      const kv = ca.kv_cache_mib + cf.kv_cache_mib;
      const paramMib = ca.param_memory_mib + cf.param_memory_mib + (share.params * 4) / MIB;
      const metrics: Record<string, number> = {
        kl_div: halves.reduce((x, h) => x + h.kl_div, 0),
        lm_loss_increase: halves.reduce((x, h) => x + (h.lm_loss - parentLoss), 0),
        top1_disagreement: halves.reduce((x, h) => x + (1 - h.top1_agreement), 0),
      };
      const taskNames = Object.keys(base.tasks ?? {});
      if (taskNames.length && halves.every((h) => h.tasks))
        metrics['task_accuracy_drop'] = halves.reduce((x, h) => x + taskNames.reduce((y, t) => y + (base.tasks![t] - (h.tasks![t] ?? 0)), 0) / taskNames.length, 0);
      variants.push({
        name,
        block: layerToBlockConfig({ attention: a.attention ?? spec.attention, ffn: f.ffn ?? spec.ffn }, { hidden: parent.hidden, heads: parent.heads }),
        stats: {
          runtime_ms: ca.runtime_ms + cf.runtime_ms - costs.empty.runtime_ms + share.runtime,
          prefill_ms: ca.prefill_ms + cf.prefill_ms - costs.empty.prefill_ms + share.prefill,
          decode_ms: ca.decode_ms + cf.decode_ms - costs.empty.decode_ms + share.decode,
          num_params: params,
          param_memory_mib: paramMib,
          kv_cache_mib: kv,
          memory_mib: paramMib + s.batch * kv,
        },
        metrics,
      });
    };
    const attns = entries.filter((e) => e.kind === 'attention');
    const ffns = entries.filter((e) => e.kind === 'ffn');
    // the parent's own half scores 0 however its replace-1 pass came out (it is the parent)
    const halfScore = (e: LibraryEntry): ReplaceScore[] => (e.id === parentA || e.id === parentF ? [] : [score.get(e.id)!]);
    for (const a of attns) for (const f of ffns) add(`${a.id}+${f.id}`, a, f, [...halfScore(a), ...halfScore(f)]);
    for (const p of entries.filter((e) => e.kind === 'pair')) {
      const a = { ...p, id: attentionId(p.attention!) }, f = { ...p, id: ffnId(p.ffn!) };
      add(`${p.id}`, a, f, [score.get(p.id)!]);
    }
    layers.push(parentName ? { variants, parent: parentName } : { variants });
  }
  return {
    layers,
    scenario: { batch_size: s.batch, sequence_length: s.prompt + s.generate, device: `${costs.device.model} (${costs.device.isa}, ${costs.device.threads} threads)`, dtype: s.dtype },
    source: lib,
  };
}
