// `device: cuda` in `puzzle run` (and --device on the commands): where the training, scoring and
// evaluation stages run. The GPU work itself is checked in test/cuda/device.cuda.test.ts; here,
// on any machine, the setting's validation, its place outside the stage fingerprints, and the
// early refusal where no GPU answers.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { device } from '../../ts/cli/args.js';
import { loadAddon } from '../../ts/native/loader.js';
import { fingerprint, resolveConfig, STAGES, stageSettings } from '../../ts/run/config.js';
import { runPipeline } from '../../ts/run/pipeline.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('the device of the training stages', () => {
  it('is cpu by default and validated by name', () => {
    expect(resolveConfig({}, 'run.yaml').device).toBe('cpu');
    expect(resolveConfig({ device: 'cuda' }, 'run.yaml').device).toBe('cuda');
    expect(() => resolveConfig({ device: 'gpu' }, 'run.yaml')).toThrow(/run.yaml: "device": expected cpu or cuda, got "gpu"/);
    expect(() => resolveConfig({ device: 3 }, 'run.yaml')).toThrow(/run.yaml: "device": expected a string/);
    expect(device('--device')('cuda')).toBe('cuda');
    expect(() => device('--device')('tpu')).toThrow("--device expects cpu or cuda, got 'tpu'");
  });

  it('is in no stage fingerprint: a run resumes on another machine without redoing finished stages', () => {
    // at the same precision (cuda's default is bfloat16, the CPU's float32)
    const cpu = resolveConfig({ dtype: 'bfloat16' }, 'a'), cuda = resolveConfig({ device: 'cuda' }, 'b');
    for (const s of STAGES) expect(fingerprint(stageSettings(cuda, s)), s).toBe(fingerprint(stageSettings(cpu, s)));
    // while a real setting of a stage does change its fingerprint
    expect(fingerprint(stageSettings(resolveConfig({ gkd: { steps: 1 } }, 'c'), 'gkd'))).not.toBe(fingerprint(stageSettings(cpu, 'gkd')));
  });

  it('has a precision: auto is bfloat16 on cuda and float32 on cpu, and bfloat16 is fingerprinted', () => {
    expect(resolveConfig({}, 'a').dtype).toBe('float32');
    expect(resolveConfig({ device: 'cuda' }, 'a').dtype).toBe('bfloat16');
    expect(resolveConfig({ device: 'cuda', dtype: 'float32' }, 'a').dtype).toBe('float32');
    expect(() => resolveConfig({ dtype: 'half' }, 'run.yaml')).toThrow(/run.yaml: "dtype": expected auto, float32 or bfloat16, got "half"/);
    const f32 = resolveConfig({}, 'a'), b16 = resolveConfig({ dtype: 'bfloat16' }, 'a');
    // float32 adds nothing: runs from before the setting keep their fingerprints
    for (const s of STAGES) expect(stageSettings(f32, s), s).not.toHaveProperty('dtype');
    for (const s of STAGES) {
      const same = s === 'parent' || s === 'profile';
      expect(fingerprint(stageSettings(b16, s)) === fingerprint(stageSettings(f32, s)), s).toBe(same);
    }
  });

  it.runIf(loadAddon().cudaInfo().devices === 0)('is refused before any stage starts where no GPU answers', async () => {
    const run = join(mkdtempSync(join(tmpdir(), 'puzzle-run-dev-')), 'run');
    const config = resolveConfig({ parent: join(ROOT, 'models/default-parent'), device: 'cuda' }, 'test');
    await expect(runPipeline(config, run)).rejects.toMatchObject({
      code: 'ERR_PUZZLE_NO_GPU',
      message: expect.stringMatching(/^device: cuda, but no GPU answers \(.+\); set device: cpu/),
    });
    expect(existsSync(run)).toBe(false);
  });
});
