/** Tensors are native memory with a shape; release them with dispose() when done. */
import { PuzzleError, fromNative } from './errors.js';
import { loadAddon } from '../native/loader.js';
import type { DTypeName, DeviceName, NativeTensor } from '../native/types.js';

export type Tensor = NativeTensor;
export type { DTypeName, DeviceName };

/**
 * A float32 (Float32Array) or int32 (Int32Array) tensor holding a copy of `data`; with dtype
 * 'bfloat16' float data is rounded to bf16 storage (toArray() widens it back). With device
 * 'cuda' the tensor lives on the GPU (toArray() and copyFrom() then copy across).
 */
export function tensor(
  data: Float32Array | Int32Array | number[],
  shape?: number[],
  dtype?: DTypeName,
  device?: DeviceName,
): Tensor {
  const arr = Array.isArray(data) ? Float32Array.from(data) : data;
  try {
    return loadAddon().Tensor.fromArray(arr, shape ?? [arr.length], dtype, device);
  } catch (err) {
    throw fromNative(err);
  }
}

export function zeros(shape: number[], dtype: DTypeName = 'float32', device: DeviceName = 'cpu'): Tensor {
  try {
    return loadAddon().Tensor.zeros(shape, dtype, device);
  } catch (err) {
    throw fromNative(err);
  }
}

export function ids(data: ArrayLike<number>, shape?: number[], device?: DeviceName): Tensor {
  return tensor(Int32Array.from(data), shape ?? [data.length], undefined, device);
}

/** `t` if it already lives on `device`, else a copy there (the original is left as it is). */
export function to(t: Tensor, device: DeviceName): Tensor {
  try {
    return t.to(device);
  } catch (err) {
    throw fromNative(err);
  }
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
