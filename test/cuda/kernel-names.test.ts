// The names puzzle_cuda_check --kernels prints (native/tools/kernel_trace.cpp): CUPTI hands over
// mangled kernel names, and the breakdown tables show them demangled, without namespaces or
// parameter lists, cut to a length. The tracing itself needs a GPU; the naming is plain C++ and is
// compiled and run here, as is the reason a build without CUPTI gives. Skipped, with the reason,
// where g++ is missing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'puzzle-kernel-names-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const gxx = spawnSync('g++', ['--version'], { encoding: 'utf8' });
const reason = gxx.status === 0 ? null : 'g++ is not installed';
if (reason) console.log(`kernel name tests skipped: ${reason}`);

describe.skipIf(reason !== null)('kernel names in the GPU breakdowns', () => {
  it('demangles, drops namespaces and parameters, cuts long names, and says why without CUPTI', () => {
    const names = [
      // puzzle::cuda::(anon)::gemm_mma_kernel<true, true, 128, float>(int, int, int, float, ...)
      '_ZN6puzzle4cuda44_GLOBAL__N__a3ad3ab2_11_gemm_mma_cu_bfd9f61115gemm_mma_kernelILb1ELb1ELi128EfEEviiifPK13__nv_bfloat16lS5_lfPT2_lb',
      '_Z3fooPFviE', // foo(void (*)(int)): the parameter list holds parentheses of its own
      'sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1_execute_segment_k_off_kernel__5x_cublas',
    ];
    const driver = join(work, 'names.cpp');
    writeFileSync(driver, `#include "kernel_trace.h"
#include <cstdio>
int main() {
  const char* names[] = {${names.map((n) => JSON.stringify(n)).join(', ')}};
  for (const char* n : names) std::printf("%s\\n", puzzle::tools::kernel_display_name(n, 60).c_str());
  std::string why, why_start;
  const bool available = puzzle::tools::kernel_trace_available(&why);
  const bool started = puzzle::tools::kernel_trace_start(&why_start);
  std::printf("%d %d %s | %s\\n", available, started, why.c_str(), why_start.c_str());
  std::printf("%zu\\n", puzzle::tools::kernel_trace_stop().size());
}
`);
    const exe = join(work, 'names');
    const c = spawnSync('g++', ['-std=c++17', '-I', join(root, 'native', 'tools'), driver, join(root, 'native', 'tools', 'kernel_trace.cpp'), '-o', exe], { encoding: 'utf8' });
    expect(c.status, c.stderr).toBe(0);
    const r = spawnSync(exe, [], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const out = r.stdout.trim().split('\n');
    expect(out[0]).toBe('gemm_mma_kernel<true, true, 128, float>');
    expect(out[1]).toBe('foo');
    expect(out[2]).toHaveLength(60);
    expect(out[2]).toMatch(/^sm90_xmma_gemm_bf16bf16_bf16f32.*\.\.\.$/);
    expect(out[3]).toBe('0 0 built without CUPTI (CMake found no CUDA::cupti) | built without CUPTI (CMake found no CUDA::cupti)');
    expect(out[4]).toBe('0');
  });
});
