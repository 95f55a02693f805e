import type { JSONRPCNotification } from '@modelcontextprotocol/sdk/types.js';
import type { KeyValueStore } from '../../shared/engine/engine';
import { MCP_LOG_LEVELS, mcpNames, type McpSessionRecord } from '../../shared/mcpTransports';
import { RPC_ERRORS, type ErrorDetail } from '../../shared/protocol';

/**
 * A 2025 session's logging level (`logging/setLevel`), kept in the session record in the engine:
 * any worker serving the session's next call, or rebuilding its server, applies the level the
 * client set on whichever pod and worker it set it. The 2025 revisions name no default: until
 * the client sets one, every message is sent (as the SDK's own servers do).
 */

/** Why a `logging/setLevel` request's params are refused, or undefined when they are valid. */
export function setLevelRefusal(
  params: Record<string, unknown> | undefined,
): ErrorDetail | undefined {
  const level = params?.level;
  if (typeof level === 'string' && MCP_LOG_LEVELS.includes(level)) return undefined;
  return {
    code: RPC_ERRORS.invalidParams,
    message: `Invalid params: level must be one of ${MCP_LOG_LEVELS.join(', ')}`,
  };
}

/** The level the session's client set, or undefined (none set, or the session is gone). */
export async function sessionLogLevel(
  kv: Pick<KeyValueStore, 'get'>,
  sessionId: string,
): Promise<string | undefined> {
  const json = await kv.get(mcpNames.sessionKey(sessionId));
  if (json === undefined) return undefined;
  const level = (JSON.parse(json) as McpSessionRecord).logLevel;
  return typeof level === 'string' && MCP_LOG_LEVELS.includes(level) ? level : undefined;
}

/**
 * Records the session's level in its record (kept alive by the session's requests, gone with
 * it). False when the session ended meanwhile: nothing is resurrected.
 */
export async function recordSessionLogLevel(
  kv: Pick<KeyValueStore, 'get' | 'set'>,
  sessionId: string,
  level: string,
  sessionTtlMs: number,
): Promise<boolean> {
  const key = mcpNames.sessionKey(sessionId);
  const json = await kv.get(key);
  if (json === undefined) return false;
  const record: McpSessionRecord = { ...(JSON.parse(json) as McpSessionRecord), logLevel: level };
  return kv.set(key, JSON.stringify(record), sessionTtlMs, 'ifPresent');
}

/**
 * Whether a notification of a session's running call goes to the client: a log message only at
 * or above the session's level (every one when none is set); anything else always.
 */
export function passesSessionLevel(
  notification: JSONRPCNotification,
  level: string | undefined,
): boolean {
  if (notification.method !== 'notifications/message' || level === undefined) return true;
  const severity = MCP_LOG_LEVELS.indexOf(String(notification.params?.level));
  return severity >= MCP_LOG_LEVELS.indexOf(level);
}
