/**
 * The built-in downstream tasks, so a model's quality is also an accuracy: agreement minimal
 * pairs and last-word cloze, made deterministically from the Brown documents of the TEST split
 * only (the same content-hash split training uses, so no test sentence was trained on).
 */
import { PuzzleError } from '../core/errors.js';
import { agreementPairs, verbSwaps } from './agreement.js';
import { clozeItem, frequencyTable } from './cloze.js';
import { loadBuiltin } from './corpus.js';
import type { Document, TextDocument } from './document.js';
import { stableHash } from './hash.js';
import { DEFAULT_SPLIT, splitDocuments, type SplitRatios } from './split.js';
import type { Task, TaskItem } from './task-types.js';

export type { Task, TaskItem } from './task-types.js';

export interface TaskOptions {
  /** Must equal the split the model was trained with (default 90/5/5). */
  split?: SplitRatios;
  /** Items per task at most (default 500); chosen by a stable hash, not by position. */
  maxItems?: number;
  /** Cloze distractors per item (default 4: five candidates). */
  distractors?: number;
}

/** Keeps `max` items chosen by the hash of their id (an even spread over genres), in source order. */
function pick(items: TaskItem[], max: number): TaskItem[] {
  if (items.length <= max) return items;
  const keep = new Set(items.map((it) => [stableHash(it.id), it] as const).sort((a, b) => a[0] - b[0]).slice(0, max).map(([, it]) => it));
  return items.filter((it) => keep.has(it));
}

/**
 * Both tasks from tagged documents (Brown). `docs` is the whole corpus: the test split supplies
 * the sentences, the train split the word frequencies and the whole corpus the verb forms.
 */
export function buildTasks(docs: readonly Document[], opts: TaskOptions = {}): Task[] {
  const tagged = docs.filter((d): d is TextDocument => d.kind === 'text' && d.tagged !== undefined);
  if (tagged.length === 0) throw new PuzzleError('ERR_PUZZLE_DATA', 'downstream tasks need POS-tagged documents (builtin:brown); none given');
  const parts = splitDocuments(tagged, opts.split ?? DEFAULT_SPLIT);
  if (parts.test.length === 0) throw new PuzzleError('ERR_PUZZLE_DATA', 'downstream tasks: the test split holds no tagged documents');
  const max = opts.maxItems ?? 500;
  const k = opts.distractors ?? 4;

  const swaps = verbSwaps(tagged.flatMap((d) => d.tagged!));
  const seen = new Set<string>();
  const agreement: TaskItem[] = [];
  for (const { source, pair } of agreementPairs(parts.test, swaps)) {
    if (seen.has(pair.good)) continue;
    seen.add(pair.good);
    const id = `agreement:${source}`;
    const answer = stableHash('answer', id) < 0.5 ? 0 : 1;
    agreement.push({ id, candidates: answer === 0 ? [pair.good, pair.bad] : [pair.bad, pair.good], answer });
  }

  const table = frequencyTable(parts.train);
  const cloze: TaskItem[] = [];
  for (const d of parts.test) {
    d.tagged!.forEach((s, i) => {
      const item = clozeItem(s, table, k);
      if (item && !seen.has(item.candidates[item.answer]!)) {
        seen.add(item.candidates[item.answer]!);
        cloze.push({ id: `cloze:${d.source}:${i}`, ...item });
      }
    });
  }

  return [
    {
      name: 'agreement',
      description: 'subject-verb agreement minimal pairs from Brown test documents: pick the grammatical sentence',
      chance: 0.5,
      items: pick(agreement, max),
    },
    {
      name: 'cloze',
      description: `last-word cloze on Brown test sentences: the true last word among ${k} distractors of the same tag and similar frequency`,
      chance: 1 / (k + 1),
      items: pick(cloze, max),
    },
  ];
}

/** The tasks from the built-in Brown corpus. */
export async function builtinTasks(opts: TaskOptions = {}): Promise<Task[]> {
  return buildTasks(await loadBuiltin('brown'), opts);
}
