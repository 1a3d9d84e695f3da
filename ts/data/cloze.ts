/**
 * Last-word cloze: a held-out sentence ending in `word .`, and the same sentence with the last
 * word replaced by distractors of the same part of speech and similar frequency in the train
 * split. Matching the tag keeps every candidate plausible in form; matching the frequency means
 * a unigram model sits near chance, so accuracy above it needs the context.
 */
import type { TaggedSentence, TextDocument } from './document.js';
import { detokenize } from './brown.js';
import { seedOf, stableHash } from './hash.js';
import { createRng } from './prng.js';
import { baseTag, isHeadline } from './tags.js';

/** Open-class tags whose words make fair cloze targets. */
const CLOZE_TAGS = new Set(['nn', 'nns', 'jj', 'rb', 'vb', 'vbd', 'vbg', 'vbn', 'vbz']);
const WORD = /^[a-z]{3,}$/;

/**
 * Per tag, the words whose most frequent tag it is, by descending train count; ties (many rare
 * words share a count) in hash order, so a target's neighbours are not its alphabetical ones.
 */
export interface FrequencyTable {
  readonly byTag: Map<string, string[]>;
  /** word -> [its tag, its rank in that tag's list] */
  readonly rank: Map<string, [string, number]>;
}

export function frequencyTable(docs: readonly TextDocument[], minCount = 3): FrequencyTable {
  const counts = new Map<string, Map<string, number>>();
  for (const d of docs) {
    for (const s of d.tagged ?? []) {
      for (const w of s) {
        if (!WORD.test(w.word)) continue;
        let m = counts.get(w.word);
        if (!m) counts.set(w.word, (m = new Map()));
        const t = baseTag(w.tag);
        m.set(t, (m.get(t) ?? 0) + 1);
      }
    }
  }
  const lists = new Map<string, [string, number][]>();
  for (const [word, m] of counts) {
    let best = '';
    let bestN = 0;
    let total = 0;
    for (const [t, n] of m) {
      total += n;
      if (n > bestN || (n === bestN && t < best)) [best, bestN] = [t, n];
    }
    if (total < minCount || !CLOZE_TAGS.has(best)) continue;
    let l = lists.get(best);
    if (!l) lists.set(best, (l = []));
    l.push([word, total]);
  }
  const byTag = new Map<string, string[]>();
  const rank = new Map<string, [string, number]>();
  for (const [tag, l] of lists) {
    const key = new Map(l.map(([w]) => [w, stableHash('cloze', w)]));
    l.sort((a, b) => b[1] - a[1] || key.get(a[0])! - key.get(b[0])!);
    byTag.set(tag, l.map(([w]) => w));
    l.forEach(([w], i) => rank.set(w, [tag, i]));
  }
  return { byTag, rank };
}

export interface ClozeItem {
  /** Candidate texts, the true sentence at `answer`. */
  readonly candidates: string[];
  readonly answer: number;
}

/**
 * The cloze item a sentence yields, or null. Distractors: `k` words drawn (seeded by the
 * sentence) from the 2k words nearest in frequency rank with the same tag.
 */
export function clozeItem(s: TaggedSentence, table: FrequencyTable, k: number): ClozeItem | null {
  if (s.length < 6 || s.length > 40 || isHeadline(s)) return null;
  if (s[s.length - 1]!.word !== '.') return null;
  const target = s[s.length - 2]!;
  const tag = baseTag(target.tag);
  const r = table.rank.get(target.word);
  // The target must be a known word whose usual tag is its tag here, so frequencies compare.
  if (!WORD.test(target.word) || !r || r[0] !== tag) return null;
  const list = table.byTag.get(tag)!;
  if (list.length < 2 * k + 1) return null;
  const lo = Math.max(0, Math.min(r[1] - k, list.length - 2 * k - 1));
  const pool = list.slice(lo, lo + 2 * k + 1).filter((w) => w !== target.word);
  const words = s.map((w) => w.word);
  const text = detokenize(words);
  const rng = createRng(seedOf(text));
  const picked: string[] = [];
  while (picked.length < k) picked.push(pool.splice(rng.int(pool.length), 1)[0]!);
  const answer = rng.int(k + 1);
  picked.splice(answer, 0, target.word);
  const candidates = picked.map((w) => {
    words[words.length - 2] = w;
    return detokenize(words);
  });
  return { candidates, answer };
}
