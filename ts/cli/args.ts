/** Option parsers for commander that fail with the option's name and what was expected. */
import { InvalidArgumentError } from 'commander';
import type { DTypeSetting } from '../model/llama.js';

export const int = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} expects a non-negative integer, got '${v}'`);
  return n;
};

export const num = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} expects a number, got '${v}'`);
  return n;
};

/** --device: where a command's models and training run. */
export const device = (name: string) => (v: string): 'cpu' | 'cuda' => {
  if (v !== 'cpu' && v !== 'cuda') throw new InvalidArgumentError(`${name} expects cpu or cuda, got '${v}'`);
  return v;
};
export const DEVICE_HELP = 'where the models run and train: cpu or cuda (the GPU through the same engine)';

/** --dtype: the models' precision; auto is bfloat16 (mixed precision) on cuda, float32 on cpu. */
export const modelDType = (name: string) => (v: string): DTypeSetting => {
  if (v !== 'auto' && v !== 'float32' && v !== 'bfloat16') throw new InvalidArgumentError(`${name} expects auto, float32 or bfloat16, got '${v}'`);
  return v;
};
export const DTYPE_HELP = 'precision: float32, bfloat16 (bf16 blocks, activations and KV caches with float32 master weights) or auto (bfloat16 on cuda, float32 on cpu)';
export { resolveDType, type DTypeSetting } from '../model/llama.js';
