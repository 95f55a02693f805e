import { randomUUID } from 'node:crypto';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { CommandEnvelope } from '../../shared/types';

/**
 * How a tool handler learns which command it runs for (its idempotency key).
 *
 * Both APIs' commands (the seed dispatcher and the MCP session servers) pass the command's
 * requestId in the in-process transport's per-message extra, as `authInfo.extra.requestId`
 * (the SDK hands `authInfo` to handlers as `extra.authInfo`). It travels beside the JSON-RPC
 * message, not inside it, so a client cannot forge it through `params._meta`. A server used
 * without it (tests, fixtures) keys on the session id + JSON-RPC id, else a random key.
 */
export interface CommandAuthExtra {
  requestId: string;
  /** The seed connection (absent on MCP transport commands, which carry a session). */
  connectionId?: string;
  sessionId?: string;
  tokenType: CommandEnvelope['tokenType'];
  /** The token's tool allow-list, when it has one (resource reads follow the read tools'). */
  tools?: string[];
}

/** The AuthInfo the in-process transport attaches to a command's messages. */
export function authInfoForCommand(command: CommandEnvelope): AuthInfo {
  const extra: CommandAuthExtra = {
    requestId: command.requestId,
    ...(command.mcp
      ? { sessionId: command.mcp.sessionId }
      : { connectionId: command.connectionId }),
    tokenType: command.tokenType,
    ...(command.tools ? { tools: command.tools } : {}),
  };
  // The raw JWT does not travel with commands; the gateway verified it already.
  return { token: '', clientId: command.sub, scopes: [command.tokenType], extra: { ...extra } };
}

export interface HandlerContext {
  authInfo?: AuthInfo;
  sessionId?: string;
  requestId: string | number;
}

export function idempotencyKeyOf(extra: HandlerContext): string {
  const fromTransport = extra.authInfo?.extra?.requestId;
  if (typeof fromTransport === 'string' && fromTransport.length > 0) return fromTransport;
  if (extra.sessionId) return `${extra.sessionId}:${String(extra.requestId)}`;
  return randomUUID();
}

/**
 * The token (sub) a write counts against for the backlog quotas: the command's sub, which
 * the transport passes as authInfo.clientId. Callers without one share the anonymous quota.
 */
export function ownerOf(extra: HandlerContext): string {
  return extra.authInfo?.clientId ?? '';
}

/**
 * The token's tool allow-list as the transport passed it; undefined when the token has none
 * (or the server runs without a transport's auth: tests, fixtures).
 */
export function toolAllowListOf(extra: HandlerContext): string[] | undefined {
  const tools = extra.authInfo?.extra?.tools;
  return Array.isArray(tools) && tools.every((t) => typeof t === 'string') ? tools : undefined;
}
