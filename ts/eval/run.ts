/**
 * `puzzle eval` as a library call: LM metrics on held-out text (or exactly the given
 * pre-tokenised sequences), optionally against a teacher, plus the built-in downstream tasks.
 */
import { PuzzleError } from '../core/errors.js';
import { ids as idsTensor, type DeviceName, type Tensor } from '../core/tensor.js';
import { loadSplits, packSplit } from '../data/prepare.js';
import { sequenceAt } from '../data/pack.js';
import { builtinTasks } from '../data/tasks.js';
import { Tokenizer } from '../data/tokenizer.js';
import type { SplitName } from '../data/split.js';
import { loadData } from '../data/source.js';
import { loadModel } from '../model/hf.js';
import type { LlamaModel, ModelDType } from '../model/llama.js';
import { evaluateChoices } from './choice.js';
import { accumulateBatch, emptyTotals, finish, type LmMetrics } from './lm.js';

export interface EvalOptions {
  model: string;
  data: string;
  teacher?: string;
  split?: SplitName;
  seq?: number;
  batch?: number;
  /** at most this many sequences (text data) */
  maxSequences?: number;
  tasks?: boolean;
  /** at most this many items per task */
  taskItems?: number;
  /** where the model (and teacher) run; default cpu */
  device?: DeviceName;
  /** 'bfloat16': both in mixed precision (default float32) */
  dtype?: ModelDType;
}

export interface EvalReport extends LmMetrics {
  model: string;
  data: string;
  split: SplitName | 'as-given';
  tasks?: Record<string, { accuracy: number; items: number; chance: number }>;
}

/** Token batches for evaluation: pre-tokenised documents as they are (one per row), text packed. */
export async function evalBatches(data: string, tokenizer: () => Tokenizer, vocab: number, split: SplitName, seq: number, batch: number, maxSequences: number): Promise<{ batches: Tensor[]; asGiven: boolean }> {
  const docs = await loadData(data);
  if (docs.length && docs.every((d) => d.kind === 'ids')) {
    const batches: Tensor[] = [];
    for (const d of docs) {
      if (d.kind !== 'ids') continue;
      d.ids.forEach((t, i) => {
        if (t < 0 || t >= vocab) throw new PuzzleError('ERR_PUZZLE_RANGE', `${d.source}: input_ids[${i}] = ${t} is outside the model's vocabulary [0, ${vocab})`);
      });
      if (d.ids.length < 2) continue;
      batches.push(idsTensor(d.ids, [1, d.ids.length]));
    }
    return { batches, asGiven: true };
  }
  const splits = await loadSplits(data);
  const packed = await packSplit(splits, split, tokenizer(), seq);
  const n = Math.min(packed.count, maxSequences);
  const batches: Tensor[] = [];
  for (let i = 0; i < n; i += batch) {
    const rows = Math.min(batch, n - i);
    const flat = new Int32Array(rows * (seq + 1));
    for (let j = 0; j < rows; j++) flat.set(sequenceAt(packed, i + j), j * (seq + 1));
    batches.push(idsTensor(flat, [rows, seq + 1]));
  }
  return { batches, asGiven: false };
}

export async function runEval(o: EvalOptions): Promise<EvalReport> {
  const model = loadModel(o.model, o.device, o.dtype).forInference();  // evaluated, never trained or saved here
  let teacher: LlamaModel | undefined;
  try {
    // the tokenizer is needed for text only: pre-tokenised data is scored as given
    let tok: Tokenizer | undefined;
    const tokenizer = () => {
      if (!tok) {
        tok = Tokenizer.load(o.model);
        if (tok.vocabSize > model.config.vocab)
          throw new PuzzleError('ERR_PUZZLE_CONFIG', `${o.model}: the tokenizer has ${tok.vocabSize} tokens but the model only ${model.config.vocab}`);
      }
      return tok;
    };
    if (o.teacher) {
      teacher = loadModel(o.teacher, o.device, o.dtype).forInference();
      if (teacher.config.vocab !== model.config.vocab)
        throw new PuzzleError('ERR_PUZZLE_CONFIG', `--teacher ${o.teacher} has vocabulary ${teacher.config.vocab}, the model ${model.config.vocab}`);
    }
    const split = o.split ?? 'test';
    const { batches, asGiven } = await evalBatches(o.data, tokenizer, model.config.vocab, split, o.seq ?? 256, o.batch ?? 8, o.maxSequences ?? 64);
    const totals = emptyTotals();
    for (const b of batches) {
      await accumulateBatch(totals, model, b, teacher);
      b.dispose();
    }
    const report: EvalReport = { model: o.model, data: o.data, split: asGiven ? 'as-given' : split, ...finish(totals, Boolean(teacher)) };
    if (o.tasks) {
      report.tasks = {};
      for (const t of await builtinTasks()) {
        const items = t.items.slice(0, o.taskItems ?? t.items.length);
        const r = await evaluateChoices(model, tokenizer(), items);
        report.tasks[t.name] = { accuracy: r.accuracy, items: r.items, chance: t.chance };
      }
    }
    return report;
  } finally {
    model.dispose();
    teacher?.dispose();
  }
}
