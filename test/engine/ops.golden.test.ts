// Every op, forward and backward, against PyTorch goldens.
import { afterEach, describe, expect, it } from 'vitest';
import * as ops from '../../ts/core/ops.js';
import { ropeTables } from '../../ts/model/rope.js';
import { tensor, zeros, type Tensor } from '../../ts/core/tensor.js';
import { Golden, arr, expectClose } from '../support/golden.js';
import { TOL } from '../support/tolerances.js';

const live: Tensor[] = [];
const keep = <T extends Tensor | null>(t: T): T => {
  if (t) live.push(t);
  return t;
};
afterEach(() => live.splice(0).forEach((t) => t.dispose()));

describe('embedding', () => {
  it('forward gathers rows and backward scatter-adds repeated ids', async () => {
    const g = new Golden('embedding');
    const ids = keep(g.t('ids'));
    const table = keep(g.t('table'));
    const out = keep(await ops.embeddingForward(ids, table));
    expect(out.shape).toEqual(g.shape('out'));
    expectClose(arr(out), g.f32('out'), TOL.op, 'out');
    const dtable = keep(zeros(table.shape));
    await ops.embeddingBackward(dtable, keep(g.t('dout')), ids);
    expectClose(arr(dtable), g.f32('dtable'), TOL.op, 'dtable');
  });
});

describe('rmsnorm', () => {
  it('matches torch forward and backward', async () => {
    const g = new Golden('rmsnorm');
    const x = keep(g.t('x'));
    const w = keep(g.t('w'));
    const { out, rstd } = await ops.rmsnormForward(x, w, g.meta('eps'));
    keep(out), keep(rstd);
    expectClose(arr(out), g.f32('out'), TOL.op, 'out');
    const { dinp, dweight } = await ops.rmsnormBackward(keep(g.t('dout')), x, w, rstd);
    keep(dinp), keep(dweight);
    expectClose(arr(dinp), g.f32('dx'), TOL.op, 'dx');
    expectClose(arr(dweight), g.f32('dw'), TOL.op, 'dw');
  });
});

describe('linear', () => {
  it('with bias, HF [out, in] layout', async () => {
    const g = new Golden('matmul');
    const x = keep(g.t('x'));
    const w = keep(g.t('w'));
    const b = keep(g.t('b'));
    const out = keep(await ops.matmulForward(x, w, b));
    expect(out.shape).toEqual([4, 7, 10]);
    expectClose(arr(out), g.f32('out'), TOL.op, 'out');
    const { dinp, dweight, dbias } = await ops.matmulBackward(keep(g.t('dout')), x, w, true);
    keep(dinp), keep(dweight), keep(dbias);
    expectClose(arr(dinp), g.f32('dx'), TOL.op, 'dx');
    expectClose(arr(dweight), g.f32('dw'), TOL.op, 'dw');
    expectClose(arr(dbias), g.f32('db'), TOL.op, 'db');
  });
  it('without bias on sizes that are not multiples of any tile', async () => {
    const g = new Golden('matmul_nobias');
    const x = keep(g.t('x'));
    const w = keep(g.t('w'));
    const out = keep(await ops.matmulForward(x, w));
    expectClose(arr(out), g.f32('out'), TOL.op, 'out');
    const { dinp, dweight } = await ops.matmulBackward(keep(g.t('dout')), x, w);
    keep(dinp), keep(dweight);
    expectClose(arr(dinp), g.f32('dx'), TOL.op, 'dx');
    expectClose(arr(dweight), g.f32('dw'), TOL.op, 'dw');
  });
});

describe('rope', () => {
  for (const name of ['rope', 'rope_llama3']) {
    it(`${name}: tables, forward and backward`, async () => {
      const g = new Golden(name);
      const scaling = g.meta<Record<string, number | string> | null>('rope_scaling');
      const { cos, sin } = ropeTables(g.meta('head_dim'), g.meta('positions'), g.meta('theta'), scaling as never);
      expectClose(cos, g.f32('cos'), TOL.op, 'cos table');
      expectClose(sin, g.f32('sin'), TOL.op, 'sin table');
      const c = keep(tensor(cos, g.shape('cos')));
      const s = keep(tensor(sin, g.shape('sin')));
      const pos = g.has('pos') ? keep(g.t('pos')) : null;
      const out = keep(await ops.ropeForward(keep(g.t('x')), c, s, pos));
      expectClose(arr(out), g.f32('out'), TOL.op, 'out');
      const dx = keep(await ops.ropeBackward(keep(g.t('dout')), c, s, pos));
      expectClose(arr(dx), g.f32('dx'), TOL.op, 'dx');
    });
  }
});

