/**
 * Replace-1-block scoring (METHOD.md section 4): the parent with only layer i replaced by a
 * library variant, compared with the parent on held-out text. Decoupled entries are composed
 * into blocks exactly as the search combines them: an attention variant beside the parent's
 * FFN, an FFN variant beside the parent's attention. Layers below i are unchanged, so the
 * parent's activations are computed once per batch and only layers i.. are recomputed.
 * Scores are stored one file per entry (LIBDIR/scores/layer-NNN/ID.json): a killed run resumes.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Block } from '../core/block.js';
import { PuzzleError } from '../core/errors.js';
import * as ops from '../core/ops.js';
import type { Tensor } from '../core/tensor.js';
import { argmaxRows, nextTokenTargets } from '../eval/lm.js';
import { evaluateChoices, type ChoiceItem, type TextEncoder } from '../eval/choice.js';
import type { LlamaModel } from '../model/llama.js';
import { composeBlock } from '../library/compose.js';
import { checkLibrary, type LibraryEntry } from '../library/store.js';
import { writeJsonAtomic } from '../run/atomic.js';
import { attentionId, ffnId } from '../library/space.js';

export interface ReplaceScore {
  layer: number;
  id: string;
  /** mean over scored tokens of KL(parent || child) */
  kl_div: number;
  /** child's next-token cross-entropy */
  lm_loss: number;
  /** top-1 agreement with the parent */
  top1_agreement: number;
  tokens: number;
  /** downstream-task accuracy with the layer replaced (when tasks were given) */
  tasks?: Record<string, number>;
}

/** Downstream tasks to score with (likelihood multiple choice). */
export interface ScoreTasks {
  tokenizer: TextEncoder;
  tasks: ReadonlyArray<{ name: string; items: readonly ChoiceItem[] }>;
}

export const scorePath = (lib: string, layer: number, id: string) =>
  join(lib, 'scores', `layer-${String(layer).padStart(3, '0')}`, `${id}.json`);

interface ParentPass {
  ids: Tensor;
  /** input of every layer: [embedding, out_0, ..., out_{L-2}] */
  inputs: Tensor[];
  logits: Tensor;
  targets: Tensor;
  parentTop1: Int32Array;
}

async function parentPass(parent: LlamaModel, ids: Tensor): Promise<ParentPass> {
  const [B, T] = ids.shape;
  const rope = parent.ropeFor(T);
  // layer inputs in the blocks' dtype (a bfloat16 parent: its residual stream rounded as its forward does)
  const inputs: Tensor[] = [await ops.castOwned(await ops.embeddingForward(ids, parent.embed), parent.dtype)];
  for (let i = 0; i < parent.blocks.length - 1; i++) inputs.push(await parent.blocks[i].forward(inputs[i], B, T, rope, false));
  // the parent's own logits continue from the last layer's input: no layer runs twice
  const last = parent.blocks.length - 1;
  const logits = await logitsFrom(parent, ids, inputs[last], last, parent.blocks[last]);
  const idArr = ids.toArray() as Int32Array;
  return { ids, inputs, logits, targets: nextTokenTargets(idArr, B, T), parentTop1: argmaxRows(logits.toArray() as Float32Array, parent.config.vocab) };
}

/** Logits of the parent with layer `layer` replaced by `block`, from that layer's input. */
async function logitsFrom(parent: LlamaModel, ids: Tensor, input: Tensor, layer: number, block: Block): Promise<Tensor> {
  const [B, T] = ids.shape;
  const rope = parent.ropeFor(T);
  let h = await block.forward(input, B, T, rope, false);
  for (let i = layer + 1; i < parent.blocks.length; i++) {
    const next = await parent.blocks[i].forward(h, B, T, rope, false);
    h.dispose();
    h = next;
  }
  h = await ops.castOwned(h, 'float32');
  const { out: normed, rstd } = await ops.rmsnormForward(h, parent.norm, parent.config.eps);
  const logits = await ops.matmulForward(normed, parent.head ?? parent.embed);
  [h, normed, rstd].forEach((t) => t.dispose());
  return logits;
}

export type ScoreEvent = { kind: 'entry'; done: number; total: number; score: ReplaceScore; skipped: boolean };

