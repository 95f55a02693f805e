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

/** What the gateway enqueues for a worker: everything the worker needs, nothing it must look up. */
export interface CommandEnvelope {
  /** Unique per accepted POST; the worker's idempotency key. */
  requestId: string;
  /** The connection whose stream receives the results. */
  connectionId: string;
  tokenId: string;
  tokenType: TokenType;
  tools?: string[];
  message: ClientMessage;
  /** Epoch ms when the gateway accepted the command (for latency metrics). */
  enqueuedAt: number;
}
