/**
 * One decoder layer (any DeciLM variant) on the native engine. Parameters and gradients are
 * Tensor views into the block's flat buffers, named as in a Hugging Face Llama layer
 * ("self_attn.q_proj.weight", ...; "self_attn.linear_attn.weight" and "mlp.linear_mlp.weight"
 * for linear replacements; nothing at all for a no-op subblock).
 */
import { fromNative, native } from './errors.js';
import type { Tensor } from './tensor.js';
import { loadAddon } from '../native/loader.js';
import type { NativeBlock, NativeBlockConfig, NativeParamInfo } from '../native/types.js';

export type BlockShape = NativeBlockConfig;

/** RoPE tables as tensors [positions, headDim/2], shared by every layer of a model. */
export interface RopeInputs {
  cos: Tensor;
  sin: Tensor;
  /** row of the tables for each position t (defaults to 0..T-1) */
  pos?: Tensor | null;
}

/** Runs a synchronous native call, converting its errors to PuzzleError. */
function sync<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err);
  }
}

export class Block {
  readonly shape: BlockShape;
  private readonly nb: NativeBlock;

  constructor(shape: BlockShape) {
    this.shape = { ...shape };
    const Addon = loadAddon();
    try {
      this.nb = new Addon.Block(shape);
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** 'bfloat16': activations and KV caches in bf16, float32 master weights and gradients. */
  get dtype(): 'float32' | 'bfloat16' {
    return sync(() => this.nb.dtype);
  }
  /** 'cuda': parameters, gradients and workspace on the GPU; it takes and returns GPU tensors. */
  get device(): 'cpu' | 'cuda' {
    return sync(() => this.nb.device);
  }
  get numParams(): number {
    return sync(() => this.nb.numParams);
  }
  params(): NativeParamInfo[] {
    return sync(() => this.nb.params());
  }
  param(name: string): Tensor {
    return sync(() => this.nb.param(name));
  }
  grad(name: string): Tensor {
    return sync(() => this.nb.grad(name));
  }
  /** All parameters as one flat tensor (a view): what the optimiser updates. */
  paramBuffer(): Tensor {
    return sync(() => this.nb.paramBuffer());
  }
  gradBuffer(): Tensor {
    return sync(() => this.nb.gradBuffer());
  }
  setTrainable(name: string, trainable: boolean): void {
    sync(() => this.nb.setTrainable(name, trainable));
  }
  /** Freezes (or unfreezes) every parameter of the block. */
  setAllTrainable(trainable: boolean): void {
    for (const p of this.nb.params()) this.nb.setTrainable(p.name, trainable);
  }
  zeroGrad(): void {
    sync(() => this.nb.zeroGrad());
  }

  /** x[B, T, hidden] -> out[B, T, hidden]; `save` keeps what backward needs. */
  forward(x: Tensor, B: number, T: number, rope: RopeInputs | null, save: boolean): Promise<Tensor> {
    return native(() => this.nb.forward(x, B, T, rope?.cos ?? null, rope?.sin ?? null, rope?.pos ?? null, save));
  }

  /**
   * Inference over a KV cache: x[B, T, hidden] holds the T new tokens at positions
   * past .. past+T-1 (rope.pos must hold them). GQA blocks append their keys and values to
   * `cache` (tensors [B, Tmax, kvHeads, headDim]); linear and no-op attention need none.
   */
  forwardCached(x: Tensor, B: number, T: number, rope: Required<RopeInputs>, cache: { k: Tensor; v: Tensor } | null, past: number): Promise<Tensor> {
    return native(() => this.nb.forwardCached(x, B, T, rope.cos, rope.sin, rope.pos, cache?.k ?? null, cache?.v ?? null, past));
  }

  /**
   * Blocks one after another over their KV caches (a model's layers in a prefill or a decode
   * step): what forwardCached returns called block by block, in one native task with one wait for
   * the device at the end instead of a round trip to JS (and, on a GPU, a device synchronisation)
   * per layer. caches[i] is block i's cache, null for linear or no-op attention.
   */
  static forwardCachedStack(blocks: Block[], x: Tensor, B: number, T: number, rope: Required<RopeInputs>, caches: ({ k: Tensor; v: Tensor } | null)[], past: number): Promise<Tensor> {
    const Addon = loadAddon();
    return native(() => Addon.Block.forwardCachedStack(blocks.map((b) => b.nb), x, B, T, rope.cos, rope.sin, rope.pos, caches.map((c) => c?.k ?? null), caches.map((c) => c?.v ?? null), past));
  }

  /** Accumulates parameter gradients; returns the input gradient when asked. */
  backward(dout: Tensor, wantInputGrad: boolean): Promise<Tensor | null> {
    return native(() => this.nb.backward(dout, wantInputGrad));
  }

  /**
   * A copy [N, cols] of an activation the last forward(save = true) kept: 'attn_input'
   * (RMSNorm(x)), 'x1' (x + attention), 'ffn_input' (RMSNorm(x1)), 'ffn_hidden' (silu(gate)*up).
   */
  savedActivation(name: 'attn_input' | 'x1' | 'ffn_input' | 'ffn_hidden'): Tensor {
    return sync(() => this.nb.savedActivation(name));
  }

  /**
   * Inference only, bfloat16 blocks: keeps just the bf16 copy of the weights (a third of the
   * bytes); the float32 parameters can no longer be read or trained afterwards.
   */
  dropMasterWeights(): void {
    sync(() => this.nb.dropMasterWeights());
  }

  dispose(): void {
    this.nb.dispose();
  }
}
