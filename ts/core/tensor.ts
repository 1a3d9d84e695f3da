/** Tensors are native memory with a shape; release them with dispose() when done. */
import { PuzzleError, fromNative } from './errors.js';
import { loadAddon } from '../native/loader.js';
import type { DTypeName, NativeTensor } from '../native/types.js';

export type Tensor = NativeTensor;
export type { DTypeName };

/** A float32 (Float32Array) or int32 (Int32Array) tensor holding a copy of `data`. */
export function tensor(data: Float32Array | Int32Array | number[], shape?: number[]): Tensor {
  const arr = Array.isArray(data) ? Float32Array.from(data) : data;
  try {
    return loadAddon().Tensor.fromArray(arr, shape ?? [arr.length]);
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

export function toFloat32(t: Tensor): Float32Array {
  if (t.dtype !== 'float32') throw new PuzzleError('ERR_PUZZLE_DTYPE', `expected a float32 tensor, got ${t.dtype}`);
  return t.toArray() as Float32Array;
}

/** Disposes every tensor given (null and undefined are skipped). */
export function disposeAll(...ts: Array<Tensor | null | undefined | Tensor[]>): void {
  for (const t of ts) {
    if (Array.isArray(t)) t.forEach((x) => x.dispose());
    else t?.dispose();
  }
}
