/**
 * The engine's ops with a functional shape: each forward returns new tensors (and what its
 * backward needs), each backward returns new gradient tensors. The caller disposes results.
 * Dimension letters follow native/include/puzzle/backend.h.
 */
import { PuzzleError, native } from './errors.js';
import { to, zeros, type Tensor } from './tensor.js';
import { loadAddon } from '../native/loader.js';

const raw = () => loadAddon().ops;

/** A float32 output on the device of `like`: ops run where their inputs live. */
function zerosLike(like: Tensor, shape: number[]): Tensor {
  return zeros(shape, 'float32', like.disposed ? 'cpu' : like.device); // a disposed input fails in the op, by name
}

/** Runs a native op that writes `outs`; on failure the outputs are released before the error propagates. */
async function fill(outs: Array<Tensor | null>, fn: () => Promise<void>): Promise<void> {
  try {
    await native(fn);
  } catch (err) {
    for (const t of outs) t?.dispose();
    throw err;
  }
}

function lastDim(t: Tensor, name: string): number {
  if (t.disposed) throw new PuzzleError('ERR_PUZZLE_DISPOSED', `argument '${name}' is a disposed Tensor`);
  const s = t.shape;
  if (s.length < 1) throw new PuzzleError('ERR_PUZZLE_SHAPE', `argument '${name}' must have at least one dimension`);
  return s[s.length - 1];
}

function rows(t: Tensor, name: string): { N: number; C: number } {
  const C = lastDim(t, name);
  return { N: C === 0 ? 0 : t.numel / C, C };
}

function need4(t: Tensor, name: string): [number, number, number, number] {
  if (t.disposed) throw new PuzzleError('ERR_PUZZLE_DISPOSED', `argument '${name}' is a disposed Tensor`);
  if (t.shape.length !== 4)
    throw new PuzzleError('ERR_PUZZLE_SHAPE', `argument '${name}' must be [B, T, heads, headDim], got [${t.shape}]`);
  return t.shape as [number, number, number, number];
}

/**
 * Runs `fn` with index data (token ids, targets: small int32 tensors, usually made on the host)
 * on the device of `like`, copied there when it lives elsewhere. Float data is never moved
 * implicitly: an op on float tensors from two devices fails with ERR_PUZZLE_DEVICE.
 */
async function withIndex<R>(idx: Tensor, like: Tensor, fn: (i: Tensor) => Promise<R>): Promise<R> {
  const moved = idx.disposed || like.disposed || idx.device === like.device ? idx : to(idx, like.device);
  try {
    return await fn(moved);
  } finally {
    if (moved !== idx) moved.dispose();
  }
}

// ---------------------------------------------------------------------------- embedding
export async function embeddingForward(ids: Tensor, table: Tensor): Promise<Tensor> {
  const { N: V, C } = rows(table, 'table');
  const out = zerosLike(table, [...ids.shape, C]);
  await withIndex(ids, table, (i) => fill([out], () => raw().embeddingForward(out, i, table, i.numel, C, V)));
  return out;
}

/** Accumulates into `dtable` (a gradient buffer the caller owns). */
export async function embeddingBackward(dtable: Tensor, dout: Tensor, ids: Tensor): Promise<void> {
  const { N: V, C } = rows(dtable, 'dtable');
  await withIndex(ids, dtable, (i) => native(() => raw().embeddingBackward(dtable, dout, i, i.numel, C, V)));
}

// ---------------------------------------------------------------------------- RMSNorm
export async function rmsnormForward(inp: Tensor, weight: Tensor, eps: number): Promise<{ out: Tensor; rstd: Tensor }> {
  const { N, C } = rows(inp, 'inp');
  const out = zerosLike(inp, inp.shape);
  const rstd = zerosLike(inp, [N]);
  await fill([out, rstd], () => raw().rmsnormForward(out, rstd, inp, weight, N, C, eps));
  return { out, rstd };
}

export async function rmsnormBackward(
  dout: Tensor, inp: Tensor, weight: Tensor, rstd: Tensor,
): Promise<{ dinp: Tensor; dweight: Tensor }> {
  const { N, C } = rows(inp, 'inp');
  const dinp = zerosLike(inp, inp.shape);
  const dweight = zerosLike(inp, [C]);
  await fill([dinp, dweight], () => raw().rmsnormBackward(dinp, dweight, dout, inp, weight, rstd, N, C));
  return { dinp, dweight };
}

