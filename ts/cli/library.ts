/** `puzzle library build` and `puzzle library show`. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { PuzzleError } from '../core/errors.js';
import { loadSplits, packSplit } from '../data/prepare.js';
import { Tokenizer } from '../data/tokenizer.js';
import { buildLibrary } from '../library/build.js';
import type { SearchSpaceConfig } from '../library/space.js';
import { checkLibrary, mergeLibrary, readHeader } from '../library/store.js';
import { buildSearchInput, readCostTable } from '../library/search-input.js';
import { openModelFolder } from '../model/hf.js';
import { writeJsonAtomic } from '../run/atomic.js';
import { LIBRARY_FILE, LIBRARY_FORMAT } from '../search/load.js';
import { fromPacked } from '../train/batches.js';
import { DEVICE_HELP, DTYPE_HELP, modelDType, resolveDType, device, type DTypeSetting, int, num } from './args.js';
import { createProgress } from './progress.js';

export interface LibraryBuildOptions {
  parent: string;
  data: string;
  out: string;
  space?: string;
  tokens: number;
  batch: number;
  seq: number;
  lr: number;
  coupled?: boolean;
  ffnInit: 'channel-contribution' | 'first-k' | 'random';
  linearInit: 'product' | 'least-squares';
  shard?: string;
  device?: 'cpu' | 'cuda';
  dtype?: DTypeSetting;
  json?: boolean;
}

function parseShard(s: string | undefined): { index: number; count: number } | undefined {
  if (!s) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(s);
  if (!m || Number(m[1]) >= Number(m[2])) throw new PuzzleError('ERR_PUZZLE_ARG', `--shard ${s}: expected i/N with 0 <= i < N, e.g. 0/4`);
  return { index: Number(m[1]), count: Number(m[2]) };
}

export async function runLibraryBuild(o: LibraryBuildOptions) {
  const progress = createProgress({ json: o.json });
  const tok = Tokenizer.load(o.parent);
  const data = await loadSplits(o.data);
  const train = fromPacked(await packSplit(data, 'train', tok, o.seq));
  const validation = fromPacked(await packSplit(data, 'validation', tok, o.seq));
  let space: SearchSpaceConfig | undefined;
  if (o.space) {
    try {
      space = JSON.parse(readFileSync(o.space, 'utf8')) as SearchSpaceConfig;
    } catch (err) {
      throw new PuzzleError('ERR_PUZZLE_CONFIG', `--space ${o.space}: ${(err as Error).message}`);
    }
  }
  const steps = Math.max(1, Math.round(o.tokens / (o.batch * o.seq)));
  const r = await buildLibrary({
    parentDir: o.parent, lib: o.out, train, validation, dataSpec: o.data, space, coupled: o.coupled, shard: parseShard(o.shard), device: o.device, dtype: resolveDType(o.dtype, o.device),
    settings: { batch: o.batch, steps, lr: o.lr, ffnInit: o.ffnInit, linearInit: o.linearInit },
    onEvent: (e) => {
      progress.event(e as unknown as Record<string, unknown>);
      if (e.kind === 'layer') {
        progress.log(`puzzle library: layer ${e.layer + 1}/${e.layers}: ${e.variants - e.skipped} variants to train${e.skipped ? ` (${e.skipped} already built)` : ''}`);
        if (e.variants > e.skipped) progress.start(`layer ${e.layer}`, steps);
      } else if (e.kind === 'step') progress.update(e.step);
      else if (e.kind === 'entry') {
        progress.stop();
        progress.log(`puzzle library:   ${e.id.padEnd(16)} val NMSE init ${e.valNmseInit.toFixed(4)} -> BLD ${e.valNmseBld.toFixed(4)}`);
      }
    },
  });
  progress.log(r.complete ? `puzzle library: complete, ${r.entries.length} entries in ${o.out}` : `puzzle library: ${r.missing.length} entries still missing (other shards?)${r.problems.length ? '; problems: ' + r.problems.join('; ') : ''}`);
  return r;
}

export function registerLibraryCommands(program: Command): void {
  const lib = program.command('library').description('the block library: build (BLD) and show');
  lib
    .command('build')
    .description('initialise and train every layer x option of the search space (resumable, shardable)')
    .requiredOption('--parent <dir>', 'the parent HF model folder (with tokenizer.json)')
    .requiredOption('--out <dir>', 'library folder')
    .option('--data <src>', 'training text', 'builtin:gutenberg')
    .option('--space <file>', 'search space JSON ({attention: [...], ffn: [...], ffnMultiple})')
    .option('--tokens <n>', 'BLD tokens per variant', int('--tokens'), 100_000)
    .option('--batch <n>', 'sequences per step', int('--batch'), 8)
    .option('--seq <n>', 'sequence length', int('--seq'), 256)
    .option('--lr <x>', 'peak learning rate', num('--lr'), 1e-3)
    .option('--coupled', 'train attention x FFN pairs together (costlier)')
    .option('--ffn-init <m>', 'channel-contribution | first-k | random', 'channel-contribution')
    .option('--linear-init <m>', 'product | least-squares', 'product')
    .option('--shard <i/N>', 'build only layers with layer % N == i (run N of these, then `library show` checks)')
    .option('--device <d>', DEVICE_HELP, device('--device'), 'cpu')
    .option('--dtype <t>', DTYPE_HELP, modelDType('--dtype'), 'auto')
    .option('--json', 'one JSON event per line')
    .action(async (o: LibraryBuildOptions) => {
      const r = await runLibraryBuild(o);
      if (o.json) console.log(JSON.stringify({ event: 'result', complete: r.complete, missing: r.missing, problems: r.problems }));
      if (!r.complete && !o.shard) process.exitCode = 1;
    });
  lib
    .command('merge')
    .description('after shards: verify every entry is present and consistent, then write manifest.json')
    .argument('<dir>', 'library folder')
    .action((dir: string) => {
      const r = mergeLibrary(dir);
      if (r.complete) console.log(`puzzle library: ${dir} complete and consistent, ${r.entries.length} entries; manifest.json written`);
      else {
        console.error(`puzzle library: ${dir} is not complete: ${r.missing.length} missing (${r.missing.slice(0, 5).map((m) => `${m.layer}/${m.id}`).join(', ')}${r.missing.length > 5 ? ', ...' : ''})${r.problems.length ? '; ' + r.problems.join('; ') : ''}`);
        process.exitCode = 1;
      }
    });
  lib
    .command('search-table')
    .description('join the library, its scores (puzzle score) and a cost table (puzzle profile) into LIBDIR/block_library.json for puzzle search')
    .requiredOption('--library <dir>', 'a complete, scored block library')
    .requiredOption('--costs <file>', 'cost table from puzzle profile --out, measured on this machine')
    .option('--out <file>', 'where to write (default LIBDIR/block_library.json, which puzzle search --library LIBDIR reads)')
    .option('--allow-other-device', 'accept a cost table measured on another device')
    .action((o: { library: string; costs: string; out?: string; allowOtherDevice?: boolean }) => {
      const h = readHeader(o.library);
      const parent = openModelFolder(h.parentDir).config;
      const table = buildSearchInput(parent, o.library, readCostTable(o.costs), { allowOtherDevice: o.allowOtherDevice });
      const out = o.out ?? join(o.library, LIBRARY_FILE);
      const { source: _source, ...body } = table;
      writeJsonAtomic(out, { format: LIBRARY_FORMAT, version: 1, ...body });
      const n = table.layers.reduce((x, l) => x + l.variants.length, 0);
      console.log(`puzzle library: ${out}: ${table.layers.length} layers, ${n} variants (scenario batch ${table.scenario!.batch_size}, ${table.scenario!.sequence_length} tokens per sequence)`);
    });
  lib
    .command('show')
    .description('the variant table with validation NMSE at init and after BLD; checks completeness')
    .argument('<dir>', 'library folder')
    .option('--json', 'print one JSON object')
    .action((dir: string, o: { json?: boolean }) => {
      const h = readHeader(dir);
      const r = checkLibrary(dir);
      if (o.json) {
        console.log(JSON.stringify({ header: h, complete: r.complete, missing: r.missing, problems: r.problems, entries: r.entries }));
        return;
      }
      console.log(`library ${dir}: parent ${h.parentDir} (${h.parentFingerprint}), data ${h.dataSpec}, ${r.entries.length}/${h.expected.length} entries`);
      console.log(`${'layer'.padEnd(6)} ${'variant'.padEnd(18)} ${'init'.padEnd(24)} ${'tokens'.padStart(9)} ${'NMSE init'.padStart(10)} ${'NMSE BLD'.padStart(10)}`);
      for (const e of r.entries)
        console.log(`${String(e.layer).padEnd(6)} ${e.id.padEnd(18)} ${e.init.padEnd(24)} ${String(e.tokens).padStart(9)} ${e.valNmseInit.toFixed(4).padStart(10)} ${e.valNmseBld.toFixed(4).padStart(10)}`);
      if (!r.complete) {
        console.log(`incomplete: ${r.missing.length} missing${r.problems.length ? '; ' + r.problems.join('; ') : ''}`);
        process.exitCode = 1;
      }
    });
}
