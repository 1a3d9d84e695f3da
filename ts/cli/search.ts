/**
 * `puzzle search`: choose one variant per layer of a block library under budgets, with the exact
 * MIP (default) or one of the paper's baselines; optionally several diverse solutions, several
 * batch sizes, or a Pareto sweep written to a directory. A thin layer over ts/search.
 *
 * Exit status: 0 when an architecture was found, 2 when none was (infeasible budgets, a baseline
 * that found nothing, a time limit), 1 on a usage or input error (printed as "error [code]: ...").
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import type { Method, SearchOptions, SearchResult } from '../search/index.js';
import { formatResult, formatSweep, loadLibrary, paretoSweep, parseSweep, search, SearchError, writeSweep } from '../search/index.js';
import { join } from 'node:path';
import { runLibrary } from '../run/pipeline.js';
import { writeFileAtomic, writeJsonAtomic } from '../run/atomic.js';

interface Flags {
  library?: string;
  run?: string;
  name?: string;
  scenario?: string;
  memory?: string;
  throughput?: string;
  speedup?: string;
  latency?: string;
  ttft?: string;
  params?: string;
  max: string[];
  min: string[];
  objective: string;
  maximize?: boolean;
  batchSizes?: string;
  solutions: string;
  diversity: string;
  baseline?: Method;
  seed: string;
  sweep?: string;
  out?: string;
  threads?: string;
  timeLimit?: string;
  layers?: boolean;
  json?: boolean;
}

/** Adds the `search` subcommand to `program`. */
export function registerSearchCommand(program: Command): void {
  program
    .command('search')
    .description('choose one block variant per layer under memory / throughput / latency budgets (HiGHS MIP, proven optimal)')
    .option('--library <path>', 'block library: a directory or JSON file (ours, or NVIDIA\'s block_library.json)')
    .option('--run <dir>', 'or a puzzle run directory: re-solve on its finished library and costs, writing DIR/solutions/NAME/')
    .option('--name <name>', 'with --run: the solution folder name (default: a timestamp)')
    .option('--scenario <file>', 'scenario JSON replacing the library\'s (batch_size, sequence_length, gpu/device, dtype)')
    .option('--memory <size>', 'memory ceiling: "80GiB", "80000" (MiB), "0.9x" of the parent')
    .option('--throughput <tok/s>', 'throughput floor in tokens/s: "6000", "6k", "2x" of the parent')
    .option('--speedup <factor>', 'throughput floor relative to the parent: "2x"')
    .option('--latency <time>', 'latency ceiling: "50ms", "0.05s" (sums latency_ms, else runtime_ms)')
    .option('--ttft <time>', 'time-to-first-token ceiling: sums prefill_ms')
    .option('--params <count>', 'parameter ceiling: "7B", "500M"')
    .option('--max <stat=value>', 'ceiling on any summed stat, e.g. kv_cache_mib=2GiB (repeatable)', collect, [])
    .option('--min <stat=value>', 'floor on any summed stat (repeatable)', collect, [])
    .option('--objective <metric>', 'metric to optimise, summed over layers', 'kl_div')
    .option('--maximize', 'maximise the objective instead of minimising it')
    .option('--batch-sizes <list>', 'solve at each of these batch sizes (comma-separated) and keep the best')
    .option('--solutions <n>', 'number of solutions (MIP: diverse; random: independent draws)', '1')
    .option('--diversity <alpha>', 'each further solution shares at most alpha x layers with every earlier one', '0.2')
    .addOption(new Option('--baseline <kind>', 'run a baseline instead of the MIP').choices(['greedy', 'max-params', 'random', 'uniform']))
    .option('--seed <n>', 'seed of the random baseline', '0')
    .option('--sweep <budget=from..to:n>', 'Pareto sweep over one budget, e.g. "throughput=1x..3x:25" (needs --out)')
    .option('--out <dir>', 'directory for sweep.csv, sweep.json and sweep.svg')
    .option('--threads <n>', 'worker threads for a sweep (default: all cores)')
    .option('--time-limit <seconds>', 'stop each solve after this long (the result then says time_limit)')
    .option('--layers', 'list every layer\'s choice in the text report')
    .option('--json', 'print JSON: one object, or a list with several solutions')
    .action(async (flags: Flags) => {
      try {
        process.exitCode = await run(flags);
      } catch (error) {
        if (!(error instanceof SearchError)) throw error;
        process.stderr.write(`puzzle search: error [${error.code}]: ${error.message}\n`);
        process.exitCode = 1;
      }
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

async function run(flags: Flags): Promise<number> {
  if ((flags.library === undefined) === (flags.run === undefined)) throw new SearchError('bad_argument', 'give exactly one of --library PATH and --run DIR');
  let library = flags.run !== undefined ? runLibrary(flags.run) : loadLibrary(flags.library!, flags.scenario !== undefined ? { scenario: flags.scenario } : {});
  if (flags.run !== undefined && flags.scenario !== undefined) library = loadLibrary(join(flags.run, 'library'), { scenario: flags.scenario });
  const options = toOptions(flags);
  if (flags.sweep !== undefined) {
    if (flags.out === undefined) throw new SearchError('bad_argument', '--sweep writes its results to a directory; give --out DIR');
    const threads = flags.threads === undefined ? undefined : integer(flags.threads, '--threads', 1);
    const sweep = await paretoSweep(library, options, parseSweep(flags.sweep), threads);
    const files = writeSweep(sweep, flags.out);
    process.stdout.write(flags.json ? `${JSON.stringify(sweep)}\n` : `${formatSweep(sweep, files)}\n`);
    return sweep.points.some((p) => p.result.layers.length > 0) ? 0 : 2;
  }
  if (flags.out !== undefined || flags.threads !== undefined) throw new SearchError('bad_argument', '--out and --threads apply to --sweep only');
  const results = await search(library, options);
  if (flags.run !== undefined && results.some((r) => r.layers.length > 0)) {
    const name = flags.name ?? new Date().toISOString().replace(/[:.]/g, '-');
    const dir = join(flags.run, 'solutions', name);
    writeJsonAtomic(join(dir, 'solution.json'), results);
    writeFileAtomic(join(dir, 'solution.txt'), `${results.map((r: SearchResult) => formatResult(r, { layers: true })).join('\n\n')}\n`);
    process.stderr.write(`puzzle search: wrote ${dir}/solution.json (assemble it with puzzle assemble --library ${join(flags.run, 'library')} --solution ${join(dir, 'solution.json')} --out DIR)\n`);
  }
  if (flags.json) process.stdout.write(`${JSON.stringify(results.length === 1 ? results[0] : results, null, 1)}\n`);
  else process.stdout.write(`${results.map((r: SearchResult) => formatResult(r, { layers: flags.layers === true })).join('\n\n')}\n`);
  return results.some((r) => r.layers.length > 0) ? 0 : 2;
}

function toOptions(flags: Flags): SearchOptions {
  const table = (pairs: string[], option: string) =>
    Object.fromEntries(
      pairs.map((pair) => {
        const at = pair.indexOf('=');
        if (at <= 0) throw new SearchError('bad_argument', `${option}: expected STAT=VALUE (e.g. kv_cache_mib=2GiB), got "${pair}"`);
        return [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
      }),
    );
  const options: Record<string, unknown> = {
    objective: flags.objective,
    maximize: flags.maximize === true,
    method: flags.baseline ?? 'mip',
    solutions: integer(flags.solutions, '--solutions', 1),
    diversity: fraction(flags.diversity, '--diversity'),
    seed: integer(flags.seed, '--seed', 0),
    max: table(flags.max, '--max'),
    min: table(flags.min, '--min'),
  };
  for (const key of ['memory', 'throughput', 'speedup', 'latency', 'ttft', 'params'] as const) {
    if (flags[key] !== undefined) options[key] = flags[key];
  }
  if (flags.batchSizes !== undefined) options['batchSizes'] = flags.batchSizes.split(',').map((b) => integer(b, '--batch-sizes', 1));
  if (flags.timeLimit !== undefined) options['timeLimitSeconds'] = positive(flags.timeLimit, '--time-limit');
  return options as SearchOptions;
}

function integer(text: string, option: string, min: number): number {
  const value = Number(text.trim());
  if (!Number.isInteger(value) || value < min) throw new SearchError('bad_argument', `${option}: expected an integer >= ${min}, got "${text}"`);
  return value;
}

function fraction(text: string, option: string): number {
  const value = Number(text);
  if (!(value >= 0 && value < 1)) throw new SearchError('bad_argument', `${option}: expected a number in [0, 1), got "${text}"`);
  return value;
}

function positive(text: string, option: string): number {
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value)) throw new SearchError('bad_argument', `${option}: expected a positive number of seconds, got "${text}"`);
  return value;
}
