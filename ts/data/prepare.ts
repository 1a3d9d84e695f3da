/**
 * From a --data spec to token sequences: load, split by document, tokenise, pack. The one path
 * every command that reads text uses.
 */
import { PuzzleError } from '../core/errors.js';
import { encodeDocuments } from './encode.js';
import { packDocuments, type Packed } from './pack.js';
import { loadData } from './source.js';
import { splitDocuments, type SplitName } from './split.js';
import type { Tokenizer } from './tokenizer.js';
import type { Document } from './document.js';

export interface PreparedData {
  spec: string;
  docs: Record<SplitName, Document[]>;
}

export async function loadSplits(spec: string): Promise<PreparedData> {
  const docs = await loadData(spec);
  if (!docs.length) throw new PuzzleError('ERR_PUZZLE_DATA', `--data ${spec}: no documents found`);
  return { spec, docs: splitDocuments(docs) };
}

/** Tokenises one split (EOS after every document, BOS before when the tokenizer has one) and packs it into sequences of T + 1 tokens. */
export async function packSplit(d: PreparedData, split: SplitName, tok: Tokenizer, T: number): Promise<Packed> {
  const docs = d.docs[split];
  if (!docs.length) throw new PuzzleError('ERR_PUZZLE_DATA', `--data ${d.spec}: the ${split} split is empty (too few documents)`);
  const ids = await encodeDocuments(tok, docs);
  return packDocuments(ids, { seqLen: T, eosId: tok.requireEos(), bosId: tok.bosId ?? undefined });
}
