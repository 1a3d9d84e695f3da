/** Every error the project raises on purpose: a stable `code` and a message naming what was wrong. */
export class PuzzleError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PuzzleError';
    this.code = code;
  }
}

/** Re-raises a native error (which carries `code`) as a PuzzleError; anything else unchanged. */
export function fromNative(err: unknown): unknown {
  if (err instanceof PuzzleError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && typeof code === 'string' && code.startsWith('ERR_PUZZLE')) {
    return new PuzzleError(code, err.message, { cause: err });
  }
  return err;
}

/** Runs a native call (sync throw or rejected Promise) and converts its errors. */
export async function native<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw fromNative(err);
  }
}
