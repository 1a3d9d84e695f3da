/**
 * Deterministic batching over packed sequences: the order of an epoch is a seeded permutation,
 * so micro-batch k is the same sequences on every run (which is what makes resume exact).
 */
import { PuzzleError } from '../core/errors.js';
import { ids as idsTensor, type Tensor } from '../core/tensor.js';
import { epochOrder, sequenceAt, type Packed } from '../data/pack.js';

/** Packed token sequences, each `seqLen` long (T + 1 for next-token training). */
export interface PackedSequences {
  seqLen: number;
  count: number;
  /** sequence i, i in [0, count) */
  get(i: number): Int32Array;
}

/** The data module's packing (seqLen = T) as training sequences of T + 1 tokens. */
export function fromPacked(p: Packed): PackedSequences {
  if (p.count === 0) throw new PuzzleError('ERR_PUZZLE_DATA', `no sequences to train on: the data is shorter than one sequence of ${p.seqLen + 1} tokens`);
  return { seqLen: p.seqLen + 1, count: p.count, get: (i) => sequenceAt(p, i) };
}

export function packedFromArrays(rows: Int32Array[]): PackedSequences {
  if (rows.length === 0) throw new PuzzleError('ERR_PUZZLE_DATA', 'no sequences to train on (the data is empty or shorter than one sequence)');
  const seqLen = rows[0].length;
  for (const [i, r] of rows.entries())
    if (r.length !== seqLen) throw new PuzzleError('ERR_PUZZLE_DATA', `sequence ${i} has ${r.length} tokens, expected ${seqLen}`);
  return { seqLen, count: rows.length, get: (i) => rows[i] };
}

export class BatchSchedule {
  private epochCache = new Map<number, Uint32Array>();
  constructor(readonly data: PackedSequences, readonly batch: number, readonly seed: number) {}

  /** Sequence indices of micro-batch k (wrapping over epochs, each epoch reshuffled). */
  indices(k: number): number[] {
    const out: number[] = [];
    for (let j = 0; j < this.batch; j++) {
      const g = k * this.batch + j;
      const epoch = Math.floor(g / this.data.count);
      let perm = this.epochCache.get(epoch);
      if (!perm) {
        perm = epochOrder(this.data.count, this.seed, epoch);
        this.epochCache.clear();
        this.epochCache.set(epoch, perm);
      }
      out.push(perm[g % this.data.count]);
    }
    return out;
  }

  /** ids[B, T] inputs and next-token targets[B*T] for micro-batch k. */
  batchAt(k: number): { input: Tensor; targets: Tensor; tokens: number } {
    const { inp, tgt } = this.rows(k, true);
    const T = this.data.seqLen - 1;
    return { input: idsTensor(inp, [this.batch, T]), targets: idsTensor(tgt!, [this.batch * T]), tokens: this.batch * T };
  }

  /** Only the ids[B, T] inputs of micro-batch k (layer-local training needs no targets). */
  inputAt(k: number): Tensor {
    return idsTensor(this.rows(k, false).inp, [this.batch, this.data.seqLen - 1]);
  }

  private rows(k: number, targets: boolean): { inp: Int32Array; tgt: Int32Array | null } {
    const rows = this.indices(k).map((i) => this.data.get(i));
    const T = this.data.seqLen - 1;
    const inp = new Int32Array(this.batch * T);
    const tgt = targets ? new Int32Array(this.batch * T) : null;
    rows.forEach((r, b) => {
      inp.set(r.subarray(0, T), b * T);
      tgt?.set(r.subarray(1, T + 1), b * T);
    });
    return { inp, tgt };
  }
}