// ---------------------------------------------------------------------------- linear
/** out[..., OC] = inp[..., C] @ weight[OC, C]^T (+ bias) */
export async function matmulForward(inp: Tensor, weight: Tensor, bias: Tensor | null = null): Promise<Tensor> {
  const { N, C } = rows(inp, 'inp');
  const OC = weight.shape[0];
  const out = zerosLike(inp, [...inp.shape.slice(0, -1), OC]);
  await fill([out], () => raw().matmulForward(out, inp, weight, bias, N, C, OC));
  return out;
}

export async function matmulBackward(
  dout: Tensor, inp: Tensor, weight: Tensor, withBias = false,
): Promise<{ dinp: Tensor; dweight: Tensor; dbias: Tensor | null }> {
  const { N, C } = rows(inp, 'inp');
  const OC = weight.shape[0];
  const dinp = zerosLike(inp, inp.shape);
  const dweight = zerosLike(inp, weight.shape);
  const dbias = withBias ? zerosLike(inp, [OC]) : null;
  await fill([dinp, dweight, dbias], () => raw().matmulBackward(dinp, dweight, dbias, dout, inp, weight, N, C, OC));
  return { dinp, dweight, dbias };
}

// ---------------------------------------------------------------------------- RoPE
/** x[B, T, heads, headDim] rotated by the tables of ts/model/rope.ts; pos[T] optional. */
export async function ropeForward(x: Tensor, cos: Tensor, sin: Tensor, pos: Tensor | null = null): Promise<Tensor> {
  const [B, T, NH, HS] = need4(x, 'x');
  const out = zerosLike(x, x.shape);
  await fill([out], () => raw().ropeForward(out, x, cos, sin, pos, B, T, NH, HS));
  return out;
}

export async function ropeBackward(dout: Tensor, cos: Tensor, sin: Tensor, pos: Tensor | null = null): Promise<Tensor> {
  const [B, T, NH, HS] = need4(dout, 'dout');
  const dinp = zerosLike(dout, dout.shape);
  await fill([dinp], () => raw().ropeBackward(dinp, dout, cos, sin, pos, B, T, NH, HS));
  return dinp;
}

// ---------------------------------------------------------------------------- attention
/** Causal GQA: q[B,T,NH,HS], k/v[B,T,NKV,HS] -> out[B,T,NH,HS] and lse[B,NH,T]. */
export async function attentionForward(q: Tensor, k: Tensor, v: Tensor): Promise<{ out: Tensor; lse: Tensor }> {
  const [B, T, NH, HS] = need4(q, 'q');
  const NKV = need4(k, 'k')[2];
  const out = zerosLike(q, q.shape);
  const lse = zerosLike(q, [B, NH, T]);
  await fill([out, lse], () => raw().attentionForward(out, lse, q, k, v, B, T, NH, NKV, HS));
  return { out, lse };
}

export async function attentionBackward(
  dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
): Promise<{ dq: Tensor; dk: Tensor; dv: Tensor }> {
  const [B, T, NH, HS] = need4(q, 'q');
  const NKV = need4(k, 'k')[2];
  const dq = zerosLike(q, q.shape);
  const dk = zerosLike(q, k.shape);
  const dv = zerosLike(q, v.shape);
  await fill([dq, dk, dv], () => raw().attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, HS));
  return { dq, dk, dv };
}

// ---------------------------------------------------------------------------- SwiGLU
/** gu[..., 2F] holds gate in [0, F) and up in [F, 2F): out[..., F] = silu(gate) * up. */
export async function swigluForward(gu: Tensor): Promise<Tensor> {
  const { N, C } = rows(gu, 'gu');
  if (C % 2) throw new PuzzleError('ERR_PUZZLE_SHAPE', `argument 'gu' must have an even last dimension, got ${C}`);
  const out = zerosLike(gu, [...gu.shape.slice(0, -1), C / 2]);
  await fill([out], () => raw().swigluForward(out, gu, N, C / 2));
  return out;
}

export async function swigluBackward(dout: Tensor, gu: Tensor): Promise<Tensor> {
  const { N, C } = rows(gu, 'gu');
  const dgu = zerosLike(gu, gu.shape);
  await fill([dgu], () => raw().swigluBackward(dgu, dout, gu, N, C / 2));
  return dgu;
}

// ---------------------------------------------------------------------------- elementwise
export async function add(a: Tensor, b: Tensor): Promise<Tensor> {
  const out = zerosLike(a, a.shape);
  await fill([out], () => raw().add(out, a, b, a.numel));
  return out;
}

