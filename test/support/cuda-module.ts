// Which CUDA module the device tests load: the real one where a GPU answers, otherwise the whole
// module built for the CPU emulator (native/dev/cuda-emu/module/build.sh: the real kernels and host
// code, CUDA threads played as fibers), chosen through PUZZLE_CUDA_MODULE. Must run before anything
// asks the addon about CUDA: the module is chosen once per process.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { addonPath } from '../../ts/native/loader.js';

const root = join(import.meta.dirname, '..', '..');

export type ModuleChoice = { where: 'gpu' | 'emulator' } | { skip: string };

export function chooseCudaModule(): ModuleChoice {
  const probe = spawnSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(addonPath)}).cudaInfo().devices)`], {
    encoding: 'utf8',
  });
  if (probe.status === 0 && Number(probe.stdout.trim()) > 0) return { where: 'gpu' };
  const script = join(root, 'native', 'dev', 'cuda-emu', 'module', 'build.sh');
  // inside this checkout's build folder: build.sh's up-to-date check compares times only, so a
  // module shared between checkouts could be another checkout's
  const dir = process.env.EMU_MODULE_DIR ?? join(root, 'build', 'cuda-emu');
  const so = join(dir, 'puzzle_cuda_emu.so');
  const r = spawnSync('bash', [script, so], {
    cwd: root, encoding: 'utf8', timeout: 1_800_000, maxBuffer: 64 << 20, env: { ...process.env, EMU_WORK: join(dir, 'work') },
  });
  if (r.status !== 0 || !existsSync(so)) {
    // A broken emulator build is our defect, not a missing tool: the caller fails a test with it.
    return { skip: `BUILD FAILED\n${`${r.stdout ?? ''}${r.stderr ?? ''}${r.error ?? ''}`.split('\n').slice(-40).join('\n')}` };
  }
  process.env.PUZZLE_CUDA_MODULE = so;
  return { where: 'emulator' };
}

/**
 * puzzle_cuda_profile built against the CPU emulator (native/dev/cuda-emu/module/build-profiler.sh),
 * beside the emulated module, for `puzzle profile --device cuda` where no GPU answers; its
 * timings are the emulator's. A path, or why it could not be built.
 */
export function emulatedProfiler(): { path: string } | { skip: string } {
  const dir = process.env.EMU_MODULE_DIR ?? join(root, 'build', 'cuda-emu');
  const tool = join(dir, 'puzzle_cuda_profile_emu');
  const r = spawnSync('bash', [join(root, 'native', 'dev', 'cuda-emu', 'module', 'build-profiler.sh'), tool], {
    cwd: root, encoding: 'utf8', timeout: 1_800_000, maxBuffer: 64 << 20, env: { ...process.env, EMU_WORK: join(dir, 'work') },
  });
  if (r.status !== 0 || !existsSync(tool))
    return { skip: `BUILD FAILED\n${`${r.stdout ?? ''}${r.stderr ?? ''}${r.error ?? ''}`.split('\n').slice(-40).join('\n')}` };
  return { path: tool };
}
