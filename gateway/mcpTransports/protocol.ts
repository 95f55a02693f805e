import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import { GatewayError, asGatewayError, errors } from '../../shared/errors';
import { RPC_ERRORS } from '../../shared/protocol';
import { MAX_MESSAGE_ID_CHARS, MAX_METHOD_CHARS } from '../../shared/text';
import type { ClientMessage } from '../../shared/types';

/** A JSON-RPC message as a client posts it; only the fields the gateway routes on are typed. */
export interface IncomingMessage {
  jsonrpc: '2.0';
  id?: string | number | null;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: unknown;
}

export interface IncomingRequest extends IncomingMessage {
  id: string | number;
  method: string;
}

export function isRequest(message: IncomingMessage): message is IncomingRequest {
  return typeof message.method === 'string' && message.id !== undefined && message.id !== null;
}

/** 415 unless the body is declared JSON (checked before the parser, which skips other types). */
export function requireJsonContent(): RequestHandler {
  return (req, _res, next) => {
    if (req.is('application/json')) return next();
    next(errors.unsupportedMediaType('Content-Type must be application/json'));
  };
}

/** What the Accept header allows: an SSE stream, a JSON body, or both. */
export function accepts(req: Request): { sse: boolean; json: boolean } {
  const accept = (req.headers.accept ?? '').toLowerCase();
  const any = accept === '' || accept.includes('*/*');
  return {
    sse: any || accept.includes('text/event-stream'),
    json: any || accept.includes('application/json'),
  };
}

/**
 * The body as a list of JSON-RPC messages (a batch, as 2025-03-26 allows, or one message).
 * A light shape check only: the worker's McpServer validates params.
 */
export function parseMessages(body: unknown): { messages: IncomingMessage[]; batch: boolean } {
  const batch = Array.isArray(body);
  const list: unknown[] = batch ? body : [body];
  if (list.length === 0) throw errors.invalidRequest('Empty batch');
  for (const item of list) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw errors.invalidRequest('Each message must be a JSON-RPC object');
    }
    const m = item as Record<string, unknown>;
    if (m.jsonrpc !== '2.0') throw errors.invalidRequest('jsonrpc must be "2.0"');
    const hasId = typeof m.id === 'string' || typeof m.id === 'number';
    // Ids and methods come back in replies and errors: bounded, and never echoed whole.
    if (typeof m.id === 'string' && m.id.length > MAX_MESSAGE_ID_CHARS) {
      throw errors.invalidRequest(
        `id must be at most ${MAX_MESSAGE_ID_CHARS} characters (got ${m.id.length})`,
      );
    }
    if (typeof m.method === 'string' && m.method.length > MAX_METHOD_CHARS) {
      throw errors.invalidRequest(
        `method must be at most ${MAX_METHOD_CHARS} characters (got ${m.method.length})`,
      );
    }
    if (m.method !== undefined) {
      if (typeof m.method !== 'string' || m.method.length === 0) {
        throw errors.invalidRequest('method must be a non-empty string');
      }
      if (m.id !== undefined && !hasId)
        throw errors.invalidRequest('id must be a string or a number');
      const params = m.params;
      if (params !== undefined && (typeof params !== 'object' || params === null)) {
        throw errors.invalidRequest('params must be an object');
      }
    } else if (!(('result' in m || 'error' in m) && (hasId || m.id === null))) {
      throw errors.invalidRequest('Not a JSON-RPC request, notification or response');
    }
  }
  return { messages: list as IncomingMessage[], batch };
}

export function toClientMessage(request: IncomingRequest): ClientMessage {
  return {
    method: request.method,
    id: request.id,
    ...(request.params ? { params: request.params } : {}),
  };
}

/**
 * Errors of the MCP transport routes (`paths`) leave as JSON-RPC error objects (what MCP clients
 * parse), with the HTTP status and headers of the GatewayError and the request's id when its
 * body was parsed. Others go on to the app's handler. Mounted without a path, so that the
 * request's baseUrl (and with it the route label of its metrics) stays the route's own.
 */
export function jsonRpcErrors(paths: readonly string[]): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (!paths.includes(req.path)) return next(err);
    const parseFailed = (err as { type?: unknown } | null)?.type === 'entity.parse.failed';
    const known = asGatewayError(err);
    if (!known && !parseFailed) return next(err);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const error = known ?? errors.parseError();
    const data = error.rpc?.data;
    res
      .set(error.headers)
      .status(error.status)
      .json({
        jsonrpc: '2.0',
        error: {
          code: error.rpc?.code ?? rpcCode(error),
          message: error.message,
          ...(data !== undefined ? { data } : {}),
        },
        id: requestIdOf(req.body),
      });
  };
}

/**
 * The id of a single parsed request (null for a batch, an unparsed body, no id, or an id too
 * long to echo).
 */
function requestIdOf(body: unknown): string | number | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const id = (body as { id?: unknown }).id;
  if (typeof id === 'string') return id.length > MAX_MESSAGE_ID_CHARS ? null : id;
  return typeof id === 'number' ? id : null;
}

function rpcCode(error: GatewayError): number {
  if (error.code === 'parse_error') return RPC_ERRORS.parseError;
  if (error.code === 'invalid_request') return RPC_ERRORS.invalidRequest;
  if (error.status === 404) return RPC_ERRORS.sessionNotFound;
  return RPC_ERRORS.toolError;
}
