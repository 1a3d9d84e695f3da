/** Plain-text reports of search results and sweeps, as the CLI prints them without `--json`. */
import type { SearchResult } from './result.js';
import type { SweepFiles } from './sweep-files.js';
import type { SweepResult } from './sweep.js';
import { formatCount, formatNumber } from './units.js';

const STATUS_TEXT: Readonly<Record<SearchResult['status'], string>> = {
  optimal: 'optimal (proven)',
  feasible: 'feasible',
  time_limit: 'stopped at the time limit',
  infeasible: 'infeasible: no architecture meets the budgets',
  no_solution: 'no architecture found',
};

/** A multi-line report of one result; `layers` lists every layer's choice. */
export function formatResult(result: SearchResult, options: { layers?: boolean } = {}): string {
  const lines: string[] = [];
  const rank = result.solution > 1 ? ` #${result.solution}` : '';
  lines.push(`${result.method}${rank}: ${STATUS_TEXT[result.status]}  [batch ${result.batch_size}, ${formatNumber(result.time_ms, 0)} ms]`);
  if (result.objective !== null) {
    const bound = result.bound !== null && result.gap !== null ? ` (bound ${num(result.bound)}, gap ${(result.gap * 100).toPrecision(3)}%)` : '';
    lines.push(`  ${result.metric} ${num(result.objective)}${bound}`);
  }
  for (const check of result.budgets) {
    const sign = check.bound === 'upper' ? '<=' : '>=';
    lines.push(`  ${check.option.padEnd(14)} ${quantity(check.value, check.unit).padStart(20)}  ${sign} ${quantity(check.target, check.unit)}  ${check.ok ? 'ok' : 'BROKEN'}`);
  }
  const t = result.totals;
  if (t) {
    const parts = [
      t.memory_mib !== undefined ? `memory ${quantity(t.memory_mib, 'MiB')}` : '',
      t.throughput !== undefined ? `throughput ${quantity(t.throughput, 'tok/s')}` : '',
      t.speedup !== undefined ? `speedup ${t.speedup.toFixed(3)}x` : '',
      t.num_params !== undefined ? `params ${formatCount(t.num_params)}` : '',
      t.runtime_ms !== undefined ? `runtime ${quantity(t.runtime_ms, 'ms')}` : '',
    ].filter(Boolean);
    if (parts.length) lines.push(`  totals: ${parts.join(', ')}`);
  }
  const s = result.solver;
  if (s) {
    lines.push(
      `  solver: ${s.columns} variants -> ${s.after_pruning} after pruning -> HiGHS on ${s.final_groups} group(s) / ${s.final_columns} column(s); ` +
        `${s.rounds} LP round(s), ${s.nodes} node(s), HiGHS ${formatNumber(s.highs_ms, 0)} ms, proof: ${s.proof}`,
    );
  }
  for (const b of result.batches ?? []) lines.push(`  batch ${b.batch_size}: ${b.status}${b.objective !== null ? ` ${num(b.objective)}` : ''}`);
  for (const n of result.nearest_feasible ?? []) {
    const need = n.feasible_at === null ? 'cannot make it feasible alone' : `${n.bound === 'upper' ? 'needs at least' : 'allows at most'} ${quantity(n.feasible_at, n.unit)}`;
    lines.push(`  ${n.option.padEnd(14)} ${need} (asked ${quantity(n.target, n.unit)}, batch ${n.batch_size})`);
  }
  if (result.note) lines.push(`  note: ${result.note}`);
  if (options.layers && result.layers.length) {
    lines.push('  layers:');
    for (const layer of result.layers) lines.push(`  ${String(layer.layer).padStart(4)}  ${layer.variant.replace(/\s*\t\s*/g, '  ')}`);
  }
  return lines.join('\n');
}

/** A short report of a sweep and the files it wrote. */
export function formatSweep(sweep: SweepResult, files?: SweepFiles): string {
  const counts = new Map<string, number>();
  for (const p of sweep.points) counts.set(p.result.status, (counts.get(p.result.status) ?? 0) + 1);
  const statuses = [...counts].map(([status, n]) => `${n} ${status}`).join(', ');
  const lines = [
    `sweep of ${sweep.option} over ${sweep.points.length} points (${statuses}) with ${sweep.method}, ${formatNumber(sweep.wall_ms / 1000, 2)} s on ${sweep.threads} thread(s)`,
    `  ${'target'.padStart(20)} ${'achieved'.padStart(20)}  ${sweep.metric}`,
  ];
  for (const p of sweep.points.filter((point) => point.pareto)) {
    lines.push(`  ${quantity(p.target, sweep.unit).padStart(20)} ${quantity(p.achieved ?? Number.NaN, sweep.unit).padStart(20)}  ${num(p.result.objective ?? Number.NaN)}`);
  }
  if (files) lines.push(`  wrote ${files.csv}, ${files.json}, ${files.svg}`);
  return lines.join('\n');
}

function quantity(value: number, unit: string): string {
  if (!Number.isFinite(value)) return '-';
  if (unit === '') return formatCount(value);
  return `${formatNumber(value, unit === 'tok/s' || unit === 'MiB' || unit === 'ms' ? 1 : 3)} ${unit}`;
}

function num(value: number): string {
  return Number.isFinite(value) ? Number(value.toPrecision(6)).toString() : '-';
}
