/** Loads the PyTorch golden files (test/golden, made by scripts/golden/make_golden.py). */
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { openSafetensors, readFloat32, readInt32, type SafetensorsFile } from '../../ts/model/safetensors.js';
import { tensor, type Tensor } from '../../ts/core/tensor.js';
import { Block } from '../../ts/core/block.js';
import { ropeTables } from '../../ts/model/rope.js';
import type { Tolerance } from './tolerances.js';

const DIR = fileURLToPath(new URL('../golden/', import.meta.url));

export class Golden {
  readonly file: SafetensorsFile;
  constructor(name: string) {
    this.file = openSafetensors(`${DIR}${name}.safetensors`);
  }
  shape(name: string): number[] {
    const e = this.file.tensors.get(name);
    if (!e) throw new Error(`golden ${this.file.path} has no '${name}'`);
    return e.shape;
  }
  f32(name: string): Float32Array {
    return readFloat32(this.file, name);
  }
  i32(name: string): Int32Array {
    return readInt32(this.file, name);
  }
  /** A fresh engine tensor holding the golden values. */
  t(name: string): Tensor {
    const e = this.file.tensors.get(name);
    if (!e) throw new Error(`golden ${this.file.path} has no '${name}'`);
    return e.dtype === 'I32' ? tensor(this.i32(name), e.shape) : tensor(this.f32(name), e.shape);
  }
  meta<T = number>(key: string): T {
    return JSON.parse(this.file.metadata[key]) as T;
  }
  has(name: string): boolean {
    return this.file.tensors.has(name);
  }
  names(prefix = ''): string[] {
    return [...this.file.tensors.keys()].filter((n) => n.startsWith(prefix));
  }
}

/**
 * The block of a `block_*` golden file with its parameters loaded, and RoPE tables for its T
 * positions (the caller disposes all three).
 */
export function goldenBlock(g: Golden, dtype: 'float32' | 'bfloat16' = 'float32'): { block: Block; rope: { cos: Tensor; sin: Tensor } } {
  const attention = g.meta<string>('attention') as 'gqa' | 'linear' | 'noop';
  const block = new Block({
    hidden: g.meta('hidden'), heads: g.meta('heads'), headDim: g.meta('head_dim'), attention,
    kvHeads: attention === 'gqa' ? g.meta('kv_heads') : undefined,
    ffn: g.meta<string>('ffn') as 'swiglu' | 'linear' | 'noop', ffnWidth: g.meta('ffn_width'), eps: g.meta('eps'), dtype,
  });
  for (const name of g.names('param.')) block.param(name.slice(6)).copyFrom(g.f32(name));
  const { cos, sin } = ropeTables(g.meta('head_dim'), g.meta('T'), g.meta('rope_theta'));
  const half = g.meta<number>('head_dim') / 2;
  return { block, rope: { cos: tensor(cos, [g.meta('T'), half]), sin: tensor(sin, [g.meta('T'), half]) } };
}

/** Element-wise closeness with a message that names the worst element. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const excess = Math.abs(a - e) - (tol.atol + tol.rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    expect.fail(`${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
      `(atol ${tol.atol}, rtol ${tol.rtol})`);
  }
}

export function arr(t: Tensor | null): Float32Array {
  if (!t) throw new Error('expected a tensor, got null');
  return t.toArray() as Float32Array;
}
