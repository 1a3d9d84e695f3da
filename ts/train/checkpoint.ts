/**
 * Training checkpoints: the model (an HF folder), the optimiser state and a state.json, written
 * together into one folder that replaces the previous checkpoint atomically.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PuzzleError } from '../core/errors.js';
import type { AdamW } from '../core/optim.js';
import { loadModel, saveModel } from '../model/hf.js';
import type { LlamaModel, ModelDType } from '../model/llama.js';
import { openSafetensors, readFloat32, writeSafetensors, type TensorToWrite } from '../model/safetensors.js';
import { replaceDirAtomic, writeJsonAtomic } from '../run/atomic.js';
import type { DeviceName } from '../core/tensor.js';

export interface CheckpointState {
  step: number;
  tokens: number;
  /** fingerprint of everything that must not change across a resume */
  fingerprint: string;
  history: unknown[];
  [k: string]: unknown;
}

export function saveCheckpoint(dir: string, model: LlamaModel, opt: AdamW, state: CheckpointState): void {
  replaceDirAtomic(dir, (tmp) => {
    saveModel(model, join(tmp, 'model'));
    const st = opt.exportState();
    const tensors: Record<string, TensorToWrite> = {};
    st.m.forEach((m, i) => (tensors[`m.${i}`] = { dtype: 'F32', shape: [m.length], data: m }));
    st.v.forEach((v, i) => (tensors[`v.${i}`] = { dtype: 'F32', shape: [v.length], data: v }));
    writeSafetensors(join(tmp, 'optimizer.safetensors'), tensors, { t: String(st.t), groups: String(st.m.length) });
    writeJsonAtomic(join(tmp, 'state.json'), state);
  });
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, 'state.json'));
}

export function readCheckpointState(dir: string): CheckpointState {
  try {
    return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as CheckpointState;
  } catch (err) {
    throw new PuzzleError('ERR_PUZZLE_CHECKPOINT', `cannot read ${join(dir, 'state.json')}: ${(err as Error).message}`);
  }
}

export function loadCheckpointModel(dir: string, device: DeviceName = 'cpu', dtype: ModelDType = 'float32'): LlamaModel {
  return loadModel(join(dir, 'model'), device, dtype);
}

export function restoreOptimizer(dir: string, opt: AdamW): void {
  const f = openSafetensors(join(dir, 'optimizer.safetensors'));
  const groups = Number(f.metadata.groups);
  opt.importState({
    t: Number(f.metadata.t),
    m: Array.from({ length: groups }, (_, i) => readFloat32(f, `m.${i}`)),
    v: Array.from({ length: groups }, (_, i) => readFloat32(f, `v.${i}`)),
  });
}
