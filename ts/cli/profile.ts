/** `puzzle profile`: per-subblock costs on this machine for a scenario, and the additivity check. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { PuzzleError } from '../core/errors.js';
import { parseConfig } from '../model/config.js';
import type { SearchSpaceConfig } from '../library/space.js';
import { additivityCheck, profileSpace, type AdditivityRow, type CostTable } from '../profile/profile.js';
import { profileSpaceCuda } from '../profile/cuda.js';
import { scenario } from '../profile/scenario.js';
import { writeJsonAtomic } from '../run/atomic.js';
import { int } from './args.js';
import { createProgress } from './progress.js';

function readJson(path: string, what: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new PuzzleError('ERR_PUZZLE_CONFIG', `${what} ${path}: ${(err as Error).message}`);
  }
}

export function registerProfileCommand(program: Command): void {
  program
    .command('profile')
    .description('measure every option of the search space on this machine (no weights needed), and check additivity')
    .requiredOption('--config <file>', 'a model config.json (Llama or DeciLM), e.g. Llama-3.1-8B\'s, or a model folder')
    .option('--batch <n>', 'sequences served together', int('--batch'), 8)
    .option('--prompt <n>', 'prompt tokens (prefill)', int('--prompt'), 256)
    .option('--generate <n>', 'generated tokens (decode steps)', int('--generate'), 32)
    .option('--repeats <n>', 'timed repeats per measurement', int('--repeats'), 7)
    .option('--space <file>', 'search space JSON (default: the default space for this config)')
    .option('--children <n>', 'random children measured end to end for the additivity check', int('--children'), 3)
    .option('--additivity-layers <n>', 'layers of the models in the additivity check (default: all, at most 8)', int('--additivity-layers'))
    .option('--device <kind>', 'cpu (this process) or cuda (the GPU, via puzzle_cuda_profile)', 'cpu')
    .option('--dtype <type>', 'block precision: float32, or bfloat16 (mixed precision; cuda only). Default: bfloat16 on cuda, float32 on cpu')
    .option('--out <file>', 'write the cost table (JSON)')
    .option('--json', 'print one JSON object')
    .action(async (o: { config: string; batch: number; prompt: number; generate: number; repeats: number; space?: string; children: number; additivityLayers?: number; device: string; dtype?: string; out?: string; json?: boolean }) => {
      if (o.device !== 'cpu' && o.device !== 'cuda') throw new PuzzleError('ERR_PUZZLE_ARG', `--device ${o.device}: expected cpu or cuda`);
      const dtype = o.dtype ?? (o.device === 'cuda' ? 'bfloat16' : 'float32');
      if (dtype !== 'float32' && dtype !== 'bfloat16') throw new PuzzleError('ERR_PUZZLE_ARG', `--dtype ${dtype}: expected float32 or bfloat16`);
      const path = o.config.endsWith('.json') ? o.config : `${o.config}/config.json`;
      const c = parseConfig(readJson(path, 'config'), path);
      const space = o.space ? (readJson(o.space, '--space') as unknown as SearchSpaceConfig) : undefined;
      const s = scenario({ batch: o.batch, prompt: o.prompt, generate: o.generate, repeats: o.repeats, device: o.device, dtype });
      const progress = createProgress({ json: o.json });
      progress.log(`puzzle profile: ${c.layers.length} x hidden ${c.hidden}, ${c.heads} heads; scenario batch ${s.batch}, prompt ${s.prompt}, generate ${s.generate}, ${s.dtype}`);
      let table: CostTable;
      let rows: AdditivityRow[];
      let L: number;
      if (o.device === 'cuda') {
        L = Math.min(o.additivityLayers ?? Math.min(c.layers.length, 4), c.layers.length);
        progress.log('puzzle profile: measuring on the GPU (puzzle_cuda_profile)');
        ({ table, additivity: rows } = await profileSpaceCuda(c, s, space, { children: o.children, layers: L }));
      } else {
        let started = false;
        table = await profileSpace(c, s, space, (e) => {
          if (!started) progress.start('profile', e.total), (started = true);
          progress.update(e.done, e.kind === 'measured' ? { last: e.cost.id } : undefined);
        });
        progress.stop();
        L = Math.min(o.additivityLayers ?? Math.min(c.layers.length, 8), c.layers.length);
        rows = await additivityCheck(c, table, s, space, o.children, L);
      }
      if (o.out) writeJsonAtomic(o.out, { ...table, additivity: { layers: L, rows } });
      if (o.json) return console.log(JSON.stringify({ ...table, additivity: { layers: L, rows } }));
      console.log(`device: ${table.device.model}, ${table.device.isa}, ${table.device.threads} ${table.device.kind === 'cuda' ? `SMs, driver ${table.device.driver}` : 'threads'} (GEMM ${table.device.gemm})`);
      console.log(`${'subblock'.padEnd(16)} ${'params'.padStart(12)} ${'param MiB'.padStart(10)} ${'KV MiB/seq'.padStart(11)} ${'prefill ms'.padStart(11)} ${'decode ms'.padStart(10)} ${'total ms'.padStart(9)}`);
      for (const x of [table.empty, ...table.subblocks])
        console.log(`${x.id.padEnd(16)} ${String(x.num_params).padStart(12)} ${x.param_memory_mib.toFixed(2).padStart(10)} ${x.kv_cache_mib.toFixed(3).padStart(11)} ${x.prefill_ms.toFixed(3).padStart(11)} ${x.decode_ms.toFixed(2).padStart(10)} ${x.runtime_ms.toFixed(2).padStart(9)}`);
      console.log(`${'head (emb+norm+lm)'.padEnd(16)} ${String(table.head.num_params).padStart(12)} ${''.padStart(10)} ${''.padStart(11)} ${table.head.prefill_ms.toFixed(3).padStart(11)} ${table.head.decode_ms.toFixed(2).padStart(10)} ${table.head.runtime_ms.toFixed(2).padStart(9)}`);
      console.log(`\nadditivity (${L} layers; predicted = ${table.device.kind === 'cuda' ? 'the stack with no layers' : 'head'} + per layer attention + FFN - empty block):`);
      console.log(`${'model'.padEnd(10)} ${'prefill pred'.padStart(13)} ${'measured'.padStart(9)} ${'error'.padStart(7)} ${'decode pred'.padStart(12)} ${'measured'.padStart(9)} ${'error'.padStart(7)}`);
      for (const r of rows) {
        const e1 = (100 * (r.predictedPrefill - r.measuredPrefill)) / r.measuredPrefill;
        const e2 = (100 * (r.predictedDecode - r.measuredDecode)) / r.measuredDecode;
        console.log(`${r.name.padEnd(10)} ${r.predictedPrefill.toFixed(2).padStart(13)} ${r.measuredPrefill.toFixed(2).padStart(9)} ${(e1 >= 0 ? '+' : '') + e1.toFixed(1) + '%'} ${r.predictedDecode.toFixed(1).padStart(12)} ${r.measuredDecode.toFixed(1).padStart(9)} ${(e2 >= 0 ? '+' : '') + e2.toFixed(1) + '%'}`);
      }
    });
}
