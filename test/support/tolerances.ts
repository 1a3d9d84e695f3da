/**
 * Tolerances, written down once. An element passes when |actual - expected| <= atol + rtol*|expected|.
 * Goldens are PyTorch float64 results rounded to float32, so these bound our fp32 kernels' error.
 */
export interface Tolerance {
  atol: number;
  rtol: number;
}

export const TOL = {
  /** single ops in fp32 */
  op: { atol: 2e-5, rtol: 2e-4 } as Tolerance,
  /** whole decoder blocks (a dozen ops deep) in fp32 */
  block: { atol: 1e-4, rtol: 1e-3 } as Tolerance,
  /** optimiser state after a few steps */
  optim: { atol: 1e-6, rtol: 1e-5 } as Tolerance,
  /** finite differences in fp32: relative error of a directional derivative */
  fd: 2e-2,
  /** whole decoder blocks in bf16 (activations rounded to 8 significant bits after every op)
   * against the fp32 goldens, per element; whole tensors are also held to a relative L2 error */
  bf16Block: { atol: 3e-2, rtol: 3e-2 } as Tolerance,
  /** CUDA fp32 against CPU fp32 */
  cudaF32: { atol: 1e-5, rtol: 1e-4 } as Tolerance,
};
