// AdamW + global-norm clipping against torch.optim.AdamW + clip_grad_norm_, and the schedule.
import { describe, expect, it } from 'vitest';
import { AdamW, warmupCosine } from '../../ts/core/optim.js';
import { tensor } from '../../ts/core/tensor.js';
import { Golden, arr, expectClose } from '../support/golden.js';
import { TOL } from '../support/tolerances.js';

describe('AdamW', () => {
  it('three clipped steps match PyTorch', async () => {
    const g = new Golden('adamw');
    const param = tensor(g.f32('p0'), g.shape('p0'));
    const grad = tensor(new Float32Array(param.numel), param.shape);
    const opt = new AdamW([{ param, grad }], {
      lr: g.meta('lr'), beta1: g.meta('beta1'), beta2: g.meta('beta2'), eps: g.meta('eps'),
      weightDecay: g.meta('weight_decay'), clip: g.meta('clip'),
    });
    const scales: number[] = [];
    for (let i = 0; i < 3; i++) {
      grad.copyFrom(g.f32(`g${i}`));
      scales.push((await opt.step()).scale);
      expectClose(arr(param), g.f32(`p${i + 1}`), TOL.optim, `param after step ${i + 1}`);
    }
    expect(scales[1]).toBeLessThan(1); // the large gradient was clipped
    opt.dispose();
    param.dispose();
    grad.dispose();
  });

  it('refuses to step on a non-finite gradient', async () => {
    const param = tensor([1, 2, 3]);
    const grad = tensor([0, NaN, 0]);
    const opt = new AdamW([{ param, grad }], { lr: 0.1 });
    await expect(opt.step()).rejects.toMatchObject({ code: 'ERR_PUZZLE_NAN' });
    expect(Array.from(arr(param))).toEqual([1, 2, 3]);
  });
});

describe('warm-up + cosine schedule', () => {
  it('rises linearly, peaks, and decays to the floor', () => {
    const lr = (s: number) => warmupCosine(s, 100, 1e-3, 0.05, 0.1);
    expect(lr(0)).toBeCloseTo(2e-4);
    expect(lr(4)).toBeCloseTo(1e-3);
    expect(lr(5)).toBeCloseTo(1e-3);
    expect(lr(52)).toBeCloseTo(1e-3 * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * 47 / 95))));
    expect(lr(100)).toBeCloseTo(1e-4);
    for (let s = 5; s < 100; s++) expect(lr(s + 1)).toBeLessThanOrEqual(lr(s) + 1e-12);
  });
});
