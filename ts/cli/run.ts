/** `puzzle run [CONFIG]`: the whole pipeline into one resumable run directory. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { PuzzleError } from '../core/errors.js';
import { loadRunConfig, STAGES, type StageName } from '../run/config.js';
import { runPipeline } from '../run/pipeline.js';
import { resultTable } from '../run/report.js';
import { createProgress } from './progress.js';

interface RunCliOptions {
  out: string;
  set: string[];
  restartFrom?: string;
  json?: boolean;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export async function runRunCommand(config: string | undefined, o: RunCliOptions): Promise<void> {
  if (o.restartFrom && !STAGES.includes(o.restartFrom as StageName))
    throw new PuzzleError('ERR_PUZZLE_ARG', `--restart-from ${o.restartFrom}: expected one of ${STAGES.join(', ')}`);
  const c = loadRunConfig(config, o.set);
  const progress = createProgress({ json: o.json });
  const t0 = performance.now();
  const say = (line: string) => progress.log(line);
  say(`puzzle run: ${config ?? 'the built-in demo'} -> ${o.out} (parent ${c.parent})`);
  const r = await runPipeline(c, o.out, {
    restartFrom: o.restartFrom as StageName | undefined,
    onEvent: (e) => {
      progress.event(e as unknown as Record<string, unknown>);
      if (e.kind === 'stage') {
        progress.stop();
        const head = `puzzle ${e.index}/${e.total} ${e.stage}`;
        if (e.status === 'start') say(`${head} ...`);
        else if (e.status === 'skipped') say(`${head} already done (resumed)`);
        else say(`${head} done in ${e.seconds!.toFixed(1)} s${brief(e.stage, e.summary)}`);
      } else if (e.kind === 'progress') {
        if (e.done <= 1 || e.done === e.total) progress.start(e.label, e.total);
        progress.update(e.done, e.info ? { at: e.info } : undefined);
      } else if (e.kind === 'log') {
        progress.stop();
        say(`puzzle   ${e.stage}: ${e.line}`);
      }
    },
  });
  progress.stop();
  if (o.json) {
    console.log(JSON.stringify({ event: 'result', dir: r.dir, report: join(r.dir, 'report.json') }));
    return;
  }
  const ev = JSON.parse(readFileSync(join(r.dir, 'evaluate.json'), 'utf8'));
  console.log('');
  for (const line of resultTable(ev)) console.log(line);
  console.log('');
  console.log(`model:   ${join(r.dir, 'model')}`);
  console.log(`report:  ${join(r.dir, 'report.json')}, ${join(r.dir, 'summary.md')}`);
  console.log(`plots:   ${join(r.dir, 'plots', 'pareto.svg')}, ${join(r.dir, 'plots', 'layers.svg')}`);
  console.log(`time:    ${((performance.now() - t0) / 60000).toFixed(1)} min`);
}

function brief(stage: StageName, s: Record<string, unknown> | undefined): string {
  if (!s) return '';
  const n = (x: unknown, d = 2) => (typeof x === 'number' ? x.toFixed(d) : String(x));
  switch (stage) {
    case 'parent': return `: ${(Number(s.params) / 1e6).toFixed(2)}M parameters, ${s.layers} layers`;
    case 'library': return `: ${s.entries} entries (${s.trained} trained)`;
    case 'score': return `: ${s.scored} entries scored`;
    case 'profile': return `: ${s.subblocks} options measured`;
    case 'search': return `: ${s.status}, ${(s.layers as string[]).join(' ')}`;
    case 'assemble': return `: ${(Number(s.params) / 1e6).toFixed(2)}M parameters`;
    case 'gkd': return s.skipped ? ': skipped (gkd.steps 0)' : `: validation KL ${n((s.before as { kl?: number })?.kl, 4)} -> ${n((s.after as { kl?: number })?.kl, 4)}`;
    case 'export': return `: ${s.dir} (${s.dtype})`;
    case 'evaluate': return `: decode ${n(s.decode_speedup)}x, top-1 retention ${(100 * Number(s.top1_retention)).toFixed(1)}%`;
  }
  return '';
}

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('the whole pipeline: library -> scores -> costs -> search -> assemble -> GKD -> export -> evaluate (resumable)')
    .argument('[config]', 'YAML or JSON config (default: the built-in demo on the shipped parent)')
    .option('--out <dir>', 'run directory', 'runs/demo')
    .option('--set <key=value>', 'override a config setting, e.g. gkd.steps=100 (repeatable)', collect, [])
    .option('--restart-from <stage>', `forget finished stages from this one on (${STAGES.join(', ')})`)
    .option('--json', 'one JSON event per line')
    .action(async (config: string | undefined, o: RunCliOptions) => {
      await runRunCommand(config, o);
    });
}
