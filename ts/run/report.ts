/**
 * What a finished run tells a person: report.json (the source of truth), summary.md (the
 * per-layer architecture, costs against budgets, parent against child quality and measured
 * speed) and two plots: the quality-vs-decode-speed front with the parent, the chosen child and
 * the baselines, and a per-layer map of the chosen attention and FFN options.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SpeedComparison } from '../distill/speedup.js';
import type { EvalReport } from '../eval/run.js';
import type { CostTable } from '../profile/profile.js';
import type { SearchResult } from '../search/result.js';
import type { BlockLibrary } from '../search/library.js';
import { niceTicks } from '../search/svg.js';
import { writeFileAtomic, writeJsonAtomic } from './atomic.js';
import { MODEL_STAGES, type RunConfig } from './config.js';

const readJson = <T>(p: string): T | null => (existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as T) : null);
const pct = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : `${(100 * x).toFixed(1)}%`);
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Evaluate {
  parent: EvalReport;
  child: EvalReport;
  child_before_gkd: EvalReport | null;
  speed: SpeedComparison;
  retention: Record<string, number>;
}

interface Pareto {
  metric: string;
  points: Array<{ decode_speedup: number; objective: number | null; layers: string[] }>;
}

/** Writes report.json, summary.md and plots/ into the run directory; returns the report. */
export function writeReport(dir: string, config: RunConfig): Record<string, unknown> {
  const evaluate = readJson<Evaluate>(join(dir, 'evaluate.json'));
  const solution = readJson<SearchResult[]>(join(dir, 'search', 'solution.json'))?.[0] ?? null;
  const baselines = readJson<Record<string, SearchResult>>(join(dir, 'search', 'baselines.json')) ?? {};
  const pareto = readJson<Pareto>(join(dir, 'search', 'pareto.json'));
  const costs = readJson<CostTable & { additivity?: unknown[] }>(join(dir, 'costs.json'));
  const gkd = readJson<{ summary: Record<string, unknown> }>(join(dir, 'stages', 'gkd.done.json'))?.summary ?? null;
  const library = readJson<{ summary: Record<string, unknown> }>(join(dir, 'stages', 'library.done.json'))?.summary ?? null;
  // where each model stage ran, from its done marker
  const ranOn: Record<string, string> = {};
  for (const s of MODEL_STAGES) {
    const sum = readJson<{ summary?: { device?: string; dtype?: string } }>(join(dir, 'stages', `${s}.done.json`))?.summary;
    if (sum?.device) ranOn[s] = `${sum.device}${sum.dtype ? `, ${sum.dtype}` : ''}`;
  }
  const report = {
    version: 1, dir, config, library, ran_on: ranOn, device: costs?.device ?? null, scenario: costs?.scenario ?? null, additivity: costs?.additivity ?? null,
    search: solution && { status: solution.status, objective: solution.objective, metric: solution.metric, totals: solution.totals, budgets: solution.budgets, layers: solution.layers.map((l) => l.variant) },
    baselines: Object.fromEntries(Object.entries(baselines).map(([k, r]) => [k, { status: r.status, objective: r.objective, layers: r.layers.map((l) => l.variant) }])),
    gkd, evaluate,
    outputs: { model: join(dir, 'model'), summary: join(dir, 'summary.md'), pareto_svg: join(dir, 'plots', 'pareto.svg'), layers_svg: join(dir, 'plots', 'layers.svg') },
  };
  writeJsonAtomic(join(dir, 'report.json'), report);
  writeFileAtomic(join(dir, 'summary.md'), summaryMarkdown(report, evaluate, solution));
  const lib = readJson<BlockLibrary>(join(dir, 'library', 'block_library.json'));
  if (pareto) writeFileAtomic(join(dir, 'plots', 'pareto.svg'), paretoSvg(pareto, solution, baselines, evaluate, lib));
  if (solution) writeFileAtomic(join(dir, 'plots', 'layers.svg'), layersSvg(solution.layers.map((l) => l.variant)));
  return report;
}

/** The parent-vs-child table printed at the end of a run (also the head of summary.md). */
export function resultTable(e: Evaluate): string[] {
  const s = e.speed;
  const rows: Array<[string, string, string, string]> = [
    ['', 'parent', 'child', 'child / parent'],
    ['decode throughput (tok/s)', s.parent.decode_tok_s.toFixed(0), s.child.decode_tok_s.toFixed(0), `${s.decode_speedup.toFixed(2)}x`],
    ['prefill throughput (tok/s)', s.parent.prefill_tok_s.toFixed(0), s.child.prefill_tok_s.toFixed(0), `${s.prefill_speedup.toFixed(2)}x`],
    ['top-1 next-token accuracy', pct(e.parent.top1), pct(e.child.top1), pct(e.retention.top1)],
    ['perplexity', e.parent.perplexity.toFixed(2), e.child.perplexity.toFixed(2), ''],
    ['KL(parent || child), agreement', '', `${e.child.kl?.toFixed(4)}, ${pct(e.child.agreement)}`, ''],
  ];
  for (const [k, v] of Object.entries(e.child.tasks ?? {}))
    rows.push([`${k} accuracy (${v.items} items)`, pct(e.parent.tasks?.[k]?.accuracy), pct(v.accuracy), pct(e.retention[k])]);
  const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => `${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2].padStart(w[2])}  ${r[3].padStart(w[3])}`);
}

