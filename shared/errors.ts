/** The one error type of the project: a stable machine code, a message and the HTTP status. */
export class GatewayError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number = 400,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'GatewayError';
  }

  toJSON(): { error: { code: string; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/**
 * Why a token was refused, the label of mcpgw_auth_failures_total (a bounded set):
 * missing (no token), malformed (not a JWT, or not a Bearer header), signature (bad signature,
 * unknown key, an algorithm not allowed), expired, not_before, issuer, audience (issued for
 * another resource), claims (no sub, a bad type or tools claim), scope (no scope or token type
 * this request needs).
 */
export const AUTH_FAILURE_REASONS = [
  'missing',
  'malformed',
  'signature',
  'expired',
  'not_before',
  'issuer',
  'audience',
  'claims',
  'scope',
] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** A refused token: 401 (or 403 for a missing scope), with the reason metrics count it by. */
export class AuthFailure extends GatewayError {
  constructor(
    readonly reason: AuthFailureReason,
    message: string,
    status = reason === 'scope' ? 403 : 401,
  ) {
    super(
      status === 403 ? 'forbidden' : 'unauthorized',
      message,
      status,
      status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {},
    );
  }
}

/** Code of errors.eventTooLarge. */
export const EVENT_TOO_LARGE = 'event_too_large';

export function isEventTooLarge(error: unknown): error is GatewayError {
  return error instanceof GatewayError && error.code === EVENT_TOO_LARGE;
}

export const errors = {
  badRequest: (message: string) => new GatewayError('bad_request', message, 400),
  unauthorized: (message = 'Missing or invalid token') =>
    new GatewayError('unauthorized', message, 401, { 'WWW-Authenticate': 'Bearer' }),
  forbidden: (message: string) => new GatewayError('forbidden', message, 403),
  notFound: (message: string) => new GatewayError('not_found', message, 404),
  conflict: (message: string) => new GatewayError('conflict', message, 409),
  payloadTooLarge: (limit: number) =>
    new GatewayError('payload_too_large', `Request body exceeds ${limit} bytes`, 413),
  /** An event (result, broadcast, client reply) over EVENT_MAX_BYTES: never stored or sent. */
  eventTooLarge: (bytes: number, limit: number) =>
    new GatewayError(
      EVENT_TOO_LARGE,
      `Event of ${bytes} bytes exceeds the ${limit}-byte limit (EVENT_MAX_BYTES)`,
      413,
    ),
  rateLimited: (retryAfterS: number) =>
    new GatewayError('rate_limited', 'Too many requests', 429, {
      'Retry-After': String(retryAfterS),
    }),
  /** The shared command queue holds COMMAND_QUEUE_MAX commands: nothing was queued. */
  queueFull: (limit: number, retryAfterS = 5) =>
    new GatewayError(
      'queue_full',
      `The command queue is full (COMMAND_QUEUE_MAX=${limit}); retry later`,
      503,
      { 'Retry-After': String(retryAfterS) },
    ),
  /** The token has MAX_INFLIGHT_PER_TOKEN commands queued or running: nothing was queued. */
  inFlightLimit: (limit: number, retryAfterS = 1) =>
    new GatewayError(
      'inflight_limit',
      `This token has ${limit} commands in flight (MAX_INFLIGHT_PER_TOKEN); wait for results and retry`,
      429,
      { 'Retry-After': String(retryAfterS) },
    ),
  unavailable: (message: string, retryAfterS = 1) =>
    new GatewayError('unavailable', message, 503, { 'Retry-After': String(retryAfterS) }),
};
