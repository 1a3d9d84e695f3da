/** Option parsers for commander that fail with the option's name and what was expected. */
import { InvalidArgumentError } from 'commander';

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
