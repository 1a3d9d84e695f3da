/**
 * `puzzle run`: parent -> library (BLD) -> scores -> costs -> search -> assemble -> GKD ->
 * export -> evaluate, in one run directory (a tested contract):
 *
 *   RUN/manifest.json           the resolved config and, per finished stage, its fingerprint
 *   RUN/stages/NAME.done.json   a stage's done marker (written last) with its summary
 *   RUN/library/                the block library, its scores/ and block_library.json
 *   RUN/costs.json              the cost table of this machine
 *   RUN/search/                 solution.json (puzzle search --json), baselines.json, pareto.json
 *   RUN/child/                  the assembled child before GKD
 *   RUN/gkd/                    GKD checkpoint/ and model/
 *   RUN/model/                  the exported child (DeciLM HF folder)
 *   RUN/evaluate.json           quality and measured speed, parent against child
 *   RUN/report.json, RUN/summary.md, RUN/plots/*.svg, RUN/DONE
 *
 * Every stage resumes: finished stages are skipped when their fingerprint matches; stages that
 * work in pieces (library, scores, GKD) continue from their last piece. A config change that
 * touches a finished stage is refused with the difference shown.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PuzzleError } from '../core/errors.js';
import { loadSplits, packSplit } from '../data/prepare.js';
import { builtinTasks } from '../data/tasks.js';
import { Tokenizer } from '../data/tokenizer.js';
import { assembleChild } from '../distill/assemble.js';
import { gkd } from '../distill/gkd.js';
import { compareSpeed, type SpeedComparison } from '../distill/speedup.js';
import { evalBatches, runEval, type EvalReport } from '../eval/run.js';
import { buildLibrary, folderFingerprint } from '../library/build.js';
import { buildSearchInput, readCostTable } from '../library/search-input.js';
import type { SearchSpaceConfig } from '../library/space.js';
import { loadModel, openModelFolder, saveModel } from '../model/hf.js';
import { resolveDType } from '../model/llama.js';
import { profileSpace, additivityCheck, type AdditivityRow, type CostTable } from '../profile/profile.js';
import { compareSpeedCuda, profileSpaceCuda } from '../profile/cuda.js';
import { scenario as makeScenario } from '../profile/scenario.js';
import { scoreLibrary } from '../score/replace1.js';
import { search, type SearchOptions } from '../search/index.js';
import type { BlockLibrary } from '../search/library.js';
import { LIBRARY_FILE, LIBRARY_FORMAT, loadLibrary } from '../search/load.js';
import type { SearchResult } from '../search/result.js';
import { fromPacked } from '../train/batches.js';
import { loadAddon } from '../native/loader.js';
import { writeJsonAtomic } from './atomic.js';
import { configDiff, fingerprint, MODEL_STAGES, STAGES, stageSettings, type RunConfig, type StageName } from './config.js';
import { writeReport } from './report.js';

export type RunEvent =
  | { kind: 'stage'; index: number; total: number; stage: StageName; status: 'start' | 'done' | 'skipped'; summary?: Record<string, unknown>; seconds?: number }
  | { kind: 'progress'; stage: StageName; label: string; done: number; total: number; info?: string }
  | { kind: 'log'; stage: StageName; line: string };

export interface RunOptions {
  onEvent?: (e: RunEvent) => void;
  /** forget finished stages from this one on and run them again */
  restartFrom?: StageName;
}

export interface RunResult {
  dir: string;
  report: Record<string, unknown>;
}

interface Manifest {
  version: 1;
  created: string;
  config: RunConfig;
  parentFingerprint: string;
  stages: Partial<Record<StageName, { fingerprint: string; finished: string }>>;
}

const paths = (dir: string) => ({
  manifest: join(dir, 'manifest.json'),
  done: (s: StageName) => join(dir, 'stages', `${s}.done.json`),
  library: join(dir, 'library'),
  costs: join(dir, 'costs.json'),
  search: join(dir, 'search'),
  child: join(dir, 'child'),
  gkd: join(dir, 'gkd'),
  model: join(dir, 'model'),
  evaluate: join(dir, 'evaluate.json'),
  DONE: join(dir, 'DONE'),
});

const readJson = <T>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

