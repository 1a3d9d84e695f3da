/** A measurement scenario and the fingerprint of the device a cost table was measured on. */
import { PuzzleError } from '../core/errors.js';
import { loadAddon } from '../native/loader.js';

export interface ProfileScenario {
  name: string;
  device: 'cpu' | 'cuda';
  /** storage of activations, weights and KV cache: bfloat16 (mixed precision) is what a GPU serves */
  dtype: 'float32' | 'bfloat16';
  /** sequences served together */
  batch: number;
  /** prompt tokens per sequence (prefill) */
  prompt: number;
  /** generated tokens per sequence (decode steps) */
  generate: number;
  warmup: number;
  repeats: number;
}

export function scenario(p: Partial<ProfileScenario> & { batch: number; prompt: number; generate: number }): ProfileScenario {
  const s: ProfileScenario = { name: `b${p.batch}-p${p.prompt}-g${p.generate}`, device: 'cpu', dtype: 'float32', warmup: 1, repeats: 5, ...p };
  if (s.dtype !== 'float32' && s.dtype !== 'bfloat16') throw new PuzzleError('ERR_PUZZLE_ARG', `scenario.dtype must be float32 or bfloat16, got ${String(s.dtype)}`);
  if (s.device === 'cpu' && s.dtype !== 'float32')
    throw new PuzzleError('ERR_PUZZLE_ARG', `scenario.dtype ${s.dtype} on the CPU: the CPU engine serves float32 (its bfloat16 ops are the reference the GPU is checked against, not a fast path); profile bfloat16 with --device cuda`);
  for (const k of ['batch', 'prompt', 'generate', 'repeats'] as const)
    if (!Number.isInteger(s[k]) || s[k] < 1) throw new PuzzleError('ERR_PUZZLE_ARG', `scenario.${k} must be a positive integer, got ${s[k]}`);
  return s;
}

export interface DeviceFingerprint {
  kind: 'cpu' | 'cuda';
  /** CPU model, or GPU name */
  model: string;
  /** CPU: the ISA path; CUDA: the compute capability, e.g. "sm_90" */
  isa: string;
  gemm: string;
  /** CPU threads, or the GPU's multiprocessors */
  threads: number;
  /** CUDA: the driver version */
  driver?: string;
}

export function deviceFingerprint(): DeviceFingerprint {
  const e = loadAddon().engineInfo();
  return { kind: 'cpu', model: e.cpuModel, isa: e.isa, gemm: e.gemmKernel, threads: e.threads };
}

/**
 * The GPU this process would measure on, from the CUDA probe's description
 * ("NAME (sm_90, 139.8 GiB, driver 13.0, cublas)"), or null when none answers. Its `threads`
 * (multiprocessors) is not in the description: 0, and not compared.
 */
export function parseGpuDescription(desc: string): DeviceFingerprint | null {
  const m = /^(.*) \((sm_\d+), [\d.]+ GiB, driver ([\d.]+), ([^)]+)\)$/.exec(desc);
  return m ? { kind: 'cuda', model: m[1], isa: m[2], driver: m[3], gemm: m[4], threads: 0 } : null;
}

export function gpuFingerprint(): DeviceFingerprint | null {
  const c = loadAddon().cudaInfo();
  return c.devices > 0 ? parseGpuDescription(c.description) : null;
}

export function sameDevice(a: DeviceFingerprint, b: DeviceFingerprint): boolean {
  const threads = a.kind === 'cuda' ? !a.threads || !b.threads || a.threads === b.threads : a.threads === b.threads;
  return a.kind === b.kind && a.model === b.model && a.isa === b.isa && threads && a.gemm === b.gemm && a.driver === b.driver;
}

/**
 * Refuses a cost table measured elsewhere (costs are per device; never silently reused): a CPU
 * table against this CPU, a GPU table against the GPU this process sees.
 */
export function requireSameDevice(table: { device: DeviceFingerprint }, where: string, here?: DeviceFingerprint | null): void {
  const gpu = table.device.kind === 'cuda';
  const mine = here !== undefined ? here : gpu ? gpuFingerprint() : deviceFingerprint();
  if (!mine)
    throw new PuzzleError('ERR_PUZZLE_DEVICE', `${where} was measured on the GPU ${table.device.model} (${table.device.isa}), and no GPU answers here (${loadAddon().cudaInfo().description}); use it where that GPU is, or allow another device explicitly`);
  if (!sameDevice(table.device, mine))
    throw new PuzzleError('ERR_PUZZLE_DEVICE', `${where} was measured on ${JSON.stringify(table.device)}, this machine is ${JSON.stringify(mine)}; profile again here`);
}
