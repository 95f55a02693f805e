import type { z } from 'zod';
import { errors } from '../shared/errors';

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
    .map((issue) => `${issue.path.map(String).join('.') || 'body'}: ${issue.message}`)
    .join('; ');
  throw errors.badRequest(detail);
}