/** What each stage writes (removed when the stage must start again from nothing). */
function stageOutputs(P: ReturnType<typeof paths>, s: StageName): string[] {
  switch (s) {
    case 'parent': return [];
    case 'library': return [P.library];
    case 'score': return [join(P.library, 'scores')];
    case 'profile': return [P.costs];
    case 'search': return [P.search, join(P.library, LIBRARY_FILE)];
    case 'assemble': return [P.child];
    case 'gkd': return [P.gkd];
    case 'export': return [P.model];
    case 'evaluate': return [P.evaluate];
  }
}

/** The search budgets the config asks for, made absolute against the parent's own costs. */
export function searchOptions(c: RunConfig, table: BlockLibrary): SearchOptions {
  const parentSum = (stat: string) => table.layers.reduce((s, l) => s + (l.variants.find((v) => v.name === l.parent)?.stats[stat] ?? NaN), 0);
  const o: Record<string, unknown> = { objective: c.search.objective };
  const max: Record<string, number> = {};
  if (c.search.decode_speedup > 0) max['decode_ms'] = parentSum('decode_ms') / c.search.decode_speedup;
  if (c.search.params > 0) o['params'] = parentSum('num_params') * c.search.params;
  if (c.search.speedup > 0) o['speedup'] = `${c.search.speedup}x`;
  if (c.search.memory > 0) o['memory'] = `${c.search.memory}x`;
  if (Object.keys(max).length) o['max'] = max;
  return o as SearchOptions;
}

