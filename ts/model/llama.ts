/**
 * A Llama / DeciLM causal language model on the engine: embedding -> decoder blocks -> final
 * RMSNorm -> LM head (tied to the embedding or not). TypeScript runs the layer loop; each block
 * runs natively. Training saves what backward needs inside each block; per-layer hidden states
 * can be returned (and receive extra gradients) for distillation.
 */
import { Block, type BlockShape } from '../core/block.js';
import { PuzzleError } from '../core/errors.js';
import * as ops from '../core/ops.js';
import type { ParamGroup } from '../core/optim.js';
import { ids as idsTensor, tensor, to, zeros, type DeviceName, type Tensor } from '../core/tensor.js';
import type { LayerSpec, ModelConfig } from './config.js';
import { ropeTables } from './rope.js';

/** Storage of the residual stream, activations and KV caches inside the blocks. */
export type ModelDType = 'float32' | 'bfloat16';
/** A precision as asked for: 'auto' is mixed precision on cuda and float32 on the CPU. */
export type DTypeSetting = ModelDType | 'auto';

export function resolveDType(dtype: DTypeSetting | undefined, device: DeviceName | undefined): ModelDType {
  return dtype === 'float32' || dtype === 'bfloat16' ? dtype : device === 'cuda' ? 'bfloat16' : 'float32';
}

export function blockShape(c: ModelConfig, l: LayerSpec): BlockShape {
  return {
    hidden: c.hidden, heads: c.heads, headDim: c.headDim, eps: c.eps,
    attention: l.attention.kind, kvHeads: l.attention.kind === 'gqa' ? l.attention.kvHeads : undefined,
    ffn: l.ffn.kind, ffnWidth: l.ffn.kind === 'swiglu' ? l.ffn.width : undefined,
  };
}

/** Deterministic normal(0, std) initialiser (xorshift + Box-Muller). */
export function normalInit(n: number, std: number, seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const u = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u())) * std;
    const t = 2 * Math.PI * u();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

interface Saved {
  ids: Tensor;
  B: number;
  T: number;
  final: Tensor;  // last block's output (input of the final norm)
  normed: Tensor;
  rstd: Tensor;
}

export interface KvCache {
  B: number;
  Tmax: number;
  /** tokens already in the cache */
  length: number;
  /** per layer: K and V tensors, or null for linear / no-op attention */
  layers: Array<{ k: Tensor; v: Tensor } | null>;
}

export function disposeCache(c: KvCache): void {
  for (const l of c.layers) {
    l?.k.dispose();
    l?.v.dispose();
  }
}

export interface ForwardResult {
  logits: Tensor;
  /** outputs of every layer (when asked), [B, T, hidden] each */
  hidden: Tensor[];
}

export class LlamaModel {
  readonly config: ModelConfig;
  /** where every weight, gradient, activation and KV cache of the model lives */
  readonly device: DeviceName;
  /**
   * 'bfloat16': mixed precision. The blocks keep float32 master weights and gradients and run on
   * bf16 copies, with bf16 activations and KV caches; the embedding, final norm, LM head and
   * losses stay float32, and the residual stream is rounded to bf16 on the way into the blocks.
   */
  readonly dtype: ModelDType;
  readonly embed: Tensor;
  readonly blocks: Block[];
  readonly norm: Tensor;
  /** null when tied to the embedding */
  readonly head: Tensor | null;
  private rope: { cos: Tensor; sin: Tensor; positions: number } | null = null;
  private grads: { embed: Tensor; norm: Tensor; head: Tensor | null } | null = null;
  private saved: Saved | null = null;
  private retained: Tensor[] = [];

