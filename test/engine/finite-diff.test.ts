// Every op's and every block variant's backward against finite differences of its forward.
import { describe, expect, it } from 'vitest';
import * as ops from '../../ts/core/ops.js';
import { Block } from '../../ts/core/block.js';
import { randn, ropeFor } from '../../ts/bench/engine.js';
import { tensor, type Tensor } from '../../ts/core/tensor.js';
import { directionalError, dot } from '../support/finite-diff.js';
import { TOL } from '../support/tolerances.js';

const arr = (t: Tensor) => t.toArray() as Float32Array;

/** Checks d/d(input k) of sum(out * R) for a forward of several inputs. */
async function check(
  name: string,
  inputs: Float32Array[],
  shapes: number[][],
  forward: (ts: Tensor[]) => Promise<Tensor>,
  backward: (ts: Tensor[], dout: Tensor) => Promise<Tensor[]>,
  which: number[],
): Promise<void> {
  const ts = inputs.map((x, i) => tensor(x, shapes[i]));
  const out0 = await forward(ts);
  const R = randn(out0.numel, 1, 4242);
  const dout = tensor(R, out0.shape);
  const grads = await backward(ts, dout);
  for (const k of which) {
    const loss = async (xk: Float32Array) => {
      const tk = tensor(xk, shapes[k]);
      const args = ts.map((t, i) => (i === k ? tk : t));
      const o = await forward(args);
      const v = dot(arr(o), R);
      o.dispose(), tk.dispose();
      return v;
    };
    const r = await directionalError(inputs[k], loss, arr(grads[k]), 17 + k);
    expect(r.rel, `${name}: input ${k} fd ${r.fd} vs analytic ${r.analytic}`).toBeLessThan(TOL.fd);
  }
  [...ts, out0, dout, ...grads].forEach((t) => t.dispose());
}

describe('finite differences: ops', () => {
  it('rmsnorm (input and weight)', async () => {
    await check('rmsnorm', [randn(5 * 16, 1, 1), randn(16, 0.5, 2)], [[5, 16], [16]],
      async ([x, w]) => (await ops.rmsnormForward(x, w, 1e-5)).out,
      async ([x, w], d) => {
        const f = await ops.rmsnormForward(x, w, 1e-5);
        const r = await ops.rmsnormBackward(d, x, w, f.rstd);
        f.out.dispose(), f.rstd.dispose();
        return [r.dinp, r.dweight];
      }, [0, 1]);
  });
  it('linear (input, weight, bias)', async () => {
    await check('linear', [randn(6 * 10, 1, 3), randn(7 * 10, 0.3, 4), randn(7, 1, 5)], [[6, 10], [7, 10], [7]],
      async ([x, w, b]) => ops.matmulForward(x, w, b),
      async ([x, w], d) => {
        const r = await ops.matmulBackward(d, x, w, true);
        return [r.dinp, r.dweight, r.dbias!];
      }, [0, 1, 2]);
  });
  it('rope', async () => {
    const { cos, sin } = ropeFor(8, 6);
    await check('rope', [randn(2 * 6 * 3 * 8, 1, 6)], [[2, 6, 3, 8]],
      async ([x]) => ops.ropeForward(x, cos, sin),
      async (_x, d) => [await ops.ropeBackward(d, cos, sin)], [0]);
  });
  for (const nkv of [3, 1]) {
    it(`attention, 6 query heads, ${nkv} KV heads (q, k, v)`, async () => {
      const T = 67;
      await check('attention', [randn(T * 6 * 4, 1, 7), randn(T * nkv * 4, 1, 8), randn(T * nkv * 4, 1, 9)],
        [[1, T, 6, 4], [1, T, nkv, 4], [1, T, nkv, 4]],
        async ([q, k, v]) => {
          const r = await ops.attentionForward(q, k, v);
          r.lse.dispose();
          return r.out;
        },
        async ([q, k, v], d) => {
          const f = await ops.attentionForward(q, k, v);
          const r = await ops.attentionBackward(d, q, k, v, f.out, f.lse);
          f.out.dispose(), f.lse.dispose();
          return [r.dq, r.dk, r.dv];
        }, [0, 1, 2]);
    });
  }
  it('swiglu', async () => {
    await check('swiglu', [randn(4 * 20, 2, 10)], [[4, 20]],
      async ([gu]) => ops.swigluForward(gu),
      async ([gu], d) => [await ops.swigluBackward(d, gu)], [0]);
  });
  it('embedding (table)', async () => {
    const ids = tensor(Int32Array.from([1, 4, 1, 0, 2]), [5]);
    await check('embedding', [randn(5 * 3, 1, 11)], [[5, 3]],
      async ([table]) => ops.embeddingForward(ids, table),
      async ([table], d) => {
        const dt = tensor(new Float32Array(table.numel), table.shape);
        await ops.embeddingBackward(dt, d, ids);
        return [dt];
      }, [0]);
  });
});

