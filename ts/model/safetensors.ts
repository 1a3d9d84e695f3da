/**
 * safetensors, read and written by us (the format is small; no library needed):
 *   8-byte little-endian header length | JSON header | tensor bytes.
 * The header is validated before any tensor is trusted: declared length inside the file,
 * offsets contiguous from 0 and in bounds, dtype and shape consistent with the byte count.
 * Reading is lazy: open() reads only the header; tensors are read one at a time.
 */
import { closeSync, fstatSync, openSync, readSync, renameSync, writeSync, fsyncSync, unlinkSync } from 'node:fs';
import { PuzzleError } from '../core/errors.js';

export type SafeDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'F64' | 'U8' | 'I8' | 'BOOL';

const DTYPE_BYTES: Record<SafeDType, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, U8: 1, I8: 1, BOOL: 1 };
const MAX_HEADER = 100 * 1024 * 1024;

export interface TensorEntry {
  name: string;
  dtype: SafeDType;
  shape: number[];
  /** absolute byte range in the file */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  path: string;
  metadata: Record<string, string>;
  tensors: Map<string, TensorEntry>;
}

function bad(path: string, msg: string): never {
  throw new PuzzleError('ERR_PUZZLE_SAFETENSORS', `${path}: ${msg}`);
}

/** Reads and validates the header only. */
export function openSafetensors(path: string): SafetensorsFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new PuzzleError('ERR_PUZZLE_FILE', `cannot open safetensors file ${path}: ${(err as Error).message}`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 8) bad(path, `file is ${size} bytes, too short for a safetensors header`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER || 8 + headerLen > size)
      bad(path, `declared header length ${headerLen} does not fit in the file (${size} bytes)`);
    const hb = Buffer.alloc(headerLen);
    readSync(fd, hb, 0, headerLen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(hb.toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      bad(path, `header is not valid JSON (${(err as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) bad(path, 'header must be a JSON object');
    const dataStart = 8 + headerLen;
    const dataLen = size - dataStart;
    const metadata: Record<string, string> = {};
    const entries: TensorEntry[] = [];
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        for (const [k, v] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
          if (typeof v !== 'string') bad(path, `__metadata__.${k} must be a string`);
          metadata[k] = v;
        }
        continue;
      }
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof e?.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) bad(path, `tensor '${name}' has unknown dtype ${JSON.stringify(e?.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0))
        bad(path, `tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
      const off = e.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[1] < off[0])
        bad(path, `tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
      const dtype = e.dtype as SafeDType;
      const shape = e.shape as number[];
      const numel = shape.reduce((a, b) => a * b, 1);
      if ((off[1] - off[0]) !== numel * DTYPE_BYTES[dtype])
        bad(path, `tensor '${name}': ${dtype} ${JSON.stringify(shape)} needs ${numel * DTYPE_BYTES[dtype]} bytes but data_offsets span ${off[1] - off[0]}`);
      if (off[1] > dataLen) bad(path, `tensor '${name}' ends at byte ${off[1]} beyond the data section (${dataLen} bytes)`);
      entries.push({ name, dtype, shape, begin: dataStart + off[0], end: dataStart + off[1] });
    }
    // Offsets must tile the data section from 0 without gaps or overlaps.
    const sorted = [...entries].sort((a, b) => a.begin - b.begin);
    let cursor = dataStart;
    for (const e of sorted) {
      if (e.begin !== cursor) bad(path, `tensor '${e.name}' starts at data offset ${e.begin - dataStart}, expected ${cursor - dataStart} (offsets must be contiguous)`);
      cursor = e.end;
    }
    return { path, metadata, tensors: new Map(entries.map((e) => [e.name, e])) };
  } finally {
    closeSync(fd);
  }
}

function readBytes(path: string, e: TensorEntry): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(e.end - e.begin);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, e.begin + done);
      if (n === 0) bad(path, `unexpected end of file reading '${e.name}'`);
      done += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** A float tensor as Float32Array (F32 as is; BF16, F16, F64 converted). */
export function readFloat32(file: SafetensorsFile, name: string): Float32Array {
  const e = entry(file, name);
  const b = readBytes(file.path, e);
  const n = (e.end - e.begin) / DTYPE_BYTES[e.dtype];
  const out = new Float32Array(n);
  switch (e.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = b.readFloatLE(i * 4);
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = b.readDoubleLE(i * 8);
      return out;
    case 'BF16': {
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u32[i] = b.readUInt16LE(i * 2) << 16;
      return out;
    }
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(b.readUInt16LE(i * 2));
      return out;
    default:
      throw new PuzzleError('ERR_PUZZLE_DTYPE', `${file.path}: tensor '${name}' is ${e.dtype}, expected a float dtype`);
  }
}

/** An integer tensor as Int32Array (I32 as is; I64 checked to fit). */
export function readInt32(file: SafetensorsFile, name: string): Int32Array {
  const e = entry(file, name);
  const b = readBytes(file.path, e);
  if (e.dtype === 'I32') {
    const out = new Int32Array((e.end - e.begin) / 4);
    for (let i = 0; i < out.length; i++) out[i] = b.readInt32LE(i * 4);
    return out;
  }
  if (e.dtype === 'I64') {
    const out = new Int32Array((e.end - e.begin) / 8);
    for (let i = 0; i < out.length; i++) {
      const v = b.readBigInt64LE(i * 8);
      if (v > 2147483647n || v < -2147483648n) bad(file.path, `tensor '${name}'[${i}] = ${v} does not fit in int32`);
      out[i] = Number(v);
    }
    return out;
  }
  throw new PuzzleError('ERR_PUZZLE_DTYPE', `${file.path}: tensor '${name}' is ${e.dtype}, expected I32 or I64`);
}

export function entry(file: SafetensorsFile, name: string): TensorEntry {
  const e = file.tensors.get(name);
  if (!e) throw new PuzzleError('ERR_PUZZLE_SAFETENSORS', `${file.path}: no tensor named '${name}'`);
  return e;
}

export interface TensorToWrite {
  dtype: 'F32' | 'BF16' | 'I32';
  shape: number[];
  data: Float32Array | Int32Array;
}

/** Writes atomically: a temporary file in the same folder, fsync, then rename. */
export function writeSafetensors(path: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name];
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length)
      throw new PuzzleError('ERR_PUZZLE_SHAPE', `writeSafetensors(${path}): tensor '${name}' has shape [${t.shape}] but ${t.data.length} values`);
    const bytes = numel * (t.dtype === 'BF16' ? 2 : 4);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  if (metadata) header.__metadata__ = metadata;
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, len);
    writeSync(fd, json);
    for (const name of names) {
      const t = tensors[name];
      if (t.dtype === 'BF16') {
        const src = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
        const out = Buffer.alloc(t.data.length * 2);
        for (let i = 0; i < src.length; i++) {
          const x = src[i];
          // round to nearest even; NaN stays NaN
          const r = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
          out.writeUInt16LE(r & 0xffff, i * 2);
        }
        writeSync(fd, out);
      } else {
        writeSync(fd, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      }
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try { closeSync(fd); } catch { /* already closed */ }
    try { unlinkSync(tmp); } catch { /* nothing to remove */ }
    throw new PuzzleError('ERR_PUZZLE_FILE', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}