describe('causal grouped-query attention', () => {
  for (const kv of [4, 2, 1]) {
    it(`4 query heads, ${kv} KV heads, T = 70 (crosses a query tile)`, async () => {
      const g = new Golden(`attention_kv${kv}`);
      const q = keep(g.t('q'));
      const k = keep(g.t('k'));
      const v = keep(g.t('v'));
      const { out, lse } = await ops.attentionForward(q, k, v);
      keep(out), keep(lse);
      expectClose(arr(out), g.f32('out'), TOL.op, 'out');
      expectClose(arr(lse), g.f32('lse'), TOL.op, 'lse');
      const { dq, dk, dv } = await ops.attentionBackward(keep(g.t('dout')), q, k, v, out, lse);
      keep(dq), keep(dk), keep(dv);
      expectClose(arr(dq), g.f32('dq'), TOL.op, 'dq');
      expectClose(arr(dk), g.f32('dk'), TOL.op, 'dk');
      expectClose(arr(dv), g.f32('dv'), TOL.op, 'dv');
    });
  }
});

describe('swiglu', () => {
  it('matches silu(gate) * up and its gradient', async () => {
    const g = new Golden('swiglu');
    const gu = keep(g.t('gu'));
    const out = keep(await ops.swigluForward(gu));
    expectClose(arr(out), g.f32('out'), TOL.op, 'out');
    const dgu = keep(await ops.swigluBackward(keep(g.t('dout')), gu));
    expectClose(arr(dgu), g.f32('dgu'), TOL.op, 'dgu');
  });
});

describe('residual add', () => {
  it('adds and accumulates', async () => {
    const a = keep(tensor([1, 2, 3]));
    const b = keep(tensor([10, 20, 30]));
    const out = keep(await ops.add(a, b));
    expect(Array.from(arr(out))).toEqual([11, 22, 33]);
    await ops.accumulate(out, a);
    expect(Array.from(arr(out))).toEqual([12, 24, 36]);
  });
});

describe('losses', () => {
  it('cross-entropy with an ignored target', async () => {
    const g = new Golden('cross_entropy');
    const logits = keep(g.t('logits'));
    const targets = keep(g.t('targets'));
    const r = await ops.crossEntropyForward(logits, targets);
    keep(r.losses), keep(r.lse);
    expect(r.count).toBe(5);
    expectClose([r.loss], g.f32('loss'), TOL.op, 'loss');
    const d = keep(await ops.crossEntropyBackward(logits, r.lse, targets, 1 / r.count));
    expectClose(arr(d), g.f32('dlogits'), TOL.op, 'dlogits');
  });
  it('KL(teacher || student)', async () => {
    const g = new Golden('kl');
    const t = keep(g.t('teacher'));
    const s = keep(g.t('student'));
    const r = await ops.klForward(t, s);
    keep(r.losses);
    expectClose(arr(r.losses), g.f32('rows'), TOL.op, 'rows');
    expectClose([r.loss], g.f32('loss'), TOL.op, 'loss');
    const d = keep(await ops.klBackward(t, s, 1 / 6));
    expectClose(arr(d), g.f32('dstudent'), TOL.op, 'dstudent');
  });
  it('cosine loss on hidden states', async () => {
    const g = new Golden('cosine');
    const x = keep(g.t('x'));
    const y = keep(g.t('y'));
    const r = await ops.cosineForward(x, y);
    keep(r.losses);
    expectClose(arr(r.losses), g.f32('rows'), TOL.op, 'rows');
    const d = keep(await ops.cosineBackward(x, y, 1 / 6));
    expectClose(arr(d), g.f32('dx'), TOL.op, 'dx');
  });
  it('normalised MSE', async () => {
    const g = new Golden('nmse');
    const x = keep(g.t('x'));
    const y = keep(g.t('y'));
    expectClose([await ops.nmseForward(x, y)], g.f32('loss'), TOL.op, 'loss');
    const d = keep(await ops.nmseBackward(x, y, 1));
    expectClose(arr(d), g.f32('dx'), TOL.op, 'dx');
  });
});
