/**
 * Packing for next-token training: documents' tokens joined into one stream with EOS after each
 * document, cut into windows of T+1 tokens (T inputs, and the same T shifted by one as targets).
 * Window i is stream[i*T, i*T + T + 1): consecutive windows share one boundary token, so every
 * token after the first is a target exactly once. Windows are views of the stream (no copies).
 * Order is shuffled by a seeded permutation, a fresh one per epoch.
 */
import { PuzzleError } from '../core/errors.js';
import { permutation } from './prng.js';

export interface PackOptions {
  /** T: tokens per training row; each packed sequence holds T+1. */
  seqLen: number;
  /** Appended after every document. */
  eosId: number;
  /** When given, put in front of every document. */
  bosId?: number | null;
}

export interface Packed {
  /** T (each sequence has T+1 tokens). */
  readonly seqLen: number;
  /** Number of sequences. */
  readonly count: number;
  /** All documents' tokens with BOS/EOS, in document order. */
  readonly stream: Int32Array;
  /** Tokens at the end of the stream that fill no whole sequence (fewer than T). */
  readonly dropped: number;
}

export function packDocuments(docs: readonly ArrayLike<number>[], opts: PackOptions): Packed {
  const T = opts.seqLen;
  if (!Number.isInteger(T) || T < 1) throw new PuzzleError('ERR_PUZZLE_DATA', `seqLen ${T}: expected a positive integer`);
  const bos = opts.bosId ?? null;
  let n = 0;
  for (const d of docs) if (d.length > 0) n += d.length + 1 + (bos === null ? 0 : 1);
  const stream = new Int32Array(n);
  let k = 0;
  for (const d of docs) {
    if (d.length === 0) continue; // an empty document would only add a lone EOS
    if (bos !== null) stream[k++] = bos;
    stream.set(d, k);
    k += d.length;
    stream[k++] = opts.eosId;
  }
  const count = n > T ? Math.floor((n - 1) / T) : 0;
  if (count === 0) {
    throw new PuzzleError('ERR_PUZZLE_DATA', `the data holds ${n} tokens (with EOS), fewer than one sequence of T+1 = ${T + 1}; use more data or a shorter sequence length`);
  }
  return { seqLen: T, count, stream, dropped: n - (count * T + 1) };
}

/** Sequence i: T+1 tokens (a view into the stream). */
export function sequenceAt(p: Packed, i: number): Int32Array {
  if (!Number.isInteger(i) || i < 0 || i >= p.count) throw new PuzzleError('ERR_PUZZLE_RANGE', `sequence ${i}: expected 0 <= i < ${p.count}`);
  return p.stream.subarray(i * p.seqLen, i * p.seqLen + p.seqLen + 1);
}

/** The order to visit sequences in during `epoch`; the same (seed, epoch) always gives the same order. */
export function epochOrder(count: number, seed: number, epoch = 0): Uint32Array {
  // Each epoch's permutation gets its own seed, mixed so nearby (seed, epoch) pairs are unrelated.
  return permutation(count, (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b) ^ Math.floor(seed / 2 ** 32)) >>> 0);
}

export interface Batch {
  /** rows*T inputs, row-major. */
  readonly inputs: Int32Array;
  /** rows*T targets: the inputs shifted left by one. */
  readonly targets: Int32Array;
  readonly rows: number;
}

/** Gathers the given sequences into one batch. */
export function makeBatch(p: Packed, indices: ArrayLike<number>): Batch {
  const T = p.seqLen;
  const inputs = new Int32Array(indices.length * T);
  const targets = new Int32Array(indices.length * T);
  for (let r = 0; r < indices.length; r++) {
    const s = sequenceAt(p, indices[r]!);
    inputs.set(s.subarray(0, T), r * T);
    targets.set(s.subarray(1), r * T);
  }
  return { inputs, targets, rows: indices.length };
}

/** The batches of one epoch in seeded order; a last partial batch is kept unless `dropLast`. */
export function* epochBatches(p: Packed, batchSize: number, seed: number, epoch = 0, dropLast = false): Generator<Batch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new PuzzleError('ERR_PUZZLE_DATA', `batchSize ${batchSize}: expected a positive integer`);
  const order = epochOrder(p.count, seed, epoch);
  for (let i = 0; i < order.length; i += batchSize) {
    if (dropLast && i + batchSize > order.length) break;
    yield makeBatch(p, order.subarray(i, i + batchSize));
  }
}
