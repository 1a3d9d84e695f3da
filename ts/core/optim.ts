/**
 * AdamW (decoupled weight decay, torch.optim.AdamW semantics) with global-norm gradient
 * clipping (torch.nn.utils.clip_grad_norm_ semantics), over any set of (param, grad) tensors,
 * and the warm-up + cosine learning-rate schedule.
 */
import { PuzzleError, native } from './errors.js';
import { zeros, type Tensor } from './tensor.js';
import { loadAddon } from '../native/loader.js';

export interface AdamWConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** max global gradient norm; 0 or Infinity disables clipping */
  clip?: number;
}

export interface ParamGroup {
  param: Tensor;
  grad: Tensor;
  /** per-group weight decay override (e.g. 0 for norms) */
  weightDecay?: number;
}

interface State {
  m: Tensor;
  v: Tensor;
}

export class AdamW {
  readonly config: Required<AdamWConfig>;
  private readonly groups: ParamGroup[];
  private readonly state: State[];
  private t = 0;

  constructor(groups: ParamGroup[], config: AdamWConfig) {
    for (const [i, g] of groups.entries())
      if (g.param.numel !== g.grad.numel)
        throw new PuzzleError('ERR_PUZZLE_SHAPE', `AdamW: group ${i} has ${g.param.numel} parameters but ${g.grad.numel} gradients`);
    this.config = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1.0, ...config };
    this.groups = groups;
    // moments live beside their parameters (the update runs where they are)
    this.state = groups.map(({ param }) => ({
      m: zeros([param.numel], 'float32', param.device),
      v: zeros([param.numel], 'float32', param.device),
    }));
  }

  get stepCount(): number {
    return this.t;
  }

  /** Global L2 norm of all gradients. */
  async gradNorm(): Promise<number> {
    let sq = 0;
    for (const g of this.groups) sq += await native(() => loadAddon().ops.sumSquares(g.grad, g.grad.numel));
    return Math.sqrt(sq);
  }

  /** One update; returns the gradient norm before clipping. */
  async step(lr = this.config.lr): Promise<{ gradNorm: number; scale: number }> {
    const norm = await this.gradNorm();
    if (!Number.isFinite(norm))
      throw new PuzzleError('ERR_PUZZLE_NAN', `AdamW.step: the global gradient norm is ${norm}; refusing to update the weights`);
    const { beta1, beta2, eps, weightDecay, clip } = this.config;
    const scale = clip > 0 && Number.isFinite(clip) ? Math.min(1, clip / (norm + 1e-6)) : 1;
    this.t++;
    const ops = loadAddon().ops;
    for (const [i, g] of this.groups.entries()) {
      const s = this.state[i];
      await native(() => ops.adamwUpdate(g.param, g.grad, s.m, s.v, g.param.numel, lr, beta1, beta2, eps,
        g.weightDecay ?? weightDecay, scale, this.t));
    }
    return { gradNorm: norm, scale };
  }

  /** Optimiser state for checkpoints. */
  exportState(): { t: number; m: Float32Array[]; v: Float32Array[] } {
    return { t: this.t, m: this.state.map((s) => s.m.toArray() as Float32Array), v: this.state.map((s) => s.v.toArray() as Float32Array) };
  }

  importState(st: { t: number; m: Float32Array[]; v: Float32Array[] }): void {
    if (st.m.length !== this.state.length || st.v.length !== this.state.length)
      throw new PuzzleError('ERR_PUZZLE_STATE', `AdamW.importState: ${st.m.length} groups saved, ${this.state.length} expected`);
    this.t = st.t;
    this.state.forEach((s, i) => {
      s.m.copyFrom(st.m[i]);
      s.v.copyFrom(st.v[i]);
    });
  }

  dispose(): void {
    for (const s of this.state) {
      s.m.dispose();
      s.v.dispose();
    }
  }
}

/** Linear warm-up to `lr` over warmupFraction of the steps, then cosine decay to minFraction*lr. */
export function warmupCosine(step: number, totalSteps: number, lr: number, warmupFraction = 0.05, minFraction = 0): number {
  const warm = Math.max(1, Math.round(totalSteps * warmupFraction));
  if (step < warm) return (lr * (step + 1)) / warm;
  const progress = Math.min(1, (step - warm) / Math.max(1, totalSteps - warm));
  return lr * (minFraction + (1 - minFraction) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}
