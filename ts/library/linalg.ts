/** Small dense linear algebra in plain TypeScript (C x C systems, C up to a few thousand). */
import { PuzzleError } from '../core/errors.js';

/** Row-major transpose of a [rows, cols] matrix. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/**
 * Solves (A + ridge * mean(diag A) * I) X = B for symmetric positive semi-definite A [n, n] and
 * B [n, m] by Cholesky, in float64. Returns X [n, m].
 */
export function solveSpd(A: Float64Array, B: Float64Array, n: number, m: number, ridge = 1e-4): Float64Array {
  const L = Float64Array.from(A);
  let tr = 0;
  for (let i = 0; i < n; i++) tr += A[i * n + i];
  const lambda = ridge * (tr / n || 1);
  for (let i = 0; i < n; i++) L[i * n + i] += lambda;
  for (let j = 0; j < n; j++) {
    let d = L[j * n + j];
    for (let k = 0; k < j; k++) d -= L[j * n + k] * L[j * n + k];
    if (!(d > 0)) throw new PuzzleError('ERR_PUZZLE_NUMERIC', `least-squares system is not positive definite at pivot ${j}`);
    const s = Math.sqrt(d);
    L[j * n + j] = s;
    for (let i = j + 1; i < n; i++) {
      let v = L[i * n + j];
      for (let k = 0; k < j; k++) v -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = v / s;
    }
  }
  const X = Float64Array.from(B);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {  // forward: L y = b
      let v = X[i * m + c];
      for (let k = 0; k < i; k++) v -= L[i * n + k] * X[k * m + c];
      X[i * m + c] = v / L[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {  // backward: L^T x = y
      let v = X[i * m + c];
      for (let k = i + 1; k < n; k++) v -= L[k * n + i] * X[k * m + c];
      X[i * m + c] = v / L[i * n + i];
    }
  }
  return X;
}
