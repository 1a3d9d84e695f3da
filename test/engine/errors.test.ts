// Bad input gets a typed error naming the argument and what was expected; never a crash.
import { describe, expect, it } from 'vitest';
import * as ops from '../../ts/core/ops.js';
import { Block } from '../../ts/core/block.js';
import { ids, tensor, zeros } from '../../ts/core/tensor.js';
import { ropeFor } from '../../ts/bench/engine.js';
import { expectError as rejects } from '../support/expect-error.js';


describe('bad input', () => {
  it('wrong shapes name the argument and the expected size', async () => {
    const x = zeros([4, 8]);
    await rejects(ops.rmsnormForward(x, zeros([7]), 1e-5), 'ERR_PUZZLE_SHAPE', "'weight'", 'expected C = 8');
    await rejects(ops.matmulForward(x, zeros([3, 9])), 'ERR_PUZZLE_SHAPE', "'weight'", 'OC*C');
    await rejects(ops.attentionForward(zeros([1, 4, 4, 2]), zeros([1, 4, 3, 2]), zeros([1, 4, 3, 2])),
      'ERR_PUZZLE_ARG', 'NKV = 3 must divide NH = 4');
    await rejects(() => ops.ropeForward(zeros([2, 3]), zeros([3, 1]), zeros([3, 1])), 'ERR_PUZZLE_SHAPE', "'x'");
  });

  it('wrong dtypes', async () => {
    await rejects(ops.embeddingForward(zeros([3]), zeros([5, 2])), 'ERR_PUZZLE_DTYPE', "'ids'", 'int32');
    await rejects(() => tensor(new Float64Array(3) as unknown as Float32Array), 'ERR_PUZZLE_DTYPE', 'Float32Array');
  });

  it('disposed tensors', async () => {
    const x = zeros([2, 4]);
    x.dispose();
    expect(x.disposed).toBe(true);
    await rejects(ops.rmsnormForward(x, zeros([4]), 1e-5), 'ERR_PUZZLE_DISPOSED', "'inp'");
    expect(() => x.toArray()).toThrow(/disposed/);
    x.dispose(); // twice is harmless
  });

  it('token ids and targets out of range', async () => {
    await rejects(ops.embeddingForward(ids([0, 5, 2]), zeros([5, 2])), 'ERR_PUZZLE_RANGE', 'ids[1] = 5', '[0, 5)');
    await rejects(ops.embeddingForward(ids([-1]), zeros([5, 2])), 'ERR_PUZZLE_RANGE', 'ids[0] = -1');
    await rejects(ops.crossEntropyForward(zeros([2, 3]), ids([1, 3])), 'ERR_PUZZLE_RANGE', 'targets[1] = 3');
  });

  it('NaN where it matters', async () => {
    const logits = tensor([0, 1, NaN, 2], [2, 2]);
    await rejects(ops.crossEntropyForward(logits, ids([0, 1])), 'ERR_PUZZLE_NAN', 'logits', 'index 2');
    await rejects(ops.klForward(tensor([0, 1], [1, 2]), tensor([Infinity, 0], [1, 2])), 'ERR_PUZZLE_NAN', 'student');
    const block = new Block({ hidden: 4, attention: 'noop', ffn: 'linear' });
    await rejects(block.forward(tensor([1, 2, NaN, 4], [1, 1, 4]), 1, 1, null, false), 'ERR_PUZZLE_NAN', 'Block.forward: x');
  });

  it('block configuration and call order', async () => {
    await rejects(() => new Block({ hidden: 8, heads: 4, headDim: 2, attention: 'gqa', kvHeads: 3, ffn: 'noop' }),
      'ERR_PUZZLE_ARG', 'kvHeads = 3 must divide config.heads = 4');
    await rejects(() => new Block({ hidden: 8, attention: 'mamba' as never, ffn: 'noop' }), 'ERR_PUZZLE_ARG', "'gqa', 'linear' or 'noop'");
    await rejects(() => new Block({ hidden: 8, attention: 'noop', ffn: 'swiglu' }), 'ERR_PUZZLE_ARG', 'config.ffnWidth');
    const b = new Block({ hidden: 8, heads: 2, headDim: 4, attention: 'gqa', kvHeads: 1, ffn: 'noop' });
    expect(() => b.param('mlp.down_proj.weight')).toThrow(/no parameter 'mlp.down_proj.weight'/);
    await rejects(b.backward(zeros([1, 2, 8]), true), 'ERR_PUZZLE_STATE', 'forward');
    const rope = ropeFor(4, 2);
    await rejects(b.forward(zeros([1, 3, 8]), 1, 3, rope, true), 'ERR_PUZZLE_SHAPE', 'hold 2 positions but T = 3');
    await rejects(b.forward(zeros([1, 2, 8]), 1, 2, null, true), 'ERR_PUZZLE_ARG', "'cos' must be a Tensor");
    b.dispose();
    await rejects(() => b.params(), 'ERR_PUZZLE_DISPOSED', 'disposed');
  });

  it('a tensor disposed while an op runs stays valid for that op', async () => {
    const x = tensor(new Float32Array(1 << 20).fill(1), [1024, 1024]);
    const w = tensor(new Float32Array(1024).fill(2), [1024]);
    const p = ops.rmsnormForward(x, w, 0);
    x.dispose();
    w.dispose();
    const { out } = await p;
    expect((out.toArray() as Float32Array)[12345]).toBeCloseTo(2);
  });
});
