// The CUDA kernels run on the CPU under native/dev/cuda-emu (every CUDA thread an OS thread, real
// barriers, emulated shuffles, wmma, mma.sync, ldmatrix and cp.async; AddressSanitizer), so that
// every `npm test` on a machine without a GPU still runs them against the CPU tables and fp64
// references: most sessions never get a GPU, and a kernel broken by a CPU-only change would
// otherwise wait for the next GPU run. A quick subset of the attention sets (run.sh with no
// arguments runs them all, with TSan too); skipped, with the reason printed, where g++ cannot
// build with the sanitizers or the CPU engine library is missing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'puzzle-cuda-emu-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function skipReason(): string | null {
  if (!existsSync(join(root, 'build', 'libpuzzle_core.a')) && !existsSync(join(root, 'build-gpu', 'libpuzzle_core.a')))
    return 'the CPU engine library (build/libpuzzle_core.a) is not built';
  const src = join(work, 'probe.cpp');
  writeFileSync(src, 'int main() { return 0; }\n');
  const r = spawnSync('g++', ['-std=c++20', '-fsanitize=address,undefined', src, '-o', join(work, 'probe')], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `g++ cannot build with -fsanitize=address,undefined (${(r.stderr || String(r.error)).trim().split('\n')[0]})`;
  return null;
}
const reason = skipReason();
if (reason) console.log(`CUDA emulator tests skipped: ${reason}`);

function run(script: string, args: string[], env: Record<string, string>) {
  const r = spawnSync('bash', [join(root, script), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 900_000,
    maxBuffer: 64 << 20,
  });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0) console.log(out.split('\n').slice(-60).join('\n'));  // what failed, for the CI log
  return { status: r.status, out };
}

describe.skipIf(reason !== null)('CUDA kernels in the CPU emulator', () => {
  it('elementwise, RMSNorm, RoPE, SwiGLU, GEMM (every path) and the bf16 attention bridge match the CPU tables', () => {
    const r = run('native/dev/cuda-emu/ops/run.sh', [], { EMU_WORK: join(work, 'ops') });
    expect(r.out).toMatch(/\b(\d+)\/\1 passed, 0 failed/);
    expect(r.status).toBe(0);
  }, 900_000);

  it('attention: tensor-core and mma.sync forward/backward, cached prefill and decode on bf16 match fp64', () => {
    // smallsmem@101376: a GPU with 99 KiB of shared memory per block (sm_86, sm_89) gets kernels that fit
    const sets = ['tc16', 'mma16-small', 'mmabwd16-small', 'tcbwd-small', 'prefill16', 'decode16', 'decode16-mma', 'smallsmem@101376'];
    const r = run('native/dev/cuda-emu/run.sh', ['asan', ...sets], { EMU_BUILD: join(work, 'attn') });
    for (const s of sets) expect(r.out).toContain(`== asan ${s.split('@')[0]} (`);
    expect(r.out).toContain('== all sets passed');
    expect(r.out).not.toContain('FAIL');
    expect(r.status).toBe(0);
  }, 900_000);
});
