// Human units: sizes, throughputs, durations, counts, relative amounts, and the errors people see.
import { describe, expect, it } from 'vitest';
import { parseCount, parseDuration, parseMemory, parseSpeedup, parseStatValue, parseThroughput, SearchError } from '../../ts/search/index.js';
import { parseSweep } from '../../ts/search/index.js';

const abs = (value: number) => ({ kind: 'absolute', value });
const rel = (factor: number) => ({ kind: 'relative', factor });

describe('units', () => {
  it('parses memory in MiB, with binary and decimal units', () => {
    expect(parseMemory('80GiB')).toEqual(abs(81920));
    expect(parseMemory('80 GiB')).toEqual(abs(81920));
    expect(parseMemory('80000')).toEqual(abs(80000));
    expect(parseMemory('80,000MiB')).toEqual(abs(80000));
    expect(parseMemory('1TiB')).toEqual(abs(1024 * 1024));
    expect(parseMemory('512KiB')).toEqual(abs(0.5));
    expect((parseMemory('80GB') as { value: number }).value).toBeCloseTo(80e9 / 2 ** 20, 9);
    expect(parseMemory(1234.5)).toEqual(abs(1234.5));
    expect(parseMemory('0.9x')).toEqual(rel(0.9));
    expect(parseMemory('90%')).toEqual(rel(0.9));
  });

  it('parses throughput in tokens/s, and relative speedups', () => {
    expect(parseThroughput('6000')).toEqual(abs(6000));
    expect(parseThroughput('6k')).toEqual(abs(6000));
    expect(parseThroughput('6000tok/s')).toEqual(abs(6000));
    expect(parseThroughput('1.5M tokens/s')).toEqual(abs(1.5e6));
    expect(parseThroughput('2x')).toEqual(rel(2));
    expect(parseSpeedup('2x')).toEqual(rel(2));
    expect(parseSpeedup('1.5')).toEqual(rel(1.5));
    expect(parseSpeedup('150%')).toEqual(rel(1.5));
    expect(parseSpeedup(3)).toEqual(rel(3));
  });

  it('parses durations in ms and counts with suffixes', () => {
    expect(parseDuration('50ms')).toEqual(abs(50));
    expect(parseDuration('0.05s')).toEqual(abs(50));
    expect(parseDuration('50')).toEqual(abs(50));
    expect(parseDuration('800us')).toEqual(abs(0.8));
    expect(parseDuration('2min')).toEqual(abs(120000));
    expect(parseCount('7B')).toEqual(abs(7e9));
    expect(parseCount('70M')).toEqual(abs(7e7));
    expect(parseCount('1.5e9')).toEqual(abs(1.5e9));
    expect(parseCount('500k')).toEqual(abs(5e5));
    expect(parseCount('0.5x')).toEqual(rel(0.5));
  });

  it('parses stat bounds by the stat name', () => {
    expect(parseStatValue('kv_cache_mib', '2GiB')).toEqual(abs(2048));
    expect(parseStatValue('prefill_ms', '0.2s')).toEqual(abs(200));
    expect(parseStatValue('num_params', '7B')).toEqual(abs(7e9));
    expect(parseStatValue('log_prob', '-3.5')).toEqual(abs(-3.5));
  });

  it('rejects bad amounts with a typed error naming the option and the accepted forms', () => {
    const fail = (fn: () => unknown): SearchError => {
      try {
        fn();
      } catch (error) {
        return error as SearchError;
      }
      throw new Error('expected an error');
    };
    const e = fail(() => parseMemory('80 parsecs', '--memory'));
    expect(e).toBeInstanceOf(SearchError);
    expect(e.code).toBe('bad_units');
    expect(e.message).toContain('--memory');
    expect(e.message).toContain('80GiB');
    for (const bad of ['', 'abc', '-5GiB', '1e', '80,00']) expect(fail(() => parseMemory(bad)).code).toBe('bad_units');
    expect(fail(() => parseThroughput('0')).code).toBe('bad_units');
    expect(fail(() => parseThroughput('6ms')).code).toBe('bad_units');
    expect(fail(() => parseDuration('5 parsecs')).code).toBe('bad_units');
    expect(fail(() => parseCount('7Q')).code).toBe('bad_units');
    expect(fail(() => parseSpeedup('-2x')).code).toBe('bad_units');
    expect(fail(() => parseSpeedup('2GiB')).code).toBe('bad_units');
  });

  it('parses sweep ranges', () => {
    expect(parseSweep('throughput=1x..3x:25')).toEqual({ budget: 'throughput', from: '1x', to: '3x', points: 25 });
    expect(parseSweep('memory=40GiB..80GiB:9')).toEqual({ budget: 'memory', from: '40GiB', to: '80GiB', points: 9 });
    expect(parseSweep('max:kv_cache_mib=100..200:3').budget).toBe('max:kv_cache_mib');
    expect(() => parseSweep('throughput=1x-3x:25')).toThrow(/BUDGET=FROM\.\.TO:POINTS/);
    expect(() => parseSweep('colour=1..2:3')).toThrow(/unknown budget "colour"/);
    expect(() => parseSweep('memory=1..2:0')).toThrow(/number of points/);
  });
});
