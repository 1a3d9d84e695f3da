/**
 * A sweep on disk: `sweep.csv` (one row per point, for spreadsheets), `sweep.json` (every result
 * in full) and `sweep.svg` (the plot).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SearchError } from './errors.js';
import { sweepSvg } from './svg.js';
import type { SweepResult } from './sweep.js';

/** Paths of the files written. */
export interface SweepFiles {
  readonly csv: string;
  readonly json: string;
  readonly svg: string;
}

const TOTALS = ['memory_mib', 'runtime_ms', 'throughput', 'num_params'] as const;

/** The CSV text of a sweep. */
export function sweepCsv(sweep: SweepResult): string {
  const header = ['point', `target_${sweep.budget}`, `achieved_${sweep.budget}`, 'status', sweep.metric, 'pareto', 'batch_size', ...TOTALS, 'time_ms', 'variants'];
  const rows = sweep.points.map((p) => {
    const r = p.result;
    return [
      p.index,
      p.target,
      p.achieved ?? '',
      r.status,
      r.objective ?? '',
      p.pareto,
      r.batch_size,
      ...TOTALS.map((key) => r.totals?.[key] ?? ''),
      r.time_ms.toFixed(1),
      r.layers.map((layer) => layer.index).join(' '),
    ];
  });
  return `${[header, ...rows].map((row) => row.map(cell).join(',')).join('\n')}\n`;
}

/** Writes sweep.csv, sweep.json and sweep.svg into `dir` (created if needed). */
export function writeSweep(sweep: SweepResult, dir: string): SweepFiles {
  const files = { csv: join(dir, 'sweep.csv'), json: join(dir, 'sweep.json'), svg: join(dir, 'sweep.svg') };
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(files.csv, sweepCsv(sweep));
    writeFileSync(files.json, `${JSON.stringify(sweep, null, 1)}\n`);
    writeFileSync(files.svg, sweepSvg(sweep));
  } catch (cause) {
    throw new SearchError('io', `--out ${dir}: cannot write the sweep (${(cause as Error).message})`, { cause });
  }
  return files;
}

function cell(value: unknown): string {
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
