#!/usr/bin/env node
// Stands in for native puzzle_cuda_profile in tests of the TypeScript side of `--device cuda`
// (machines without a GPU): appends its arguments to $FAKE_PROFILER_LOG and answers with the JSON
// the real tool writes, with made-up but consistent costs (a layer costs what its parts cost, so
// stacks add up exactly). $FAKE_PROFILER_DTYPE overrides the dtype it claims to have measured.
import { appendFileSync } from 'node:fs';

const args = process.argv.slice(2);
if (process.env.FAKE_PROFILER_LOG) appendFileSync(process.env.FAKE_PROFILER_LOG, JSON.stringify(args) + '\n');
const arg = (k) => args[args.indexOf(k) + 1];
const dtype = process.env.FAKE_PROFILER_DTYPE ?? (arg('--dtype') === 'bf16' ? 'bfloat16' : 'float32');
const device = { kind: 'cuda', model: 'Fake GPU', sm: '90', sms: 132, driver: '13.0', gemm: 'cublas' };
const attn = (t) => (t.startsWith('kv') ? 0.02 * Number(t.slice(2)) : t === 'linear' ? 0.01 : 0);
const ffn = (t) => (t === 'linear' ? 0.01 : t === 'noop' ? 0 : Number(t) / 5000);
const head = { prefill_ms: 0.5, decode_ms: 0.2 };
const out = { device, dtype };
if (args.includes('--compare')) {
  const i = args.indexOf('--compare');
  const model = (list) => {
    const layers = list.split(',');
    const t = layers.reduce((s, l) => { const [a, f] = l.split('+'); return s + attn(a) + ffn(f); }, 0);
    return { layers: layers.length, prefill_ms: head.prefill_ms + 10 * t, decode_ms: head.decode_ms + t };
  };
  Object.assign(out, { rounds: Number(arg('--rounds')), head, parent: model(args[i + 1]), child: model(args[i + 2]) });
} else {
  const subblocks = [
    ...arg('--attention').split(',').map((t) => ({ id: `attn-${t}`, prefill_ms: 10 * attn(t), decode_ms: attn(t) })),
    ...arg('--ffn').split(',').map((t) => ({ id: t === 'linear' || t === 'noop' ? `ffn-${t}` : `ffn-w${t}`, prefill_ms: 10 * ffn(t), decode_ms: ffn(t) })),
  ];
  Object.assign(out, { stack: 2, empty: { id: 'empty', prefill_ms: 0, decode_ms: 0 }, subblocks, head, additivity: [] });
}
console.log(JSON.stringify(out));
