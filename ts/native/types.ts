/** The raw surface of the native addon (native/bindings). Only ts/native and ts/core use it. */

/** bfloat16 tensors read and write as Float32Array (rounded to nearest even on the way in). */
export type DTypeName = 'float32' | 'int32' | 'bfloat16';

/** Where a tensor or block lives: host memory, or the GPU of the CUDA module. */
export type DeviceName = 'cpu' | 'cuda';

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DTypeName;
  readonly numel: number;
  readonly disposed: boolean;
  readonly device: DeviceName;
  /** this tensor if it already lives on `device`, else a copy there */
  to(device: DeviceName): NativeTensor;
  toArray(): Float32Array | Int32Array;
  copyFrom(data: Float32Array | Int32Array): this;
  fill(value: number): this;
  dispose(): void;
}

export interface NativeTensorClass {
  fromArray(data: Float32Array | Int32Array, shape?: number[], dtype?: DTypeName, device?: DeviceName): NativeTensor;
  zeros(shape: number[], dtype?: DTypeName, device?: DeviceName): NativeTensor;
}

type T = NativeTensor;
type Opt = NativeTensor | null;

export interface NativeOps {
  embeddingForward(out: T, ids: T, table: T, N: number, C: number, V: number): Promise<void>;
  embeddingBackward(dtable: T, dout: T, ids: T, N: number, C: number, V: number): Promise<void>;
  rmsnormForward(out: T, rstd: T, inp: T, weight: T, N: number, C: number, eps: number): Promise<void>;
  rmsnormBackward(dinp: Opt, dweight: Opt, dout: T, inp: T, weight: T, rstd: T, N: number, C: number): Promise<void>;
  matmulForward(out: T, inp: T, weight: T, bias: Opt, N: number, C: number, OC: number): Promise<void>;
  matmulBackward(dinp: Opt, dweight: Opt, dbias: Opt, dout: T, inp: T, weight: T, N: number, C: number, OC: number): Promise<void>;
  ropeForward(out: T, inp: T, cos: T, sin: T, pos: Opt, B: number, Tn: number, NH: number, HS: number): Promise<void>;
  ropeBackward(dinp: T, dout: T, cos: T, sin: T, pos: Opt, B: number, Tn: number, NH: number, HS: number): Promise<void>;
  attentionForward(out: T, lse: T, q: T, k: T, v: T, B: number, Tn: number, NH: number, NKV: number, HS: number): Promise<void>;
  attentionBackward(dq: T, dk: T, dv: T, dout: T, q: T, k: T, v: T, out: T, lse: T, B: number, Tn: number, NH: number, NKV: number, HS: number): Promise<void>;
  swigluForward(out: T, gu: T, N: number, F: number): Promise<void>;
  swigluBackward(dgu: T, dout: T, gu: T, N: number, F: number): Promise<void>;
  add(out: T, a: T, b: T, n: number): Promise<void>;
  accumulate(out: T, a: T, n: number): Promise<void>;
  cast(out: T, inp: T, n: number): Promise<void>;
  crossEntropyForward(losses: T, lse: T, logits: T, targets: T, N: number, V: number): Promise<void>;
  crossEntropyBackward(dlogits: T, logits: T, lse: T, targets: T, N: number, V: number, scale: number): Promise<void>;
  klForward(losses: T, teacher: T, student: T, N: number, V: number): Promise<void>;
  klBackward(dstudent: T, teacher: T, student: T, N: number, V: number, scale: number): Promise<void>;
  cosineForward(losses: T, x: T, y: T, N: number, C: number): Promise<void>;
  cosineBackward(dx: T, x: T, y: T, N: number, C: number, scale: number): Promise<void>;
  nmseForward(x: T, y: T, n: number): Promise<number>;
  nmseBackward(dx: T, x: T, y: T, n: number, scale: number): Promise<void>;
  sumSquares(x: T, n: number): Promise<number>;
  adamwUpdate(param: T, grad: T, m: T, v: T, n: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, gradScale: number, t: number): Promise<void>;
}

export interface NativeBlockConfig {
  hidden: number;
  attention: 'gqa' | 'linear' | 'noop';
  heads?: number;
  headDim?: number;
  kvHeads?: number;
  ffn: 'swiglu' | 'linear' | 'noop';
  ffnWidth?: number;
  eps?: number;
  /** activations (and KV caches) in bfloat16 with float32 master weights; default float32 */
  dtype?: 'float32' | 'bfloat16';
  /** where parameters, gradients, workspace and the tensors it takes live; default 'cpu' */
  device?: DeviceName;
}

export interface NativeParamInfo {
  name: string;
  shape: number[];
  offset: number;
  numel: number;
  trainable: boolean;
}

export interface NativeBlock {
  readonly numParams: number;
  readonly dtype: 'float32' | 'bfloat16';
  readonly device: DeviceName;
  params(): NativeParamInfo[];
  param(name: string): NativeTensor;
  grad(name: string): NativeTensor;
  paramBuffer(): NativeTensor;
  gradBuffer(): NativeTensor;
  setTrainable(name: string, trainable: boolean): void;
  zeroGrad(): void;
  forward(x: T, B: number, Tn: number, cos: Opt, sin: Opt, pos: Opt, save: boolean): Promise<NativeTensor>;
  backward(dout: T, wantInputGrad: boolean): Promise<NativeTensor | null>;
  forwardCached(x: T, B: number, Tn: number, cos: Opt, sin: Opt, pos: Opt, kCache: Opt, vCache: Opt, past: number): Promise<NativeTensor>;
  savedActivation(name: 'attn_input' | 'x1' | 'ffn_input' | 'ffn_hidden'): NativeTensor;
  dropMasterWeights(): void;
  dispose(): void;
}

export interface EngineInfo {
  cpuModel: string;
  isa: 'avx512' | 'avx2' | 'scalar';
  gemmKernel: string;
  threads: number;
  features: string[];
}

export interface CudaInfo {
  moduleBuilt: boolean;
  moduleLoaded: boolean;
  devices: number;
  description: string;
}

export interface NativeAddon {
  Tensor: NativeTensorClass & (abstract new () => NativeTensor);
  Block: (new (config: NativeBlockConfig) => NativeBlock) & {
    /** blocks one after another over their caches, in one native task (see Block.forwardCachedStack) */
    forwardCachedStack(blocks: NativeBlock[], x: T, B: number, Tn: number, cos: Opt, sin: Opt, pos: Opt, kCaches: Opt[], vCaches: Opt[], past: number): Promise<NativeTensor>;
  };
  ops: NativeOps;
  engineInfo(): EngineInfo;
  cudaInfo(): CudaInfo;
  cudaRmsnormForward(out: T, inp: T, weight: T, N: number, C: number, eps: number): Promise<void>;
  setThreads(n: number): number;
}