function summaryMarkdown(report: Record<string, unknown>, e: Evaluate | null, sol: SearchResult | null): string {
  const out: string[] = ['# Puzzle run', ''];
  const c = report.config as RunConfig;
  out.push(`- parent: \`${c.parent}\`; data: \`${c.data}\``);
  const dev = report.device as { kind?: string; model?: string; isa?: string; threads?: number } | null;
  const dtype = (report.scenario as { dtype?: string } | null)?.dtype ?? 'float32';
  const ranOn = Object.entries((report.ran_on ?? {}) as Record<string, string>);
  const places = [...new Set(ranOn.map(([, d]) => d))];
  if (places.length === 1) out.push(`- models trained and evaluated on ${places[0]}`);
  else if (places.length > 1) out.push(`- models ran on: ${ranOn.map(([s, d]) => `${s} ${d}`).join('; ')}`);
  if (dev) out.push(`- costs measured on: ${dev.model} (${dev.isa}, ${dev.threads} ${dev.kind === 'cuda' ? 'SMs' : 'threads'}), ${dtype}; scenario: batch ${c.profile.batch}, prompt ${c.profile.prompt}, ${c.profile.generate} generated tokens`);
  out.push('');
  if (e) {
    out.push('## Parent against child (measured, test split)', '', '```', ...resultTable(e), '```', '');
    if (e.child_before_gkd) out.push(`Before GKD the assembled child had top-1 ${pct(e.child_before_gkd.top1)}, KL ${e.child_before_gkd.kl?.toFixed(4)}, agreement ${pct(e.child_before_gkd.agreement)}.`, '');
  }
  if (sol) {
    out.push(`## Search: ${sol.status}, summed ${sol.metric} ${sol.objective?.toFixed(5)}`, '', '| budget | limit | achieved | |', '|---|---|---|---|');
    for (const b of sol.budgets)
      out.push(`| ${b.budget === 'max:decode_ms' ? 'decode time (predicted, parent / target speed-up)' : b.option} | ${b.bound === 'upper' ? '<=' : '>='} ${fmt(b.target)} ${b.unit} | ${fmt(b.value)} ${b.unit} | ${b.ok ? 'ok' : 'VIOLATED'} |`);
    out.push('', '| layer | attention | FFN |', '|---|---|---|');
    sol.layers.forEach((l) => {
      const [a, f] = l.variant.split('+');
      out.push(`| ${l.layer} | ${a} | ${f} |`);
    });
    out.push('');
  }
  const b = report.baselines as Record<string, { status: string; objective: number | null }>;
  if (Object.keys(b).length) {
    out.push('## Baselines at the same budgets (summed replace-1-block metric, lower is better)', '', '| method | status | objective |', '|---|---|---|');
    if (sol) out.push(`| MIP (chosen) | ${sol.status} | ${sol.objective?.toFixed(5)} |`);
    for (const [k, v] of Object.entries(b)) out.push(`| ${k} | ${v.status} | ${v.objective?.toFixed(5) ?? '-'} |`);
    out.push('');
  }
  out.push('Plots: `plots/pareto.svg` (quality against predicted decode speed-up), `plots/layers.svg` (the chosen options per layer). Source of truth: `report.json`.', '');
  return out.join('\n');
}

function fmt(x: unknown): string {
  return typeof x === 'number' ? (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(4)) : String(x ?? '-');
}

const W = 720, H = 440, M = { left: 78, right: 24, top: 40, bottom: 56 };

