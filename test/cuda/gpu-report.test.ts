// benchmarks/gpu/report.py turns a GPU run's JSON into the table committed under
// benchmarks/results/; its candidate summary is what a session with a GPU decides defaults from
// (PUZZLE_CUDA_PDL, PUZZLE_CUDA_DECODE=mma, PUZZLE_CUDA_FUSE=0, our GEMM against cuBLAS and cuBLAS
// for the few-row products), so it is checked here on a
// made-up run: pairing rows across kernel-name brackets, the per-tag checks and each verdict.
// Skipped, with the reason, where python3 is missing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'puzzle-gpu-report-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const py = spawnSync('python3', ['--version'], { encoding: 'utf8' });
const reason = py.status === 0 ? null : 'python3 is not installed';
if (reason) console.log(`GPU report tests skipped: ${reason}`);

const row = (name: string, ms: number, group = 'op') => ({ group, name, median_ms: ms, p10_ms: ms, p90_ms: ms });
const check = (name: string, pass = true) => ({ name, err: pass ? 1e-3 : 1, tol: 1e-2, pass });

function report(results: object[], checks: object[]) {
  const ours = join(work, 'ours.json'), md = join(work, 'out.md');
  writeFileSync(ours, JSON.stringify({ device: 'NVIDIA H200', sms: 132, driver: '13.0', gemm: 'cublas', results, checks }));
  const r = spawnSync('python3', [join(root, 'benchmarks/gpu/report.py'), '--ours', ours, '--md', md], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const text = readFileSync(md, 'utf8');
  const line = (tag: string) => text.split('\n').find((l) => l.startsWith(`| ${tag} |`)) ?? '';
  return { text, line };
}

describe.skipIf(reason !== null)('the GPU report', () => {
  it('sets each candidate pass against the default rows of the same names', () => {
    const { line } = report([
      row('llama-3.1-8b decode step B1 past8192 [bf16]', 0.2, 'decode'),
      row('llama-3.1-8b decode step B1 past8192 [bf16] [pdl]', 0.16, 'decode'),
      row('attention fwd 8B T4096 [tensor-core] [bf16]', 1.0),
      row('attention fwd 8B T4096 [mma] [bf16] [attn=mma]', 0.5),
      row('attention bwd 8B T4096 [tensor-core] [bf16]', 2.0),
      row('attention bwd 8B T4096 [mma] [bf16] [attn=mma]', 2.5),
      row('attention fwd 8B T4096 [tensor-core]', 9.0),  // fp32 storage: not the bf16 rows' default
      row('gemm 8B qkv 4096x6144x4096 [bf16]', 0.25, 'gemm'),
      row('gemm 8B qkv 4096x6144x4096 [bf16] [gemm=own]', 0.5, 'gemm'),
      row('gemv 8B gate|up M1 [bf16]', 0.08, 'gemm'),
      row('gemv 8B gate|up M1 [bf16] [gemm=cublas]', 0.06, 'gemm'),
    ], [check('bf16 rmsnorm forward'), check('bf16 rmsnorm forward [pdl]'), check('bf16 rmsnorm forward [attn=mma]'),
      check('gemm NN M1 [gemm=own]'), check('bf16 rmsnorm forward [gemm=cublas]')]);
    expect(line('pdl')).toMatch(/\| pdl \| 1 \| 1\.25 \|.*\| 1 passed, 0 failed \| make it the default \|/);
    // faster forward, slower backward: not as a whole; both rows named
    expect(line('attn=mma')).toMatch(/\| 2 \| 1\.26 \| 0\.80 \(attention bwd 8B T4096 \[bf16\]\) \| 2\.00 \(attention fwd 8B T4096 \[bf16\]\)/);
    expect(line('attn=mma')).toContain('keep off: slower on 1 rows');
    expect(line('gemm=own')).toContain("0.50x cuBLAS's speed where cuBLAS is missing");
    // cuBLAS for the few-row products is a candidate like any other, not the no-cuBLAS fallback
    expect(line('gemm=cublas')).toMatch(/\| gemm=cublas \| 1 \| 1\.33 \|.*\| make it the default \|/);
  });

  it('keeps a faster candidate off when one of its checks failed, or none ran', () => {
    const rows = [row('llama-3.1-8b decode step B1 past8192 [bf16]', 0.2, 'decode'),
      row('llama-3.1-8b decode step B1 past8192 [bf16] [pdl]', 0.1, 'decode')];
    expect(report(rows, [check('bf16 rmsnorm forward [pdl]', false)]).line('pdl')).toContain('keep off: 1 checks failed');
    expect(report(rows, [check('bf16 rmsnorm forward')]).line('pdl')).toContain('keep off: no checks ran with it');
  });

  it('words the verdict of a pass that switches something off about that thing', () => {
    const rows = [row('llama-3.1-8b decode step B1 past8192 [bf16]', 0.2, 'decode'),
      row('llama-3.1-8b decode step B1 past8192 [bf16] [fuse=off]', 0.25, 'decode')];
    expect(report(rows, [check('bf16 rmsnorm forward [fuse=off]')]).line('fuse=off')).toContain('keep fuse on: slower on 1 rows');
    rows[1].median_ms = 0.1;
    expect(report(rows, [check('bf16 rmsnorm forward [fuse=off]')]).line('fuse=off')).toContain('switch fuse off by default');
  });

  it('writes no candidate section for a run without candidate passes', () => {
    const { text } = report([row('gemm 8192^3 [bf16]', 1.4, 'gemm')], [check('bf16 rmsnorm forward')]);
    expect(text).not.toContain('Candidate paths');
    expect(text).toContain('CUDA against CPU: 1 passed, 0 failed');
  });
});
