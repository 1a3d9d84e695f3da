/**
 * The unit of data everything else works on. A document is what the split assigns as a whole
 * (so no text leaks between train and test), and what packing ends with EOS.
 */

/** One word of a POS-tagged sentence (Brown tags, lower case, e.g. `nn`, `vbz`, `nn-tl`). */
export interface TaggedWord {
  readonly word: string;
  readonly tag: string;
}

export type TaggedSentence = readonly TaggedWord[];

/** Raw text, tokenised later by whichever tokenizer the caller holds. */
export interface TextDocument {
  readonly kind: 'text';
  /** Where it came from, for error messages and reports: `builtin:brown/ca01`, `data.jsonl:12`. */
  readonly source: string;
  readonly text: string;
  /** Brown only: the tagged sentences `text` was detokenised from; the downstream tasks use them. */
  readonly tagged?: readonly TaggedSentence[];
}

/** Already tokenised (`input_ids` in JSONL): used exactly as given, never re-tokenised. */
export interface TokenDocument {
  readonly kind: 'ids';
  readonly source: string;
  readonly ids: Int32Array;
}

export type Document = TextDocument | TokenDocument;

/** The texts of the text documents (pre-tokenised ones have none), e.g. to train a tokenizer on. */
export function textsOf(docs: readonly Document[]): string[] {
  const out: string[] = [];
  for (const d of docs) if (d.kind === 'text') out.push(d.text);
  return out;
}