export async function runPipeline(config: RunConfig, dirIn: string, opts: RunOptions = {}): Promise<RunResult> {
  const dir = resolve(dirIn);
  const P = paths(dir);
  const emit = opts.onEvent ?? (() => {});
  if (!existsSync(join(config.parent, 'config.json')))
    throw new PuzzleError('ERR_PUZZLE_CONFIG', `parent: ${config.parent} is not a model folder (no config.json)`);
  // where this session's model stages run, recorded in their done markers (the setting is outside
  // the fingerprints, so a resumed run may have trained on one machine and distilled on another)
  let ranOn = 'cpu';
  // resolveConfig turns 'auto' into the device's default; a config built by hand may still say it
  const modelDType = resolveDType(config.dtype, config.device);
  if (config.device === 'cuda') {
    // before any stage starts, not hours in at the first model load
    const cuda = loadAddon().cudaInfo();
    if (cuda.devices === 0) throw new PuzzleError('ERR_PUZZLE_NO_GPU', `device: cuda, but no GPU answers (${cuda.description}); set device: cpu or run on a GPU machine`);
    ranOn = `cuda: ${cuda.description}`;
  }
  try {
    mkdirSync(join(dir, 'stages'), { recursive: true });
  } catch (err) {
    throw new PuzzleError('ERR_PUZZLE_FILE', `cannot create the run directory ${dir}: ${(err as Error).message}`);
  }
  const parentFp = folderFingerprint(config.parent);
  let manifest: Manifest;
  if (existsSync(P.manifest)) {
    manifest = readJson<Manifest>(P.manifest);
    if (opts.restartFrom) {
      // the stages from there on start again from nothing: their partial work (a GKD checkpoint
      // of another child, scores of another library) must not be resumed
      const from = STAGES.indexOf(opts.restartFrom);
      for (const s of STAGES.slice(from)) {
        delete manifest.stages[s];
        rmSync(P.done(s), { force: true });
        for (const out of stageOutputs(P, s)) rmSync(out, { recursive: true, force: true });
      }
      rmSync(P.DONE, { force: true });
    }
    // a finished stage whose settings changed invalidates the run: refuse, showing why
    for (const s of STAGES) {
      const done = manifest.stages[s];
      if (!done) continue;
      const now = fingerprint({ ...stageSettings(config, s), parentFingerprint: parentFp });
      if (done.fingerprint !== now) {
        const diff = configDiff(stageSettings(manifest.config, s), stageSettings(config, s));
        const why = diff.length ? diff.join('; ') : `the parent's files changed (${manifest.parentFingerprint} -> ${parentFp})`;
        throw new PuzzleError('ERR_PUZZLE_RUN_CHANGED', `${dir} finished stage "${s}" with other settings (${why}); run with the original config, use another --out, or --restart-from ${s}`);
      }
    }
    manifest.config = config;
  } else {
    manifest = { version: 1, created: new Date().toISOString(), config, parentFingerprint: parentFp, stages: {} };
  }
  manifest.parentFingerprint = parentFp;
  writeJsonAtomic(P.manifest, manifest);

  const stageFp = (s: StageName) => fingerprint({ ...stageSettings(config, s), parentFingerprint: parentFp });
  const finish = (s: StageName, summary: Record<string, unknown>) => {
    writeJsonAtomic(P.done(s), { stage: s, fingerprint: stageFp(s), finished: new Date().toISOString(), summary });
    manifest.stages[s] = { fingerprint: stageFp(s), finished: new Date().toISOString() };
    writeJsonAtomic(P.manifest, manifest);
  };
  const isDone = (s: StageName) => manifest.stages[s]?.fingerprint === stageFp(s) && existsSync(P.done(s));
  const summaryOf = (s: StageName) => readJson<{ summary: Record<string, unknown> }>(P.done(s)).summary;

  const tok = Tokenizer.load(config.parent);
  const parentCfg = openModelFolder(config.parent).config;
  let data: Awaited<ReturnType<typeof loadSplits>> | null = null;
  const getData = async () => (data ??= await loadSplits(config.data));
  const onGpu = config.profile.device === 'cuda';
  const scenario = makeScenario({
    batch: config.profile.batch, prompt: config.profile.prompt, generate: config.profile.generate, repeats: config.profile.repeats,
    device: config.profile.device, dtype: config.profile.dtype === 'auto' ? (onGpu ? 'bfloat16' : 'float32') : config.profile.dtype,
  });

  const stage = async (s: StageName, body: () => Promise<Record<string, unknown>>) => {
    const index = STAGES.indexOf(s) + 1;
    if (isDone(s)) {
      emit({ kind: 'stage', index, total: STAGES.length, stage: s, status: 'skipped', summary: summaryOf(s) });
      return;
    }
    emit({ kind: 'stage', index, total: STAGES.length, stage: s, status: 'start' });
    // partial work of this stage from a killed run is resumed only when it was started with
    // the same settings and the same upstream results
    const started = join(dir, 'stages', `${s}.started.json`);
    const key = fingerprint({ stage: stageFp(s), upstream: STAGES.slice(0, STAGES.indexOf(s)).map((u) => manifest.stages[u]?.finished ?? null) });
    if (!existsSync(started) || readJson<{ key: string }>(started).key !== key) {
      for (const out of stageOutputs(P, s)) rmSync(out, { recursive: true, force: true });
      writeJsonAtomic(started, { key });
    }
    const t0 = performance.now();
    const summary = await body();
    if (MODEL_STAGES.includes(s)) Object.assign(summary, { device: ranOn, dtype: modelDType });
    finish(s, summary);
    emit({ kind: 'stage', index, total: STAGES.length, stage: s, status: 'done', summary, seconds: (performance.now() - t0) / 1000 });
  };

  await stage('parent', async () => {
    const m = loadModel(config.parent);
    const params = m.numParams();
    m.dispose();
    return { dir: config.parent, params, layers: parentCfg.layers.length, hidden: parentCfg.hidden, vocab: parentCfg.vocab, fingerprint: parentFp };
  });

  await stage('library', async () => {
    const d = await getData();
    const train = fromPacked(await packSplit(d, 'train', tok, config.library.seq));
    const validation = fromPacked(await packSplit(d, 'validation', tok, config.library.seq));
    const steps = Math.max(1, Math.round(config.library.tokens / (config.library.batch * config.library.seq)));
    let layer = 0;
    const r = await buildLibrary({
      parentDir: config.parent, lib: P.library, train, validation, dataSpec: config.data, space: (config.library.space ?? undefined) as SearchSpaceConfig | undefined,
      coupled: config.library.coupled, settings: { batch: config.library.batch, steps, lr: config.library.lr }, device: config.device, dtype: modelDType,
      onEvent: (e) => {
        if (e.kind === 'layer') {
          layer = e.layer;
          emit({ kind: 'log', stage: 'library', line: `layer ${e.layer + 1}/${e.layers}: ${e.variants - e.skipped} variants to train${e.skipped ? ` (${e.skipped} already built)` : ''}` });
        } else if (e.kind === 'step') emit({ kind: 'progress', stage: 'library', label: `library layer ${layer}`, done: e.step, total: steps });
      },
    });
    if (!r.complete) throw new PuzzleError('ERR_PUZZLE_LIBRARY', `the library in ${P.library} is incomplete: ${r.problems.join('; ') || `${r.missing.length} missing`}`);
    return { entries: r.entries.length, trained: r.entries.filter((e) => e.tokens > 0).length, tokens_per_variant: config.library.tokens };
  });

  await stage('score', async () => {
    const parent = loadModel(config.parent, config.device, modelDType);
    try {
      const { batches } = await evalBatches(config.data, () => tok, parentCfg.vocab, 'validation', config.score.seq, 8, config.score.sequences);
      const tasks = config.score.task_items > 0
        ? { tokenizer: tok, tasks: (await builtinTasks()).map((t) => ({ name: t.name, items: t.items.slice(0, config.score.task_items) })) }
        : undefined;
      const scores = await scoreLibrary(parent, P.library, batches, (e) => emit({ kind: 'progress', stage: 'score', label: 'score', done: e.done, total: e.total, info: `${e.score.layer}/${e.score.id}` }), tasks);
      batches.forEach((b) => b.dispose());
      return { scored: scores.length, sequences: config.score.sequences, seq: config.score.seq };
    } finally {
      parent.dispose();
    }
  });

  await stage('profile', async () => {
    const space = (config.library.space ?? undefined) as SearchSpaceConfig | undefined;
    let table: CostTable;
    let additivity: AdditivityRow[] = [];
    if (onGpu) {
      emit({ kind: 'log', stage: 'profile', line: `measuring on the GPU (${scenario.dtype}, puzzle_cuda_profile)` });
      ({ table, additivity } = await profileSpaceCuda(parentCfg, scenario, space, { children: config.profile.children, layers: Math.min(4, parentCfg.layers.length) }));
    } else {
      table = await profileSpace(parentCfg, scenario, space, (e) => emit({ kind: 'progress', stage: 'profile', label: 'profile', done: e.done, total: e.total, info: e.kind === 'measured' ? e.cost.id : undefined }));
      if (config.profile.children > 0) additivity = await additivityCheck(parentCfg, table, scenario, space, config.profile.children, Math.min(8, parentCfg.layers.length));
    }
    writeJsonAtomic(P.costs, { ...table, additivity });
    return { device: table.device, scenario, subblocks: table.subblocks.length, additivity };
  });

  await stage('search', async () => {
    const costs = readCostTable(P.costs) as CostTable;
    // a GPU table this run measured itself is taken as is (a resumed run may be on a box without that GPU)
    const table = buildSearchInput(parentCfg, P.library, costs, { allowOtherDevice: costs.device.kind === 'cuda' });
    const { source: _source, ...body } = table;
    writeJsonAtomic(join(P.library, LIBRARY_FILE), { format: LIBRARY_FORMAT, version: 1, ...body });
    const lib = loadLibrary(P.library);
    const options = searchOptions(config, lib);
    const [best] = await search(lib, options);
    if (best.status !== 'optimal' && best.status !== 'time_limit')
      throw new PuzzleError('ERR_PUZZLE_INFEASIBLE', `the search found no architecture under the budgets (${best.status}); relax search.* in the config`);
    mkdirSync(P.search, { recursive: true });
    writeJsonAtomic(join(P.search, 'solution.json'), [best]);
    const baselines: Record<string, SearchResult> = {};
    for (const method of ['greedy', 'max-params', 'random'] as const) {
      const [r] = await search(lib, { ...options, method, seed: config.seed });
      baselines[method] = r;
    }
    writeJsonAtomic(join(P.search, 'baselines.json'), baselines);
    // the quality-vs-decode-speed front: the same search at 13 decode budgets from 1x to 4x
    const pareto: Array<{ decode_speedup: number; objective: number | null; layers: string[] }> = [];
    const parentDecode = lib.layers.reduce((s, l) => s + l.variants.find((v) => v.name === l.parent)!.stats['decode_ms'], 0);
    for (let i = 0; i <= 12; i++) {
      const target = 1 + (3 * i) / 12;
      const [r] = await search(lib, { objective: config.search.objective, max: { decode_ms: parentDecode / target }, diagnose: false } as SearchOptions);
      pareto.push({ decode_speedup: target, objective: r.objective, layers: r.layers.map((l) => l.variant) });
    }
    writeJsonAtomic(join(P.search, 'pareto.json'), { metric: config.search.objective, points: pareto });
    return { status: best.status, objective: best.objective, layers: best.layers.map((l) => l.variant), totals: best.totals, budgets: best.budgets };
  });

  await stage('assemble', async () => {
    const sol = readJson<SearchResult[]>(join(P.search, 'solution.json'))[0];
    const child = assembleChild(P.library, sol.layers.map((l) => l.variant), config.parent);
    try {
      saveModel(child, P.child, { tokenizerFrom: config.parent, forceDeci: true });
      return { dir: P.child, params: child.numParams() };
    } finally {
      child.dispose();
    }
  });

  await stage('gkd', async () => {
    if (config.gkd.steps === 0) return { skipped: true, model: P.child };
    const d = await getData();
    const train = fromPacked(await packSplit(d, 'train', tok, config.gkd.seq));
    const validation = fromPacked(await packSplit(d, 'validation', tok, config.gkd.seq));
    const parent = loadModel(config.parent, config.device, modelDType);
    try {
      const r = await gkd({
        parent, childDir: P.child, train, validation, outDir: P.gkd, steps: config.gkd.steps, batch: config.gkd.batch, lr: config.gkd.lr, seed: config.seed,
        losses: { cosine: config.gkd.cosine, kl: config.gkd.kl, lm: config.gkd.lm }, evalBatches: 4, tokenizerDir: config.parent,
        onEvent: (e) => {
          if (e.kind === 'step') emit({ kind: 'progress', stage: 'gkd', label: 'gkd', done: e.step, total: e.steps, info: `kl ${e.kl.toFixed(4)} loss ${e.loss.toFixed(4)}` });
          else if (e.kind === 'eval') emit({ kind: 'log', stage: 'gkd', line: `step ${e.step}: validation KL ${e.metrics.kl?.toFixed(4)}, agreement ${(100 * (e.metrics.agreement ?? 0)).toFixed(1)}%` });
        },
      });
      return { model: r.modelDir, steps: r.steps, before: r.before, after: r.final };
    } finally {
      parent.dispose();
    }
  });

  await stage('export', async () => {
    const from = config.gkd.steps === 0 ? P.child : join(P.gkd, 'model');
    const m = loadModel(from);
    try {
      const dtype = parentCfg.dtype === 'bfloat16' ? 'BF16' : 'F32';
      saveModel(m, P.model, { dtype, tokenizerFrom: config.parent, forceDeci: true });
      return { dir: P.model, dtype, params: m.numParams() };
    } finally {
      m.dispose();
    }
  });

  await stage('evaluate', async () => {
    const quality = async (model: string, teacher?: string): Promise<EvalReport> =>
      runEval({ model, teacher, data: config.data, split: 'test', seq: config.evaluate.seq, batch: 8, maxSequences: config.evaluate.sequences, tasks: config.evaluate.task_items > 0, taskItems: config.evaluate.task_items, device: config.device, dtype: modelDType });
    emit({ kind: 'log', stage: 'evaluate', line: 'quality of the parent and the child on the test split' });
    const parentQ = await quality(config.parent);
    const childQ = await quality(P.model, config.parent);
    const beforeQ = config.gkd.steps > 0 ? await quality(P.child, config.parent) : null;
    emit({ kind: 'log', stage: 'evaluate', line: `measured speed, parent against child (${config.evaluate.speed_rounds} alternating rounds)` });
    const childCfg = openModelFolder(P.model).config;
    const speed: SpeedComparison = onGpu
      ? await compareSpeedCuda(parentCfg, childCfg, scenario, config.evaluate.speed_rounds)
      : await compareSpeed(parentCfg, childCfg, scenario, config.evaluate.speed_rounds);
    const retention: Record<string, number> = { top1: childQ.top1 / parentQ.top1 };
    for (const [k, v] of Object.entries(childQ.tasks ?? {})) retention[k] = v.accuracy / parentQ.tasks![k].accuracy;
    const result = { parent: parentQ, child: childQ, child_before_gkd: beforeQ, speed, retention };
    writeJsonAtomic(P.evaluate, result);
    return { decode_speedup: speed.decode_speedup, prefill_speedup: speed.prefill_speedup, top1_retention: retention.top1 };
  });

  const report = writeReport(dir, config);
  writeJsonAtomic(P.DONE, { finished: new Date().toISOString() });
  return { dir, report };
}

/** `puzzle search --run DIR`: the finished library and costs of a run, for re-solving. */
export function runLibrary(dir: string): BlockLibrary {
  const lib = join(resolve(dir), 'library');
  if (!existsSync(join(lib, LIBRARY_FILE)))
    throw new PuzzleError('ERR_PUZZLE_RUN', `${dir}: no ${join('library', LIBRARY_FILE)} yet; the run must finish its search stage first (puzzle run)`);
  return loadLibrary(lib);
}