/** Scores every entry of a complete library on the given id batches (each [B, T]). */
export async function scoreLibrary(parent: LlamaModel, lib: string, batches: Tensor[], onEvent?: (e: ScoreEvent) => void, tasks?: ScoreTasks): Promise<ReplaceScore[]> {
  const check = checkLibrary(lib);
  if (!check.complete) throw new PuzzleError('ERR_PUZZLE_LIBRARY', `${lib} is incomplete (${check.missing.length} missing); run library build first`);
  const entries = check.entries;
  const byKey = new Map(entries.map((e) => [`${e.layer}/${e.id}`, e]));
  const todo: LibraryEntry[] = [];
  const results = new Map<string, ReplaceScore>();
  for (const e of entries) {
    const p = scorePath(lib, e.layer, e.id);
    const stored = existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as ReplaceScore) : null;
    // a stored score is reused unless task accuracy is asked for and it has none
    if (stored && (!tasks || stored.tasks)) results.set(`${e.layer}/${e.id}`, stored);
    else todo.push(e);
  }
  let done = results.size;
  for (const s of results.values()) onEvent?.({ kind: 'entry', done, total: entries.length, score: s, skipped: true });
  if (todo.length) {
    // the parent's pass over every batch is computed once and kept (held-out sets are small),
    // so each entry is scored over all batches and stored before the next one starts
    const passes: ParentPass[] = [];
    for (const ids of batches) passes.push(await parentPass(parent, ids));
    try {
      for (const e of todo) {
        const L = parent.config.layers[e.layer];
        const attn = e.kind === 'attention' ? e : byKey.get(`${e.layer}/${attentionId(L.attention)}`)!;
        const ffn = e.kind === 'ffn' ? e : byKey.get(`${e.layer}/${ffnId(L.ffn)}`)!;
        const block = e.kind === 'pair' ? composeBlock(parent.config, lib, e, e, parent.device, parent.dtype) : composeBlock(parent.config, lib, attn, ffn, parent.device, parent.dtype);
        const a = { kl: 0, loss: 0, agree: 0, tokens: 0 };
        for (const pp of passes) {
          const logits = await logitsFrom(parent, pp.ids, pp.inputs[e.layer], e.layer, block);
          const kl = await ops.klForward(pp.logits, logits);
          const ce = await ops.crossEntropyForward(logits, pp.targets);
          const klRows = kl.losses.toArray() as Float32Array;
          const tg = pp.targets.toArray() as Int32Array;
          const top = argmaxRows(logits.toArray() as Float32Array, parent.config.vocab);
          for (let i = 0; i < tg.length; i++) {
            if (tg[i] === ops.IGNORE_INDEX) continue;
            a.kl += klRows[i];
            if (top[i] === pp.parentTop1[i]) a.agree++;
          }
          a.loss += ce.loss * ce.count;
          a.tokens += ce.count;
          [logits, kl.losses, ce.losses, ce.lse].forEach((t) => t.dispose());
        }
        const sc: ReplaceScore = { layer: e.layer, id: e.id, kl_div: a.kl / a.tokens, lm_loss: a.loss / a.tokens, top1_agreement: a.agree / a.tokens, tokens: a.tokens };
        if (tasks) {
          // the parent with this one layer swapped in, for the duration of the tasks
          const original = parent.blocks[e.layer];
          parent.blocks[e.layer] = block;
          try {
            sc.tasks = {};
            for (const t of tasks.tasks) sc.tasks[t.name] = (await evaluateChoices(parent, tasks.tokenizer, t.items)).accuracy;
          } finally {
            parent.blocks[e.layer] = original;
          }
        }
        block.dispose();
        mkdirSync(join(lib, 'scores', `layer-${String(e.layer).padStart(3, '0')}`), { recursive: true });
        writeJsonAtomic(scorePath(lib, e.layer, e.id), sc);
        results.set(`${e.layer}/${e.id}`, sc);
        onEvent?.({ kind: 'entry', done: ++done, total: entries.length, score: sc, skipped: false });
      }
    } finally {
      for (const pp of passes) [...pp.inputs, pp.logits, pp.targets].forEach((t) => t.dispose());
    }
  }
  return entries.map((e) => results.get(`${e.layer}/${e.id}`)!);
}
