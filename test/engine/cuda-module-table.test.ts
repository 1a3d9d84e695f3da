// The loader refuses a CUDA module built from another version of puzzle (its op table differs
// from the addon's, so any call would jump to the wrong function) and says what to do: checked
// with two stand-in modules, built here, that claim a device. Skipped, with the reason, where g++
// is missing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addonPath } from '../../ts/native/loader.js';

const work = mkdtempSync(join(tmpdir(), 'puzzle-cuda-table-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const gxx = spawnSync('g++', ['--version'], { encoding: 'utf8' });
const reason = gxx.status !== 0 ? 'g++ is not installed' : null;
if (reason) console.log(`CUDA module table tests skipped: ${reason}`);

/** A stand-in puzzle_cuda.so whose probe finds a device; `table` is the body of its size symbol, or none. */
function fakeModule(name: string, table: string | null): string {
  const src = join(work, `${name}.cpp`), so = join(work, `${name}.so`);
  writeFileSync(src, `#include <cstddef>
#include <cstdio>
extern "C" int puzzle_cuda_probe(char* d, int n) { std::snprintf(d, n, "a stand-in GPU"); return 1; }
${table === null ? '' : `extern "C" size_t puzzle_cuda_table_size() { ${table} }`}
`);
  const c = spawnSync('g++', ['-shared', '-fPIC', src, '-o', so], { encoding: 'utf8' });
  expect(c.status, c.stderr).toBe(0);
  return so;
}

function cudaInfo(module: string): { devices: number; description: string } {
  const r = spawnSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(addonPath)}).cudaInfo()))`], {
    encoding: 'utf8', env: { ...process.env, PUZZLE_CUDA_MODULE: module },
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { devices: number; description: string };
}

describe.skipIf(reason !== null)('a CUDA module from another version', () => {
  it('is refused with the sizes and what to do, whether its table differs or it has no size at all', () => {
    const small = fakeModule('small', 'return 8;');
    const a = cudaInfo(small);
    expect(a.devices).toBe(0);
    expect(a.description).toMatch(new RegExp(`CUDA module ${small} was built from another version of puzzle \\(an op table of 8 bytes, this addon's has \\d+\\): rebuild it`));
    const old = cudaInfo(fakeModule('old', null));
    expect(old.devices).toBe(0);
    expect(old.description).toContain('(no puzzle_cuda_table_size): rebuild it with this checkout (npm run build:native)');
  });

  it('is probed as usual when its table matches', () => {
    // the addon's own table size, read off the refusal of a mismatched module
    const size = Number(/this addon's has (\d+)/.exec(cudaInfo(fakeModule('probe', 'return 8;')).description)?.[1]);
    expect(size).toBeGreaterThan(8);
    const ok = cudaInfo(fakeModule('same', `return ${size};`));
    expect(ok).toMatchObject({ devices: 1, description: 'a stand-in GPU' });
  });
});
