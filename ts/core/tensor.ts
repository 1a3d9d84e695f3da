/** Tensors are native memory with a shape; release them with dispose() when done. */
import { PuzzleError, fromNative } from './errors.js';
import { loadAddon } from '../native/loader.js';
import type { DTypeName, NativeTensor } from '../native/types.js';

export type Tensor = NativeTensor;
export type { DTypeName };

/**
 * A float32 (Float32Array) or int32 (Int32Array) tensor holding a copy of `data`; with dtype
 * 'bfloat16' float data is rounded to bf16 storage (toArray() widens it back).
 */
export function tensor(data: Float32Array | Int32Array | number[], shape?: number[], dtype?: DTypeName): Tensor {
  const arr = Array.isArray(data) ? Float32Array.from(data) : data;
  try {
    return loadAddon().Tensor.fromArray(arr, shape ?? [arr.length], dtype);
  } catch (err) {
    throw fromNative(err);
  }
}

export function zeros(shape: number[], dtype: DTypeName = 'float32'): Tensor {
  try {
    return loadAddon().Tensor.zeros(shape, dtype);
  } catch (err) {
    throw fromNative(err);
  }
}

export function ids(data: ArrayLike<number>, shape?: number[]): Tensor {
  return tensor(Int32Array.from(data), shape ?? [data.length]);
}

export function isTensor(x: unknown): x is Tensor {
  return typeof x === 'object' && x !== null && x.constructor === loadAddon().Tensor;
}

/** The values of a float32 or bfloat16 tensor as a Float32Array (a copy). */
export function toFloat32(t: Tensor): Float32Array {
  if (t.dtype === 'int32') throw new PuzzleError('ERR_PUZZLE_DTYPE', `expected a float tensor, got ${t.dtype}`);
  return t.toArray() as Float32Array;
}

/** Disposes every tensor given (null and undefined are skipped). */
export function disposeAll(...ts: Array<Tensor | null | undefined | Tensor[]>): void {
  for (const t of ts) {
    if (Array.isArray(t)) t.forEach((x) => x.dispose());
    else t?.dispose();
  }
}
