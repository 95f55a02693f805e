/**
 * Bounds on client input echoed back (error messages) or written out (logs), so neither grows
 * with what a client sends.
 */

/** Characters of a client value an error message quotes (method and tool names, ids, ...). */
export const ECHO_MAX_CHARS = 100;
/** Characters of a whole error message sent to a client. */
export const ERROR_MESSAGE_MAX_CHARS = 1000;
/** Longest method name and message id a client may send (both come back in its events). */
export const MAX_METHOD_CHARS = 256;
export const MAX_MESSAGE_ID_CHARS = 256;

/**
 * `value` as text, cut to `max` characters; a cut value says how long it was, so a client can
 * tell its input from the echo: `abc… (900000 characters)`.
 */
export function truncate(value: unknown, max = ECHO_MAX_CHARS): string {
  const text = typeof value === 'string' ? value : String(value);
  if (text.length <= max) return text;
  return `${text.slice(0, max)}… (${text.length} characters)`;
}

/** UTF-8 size of a string, computed only when it could exceed `limit` (cheap for short ones). */
export function exceedsBytes(text: string, limit: number): number | undefined {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: most strings are decided by their length alone.
  if (text.length * 3 <= limit) return undefined;
  const bytes = Buffer.byteLength(text, 'utf8');
  return bytes > limit ? bytes : undefined;
}