  /**
   * `device` and `dtype` default to those of the blocks given, else the CPU and float32; given
   * blocks must all live there and have that dtype.
   */
  constructor(config: ModelConfig, blocks?: Block[], device?: DeviceName, dtype?: ModelDType) {
    this.config = config;
    this.device = device ?? blocks?.[0]?.device ?? 'cpu';
    this.dtype = dtype ?? blocks?.[0]?.dtype ?? 'float32';
    if (this.dtype !== 'float32' && this.dtype !== 'bfloat16')
      throw new PuzzleError('ERR_PUZZLE_ARG', `LlamaModel: dtype must be 'float32' or 'bfloat16', got '${String(this.dtype)}'`);
    const elsewhere = blocks?.findIndex((b) => b.device !== this.device) ?? -1;
    if (elsewhere >= 0)
      throw new PuzzleError('ERR_PUZZLE_DEVICE', `LlamaModel: block ${elsewhere} is on ${blocks![elsewhere].device}, the model on ${this.device}`);
    const other = blocks?.findIndex((b) => b.dtype !== this.dtype) ?? -1;
    if (other >= 0)
      throw new PuzzleError('ERR_PUZZLE_DTYPE', `LlamaModel: block ${other} is ${blocks![other].dtype}, the model ${this.dtype}`);
    const d = this.device;
    this.embed = zeros([config.vocab, config.hidden], 'float32', d);
    this.norm = tensor(new Float32Array(config.hidden).fill(1), [config.hidden], 'float32', d);
    this.head = config.tieEmbeddings ? null : zeros([config.vocab, config.hidden], 'float32', d);
    this.blocks = blocks ?? config.layers.map((l) => new Block({ ...blockShape(config, l), device: d, dtype: this.dtype }));
  }

  /** HF-style random init: normal(0, 0.02) weights, unit norms. */
  static random(config: ModelConfig, seed = 0, std = 0.02, device: DeviceName = 'cpu', dtype: ModelDType = 'float32'): LlamaModel {
    const m = new LlamaModel(config, undefined, device, dtype);
    m.embed.copyFrom(normalInit(m.embed.numel, std, seed * 1000 + 1));
    m.head?.copyFrom(normalInit(m.head.numel, std, seed * 1000 + 2));
    m.blocks.forEach((b, i) => {
      for (const p of b.params()) {
        const view = b.param(p.name);
        if (p.shape.length === 1) view.fill(1);
        else view.copyFrom(normalInit(p.numel, std, seed * 1000 + 10 + i * 16 + b.params().indexOf(p)));
      }
    });
    return m;
  }

