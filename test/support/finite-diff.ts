/**
 * Directional finite differences in fp32: for L(x) = sum(f(x) * R), compare
 * central differences (L(x + h d) - L(x - h d)) / 2h, Richardson-extrapolated, with <dL/dx, d>
 * from the analytic backward.
 */
import { randn } from '../../ts/bench/engine.js';

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export async function directionalError(
  x0: Float32Array,
  loss: (x: Float32Array) => Promise<number>,
  grad: Float32Array,
  seed: number,
  h = 1e-2,
): Promise<{ fd: number; analytic: number; rel: number }> {
  const d = randn(x0.length, 1, seed);
  const central = async (step: number) =>
    ((await loss(x0.map((v, i) => v + step * d[i]))) - (await loss(x0.map((v, i) => v - step * d[i])))) / (2 * step);
  // Richardson extrapolation cancels the h^2 term, so h can stay large enough for fp32.
  const fd = (4 * (await central(h / 2)) - (await central(h))) / 3;
  const analytic = dot(grad, d);
  return { fd, analytic, rel: Math.abs(fd - analytic) / Math.max(1e-3, Math.abs(analytic)) };
}
