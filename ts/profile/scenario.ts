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

export function sameDevice(a: DeviceFingerprint, b: DeviceFingerprint): boolean {
  return a.kind === b.kind && a.model === b.model && a.isa === b.isa && a.threads === b.threads && a.gemm === b.gemm && a.driver === b.driver;
}

/** Refuses a cost table measured elsewhere (costs are per device; never silently reused). */
export function requireSameDevice(table: { device: DeviceFingerprint }, where: string, here: DeviceFingerprint = deviceFingerprint()): void {
  if (!sameDevice(table.device, here))
    throw new PuzzleError('ERR_PUZZLE_DEVICE', `${where} was measured on ${JSON.stringify(table.device)}, this machine is ${JSON.stringify(here)}; profile again here`);
}
