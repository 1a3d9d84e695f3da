/**
 * Subject-verb agreement minimal pairs from the Brown tags (in the spirit of BLiMP): a sentence
 * where a noun is directly followed by a verb form marked for number that agrees with it (`the
 * jury says`, `the reports are`, `the vote was`), and its twin with only the verb's number
 * swapped (`the jury say`, `the reports is`, `the vote were`). Because the corpus is grammatical
 * and the verb agrees with the adjacent noun, the swapped verb disagrees with it, and with the
 * real subject too when they differ.
 */
import type { TaggedSentence, TextDocument } from './document.js';
import { detokenize } from './brown.js';
import { baseTag, isHeadline } from './tags.js';

type GrammaticalNumber = 'sg' | 'pl';

/** The irregular present forms, with the Brown tags they must carry: [singular, plural]. */
const IRREGULAR: readonly [string, string, string, string][] = [
  ['is', 'bez', 'are', 'ber'],
  ['was', 'bedz', 'were', 'bed'],
  ['has', 'hvz', 'have', 'hv'],
  ['does', 'doz', 'do', 'do'],
  ["isn't", 'bez*', "aren't", 'ber*'],
  ["wasn't", 'bedz*', "weren't", 'bed*'],
  ["hasn't", 'hvz*', "haven't", 'hv*'],
  ["doesn't", 'doz*', "don't", 'do*'],
];

const SUBJECT: Record<string, GrammaticalNumber> = { nn: 'sg', np: 'sg', nns: 'pl', nps: 'pl' };

/**
 * Words after which `was` -> `were` may be a grammatical subjunctive (`if the price were lower`):
 * such sentences yield no was/were pair.
 */
const SUBJUNCTIVE_CUES = new Set(['if', 'though', 'wish', 'wished', 'wishes', 'suppose', 'supposing', 'whether', 'unless', 'lest']);
const SUBJUNCTIVE_TWINS = new Set(['were', "weren't"]);

/** word|tag -> the same verb with the other number. */
export type VerbSwaps = Map<string, { number: GrammaticalNumber; twin: string }>;

/**
 * The swap table: the irregular forms above, plus every regular pair seen in the corpus as
 * both `vbz` and `vb` (`says`/`say`, `watches`/`watch`, `tries`/`try`), so no twin is invented.
 */
export function verbSwaps(sentences: Iterable<TaggedSentence>): VerbSwaps {
  const vbz = new Set<string>();
  const vb = new Set<string>();
  for (const s of sentences) {
    for (const w of s) {
      if (!/^[a-z]+$/.test(w.word)) continue;
      const t = baseTag(w.tag);
      if (t === 'vbz') vbz.add(w.word);
      else if (t === 'vb') vb.add(w.word);
    }
  }
  const swaps: VerbSwaps = new Map();
  for (const [sg, sgTag, pl, plTag] of IRREGULAR) {
    swaps.set(`${sg}|${sgTag}`, { number: 'sg', twin: pl });
    swaps.set(`${pl}|${plTag}`, { number: 'pl', twin: sg });
  }
  for (const z of [...vbz].sort()) {
    const bases = [z.slice(0, -1), z.endsWith('es') ? z.slice(0, -2) : '', z.endsWith('ies') ? z.slice(0, -3) + 'y' : ''];
    const base = bases.find((b) => b.length > 1 && vb.has(b));
    if (base === undefined) continue;
    swaps.set(`${z}|vbz`, { number: 'sg', twin: base });
    swaps.set(`${base}|vb`, { number: 'pl', twin: z });
  }
  return swaps;
}

export interface AgreementPair {
  /** The corpus sentence. */
  readonly good: string;
  /** The same words with the verb's number swapped. */
  readonly bad: string;
  /** Word index of the verb. */
  readonly verbAt: number;
}

/** The pair a sentence yields (its first agreeing noun + verb), or null. */
export function agreementPair(s: TaggedSentence, swaps: VerbSwaps): AgreementPair | null {
  if (s.length < 4 || s.length > 40 || isHeadline(s)) return null;
  for (let i = 1; i < s.length; i++) {
    const subject = SUBJECT[baseTag(s[i - 1]!.tag)];
    if (!subject) continue;
    const verb = s[i]!;
    const tag = baseTag(verb.tag);
    const swap = swaps.get(`${verb.word}|${tag}`);
    if (!swap || swap.number !== subject) continue;
    const words = s.map((w) => w.word);
    if (SUBJUNCTIVE_TWINS.has(swap.twin) && words.slice(0, i).some((w) => SUBJUNCTIVE_CUES.has(w.toLowerCase()))) return null;
    const good = detokenize(words);
    words[i] = swap.twin;
    return { good, bad: detokenize(words), verbAt: i };
  }
  return null;
}

/** Every pair in the documents' tagged sentences, with the sentence's source `doc:index`. */
export function agreementPairs(docs: readonly TextDocument[], swaps: VerbSwaps): { source: string; pair: AgreementPair }[] {
  const out: { source: string; pair: AgreementPair }[] = [];
  for (const d of docs) {
    d.tagged?.forEach((s, k) => {
      const pair = agreementPair(s, swaps);
      if (pair) out.push({ source: `${d.source}:${k}`, pair });
    });
  }
  return out;
}
