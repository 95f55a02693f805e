import type { JSONRPCNotification } from '@modelcontextprotocol/sdk/types.js';
import type { Engine } from '../../shared/engine/engine';
import type { Logger } from '../../shared/logger';
import {
  CHANGE_EVENT,
  CHANGE_NOTIFICATIONS,
  SPENT_STREAM_TTL_MS,
  SUBSCRIPTIONS_EVENT,
  mcpNames,
  type McpChange,
  type McpSubscriptionsChanged,
} from '../../shared/mcpTransports';

/** Whether a server notification is a change for listen streams (list changed, resource updated). */
export function isChangeNotification(notification: JSONRPCNotification): boolean {
  return CHANGE_NOTIFICATIONS[notification.method] !== undefined;
}

/**
 * Puts a change a server emitted (on this worker, in any of its servers: the seed API's, a
 * session's, the 2026-07-28 one) on mcpNames.changesTopic, where every gateway process hears it
 * for its subscriptions/listen streams and the 2025 sessions' GET streams it holds. Live only:
 * a stream gets what happens while it is open.
 */
export function publishChange(
  engine: Pick<Engine, 'publish'>,
  notification: JSONRPCNotification,
): Promise<string> {
  return publishChanges(engine, [changeOf(notification)]);
}

/** Several changes in one event (an array; one change alone is published as itself). */
function publishChanges(engine: Pick<Engine, 'publish'>, changes: McpChange[]): Promise<string> {
  const data = JSON.stringify(changes.length === 1 ? changes[0] : changes);
  return engine.publish(mcpNames.changesTopic, CHANGE_EVENT, data, {
    historyTtlMs: SPENT_STREAM_TTL_MS,
  });
}

/** Tells every gateway that a 2025 session's resource subscriptions changed (its GET stream's pod reads them again). */
export function publishSubscriptionsChanged(
  engine: Pick<Engine, 'publish'>,
  sessionId: string,
): Promise<string> {
  const payload: McpSubscriptionsChanged = { sessionId };
  return engine.publish(mcpNames.changesTopic, SUBSCRIPTIONS_EVENT, JSON.stringify(payload), {
    historyTtlMs: SPENT_STREAM_TTL_MS,
  });
}

/**
 * A transport's onServerNotification: the changes among a server's notifications about no
 * request are published (a failure is logged: the server does not wait on it). What the server
 * emits together (one task of the event loop: an entity change's resources and the list) goes
 * as one event, whatever the number of listeners, duplicates dropped.
 */
export function changePublisher(
  engine: Pick<Engine, 'publish'>,
  logger: Logger,
): (notification: JSONRPCNotification) => void {
  let batch: Map<string, McpChange> | undefined;
  const flush = () => {
    const changes = [...(batch?.values() ?? [])];
    batch = undefined;
    publishChanges(engine, changes).catch((err: unknown) =>
      logger.warn('change notification not published', {
        methods: [...new Set(changes.map((c) => c.method))],
        error: err instanceof Error ? err.message : String(err),
      }),
    );
  };
  return (notification) => {
    if (!isChangeNotification(notification)) return;
    const change = changeOf(notification);
    if (!batch) {
      batch = new Map();
      setImmediate(flush);
    }
    batch.set(JSON.stringify(change), change);
  };
}

function changeOf(notification: JSONRPCNotification): McpChange {
  return {
    method: notification.method,
    ...(notification.params ? { params: notification.params as Record<string, unknown> } : {}),
  };
}
