// One way to assert "this fails with a PuzzleError of this code, naming these things".
import { expect } from 'vitest';
import { PuzzleError } from '../../ts/core/errors.js';

export async function expectError(p: Promise<unknown> | (() => unknown), code: string, ...parts: string[]): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeInstanceOf(PuzzleError);
  expect((err as PuzzleError).code).toBe(code);
  for (const part of parts) expect((err as Error).message).toContain(part);
}
