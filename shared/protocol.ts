import { ErrorCode } from '@modelcontextprotocol/sdk/types.js';

/**
 * What gateways and workers agree on over the engine, besides the MCP transports' names
 * (shared/mcp.ts): the JSON-RPC error codes clients see, and the event kinds on a seed-API
 * connection's topic and on the workers' control topic. Each code has one meaning.
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