function paretoSvg(p: Pareto, sol: SearchResult | null, baselines: Record<string, SearchResult>, e: Evaluate | null, lib: BlockLibrary | null): string {
  const pts = p.points.filter((x) => x.objective !== null) as Array<{ decode_speedup: number; objective: number; layers: string[] }>;
  const ys = pts.map((x) => x.objective).concat([0]);
  const xs = pts.map((x) => x.decode_speedup).concat([1]);
  // every mark at its PREDICTED decode speed-up (the front's axis); the measured one is in the label
  const decodeOf = (layers: string[]) => lib ? layers.reduce((sum, v, i) => sum + (lib.layers[i].variants.find((x) => x.name === v)?.stats['decode_ms'] ?? NaN), 0) : NaN;
  const parentDecode = lib ? lib.layers.reduce((sum, l) => sum + (l.variants.find((v) => v.name === l.parent)?.stats['decode_ms'] ?? NaN), 0) : NaN;
  const predicted = (layers: string[]) => parentDecode / decodeOf(layers);
  const marks: Array<{ label: string; x: number; y: number; color: string }> = [{ label: 'parent', x: 1, y: 0, color: '#222' }];
  if (sol?.objective != null) {
    const layers = sol.layers.map((l) => l.variant);
    const measured = e?.speed.decode_speedup;
    marks.push({ label: `child (predicted ${predicted(layers).toFixed(2)}x, measured ${measured ? measured.toFixed(2) + 'x' : '?'})`, x: predicted(layers), y: sol.objective, color: '#d1242f' });
  }
  const colors: Record<string, string> = { greedy: '#9a6700', 'max-params': '#8250df', random: '#57606a' };
  for (const [k, r] of Object.entries(baselines))
    if (r.objective != null && r.layers.length) marks.push({ label: k, x: predicted(r.layers.map((l) => l.variant)), y: r.objective, color: colors[k] ?? '#57606a' });
  for (const m of marks) if (!Number.isFinite(m.x)) m.x = 1;
  xs.push(...marks.map((m) => m.x));
  ys.push(...marks.map((m) => m.y));
  const sx = lin(Math.min(...xs), Math.max(...xs), M.left, W - M.right);
  const sy = lin(Math.min(...ys), Math.max(...ys), H - M.bottom, M.top);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(`summed ${p.metric} vs predicted decode speed-up (MIP front, child, baselines)`)}</text>`,
    ...axes(sx, sy, 'decode speed-up over the parent (x)', `summed replace-1-block ${p.metric} (lower is better)`),
  ];
  if (pts.length > 1) parts.push(`<polyline points="${pts.map((q) => `${sx(q.decode_speedup).toFixed(1)},${sy(q.objective).toFixed(1)}`).join(' ')}" fill="none" stroke="#1f6feb" stroke-width="1.5"/>`);
  for (const q of pts) parts.push(`<circle cx="${sx(q.decode_speedup).toFixed(1)}" cy="${sy(q.objective).toFixed(1)}" r="3.5" fill="#1f6feb"><title>${esc(`${q.decode_speedup.toFixed(2)}x: ${q.objective.toFixed(5)}\n${q.layers.join(', ')}`)}</title></circle>`);
  marks.forEach((m, i) => {
    parts.push(`<rect x="${(sx(m.x) - 5).toFixed(1)}" y="${(sy(m.y) - 5).toFixed(1)}" width="10" height="10" fill="${m.color}"/>`);
    const right = sx(m.x) > W * 0.6;  // labels near the right edge extend to the left
    parts.push(`<text x="${(sx(m.x) + (right ? -9 : 9)).toFixed(1)}" y="${(sy(m.y) + 4 + (i % 2 ? 14 : 0)).toFixed(1)}" text-anchor="${right ? 'end' : 'start'}" fill="${m.color}">${esc(m.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

function layersSvg(layers: string[]): string {
  const rowH = 26, top = 50, left = 70, colW = 260;
  const h = top + rowH * layers.length + 20;
  const color = (id: string) => id.endsWith('noop') ? '#eaeef2' : id.endsWith('linear') ? '#fff8c5' : id.startsWith('attn') ? '#ddf4ff' : '#dafbe1';
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + 2 * colW + 20}" height="${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="22" font-size="14">the chosen child, layer by layer</text>`,
    `<text x="${left + 4}" y="42" fill="#57606a">attention</text><text x="${left + colW + 4}" y="42" fill="#57606a">FFN</text>`,
  ];
  layers.forEach((v, i) => {
    const [a, f] = v.split('+');
    const y = top + i * rowH;
    parts.push(`<text x="${left - 10}" y="${y + 17}" text-anchor="end">${i}</text>`);
    parts.push(`<rect x="${left}" y="${y}" width="${colW - 6}" height="${rowH - 4}" fill="${color(a)}" stroke="#d0d7de"/><text x="${left + 6}" y="${y + 16}">${esc(a)}</text>`);
    parts.push(`<rect x="${left + colW}" y="${y}" width="${colW - 6}" height="${rowH - 4}" fill="${color(f ?? '')}" stroke="#d0d7de"/><text x="${left + colW + 6}" y="${y + 16}">${esc(f ?? '')}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

function lin(lo: number, hi: number, a: number, b: number): (v: number) => number {
  const pad = (hi - lo || 1) * 0.06;
  const l = lo - pad, h = hi + pad;
  const f = (v: number) => a + ((v - l) / (h - l)) * (b - a);
  (f as unknown as { lo: number; hi: number }).lo = l;
  (f as unknown as { lo: number; hi: number }).hi = h;
  return f;
}

function axes(sx: (v: number) => number, sy: (v: number) => number, xl: string, yl: string): string[] {
  const out: string[] = [];
  const X = sx as unknown as { lo: number; hi: number }, Y = sy as unknown as { lo: number; hi: number };
  out.push(`<line x1="${M.left}" y1="${H - M.bottom}" x2="${W - M.right}" y2="${H - M.bottom}" stroke="#57606a"/>`);
  out.push(`<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${H - M.bottom}" stroke="#57606a"/>`);
  for (const t of niceTicks(X.lo, X.hi, 6)) out.push(`<text x="${sx(t).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle">${+t.toFixed(3)}</text>`);
  for (const t of niceTicks(Y.lo, Y.hi, 6)) out.push(`<text x="${M.left - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end">${+t.toPrecision(3)}</text>`);
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 16}" text-anchor="middle">${esc(xl)}</text>`);
  out.push(`<text transform="translate(18 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yl)}</text>`);
  return out;
}
