/**
 * A dependency-free SVG scatter plot of a Pareto sweep: the objective against what each
 * architecture achieves on the swept budget. Pareto points are filled and joined by a line; other
 * feasible points are hollow; targets with no architecture are red crosses on the x axis.
 */
import type { SweepResult } from './sweep.js';

const WIDTH = 720;
const HEIGHT = 440;
const MARGIN = { left: 78, right: 24, top: 40, bottom: 56 };

/** Renders `sweep` as a standalone SVG document. */
export function sweepSvg(sweep: SweepResult): string {
  const solved = sweep.points.filter((p) => p.achieved !== null && p.result.objective !== null);
  const missing = sweep.points.filter((p) => p.achieved === null || p.result.objective === null);
  const xs = [...solved.map((p) => p.achieved as number), ...missing.map((p) => p.target)];
  const ys = solved.map((p) => p.result.objective as number);
  const x = scale(xs, MARGIN.left, WIDTH - MARGIN.right);
  const y = scale(ys.length ? ys : [0, 1], HEIGHT - MARGIN.bottom, MARGIN.top);
  const unit = sweep.unit ? ` (${sweep.unit})` : '';
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="14">${escape(`${sweep.metric} vs ${sweep.budget}, ${sweep.method}, ${sweep.points.length} points`)}</text>`,
    axis(x, 'x', `achieved ${sweep.budget}${unit}`),
    axis(y, 'y', `summed ${sweep.metric} (${sweep.sense === 'min' ? 'lower' : 'higher'} is better)`),
  ];
  const front = solved.filter((p) => p.pareto).sort((a, b) => (a.achieved as number) - (b.achieved as number));
  if (front.length > 1) {
    const path = front.map((p) => `${x.at(p.achieved as number).toFixed(1)},${y.at(p.result.objective as number).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${path}" fill="none" stroke="#1f6feb" stroke-width="1.5"/>`);
  }
  for (const p of solved) {
    const cx = x.at(p.achieved as number).toFixed(1);
    const cy = y.at(p.result.objective as number).toFixed(1);
    const fill = p.pareto ? '#1f6feb' : 'white';
    parts.push(`<circle cx="${cx}" cy="${cy}" r="3.5" fill="${fill}" stroke="#1f6feb"><title>${escape(tooltip(sweep, p.target, p.achieved as number, p.result.objective as number))}</title></circle>`);
  }
  const base = HEIGHT - MARGIN.bottom;
  for (const p of missing) {
    const cx = x.at(p.target);
    parts.push(`<path d="M${cx - 4},${base - 4} L${cx + 4},${base + 4} M${cx - 4},${base + 4} L${cx + 4},${base - 4}" stroke="#d1242f" stroke-width="1.5"><title>${escape(`target ${fmt(p.target)}: ${p.result.status}`)}</title></path>`);
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

interface Scale {
  readonly lo: number;
  readonly hi: number;
  readonly from: number;
  readonly to: number;
  at(value: number): number;
}

function scale(values: readonly number[], from: number, to: number): Scale {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  if (lo === hi) [lo, hi] = [lo - (Math.abs(lo) || 1) * 0.05, hi + (Math.abs(hi) || 1) * 0.05];
  const pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  return { lo, hi, from, to, at: (v) => from + ((v - lo) / (hi - lo)) * (to - from) };
}

/** Five round ticks and a label along one axis. */
function axis(s: Scale, which: 'x' | 'y', label: string): string {
  const ticks = niceTicks(s.lo, s.hi, 5);
  const out: string[] = [];
  if (which === 'x') {
    const y0 = HEIGHT - MARGIN.bottom;
    out.push(`<line x1="${MARGIN.left}" y1="${y0}" x2="${WIDTH - MARGIN.right}" y2="${y0}" stroke="black"/>`);
    for (const t of ticks) {
      const px = s.at(t).toFixed(1);
      out.push(`<line x1="${px}" y1="${y0}" x2="${px}" y2="${y0 + 5}" stroke="black"/><text x="${px}" y="${y0 + 18}" text-anchor="middle">${fmt(t)}</text>`);
    }
    out.push(`<text x="${(MARGIN.left + WIDTH - MARGIN.right) / 2}" y="${HEIGHT - 14}" text-anchor="middle">${escape(label)}</text>`);
  } else {
    const x0 = MARGIN.left;
    out.push(`<line x1="${x0}" y1="${MARGIN.top}" x2="${x0}" y2="${HEIGHT - MARGIN.bottom}" stroke="black"/>`);
    for (const t of ticks) {
      const py = s.at(t).toFixed(1);
      out.push(`<line x1="${x0 - 5}" y1="${py}" x2="${x0}" y2="${py}" stroke="black"/><text x="${x0 - 8}" y="${py}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
    }
    const cy = (MARGIN.top + HEIGHT - MARGIN.bottom) / 2;
    out.push(`<text x="18" y="${cy}" text-anchor="middle" transform="rotate(-90 18 ${cy})">${escape(label)}</text>`);
  }
  return out.join('\n');
}

/** Round tick values (1, 2 or 5 times a power of ten apart) inside [lo, hi]. */
export function niceTicks(lo: number, hi: number, count: number): number[] {
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * power >= raw) ?? 10) * power;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function tooltip(sweep: SweepResult, target: number, achieved: number, objective: number): string {
  return `target ${fmt(target)} ${sweep.unit}, achieved ${fmt(achieved)} ${sweep.unit}, ${sweep.metric} ${objective.toPrecision(5)}`;
}

function fmt(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${Number((value / 1e9).toPrecision(4))}B`;
  if (abs >= 1e6) return `${Number((value / 1e6).toPrecision(4))}M`;
  return Number(value.toPrecision(5)).toLocaleString('en-US');
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
