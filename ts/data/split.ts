/**
 * Deterministic document-level train / validation / test split. A document's part depends only
 * on a hash of its content: not on its position, its file name, or what else is in the corpus,
 * so adding data never moves a test document into train, and exact duplicates always land
 * together (no train/test leakage through copies).
 */
import { PuzzleError } from '../core/errors.js';
import type { Document } from './document.js';
import { stableHash } from './hash.js';

export type SplitName = 'train' | 'validation' | 'test';

/** Fractions of documents (by hash) held out; train gets the rest. */
export interface SplitRatios {
  readonly validation: number;
  readonly test: number;
}

export const DEFAULT_SPLIT: SplitRatios = { validation: 0.05, test: 0.05 };

export interface Splits<T extends Document = Document> {
  readonly train: T[];
  readonly validation: T[];
  readonly test: T[];
}

/** A stable number in [0, 1) from the document's content (first 48 bits of SHA-256). */
export function documentHash(doc: Document): number {
  if (doc.kind === 'text') return stableHash('text', doc.text);
  // Int32 bytes in platform order: little-endian on every platform Node ships for.
  return stableHash('ids', new Uint8Array(doc.ids.buffer, doc.ids.byteOffset, doc.ids.byteLength));
}

function checkRatios(r: SplitRatios): void {
  const ok = (x: number) => Number.isFinite(x) && x >= 0 && x < 1;
  if (!ok(r.validation) || !ok(r.test) || r.validation + r.test >= 1) {
    throw new PuzzleError('ERR_PUZZLE_DATA', `split ratios validation=${r.validation} test=${r.test}: expected each in [0, 1) and their sum below 1`);
  }
}

/** Which part a document belongs to. Test takes the lowest hashes, so its set does not change when only the validation fraction does. */
export function splitOf(doc: Document, ratios: SplitRatios = DEFAULT_SPLIT): SplitName {
  checkRatios(ratios);
  const u = documentHash(doc);
  if (u < ratios.test) return 'test';
  if (u < ratios.test + ratios.validation) return 'validation';
  return 'train';
}

/** Splits a corpus; each part keeps the input order. */
export function splitDocuments<T extends Document>(docs: readonly T[], ratios: SplitRatios = DEFAULT_SPLIT): Splits<T> {
  checkRatios(ratios);
  const out: Splits<T> = { train: [], validation: [], test: [] };
  for (const d of docs) out[splitOf(d, ratios)].push(d);
  return out;
}