/** d/dx of a scalar loss (forward returns the loss, backward the gradient). */
async function checkLoss(name: string, x0: Float32Array, shape: number[], loss: (x: Tensor) => Promise<number>, grad: (x: Tensor) => Promise<Tensor>) {
  const x = tensor(x0, shape);
  const g = await grad(x);
  const r = await directionalError(x0, async (xs) => {
    const t = tensor(xs, shape);
    const v = await loss(t);
    t.dispose();
    return v;
  }, arr(g), 31);
  expect(r.rel, `${name}: fd ${r.fd} vs analytic ${r.analytic}`).toBeLessThan(TOL.fd);
  x.dispose(), g.dispose();
}

describe('finite differences: losses', () => {
  const targets = tensor(Int32Array.from([2, -100, 0, 9]), [4]);
  const teacher = tensor(randn(40, 2, 50), [4, 10]);
  const y = tensor(randn(40, 1, 51), [4, 10]);
  it('cross-entropy', async () => {
    await checkLoss('ce', randn(40, 2, 52), [4, 10], async (x) => (await ops.crossEntropyForward(x, targets)).loss,
      async (x) => {
        const f = await ops.crossEntropyForward(x, targets);
        return ops.crossEntropyBackward(x, f.lse, targets, 1 / f.count);
      });
  });
  it('KL(teacher || student)', async () => {
    await checkLoss('kl', randn(40, 2, 53), [4, 10], async (s) => (await ops.klForward(teacher, s)).loss,
      async (s) => ops.klBackward(teacher, s, 1 / 4));
  });
  it('cosine', async () => {
    await checkLoss('cosine', randn(40, 1, 54), [4, 10], async (x) => (await ops.cosineForward(x, y)).loss,
      async (x) => ops.cosineBackward(x, y, 1 / 4));
  });
  it('normalised MSE', async () => {
    await checkLoss('nmse', randn(40, 1, 55), [4, 10], async (x) => ops.nmseForward(x, y),
      async (x) => ops.nmseBackward(x, y, 1));
  });
});

describe('finite differences: every block variant (input and every parameter)', () => {
  const attns = [['gqa', 4], ['gqa', 2], ['gqa', 1], ['linear', 0], ['noop', 0]] as const;
  const ffns = ['swiglu', 'linear', 'noop'] as const;
  for (const [attention, kv] of attns) {
    for (const ffn of ffns) {
      it(`${attention}${kv || ''} + ${ffn}`, async () => {
        const B = 2, T = 5, C = 16;
        const block = new Block({ hidden: C, heads: 4, headDim: 4, attention, kvHeads: kv || undefined, ffn, ffnWidth: 24 });
        let seed = 60;
        for (const p of block.params()) block.param(p.name).copyFrom(randn(p.numel, p.shape.length === 1 ? 0.3 : 0.4, seed++).map((v) => (p.shape.length === 1 ? 1 + v : v)));
        const rope = ropeFor(4, T);
        const x0 = randn(B * T * C, 1, 70);
        const R = randn(B * T * C, 1, 71);
        const L = async (xs: Float32Array) => {
          const x = tensor(xs, [B, T, C]);
          const o = await block.forward(x, B, T, rope, false);
          const v = dot(arr(o), R);
          x.dispose(), o.dispose();
          return v;
        };
        const x = tensor(x0, [B, T, C]);
        (await block.forward(x, B, T, rope, true)).dispose();
        block.zeroGrad();
        const dout = tensor(R, [B, T, C]);
        const dx = (await block.backward(dout, true))!;
        const r = await directionalError(x0, L, arr(dx), 72);
        expect(r.rel, `input: fd ${r.fd} vs ${r.analytic}`).toBeLessThan(TOL.fd);
        for (const p of block.params()) {
          const view = block.param(p.name);
          const p0 = arr(view);
          const rp = await directionalError(p0, async (ps) => {
            view.copyFrom(ps);
            const v = await L(x0);
            view.copyFrom(p0);
            return v;
          }, arr(block.grad(p.name)), 73);
          expect(rp.rel, `${p.name}: fd ${rp.fd} vs ${rp.analytic}`).toBeLessThan(TOL.fd);
        }
        [x, dout, dx, rope.cos, rope.sin].forEach((t) => t.dispose());
        block.dispose();
      });
    }
  }
});
