/** Types shared by the gateway, the worker and the engines. */

export const TOKEN_TYPES = ['master', 'team', 'readonly'] as const;
export type TokenType = (typeof TOKEN_TYPES)[number];

/** Claims carried by every JWT this gateway accepts. */
export interface TokenClaims {
  /** Token id: who the token was issued to. */
  sub: string;
  type: TokenType;
  /** Optional allow-list of tool names this token may call. */
  tools?: string[];
  /** Expiry, seconds since the epoch. */
  exp?: number;
}

/** The SSE event names of the seed API. Broadcasts may use other names too. */
export type SSEEventType =
  | 'mcp-response'
  | 'mcp-notification'
  | 'mcp-error'
  | 'heartbeat'
  | 'tool-result'
  | 'connection-status';

/** A JSON-RPC-ish message as a seed-API client posts it to /mcp/sse/send. */
export interface ClientMessage {
  method: string;
  params?: Record<string, unknown>;
  id?: string | number;
}

/**
 * What the gateway enqueues for a worker: everything the worker needs, nothing it must look up.
 * A seed-API command names its connection; an MCP transport's command its session and stream.
 */
export type CommandEnvelope = SeedCommand | McpCommand;

export interface SeedCommand extends CommandBase {
  /** The seed connection whose stream receives the results. */
  connectionId: string;
  mcp?: undefined;
}

export interface McpCommand extends CommandBase {
  connectionId?: undefined;
  /**
   * A JSON-RPC request that came over an MCP transport (Streamable HTTP or legacy SSE):
   * `message` is the client's request as sent (its own `id`), and the JSON-RPC reply goes to
   * that stream's topic.
   */
  mcp: McpRoute;
}

interface CommandBase {
  /** Unique per accepted POST; the worker's idempotency key. */
  requestId: string;
  /** The token's subject. */
  sub: string;
  tokenType: TokenType;
  tools?: string[];
  message: ClientMessage;
  /** Epoch ms when the gateway accepted the command (for latency metrics). */
  enqueuedAt: number;
}

/** Where the worker publishes the JSON-RPC messages of an MCP transport's request. */
export interface McpRoute {
  sessionId: string;
  /** The request's stream within the session (see shared/mcpTransports.ts). */
  streamId: string;
  /**
   * The topic the gateway pod that took the POST listens on: the stream's events are copied
   * there (PublishOptions.copyTo), so the pod needs no subscription per request.
   */
  replyTopic?: string;
  /**
   * `modern`: a stateless MCP 2026-07-28 request (sessionId MODERN_SESSION), its version and
   * client capabilities in the request's own `_meta`; absent: a session's request.
   */
  era?: 'modern';
  /**
   * A 2026-07-28 tools/call: its `Mcp-Param-*` headers (lowercased names), which the worker
   * checks against the tool's `x-mcp-header` arguments.
   */
  paramHeaders?: Record<string, string>;
}
