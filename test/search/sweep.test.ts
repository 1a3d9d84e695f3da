// Pareto sweeps: points over worker threads equal one-by-one searches, the Pareto flags are right,
// and the CSV / JSON / SVG files are written.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createHighsPool, paretoSweep, parseSweep, search, syntheticLibrary, writeSweep } from '../../ts/search/index.js';

const library = syntheticLibrary({ layers: 12, seed: 9 });

describe('Pareto sweep', () => {
  it('spreads points over two threads and matches single searches point by point', async () => {
    const sweep = await paretoSweep(library, { memory: '0.8x' }, parseSweep('throughput=1x..3x:9'), 2);
    expect(sweep.threads).toBe(2);
    expect(sweep.points).toHaveLength(9);
    expect(sweep.unit).toBe('tok/s');
    const targets = sweep.points.map((p) => p.target);
    expect(targets[0]).toBeLessThan(targets[8]!);
    const pool = createHighsPool(1);
    try {
      for (const point of sweep.points) {
        const [single] = await search(library, { memory: '0.8x', throughput: point.target, pool });
        expect(point.result.status).toBe(single!.status);
        expect(point.result.objective).toBe(single!.objective);
        if (point.achieved !== null) expect(point.achieved).toBeGreaterThanOrEqual(point.target * (1 - 1e-9));
      }
    } finally {
      await pool.close();
    }
    // Tighter throughput never improves the objective; every solved point is on the front.
    const solved = sweep.points.filter((p) => p.result.objective !== null);
    for (let k = 1; k < solved.length; k++) expect(solved[k]!.result.objective!).toBeGreaterThanOrEqual(solved[k - 1]!.result.objective! - 1e-12);
    expect(solved.every((p) => p.pareto)).toBe(true);
  });

  it('marks dominated points and writes CSV, JSON and SVG', async () => {
    // A memory sweep with a loose throughput floor: more memory than needed changes nothing, so
    // equal points stay on the front while strictly worse ones do not.
    const sweep = await paretoSweep(library, { throughput: '1.5x' }, parseSweep('memory=0.3x..1.2x:6'), 2);
    const out = mkdtempSync(join(tmpdir(), 'puzzle-sweep-'));
    const files = writeSweep(sweep, join(out, 'nested'));
    const csv = readFileSync(files.csv, 'utf8').trim().split('\n');
    expect(csv[0]).toBe('point,target_memory,achieved_memory,status,kl_div,pareto,batch_size,memory_mib,runtime_ms,throughput,num_params,time_ms,variants');
    expect(csv).toHaveLength(7);
    const json = JSON.parse(readFileSync(files.json, 'utf8'));
    expect(json.points).toHaveLength(6);
    const svg = readFileSync(files.svg, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('</svg>');
    expect((svg.match(/<circle/g) ?? []).length + (svg.match(/stroke="#d1242f"/g) ?? []).length).toBe(6);
    for (const p of sweep.points) {
      if (p.result.objective === null) continue;
      const beaten = sweep.points.some(
        (q) => q.result.objective !== null && q.achieved! <= p.achieved! && q.result.objective <= p.result.objective! && (q.achieved! < p.achieved! || q.result.objective < p.result.objective!),
      );
      expect(p.pareto).toBe(!beaten);
    }
  });

  it('sweeps a baseline too, and rejects --solutions', async () => {
    const sweep = await paretoSweep(library, { memory: '0.8x', method: 'greedy' }, parseSweep('speedup=1x..2x:3'), 1);
    expect(sweep.method).toBe('greedy');
    expect(sweep.points.every((p) => ['feasible', 'no_solution', 'infeasible'].includes(p.result.status))).toBe(true);
    await expect(paretoSweep(library, { solutions: 2 }, parseSweep('memory=1x..2x:2'), 1)).rejects.toThrow(/drop --solutions/);
  });
});
