import { ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import type { TokenType } from './types';

/**
 * What gateways and workers agree on over the engine: topic names, the event kinds on them, and
 * the JSON-RPC error codes clients see (each code has one meaning). The MCP transports' session
 * records, stream ids and key names are in shared/mcpTransports.ts.
 */
export const RPC_ERRORS = {
  parseError: ErrorCode.ParseError,
  invalidRequest: ErrorCode.InvalidRequest,
  /** Unknown method, or tools/call of an unknown tool. */
  methodNotFound: ErrorCode.MethodNotFound,
  /** Malformed params, or tool arguments failing the tool's input schema. */
  invalidParams: ErrorCode.InvalidParams,
  /** Unexpected failure; also a command dead-lettered after too many deliveries. */
  internalError: ErrorCode.InternalError,
  /** A tool ran and returned isError (unknown id, ...); also any other refusal of the edge. */
  toolError: -32000,
  /** Unknown or ended MCP session (with HTTP 404; the code the SDK's own servers use). */
  sessionNotFound: -32001,
  /** The call ran past TOOL_TIMEOUT_MS and was cancelled on the worker. */
  timedOut: -32003,
  /** The result (or error) is larger than EVENT_MAX_BYTES: it was not sent. */
  resultTooLarge: -32010,
  /** The token may not call this tool (readonly token and a writing tool, or not allow-listed). */
  permissionDenied: -32011,
  /**
   * The command was accepted, then lost by Redis (a failover to a replica that had not received
   * it, or a restart without persistence) before any worker finished it: it may not have run.
   */
  commandLost: -32012,
  /** The client cancelled the call (notifications/cancelled); MCP's own code. */
  requestCancelled: -32800,
} as const;

/** A JSON-RPC error as published to a client. */
export interface ErrorDetail {
  code: number;
  message: string;
}

/**
 * Event kinds a worker publishes on a seed-API connection's topic. Progress has a kind of its
 * own, so the gateway knows it (to coalesce it) without reading the JSON; the client sees it as
 * a `tool-result` with metadata.progress (seedWireEvent).
 */
export const SEED_EVENTS = {
  toolResult: 'tool-result',
  toolProgress: 'tool-progress',
  mcpResponse: 'mcp-response',
  mcpError: 'mcp-error',
} as const;

/** The SSE event name a client sees for an engine event of a connection topic. */
export function seedWireEvent(event: string): string {
  return event === SEED_EVENTS.toolProgress ? SEED_EVENTS.toolResult : event;
}

/** The requestId a tool-progress event's data names (its coalescing key), if any. */
export function progressRequestId(data: string): string | undefined {
  try {
    const requestId = (JSON.parse(data) as { requestId?: unknown }).requestId;
    return typeof requestId === 'string' ? requestId : undefined;
  } catch {
    return undefined;
  }
}

/** Topic names, shared by publishers and subscribers. Engines add their own prefix. */
export const topics = {
  /** Everything addressed to one seed-API connection (results, errors, progress). */
  connection: (connectionId: string) => `conn:${connectionId}`,
  /** Broadcasts to every connection opened with a token of this type. */
  tokenType: (type: TokenType) => `type:${type}`,
  /**
   * What every worker hears: cancels of running calls (seed API and MCP sessions) and clients'
   * replies to server requests. Only the worker running the call acts; event names say the kind.
   */
  workers: 'control:workers',
};

/**
 * Engine event names on a stream topic. `notification` and `response` carry a JSON-RPC message
 * (written to the client as `event: message`); `cancelled` ends a request without a reply (the
 * spec sends none for a cancelled request); `session-ended` closes the session's open streams.
 */
export const MCP_EVENTS = {
  notification: 'notification',
  response: 'response',
  cancelled: 'cancelled',
  sessionEnded: 'session-ended',
} as const;

/**
 * Event kinds on topics.workers (the workers' control topic): a seed-API cancel, and for the MCP
 * transports a client's notifications/cancelled and its reply to a server request.
 */
export const CONTROL_EVENTS = {
  seedCancel: 'seed-cancel',
  mcpCancel: 'cancel',
  clientResponse: 'client-response',
} as const;