/**
 * A copy of `x` in another dtype, on its device: float32 -> bfloat16 rounds to nearest even,
 * bfloat16 -> float32 is exact. Returns `x` itself when it already has that dtype.
 */
export async function cast(x: Tensor, dtype: 'float32' | 'bfloat16'): Promise<Tensor> {
  lastDim(x, 'x');
  if (x.dtype === dtype) return x;
  const out = zeros(x.shape, dtype, x.device);
  await fill([out], () => raw().cast(out, x, x.numel));
  return out;
}

/** `x` in `dtype`, consuming it: a converted copy replaces (and releases) it. */
export async function castOwned(x: Tensor, dtype: 'float32' | 'bfloat16'): Promise<Tensor> {
  const y = await cast(x, dtype);
  if (y !== x) x.dispose();
  return y;
}

/** out += a, in place. */
export async function accumulate(out: Tensor, a: Tensor): Promise<void> {
  await native(() => raw().accumulate(out, a, out.numel));
}

// ---------------------------------------------------------------------------- losses
export const IGNORE_INDEX = -100;

/** Mean cross-entropy over the targets that are not IGNORE_INDEX. */
export async function crossEntropyForward(
  logits: Tensor, targets: Tensor,
): Promise<{ loss: number; losses: Tensor; lse: Tensor; count: number }> {
  const { N, C: V } = rows(logits, 'logits');
  const losses = zerosLike(logits, [N]);
  const lse = zerosLike(logits, [N]);
  await withIndex(targets, logits, (t) => fill([losses, lse], () => raw().crossEntropyForward(losses, lse, logits, t, N, V)));
  const t = targets.toArray();
  let count = 0;
  for (let i = 0; i < t.length; i++) if (t[i] !== IGNORE_INDEX) count++;
  const l = losses.toArray();
  let sum = 0;
  for (let i = 0; i < l.length; i++) sum += l[i];
  return { loss: count ? sum / count : 0, losses, lse, count };
}

/** Gradient of (scale x summed loss); scale = 1/count gives the mean's gradient. */
export async function crossEntropyBackward(logits: Tensor, lse: Tensor, targets: Tensor, scale: number): Promise<Tensor> {
  const { N, C: V } = rows(logits, 'logits');
  const d = zerosLike(logits, logits.shape);
  await withIndex(targets, logits, (t) => fill([d], () => raw().crossEntropyBackward(d, logits, lse, t, N, V, scale)));
  return d;
}

/** Mean over rows of KL(softmax(teacher) || softmax(student)). */
export async function klForward(teacher: Tensor, student: Tensor): Promise<{ loss: number; losses: Tensor }> {
  const { N, C: V } = rows(student, 'student');
  const losses = zerosLike(student, [N]);
  await fill([losses], () => raw().klForward(losses, teacher, student, N, V));
  return { loss: mean(losses), losses };
}

export async function klBackward(teacher: Tensor, student: Tensor, scale: number): Promise<Tensor> {
  const { N, C: V } = rows(student, 'student');
  const d = zerosLike(student, student.shape);
  await fill([d], () => raw().klBackward(d, teacher, student, N, V, scale));
  return d;
}

/** Mean over rows of 1 - cos(x, y). */
export async function cosineForward(x: Tensor, y: Tensor): Promise<{ loss: number; losses: Tensor }> {
  const { N, C } = rows(x, 'x');
  const losses = zerosLike(x, [N]);
  await fill([losses], () => raw().cosineForward(losses, x, y, N, C));
  return { loss: mean(losses), losses };
}

export async function cosineBackward(x: Tensor, y: Tensor, scale: number): Promise<Tensor> {
  const { N, C } = rows(x, 'x');
  const d = zerosLike(x, x.shape);
  await fill([d], () => raw().cosineBackward(d, x, y, N, C, scale));
  return d;
}

/** sum((x - y)^2) / sum(y^2): MSE(x, y) / MSE(y, 0). */
export async function nmseForward(x: Tensor, y: Tensor): Promise<number> {
  return native(() => raw().nmseForward(x, y, x.numel));
}

export async function nmseBackward(x: Tensor, y: Tensor, scale = 1): Promise<Tensor> {
  const d = zerosLike(x, x.shape);
  await fill([d], () => raw().nmseBackward(d, x, y, x.numel, scale));
  return d;
}

export async function sumSquares(x: Tensor): Promise<number> {
  return native(() => raw().sumSquares(x, x.numel));
}

function mean(t: Tensor): number {
  const a = t.toArray();
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return a.length ? s / a.length : 0;
}
