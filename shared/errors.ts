/** The one error type of the project: a stable machine code, a message and the HTTP status. */
export class GatewayError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number = 400,
    readonly headers: Record<string, string> = {},
    /** On the MCP routes: the JSON-RPC error code (and data) to answer with, when prescribed. */
    readonly rpc?: { code: number; data?: unknown },
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

/**
 * What an engine refuses or fails with. Engines know nothing of HTTP: the gateway answers an
 * engine error with the GatewayError of httpErrorOf, the worker acts on its code.
 */
export type EngineErrorCode =
  | 'unavailable'
  | 'invalid_argument'
  | 'conflict'
  | 'event_too_large'
  | 'queue_full'
  | 'inflight_limit';

export class EngineError extends Error {
  constructor(
    readonly code: EngineErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

export const engineErrors = {
  /** The engine is closed, or its store failed. */
  unavailable: (message: string) => new EngineError('unavailable', message),
  /** A document kept changing under an update: it was abandoned. */
  conflict: (message: string) => new EngineError('conflict', message),
  /** A malformed argument (an event id, an event name): the caller's input was wrong. */
  invalidArgument: (message: string) => new EngineError('invalid_argument', message),
  /** An event (result, broadcast, client reply) over EVENT_MAX_BYTES: never stored or sent. */
  eventTooLarge: (bytes: number, limit: number) =>
    new EngineError(
      'event_too_large',
      `Event of ${bytes} bytes exceeds the ${limit}-byte limit (EVENT_MAX_BYTES)`,
    ),
  /** The shared command queue holds COMMAND_QUEUE_MAX commands: nothing was queued. */
  queueFull: (limit: number) =>
    new EngineError(
      'queue_full',
      `The command queue is full (COMMAND_QUEUE_MAX=${limit}); retry later`,
    ),
  /** The token has MAX_INFLIGHT_PER_TOKEN commands queued or running: nothing was queued. */
  inFlightLimit: (limit: number) =>
    new EngineError(
      'inflight_limit',
      `This token has ${limit} commands in flight (MAX_INFLIGHT_PER_TOKEN); wait for results and retry`,
    ),
};

export function isEventTooLarge(error: unknown): error is EngineError {
  return error instanceof EngineError && error.code === 'event_too_large';
}

/** HTTP status, Retry-After (seconds) and, where it differs, the error code of each engine error. */
const ENGINE_ERROR_HTTP: Record<
  EngineErrorCode,
  { status: number; retryAfterS?: number; code?: string }
> = {
  unavailable: { status: 503, retryAfterS: 1 },
  invalid_argument: { status: 400, code: 'bad_request' },
  conflict: { status: 409 },
  event_too_large: { status: 413 },
  queue_full: { status: 503, retryAfterS: 5 },
  inflight_limit: { status: 429, retryAfterS: 1 },
};

/** The HTTP answer to an engine error (same code and message). */
export function httpErrorOf(error: EngineError): GatewayError {
  const { status, retryAfterS, code = error.code } = ENGINE_ERROR_HTTP[error.code];
  const headers: Record<string, string> =
    retryAfterS === undefined ? {} : { 'Retry-After': String(retryAfterS) };
  return new GatewayError(code, error.message, status, headers);
}

/** A GatewayError as it is, an engine error as its HTTP answer, anything else undefined. */
export function asGatewayError(error: unknown): GatewayError | undefined {
  if (error instanceof GatewayError) return error;
  if (error instanceof EngineError) return httpErrorOf(error);
  return undefined;
}

export const errors = {
  /** Bad input; `status` another 4xx where the body parser named one. */
  badRequest: (message: string, status = 400) => new GatewayError('bad_request', message, status),
  unauthorized: (message = 'Missing or invalid token') =>
    new GatewayError('unauthorized', message, 401, { 'WWW-Authenticate': 'Bearer' }),
  forbidden: (message: string) => new GatewayError('forbidden', message, 403),
  notFound: (message: string) => new GatewayError('not_found', message, 404),
  conflict: (message: string) => new GatewayError('conflict', message, 409),
  payloadTooLarge: (limit: number) =>
    new GatewayError('payload_too_large', `Request body exceeds ${limit} bytes`, 413),
  /** An event the gateway itself measured over EVENT_MAX_BYTES (a client's reply). */
  eventTooLarge: (bytes: number, limit: number) =>
    httpErrorOf(engineErrors.eventTooLarge(bytes, limit)),
  rateLimited: (retryAfterS: number) =>
    new GatewayError('rate_limited', 'Too many requests', 429, {
      'Retry-After': String(retryAfterS),
    }),
  /** The token holds MAX_CONNECTIONS_PER_TOKEN open streams (every kind, all gateways). */
  tooManyConnections: (limit: number) =>
    new GatewayError(
      'too_many_connections',
      `At most ${limit} open streams per token (every stream kind, all gateways)`,
      429,
      { 'Retry-After': '5' },
    ),
  unsupportedMediaType: (message: string) =>
    new GatewayError('unsupported_media_type', message, 415),
  notAcceptable: (message: string) => new GatewayError('not_acceptable', message, 406),
  /** A JSON-RPC message the MCP transports cannot take (-32600). */
  invalidRequest: (message: string) => new GatewayError('invalid_request', message, 400),
  /** A body that is not JSON, on the MCP transports (-32700). */
  parseError: () => new GatewayError('parse_error', 'Parse error', 400),
  internal: () => new GatewayError('internal', 'Internal server error', 500),
  unavailable: (message: string, retryAfterS = 1) =>
    new GatewayError('unavailable', message, 503, { 'Retry-After': String(retryAfterS) }),
  /**
   * A JSON-RPC error the MCP specification prescribes with its own code, data and HTTP status
   * (e.g. 2026-07-28's header mismatch -32020 with 400, an unknown method -32601 with 404).
   */
  rpc: (status: number, code: number, message: string, data?: unknown) =>
    new GatewayError(
      'rpc_error',
      message,
      status,
      status === 405 ? { Allow: 'GET, POST, DELETE' } : {},
      {
        code,
        ...(data !== undefined ? { data } : {}),
      },
    ),
};
