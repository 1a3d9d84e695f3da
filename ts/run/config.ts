/**
 * The `puzzle run` configuration: one YAML or JSON file (or the built-in demo), validated field
 * by field, with `--set a.b=value` overrides. Every stage's settings are fingerprinted together
 * with the settings of the stages it depends on, so a resumed run can tell exactly which
 * finished stages a config change invalidates.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { PuzzleError } from '../core/errors.js';
import { resolveDType, type DTypeSetting } from '../model/llama.js';

export interface RunConfig {
  /** the parent HF folder */
  parent: string;
  /** training and held-out text (same syntax as --data everywhere) */
  data: string;
  library: { tokens: number; batch: number; seq: number; lr: number; coupled: boolean; space: Record<string, unknown> | null };
  score: { sequences: number; seq: number; task_items: number };
  profile: {
    batch: number; prompt: number; generate: number; repeats: number; children: number;
    /** where costs (and the final parent-against-child speed) are measured: cpu (this process) or cuda */
    device: 'cpu' | 'cuda';
    /** block precision: auto (float32 on cpu, bfloat16 on cuda), float32 or bfloat16 (cuda only) */
    dtype: 'auto' | 'float32' | 'bfloat16';
  };
  search: {
    /** summed replace-1-block metric to minimise */
    objective: string;
    /** measured-decode-throughput target relative to the parent (e.g. 2 for 2x); 0 = none */
    decode_speedup: number;
    /** prefill+decode throughput target relative to the parent; 0 = none */
    speedup: number;
    /** memory ceiling relative to the parent (e.g. 0.8); 0 = none */
    memory: number;
    /** parameter ceiling relative to the parent; 0 = none */
    params: number;
  };
  gkd: { steps: number; batch: number; seq: number; lr: number; cosine: number; kl: number; lm: number };
  evaluate: { sequences: number; seq: number; task_items: number; speed_rounds: number };
  seed: number;
  /**
   * where the library is trained, the library scored, the child distilled and both models
   * evaluated: cpu (this process's engine) or cuda (the GPU through the same engine). Not part
   * of any stage's fingerprint: a run may resume on another machine without redoing its stages.
   */
  device: 'cpu' | 'cuda';
  /**
   * precision of the model stages (library, score, GKD, evaluation): 'bfloat16' is mixed
   * precision (bf16 blocks, activations and KV caches with float32 master weights, float32
   * embedding, head and losses); 'auto' (the default) is bfloat16 on cuda and float32 on cpu.
   * Resolved when the config is read, and part of the fingerprints when it is bfloat16: a run
   * resumed elsewhere must compute as it began.
   */
  dtype: DTypeSetting;
}

/** The built-in demo: the shipped default parent, about 6-8 minutes on 2 CPU cores. */
export const DEMO_CONFIG: RunConfig = {
  parent: 'models/default-parent',
  data: 'builtin:gutenberg',
  library: { tokens: 100_000, batch: 8, seq: 256, lr: 1e-3, coupled: false, space: null },
  score: { sequences: 16, seq: 256, task_items: 0 },
  profile: { batch: 8, prompt: 256, generate: 32, repeats: 5, children: 2, device: 'cpu', dtype: 'auto' },
  search: { objective: 'kl_div', decode_speedup: 3, speedup: 0, memory: 0, params: 0 },
  gkd: { steps: 200, batch: 8, seq: 256, lr: 5e-4, cosine: 1, kl: 1, lm: 0 },
  evaluate: { sequences: 32, seq: 256, task_items: 200, speed_rounds: 3 },
  seed: 0,
  device: 'cpu',
  dtype: 'auto',
};

type Kind = 'string' | 'number' | 'integer' | 'boolean' | 'object|null';
const SCHEMA: Record<string, Kind | Record<string, Kind>> = {
  parent: 'string', data: 'string', seed: 'integer', device: 'string', dtype: 'string',
  library: { tokens: 'integer', batch: 'integer', seq: 'integer', lr: 'number', coupled: 'boolean', space: 'object|null' },
  score: { sequences: 'integer', seq: 'integer', task_items: 'integer' },
  profile: { batch: 'integer', prompt: 'integer', generate: 'integer', repeats: 'integer', children: 'integer', device: 'string', dtype: 'string' },
  search: { objective: 'string', decode_speedup: 'number', speedup: 'number', memory: 'number', params: 'number' },
  gkd: { steps: 'integer', batch: 'integer', seq: 'integer', lr: 'number', cosine: 'number', kl: 'number', lm: 'number' },
  evaluate: { sequences: 'integer', seq: 'integer', task_items: 'integer', speed_rounds: 'integer' },
};

