/**
 * RoPE frequency tables as Hugging Face computes them (fp32 inverse frequencies, rotate-half
 * layout), including `rope_scaling` of type "llama3" (Llama 3.1+).
 */
import { PuzzleError } from '../core/errors.js';

export interface RopeScaling {
  rope_type?: string;
  type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

const f32 = Math.fround;

/** inv_freq[i] = 1 / theta^(2i / headDim), then llama3-scaled when asked. */
export function inverseFrequencies(headDim: number, theta: number, scaling?: RopeScaling | null): Float32Array {
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2)
    throw new PuzzleError('ERR_PUZZLE_ARG', `RoPE: headDim must be a positive even integer, got ${headDim}`);
  if (!(theta > 0)) throw new PuzzleError('ERR_PUZZLE_ARG', `RoPE: theta must be positive, got ${theta}`);
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f32(1 / f32(Math.pow(theta, f32((2 * i) / headDim))));
  const kind = scaling?.rope_type ?? scaling?.type;
  if (!scaling || kind === undefined || kind === 'default') return inv;
  if (kind !== 'llama3')
    throw new PuzzleError('ERR_PUZZLE_ARG', `RoPE: rope_scaling type '${kind}' is not supported (expected 'llama3' or none)`);
  const factor = need(scaling.factor, 'factor');
  const low = need(scaling.low_freq_factor, 'low_freq_factor');
  const high = need(scaling.high_freq_factor, 'high_freq_factor');
  const oldLen = need(scaling.original_max_position_embeddings, 'original_max_position_embeddings');
  const lowWavelen = oldLen / low;
  const highWavelen = oldLen / high;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    let f = wavelen > lowWavelen ? inv[i] / factor : inv[i];
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (medium) {
      const smooth = (oldLen / wavelen - low) / (high - low);
      f = (1 - smooth) * (f / factor) + smooth * f;
    }
    out[i] = f32(f);
  }
  return out;
}

/** cos/sin tables [positions, headDim/2] for positions 0..positions-1. */
export function ropeTables(
  headDim: number, positions: number, theta: number, scaling?: RopeScaling | null,
): { cos: Float32Array; sin: Float32Array } {
  const inv = inverseFrequencies(headDim, theta, scaling);
  const half = headDim / 2;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++)
    for (let i = 0; i < half; i++) {
      const angle = f32(p * inv[i]);  // HF multiplies in fp32
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  return { cos, sin };
}

function need(v: number | undefined, key: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new PuzzleError('ERR_PUZZLE_ARG', `RoPE: rope_scaling.${key} must be a number for type 'llama3'`);
  return v;
}