  /** Every named parameter, HF names ("model.layers.3.self_attn.q_proj.weight", ...). */
  namedParameters(): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [['model.embed_tokens.weight', this.embed]];
    this.blocks.forEach((b, i) => {
      for (const p of b.params()) out.push([`model.layers.${i}.${p.name}`, b.param(p.name)]);
    });
    out.push(['model.norm.weight', this.norm]);
    if (this.head) out.push(['lm_head.weight', this.head]);
    return out;
  }

  numParams(): number {
    return this.embed.numel + this.norm.numel + (this.head?.numel ?? 0) + this.blocks.reduce((s, b) => s + b.numParams, 0);
  }

  ropeFor(T: number): { cos: Tensor; sin: Tensor } {
    if (!this.rope || this.rope.positions < T) {
      this.rope?.cos.dispose();
      this.rope?.sin.dispose();
      const positions = Math.max(T, Math.min(this.config.maxPositions, 2048));
      const { cos, sin } = ropeTables(this.config.headDim, positions, this.config.ropeTheta, this.config.ropeScaling);
      const half = this.config.headDim / 2;
      const d = this.device;
      this.rope = { cos: tensor(cos, [positions, half], 'float32', d), sin: tensor(sin, [positions, half], 'float32', d), positions };
    }
    return this.rope;
  }

  /**
   * ids[B, T] -> logits[B, T, vocab] (the caller disposes the logits). With `train`, activations
   * are kept for backward(); with `hidden`, every layer's output is returned. Hidden states
   * belong to the model: they stay valid until the next forward() or dispose(). `ids` may live
   * anywhere (they are copied to the model's device); the logits live on the model's device.
   */
  async forward(hostIds: Tensor, opts: { train?: boolean; hidden?: boolean } = {}): Promise<ForwardResult> {
    if (hostIds.shape.length !== 2) throw new PuzzleError('ERR_PUZZLE_SHAPE', `LlamaModel.forward: ids must be [B, T], got [${hostIds.shape}]`);
    this.release();
    const [B, T] = hostIds.shape;
    const ids = to(hostIds, this.device);
    if (ids !== hostIds && opts.train) this.retained.push(ids);  // backward reads them
    const rope = this.ropeFor(T);
    let h = await ops.castOwned(await ops.embeddingForward(ids, this.embed), this.dtype);
    if (ids !== hostIds && !opts.train) ids.dispose();
    // hidden states are handed out in float32 (copies, for a bf16 model): the losses are float32
    const hidden: Tensor[] = [];
    for (const block of this.blocks) {
      const next = await block.forward(h, B, T, rope, Boolean(opts.train));
      if (opts.hidden) hidden.push(await ops.cast(next, 'float32'));
      if (!hidden.includes(h)) h.dispose();
      h = next;
    }
    h = await ops.castOwned(h, 'float32');  // never one of `hidden`: those are float32 copies
    const { out: normed, rstd } = await ops.rmsnormForward(h, this.norm, this.config.eps);
    const logits = await ops.matmulForward(normed, this.head ?? this.embed);
    this.retained.push(...hidden);
    if (opts.train) {
      this.saved = { ids, B, T, final: h, normed, rstd };
      if (!hidden.includes(h)) this.retained.push(h);
      this.retained.push(normed, rstd);
    } else {
      if (!hidden.includes(h)) h.dispose();
      normed.dispose();
      rstd.dispose();
    }
    return { logits, hidden };
  }

  /** A KV cache for B sequences of up to Tmax tokens: K and V [B, Tmax, kvHeads, headDim] per GQA layer, in the model's dtype. */
  newCache(B: number, Tmax: number): KvCache {
    const layers = this.config.layers.map((l) =>
      l.attention.kind === 'gqa'
        ? {
          k: zeros([B, Tmax, l.attention.kvHeads, this.config.headDim], this.dtype, this.device),
          v: zeros([B, Tmax, l.attention.kvHeads, this.config.headDim], this.dtype, this.device),
        }
        : null);
    return { B, Tmax, length: 0, layers };
  }

  /**
   * Inference step over a KV cache: ids[B, T] are the tokens at positions cache.length ..
   * cache.length+T-1 (T > 1 for a prompt, 1 for a decode step); returns logits[B, T, vocab]
   * and advances the cache.
   */
  async forwardCached(hostIds: Tensor, cache: KvCache): Promise<Tensor> {
    const [B, T] = hostIds.shape;
    if (B !== cache.B) throw new PuzzleError('ERR_PUZZLE_SHAPE', `forwardCached: ids has batch ${B}, the cache ${cache.B}`);
    if (cache.length + T > cache.Tmax)
      throw new PuzzleError('ERR_PUZZLE_RANGE', `forwardCached: ${cache.length} cached + ${T} new tokens exceed the cache length ${cache.Tmax}`);
    const past = cache.length;
    const rope = this.ropeFor(past + T);
    const pos = idsTensor(Int32Array.from({ length: T }, (_, t) => past + t), [T], this.device);
    const ids = to(hostIds, this.device);
    let h = await ops.castOwned(await ops.embeddingForward(ids, this.embed), this.dtype);
    if (ids !== hostIds) ids.dispose();
    if (this.blocks.length > 0) {  // every layer in one native task: one wait for the device, not one per layer
      const out = await Block.forwardCachedStack(this.blocks, h, B, T, { ...rope, pos }, cache.layers, past);
      h.dispose();
      h = out;
    }
    h = await ops.castOwned(h, 'float32');
    pos.dispose();
    const { out: normed, rstd } = await ops.rmsnormForward(h, this.norm, this.config.eps);
    const logits = await ops.matmulForward(normed, this.head ?? this.embed);
    h.dispose(), normed.dispose(), rstd.dispose();
    cache.length += T;
    return logits;
  }

  /**
   * Inference only: bfloat16 blocks keep just their bf16 weights (a third of the bytes) and stop
   * converting the float32 ones before every forward, which they must do while JS may write them
   * through their views: in a decode step that conversion reads each weight twice more and writes
   * it once. Afterwards the model cannot be trained or saved and its block parameters cannot be
   * read. A float32 model is left as it is. Returns the model.
   */
  forInference(): this {
    if (this.dtype === 'bfloat16') for (const b of this.blocks) b.dropMasterWeights();
    return this;
  }

  /** Releases what the last forward kept (hidden states, saved activations). */
  release(): void {
    for (const t of this.retained) t.dispose();
    this.retained = [];
    this.saved = null;
  }

  private ensureGrads() {
    const z = (t: Tensor) => zeros(t.shape, 'float32', this.device);
    if (!this.grads) this.grads = { embed: z(this.embed), norm: z(this.norm), head: this.head ? z(this.head) : null };
    return this.grads;
  }

  zeroGrad(): void {
    const g = this.ensureGrads();
    g.embed.fill(0), g.norm.fill(0), g.head?.fill(0);
    for (const b of this.blocks) b.zeroGrad();
  }

  /** Parameter groups for AdamW (norms without weight decay, as is customary). */
  paramGroups(): ParamGroup[] {
    const g = this.ensureGrads();
    const groups: ParamGroup[] = [{ param: this.embed, grad: g.embed }];
    for (const b of this.blocks) if (b.numParams) groups.push({ param: b.paramBuffer(), grad: b.gradBuffer() });
    groups.push({ param: this.norm, grad: g.norm, weightDecay: 0 });
    if (this.head && g.head) groups.push({ param: this.head, grad: g.head });
    return groups;
  }

  /**
   * Backward from d(logits) (and optionally extra gradients on layer outputs, e.g. from a
   * per-layer cosine loss); accumulates into the parameter gradients.
   */
  async backward(dlogits: Tensor, extraHidden?: Array<Tensor | null>): Promise<void> {
    const s = this.saved;
    if (!s) throw new PuzzleError('ERR_PUZZLE_STATE', 'LlamaModel.backward: call forward(ids, { train: true }) first');
    const g = this.ensureGrads();
    const W = this.head ?? this.embed;
    const lm = await ops.matmulBackward(dlogits, s.normed, W);
    await ops.accumulate(this.head ? g.head! : g.embed, lm.dweight);
    lm.dweight.dispose();
    const nb = await ops.rmsnormBackward(lm.dinp, s.final, this.norm, s.rstd);
    lm.dinp.dispose();
    await ops.accumulate(g.norm, nb.dweight);
    nb.dweight.dispose();
    let d = await ops.castOwned(nb.dinp, this.dtype);
    for (let i = this.blocks.length - 1; i >= 0; i--) {
      const extra = extraHidden?.[i];
      if (extra) {
        // the extra gradient is float32 (as the hidden states handed out are): add in float32
        const wide = await ops.cast(d, 'float32');
        await ops.accumulate(wide, extra);
        if (wide !== d) {
          d.dispose();
          d = await ops.castOwned(wide, this.dtype);
        }
      }
      const dx = (await this.blocks[i].backward(d, true))!;
      d.dispose();
      d = dx;
    }
    d = await ops.castOwned(d, 'float32');
    await ops.embeddingBackward(g.embed, d, s.ids);
    d.dispose();
  }

  dispose(): void {
    this.release();
    this.embed.dispose();
    this.norm.dispose();
    this.head?.dispose();
    for (const b of this.blocks) b.dispose();
    this.rope?.cos.dispose();
    this.rope?.sin.dispose();
    if (this.grads) {
      this.grads.embed.dispose();
      this.grads.norm.dispose();
      this.grads.head?.dispose();
    }
  }
}

/** Token ids as a [B, T] int32 tensor. */
export function batchTensor(rows: ArrayLike<number>[]): Tensor {
  const T = rows[0]?.length ?? 0;
  const flat = new Int32Array(rows.length * T);
  rows.forEach((r, b) => {
    if (r.length !== T) throw new PuzzleError('ERR_PUZZLE_SHAPE', `batch row ${b} has ${r.length} tokens, expected ${T}`);
    flat.set(Array.from(r), b * T);
  });
  return idsTensor(flat, [rows.length, T]);
}