function fail(where: string, msg: string): never {
  throw new PuzzleError('ERR_PUZZLE_CONFIG', `${where}: ${msg}`);
}

function checkValue(v: unknown, kind: Kind, where: string): void {
  const ok =
    kind === 'string' ? typeof v === 'string' && v.length > 0
    : kind === 'number' ? typeof v === 'number' && Number.isFinite(v) && v >= 0
    : kind === 'integer' ? Number.isInteger(v) && (v as number) >= 0
    : kind === 'boolean' ? typeof v === 'boolean'
    : v === null || (typeof v === 'object' && !Array.isArray(v));
  if (!ok) fail(where, `expected ${kind === 'number' ? 'a number >= 0' : kind === 'integer' ? 'an integer >= 0' : kind === 'object|null' ? 'an object or null' : `a ${kind}`}, got ${JSON.stringify(v)}`);
}

/** Merges `partial` over the demo defaults, rejecting unknown keys and wrong types by name. */
export function resolveConfig(partial: unknown, source: string): RunConfig {
  if (typeof partial !== 'object' || partial === null || Array.isArray(partial)) fail(source, 'the config must be a mapping of settings');
  const out = structuredClone(DEMO_CONFIG) as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(partial as Record<string, unknown>)) {
    const kind = SCHEMA[key];
    if (!kind) fail(`${source}: "${key}"`, `unknown setting; expected one of ${Object.keys(SCHEMA).join(', ')}`);
    if (typeof kind === 'string') {
      checkValue(value, kind, `${source}: "${key}"`);
      out[key] = value;
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${source}: "${key}"`, `expected a mapping with ${Object.keys(kind).join(', ')}`);
    const section = out[key] as Record<string, unknown>;
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (!kind[k]) fail(`${source}: "${key}.${k}"`, `unknown setting; expected one of ${Object.keys(kind).join(', ')}`);
      checkValue(v, kind[k], `${source}: "${key}.${k}"`);
      section[k] = v;
    }
  }
  const c = out as unknown as RunConfig;
  for (const [k, v] of [['library.tokens', c.library.tokens], ['library.batch', c.library.batch], ['library.seq', c.library.seq], ['score.sequences', c.score.sequences],
    ['profile.batch', c.profile.batch], ['profile.prompt', c.profile.prompt], ['profile.generate', c.profile.generate], ['profile.repeats', c.profile.repeats],
    ['gkd.batch', c.gkd.batch], ['gkd.seq', c.gkd.seq], ['evaluate.sequences', c.evaluate.sequences], ['evaluate.speed_rounds', c.evaluate.speed_rounds]] as const)
    if (v < 1) fail(`${source}: "${k}"`, `must be at least 1, got ${v}`);
  if (c.device !== 'cpu' && c.device !== 'cuda') fail(`${source}: "device"`, `expected cpu or cuda, got ${JSON.stringify(c.device)}`);
  if (!['auto', 'float32', 'bfloat16'].includes(c.dtype)) fail(`${source}: "dtype"`, `expected auto, float32 or bfloat16, got ${JSON.stringify(c.dtype)}`);
  c.dtype = resolveDType(c.dtype, c.device);
  if (c.profile.device !== 'cpu' && c.profile.device !== 'cuda') fail(`${source}: "profile.device"`, `expected cpu or cuda, got ${JSON.stringify(c.profile.device)}`);
  if (!['auto', 'float32', 'bfloat16'].includes(c.profile.dtype)) fail(`${source}: "profile.dtype"`, `expected auto, float32 or bfloat16, got ${JSON.stringify(c.profile.dtype)}`);
  if (c.profile.device === 'cpu' && c.profile.dtype === 'bfloat16')
    fail(`${source}: "profile.dtype"`, 'bfloat16 is measured on the GPU only (profile.device: cuda); the CPU engine serves float32');
  if (c.gkd.cosine + c.gkd.kl + c.gkd.lm === 0 && c.gkd.steps > 0) fail(`${source}: "gkd"`, 'cosine, kl and lm weights are all 0: nothing to train (set gkd.steps: 0 to skip GKD)');
  if (!c.search.decode_speedup && !c.search.speedup && !c.search.memory && !c.search.params)
    fail(`${source}: "search"`, 'no budget: set at least one of decode_speedup, speedup, memory, params');
  return c;
}

/** Applies `--set a.b=value` (value parsed as YAML: numbers, booleans, null, strings). */
export function applySets(raw: Record<string, unknown>, sets: string[]): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) fail(`--set ${s}`, 'expected KEY=VALUE, e.g. gkd.steps=100');
    const path = s.slice(0, eq).split('.');
    let node: Record<string, unknown> = out;
    for (const p of path.slice(0, -1)) {
      if (typeof node[p] !== 'object' || node[p] === null) node[p] = {};
      node = node[p] as Record<string, unknown>;
    }
    node[path[path.length - 1]] = YAML.parse(s.slice(eq + 1));
  }
  return out;
}

/** Where the shipped demo parent lives (the package root, wherever the CLI is run from). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Reads a YAML or JSON config file (or none: the demo) and applies overrides. */
export function loadRunConfig(path: string | undefined, sets: string[] = []): RunConfig {
  let raw: Record<string, unknown> = {};
  let source = 'the built-in demo config';
  if (path) {
    source = path;
    if (!existsSync(path)) fail(path, 'no such config file');
    try {
      raw = (YAML.parse(readFileSync(path, 'utf8')) ?? {}) as Record<string, unknown>;
    } catch (err) {
      fail(path, `not valid YAML or JSON (${(err as Error).message})`);
    }
  }
  const c = resolveConfig(applySets(raw, sets), source);
  // relative parent paths are taken from the config file's folder (the demo's from the package)
  if (!isAbsolute(c.parent)) {
    const base = path ? dirname(resolve(path)) : PACKAGE_ROOT;
    const fromBase = resolve(base, c.parent);
    c.parent = existsSync(fromBase) ? fromBase : resolve(c.parent);
  }
  return c;
}

/** The stages, in order, and which config sections each depends on (its own and upstream). */
export const STAGES = ['parent', 'library', 'score', 'profile', 'search', 'assemble', 'gkd', 'export', 'evaluate'] as const;
export type StageName = (typeof STAGES)[number];
/** The stages that run models on `device` in `dtype` (profile has settings of its own). */
export const MODEL_STAGES: readonly StageName[] = ['library', 'score', 'gkd', 'evaluate'];

const SECTIONS: Record<StageName, Array<keyof RunConfig>> = {
  parent: ['parent'],
  library: ['parent', 'data', 'library', 'seed'],
  score: ['parent', 'data', 'library', 'score', 'seed'],
  profile: ['parent', 'library', 'profile'],
  search: ['parent', 'data', 'library', 'score', 'profile', 'search', 'seed'],
  assemble: ['parent', 'data', 'library', 'score', 'profile', 'search', 'seed'],
  gkd: ['parent', 'data', 'library', 'score', 'profile', 'search', 'gkd', 'seed'],
  export: ['parent', 'data', 'library', 'score', 'profile', 'search', 'gkd', 'seed'],
  evaluate: ['parent', 'data', 'library', 'score', 'profile', 'search', 'gkd', 'evaluate', 'seed'],
};

export function stageSettings(c: RunConfig, stage: StageName): Record<string, unknown> {
  const s: Record<string, unknown> = Object.fromEntries(SECTIONS[stage].map((k) => [k, c[k]]));
  // the model stages' precision, from the library on; only when not float32, so that the
  // fingerprints of float32 runs are what they were before the setting existed
  if (c.dtype !== 'float32' && !['parent', 'profile'].includes(stage)) s.dtype = c.dtype;
  return s;
}

export function fingerprint(x: unknown): string {
  return createHash('sha256').update(JSON.stringify(x)).digest('hex').slice(0, 16);
}

/** The settings that differ between two configs, as "key: old -> new" lines. */
export function configDiff(a: unknown, b: unknown, prefix = ''): string[] {
  if (typeof a === 'object' && a && typeof b === 'object' && b && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    return keys.flatMap((k) => configDiff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], prefix ? `${prefix}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [`${prefix}: ${JSON.stringify(a)} -> ${JSON.stringify(b)}`];
}
