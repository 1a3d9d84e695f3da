/**
 * The Brown corpus in its tagged form: one sentence per line, tokens `word/tag`
 * (`The/at jury/nn said/vbd ./.`). Parsing keeps the tags (the agreement task needs them) and
 * detokenising gives the plain text the model trains on.
 */
import { PuzzleError } from '../core/errors.js';
import type { TaggedSentence, TaggedWord } from './document.js';

/** Parses one Brown file; `file` names it in errors. */
export function parseBrown(text: string, file: string): TaggedSentence[] {
  const sentences: TaggedSentence[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.length === 0) continue;
    const words: TaggedWord[] = [];
    for (const tok of line.split(/\s+/)) {
      // The tag follows the last slash: words may hold slashes themselves (`1/2/cd`).
      const slash = tok.lastIndexOf('/');
      if (slash <= 0 || slash === tok.length - 1) {
        throw new PuzzleError('ERR_PUZZLE_DATA', `${file} line ${i + 1}: token '${tok}' is not of the form word/tag`);
      }
      words.push({ word: tok.slice(0, slash), tag: tok.slice(slash + 1).toLowerCase() });
    }
    sentences.push(words);
  }
  return sentences;
}

// Brown writes quotes as `` and '' tokens, and separates punctuation by spaces.
const NO_SPACE_BEFORE = new Set(['.', ',', ';', ':', '?', '!', ')', ']', '}', "''", "'"]);
const NO_SPACE_AFTER = new Set(['(', '[', '{', '``', '`']);
const QUOTES: Record<string, string> = { '``': '"', "''": '"', '`': "'" };

/** Joins tokens into ordinary English spacing: `the " jury " said .` -> `the "jury" said.` */
export function detokenize(words: readonly string[]): string {
  let out = '';
  let glueNext = true; // no space before the first token
  let prev = '';
  for (const w of words) {
    // This copy of Brown writes every semicolon twice (`;/. ;/.`).
    if (w === ';' && prev === ';') continue;
    prev = w;
    if (!glueNext && !NO_SPACE_BEFORE.has(w)) out += ' ';
    out += QUOTES[w] ?? w;
    glueNext = NO_SPACE_AFTER.has(w);
  }
  return out;
}

/** The plain text of a Brown file: its sentences detokenised and joined by single spaces. */
export function brownText(sentences: readonly TaggedSentence[]): string {
  return sentences.map((s) => detokenize(s.map((w) => w.word))).join(' ');
}
