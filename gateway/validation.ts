import type { z } from 'zod';
import { errors } from '../shared/errors';
import { truncate } from '../shared/text';

/** Issues named in one error message (field paths may come from the client's own keys). */
const MAX_ISSUES = 5;

/**
 * Validates a JSON body against a zod schema; a failure is a 400 whose message names each
 * offending field (`message.method: Invalid input: expected string, received undefined`).
 */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw errors.badRequest('Request body must be a JSON object (Content-Type: application/json)');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const detail = result.error.issues
    .slice(0, MAX_ISSUES)
    .map(
      (issue) =>
        `${truncate(issue.path.map(String).join('.') || 'body')}: ${truncate(issue.message)}`,
    )
    .join('; ');
  const more = result.error.issues.length - MAX_ISSUES;
  throw errors.badRequest(more > 0 ? `${detail}; and ${more} more` : detail);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPENERS = new Set([0x5b, 0x7b]);
const CLOSERS = new Set([0x5d, 0x7d]);

/**
 * True when the raw JSON text nests arrays/objects deeper than `maxDepth`. One pass over the
 * bytes before parsing, so a pathological body is refused without being parsed or walked
 * (UTF-8 never puts these ASCII bytes inside a multi-byte character).
 */
export function jsonNestsDeeperThan(raw: Buffer, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (OPENERS.has(byte)) {
      if (++depth > maxDepth) return true;
    } else if (CLOSERS.has(byte)) {
      depth--;
    }
  }
  return false;
}
