import type { JSONRPCNotification } from '@modelcontextprotocol/sdk/types.js';
import type { Engine } from '../../shared/engine/engine';
import type { Logger } from '../../shared/logger';
import {
  CHANGE_EVENT,
  CHANGE_NOTIFICATIONS,
  SPENT_STREAM_TTL_MS,
  mcpNames,
  type McpChange,
} from '../../shared/mcpTransports';

/** Whether a server notification is a change for listen streams (list changed, resource updated). */
export function isChangeNotification(notification: JSONRPCNotification): boolean {
  return CHANGE_NOTIFICATIONS[notification.method] !== undefined;
}

/**
 * Puts a change a server emitted (on this worker, in any of its servers: the seed API's, a
 * session's, the 2026-07-28 one) on mcpNames.changesTopic, where every gateway process hears it
 * for its subscriptions/listen streams. Live only: a stream gets what happens while it is open.
 */
export function publishChange(
  engine: Pick<Engine, 'publish'>,
  notification: JSONRPCNotification,
): Promise<string> {
  const change: McpChange = {
    method: notification.method,
    ...(notification.params ? { params: notification.params as Record<string, unknown> } : {}),
  };
  return engine.publish(mcpNames.changesTopic, CHANGE_EVENT, JSON.stringify(change), {
    historyTtlMs: SPENT_STREAM_TTL_MS,
  });
}

/**
 * A transport's onServerNotification: the changes among a server's notifications about no
 * request are published (a failure is logged: the server does not wait on it).
 */
export function changePublisher(
  engine: Pick<Engine, 'publish'>,
  logger: Logger,
): (notification: JSONRPCNotification) => void {
  return (notification) => {
    if (!isChangeNotification(notification)) return;
    publishChange(engine, notification).catch((err: unknown) =>
      logger.warn('change notification not published', {
        method: notification.method,
        error: err instanceof Error ? err.message : String(err),
      }),
    );
  };
}
