/**
 * Hugging Face model folders: config.json + model.safetensors (or shards listed in
 * model.safetensors.index.json) + tokenizer files. Reading is lazy (one tensor at a time), so a
 * large checkpoint can be walked layer by layer. Writing is atomic: a temporary folder is filled
 * and then renamed into place.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { replaceDirAtomic } from '../run/atomic.js';
import { PuzzleError } from '../core/errors.js';
import type { DeviceName } from '../core/tensor.js';
import { parseConfig, toHfConfig, type ModelConfig } from './config.js';
import { LlamaModel, type ModelDType } from './llama.js';
import { openSafetensors, readFloat32, writeSafetensors, type SafetensorsFile, type TensorToWrite } from './safetensors.js';

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

export interface ModelFolder {
  dir: string;
  config: ModelConfig;
  rawConfig: Record<string, unknown>;
  /** tensor name -> the file that holds it */
  files: Map<string, SafetensorsFile>;
  shape(name: string): number[] | undefined;
  read(name: string): Float32Array;
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PuzzleError('ERR_PUZZLE_FILE', `cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new PuzzleError('ERR_PUZZLE_CONFIG', `${path} is not valid JSON (${(err as Error).message})`);
  }
}

/** Opens a folder: parses config.json and the safetensors headers; reads no weights. */
export function openModelFolder(dir: string): ModelFolder {
  if (!existsSync(dir)) throw new PuzzleError('ERR_PUZZLE_FILE', `model folder ${dir} does not exist`);
  const rawConfig = readJson(join(dir, 'config.json'));
  const config = parseConfig(rawConfig, join(dir, 'config.json'));
  const files = new Map<string, SafetensorsFile>();
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    const idx = readJson(index);
    const map = idx.weight_map as Record<string, string> | undefined;
    if (!map || typeof map !== 'object') throw new PuzzleError('ERR_PUZZLE_CONFIG', `${index}: "weight_map" must be an object`);
    const opened = new Map<string, SafetensorsFile>();
    for (const [name, file] of Object.entries(map)) {
      if (!opened.has(file)) opened.set(file, openSafetensors(join(dir, file)));
      const f = opened.get(file)!;
      if (!f.tensors.has(name)) throw new PuzzleError('ERR_PUZZLE_SAFETENSORS', `${index}: '${name}' is mapped to ${file}, which does not hold it`);
      files.set(name, f);
    }
  } else if (existsSync(join(dir, 'model.safetensors'))) {
    const f = openSafetensors(join(dir, 'model.safetensors'));
    for (const name of f.tensors.keys()) files.set(name, f);
  } else {
    throw new PuzzleError('ERR_PUZZLE_FILE', `${dir} holds neither model.safetensors nor model.safetensors.index.json`);
  }
  return {
    dir, config, rawConfig, files,
    shape: (name) => files.get(name)?.tensors.get(name)?.shape,
    read: (name) => {
      const f = files.get(name);
      if (!f) throw new PuzzleError('ERR_PUZZLE_SAFETENSORS', `${dir}: the checkpoint has no tensor '${name}'`);
      return readFloat32(f, name);
    },
  };
}

function expectShape(folder: ModelFolder, name: string, want: number[]): void {
  const got = folder.shape(name);
  if (!got) throw new PuzzleError('ERR_PUZZLE_CONFIG', `${folder.dir}: config.json implies tensor '${name}' ${JSON.stringify(want)} but the checkpoint does not have it`);
  if (got.length !== want.length || got.some((d, i) => d !== want[i]))
    throw new PuzzleError('ERR_PUZZLE_CONFIG', `${folder.dir}: tensor '${name}' is ${JSON.stringify(got)} but config.json implies ${JSON.stringify(want)}`);
}

/** Loads a whole model (weights read one tensor at a time into the engine, on `device`; `dtype` 'bfloat16' for mixed precision). */
export function loadModel(dir: string, device: DeviceName = 'cpu', dtype: ModelDType = 'float32'): LlamaModel {
  const folder = openModelFolder(dir);
  const c = folder.config;
  const model = new LlamaModel(c, undefined, device, dtype);
  try {
    const load = (name: string, t: { shape: number[]; copyFrom(a: Float32Array): unknown }) => {
      expectShape(folder, name, t.shape);
      t.copyFrom(folder.read(name));
    };
    load('model.embed_tokens.weight', model.embed);
    model.blocks.forEach((b, i) => {
      for (const p of b.params()) load(`model.layers.${i}.${p.name}`, b.param(p.name));
    });
    load('model.norm.weight', model.norm);
    if (model.head) load('lm_head.weight', model.head);
    // tensors the config does not explain mean config and weights disagree
    const expected = new Set(model.namedParameters().map(([n]) => n));
    for (const name of folder.files.keys())
      if (!expected.has(name) && !name.endsWith('rotary_emb.inv_freq') && !(c.tieEmbeddings && name === 'lm_head.weight'))
        throw new PuzzleError('ERR_PUZZLE_CONFIG', `${dir}: tensor '${name}' is not part of the architecture config.json describes`);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}

export interface SaveOptions {
  dtype?: 'F32' | 'BF16';
  /** shard above this many bytes (default 2 GiB) */
  maxShardBytes?: number;
  /** copy tokenizer files from this folder */
  tokenizerFrom?: string;
  /** write DeciLM (nemotron-nas) even when every layer is the same */
  forceDeci?: boolean;
  extraConfig?: Record<string, unknown>;
}

/** Writes an HF folder atomically (temp folder, then rename over `dir`). */
export function saveModel(model: LlamaModel, dir: string, opts: SaveOptions = {}): void {
  const dtype = opts.dtype ?? 'F32';
  const maxShard = opts.maxShardBytes ?? 2 ** 31;
  replaceDirAtomic(dir, (tmp) => {
    const config = { ...toHfConfig(model.config, { forceDeci: opts.forceDeci }), torch_dtype: dtype === 'BF16' ? 'bfloat16' : 'float32', ...opts.extraConfig };
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    const shards: Array<Record<string, TensorToWrite>> = [{}];
    let size = 0;
    const bytesPer = dtype === 'BF16' ? 2 : 4;
    for (const [name, t] of model.namedParameters()) {
      const bytes = t.numel * bytesPer;
      if (size > 0 && size + bytes > maxShard) {
        shards.push({});
        size = 0;
      }
      shards[shards.length - 1][name] = { dtype, shape: t.shape, data: t.toArray() as Float32Array };
      size += bytes;
    }
    const meta = { format: 'pt' };
    if (shards.length === 1) {
      writeSafetensors(join(tmp, 'model.safetensors'), shards[0], meta);
    } else {
      const weightMap: Record<string, string> = {};
      let total = 0;
      shards.forEach((s, i) => {
        const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
        writeSafetensors(join(tmp, file), s, meta);
        for (const [n, t] of Object.entries(s)) {
          weightMap[n] = file;
          total += t.data.length * bytesPer;
        }
      });
      writeFileSync(join(tmp, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
    }
    if (opts.tokenizerFrom)
      for (const f of TOKENIZER_FILES) if (existsSync(join(opts.tokenizerFrom, f))) copyFileSync(join(opts.tokenizerFrom, f), join(tmp, f));
  });
}
