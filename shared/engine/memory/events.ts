import { engineErrors } from '../../errors';
import { exceedsBytes, truncate } from '../../text';
import type { EventPort } from '../engine';
import { isEventId } from '../eventId';
import type { EngineGate } from '../gate';
import { assertPositiveTtl } from '../limits';
import type { EventLog } from './eventLog';
import type { ExpiringSet } from './expiringSet';
import type { LocalPubSub } from './pubSub';

/**
 * The memory engine's event port: each topic's history, delivery to subscribers, and the
 * processed requests (shared with the command port) that a final publish marks.
 */
export function memoryEventPort(
  log: EventLog,
  pubSub: LocalPubSub,
  processed: ExpiringSet,
  eventMaxBytes: number,
  gate: EngineGate,
): EventPort {
  return {
    async publish(topic, event, data, options) {
      gate.assertOpen();
      const bytes = exceedsBytes(data, eventMaxBytes);
      if (bytes !== undefined) throw engineErrors.eventTooLarge(bytes, eventMaxBytes);
      const entry = log.append(topic, event, data, Date.now(), options?.historyTtlMs);
      if (options?.completesRequest) processed.add(options.completesRequest, Date.now());
      pubSub.deliver(entry);
      const copyTo = options?.copyTo;
      if (copyTo !== undefined && copyTo !== topic) pubSub.deliver(entry, copyTo);
      return entry.id;
    },

    async capHistoryTtl(topic, ttlMs) {
      if (ttlMs !== undefined) assertPositiveTtl(ttlMs);
      log.capTtl(topic, ttlMs === undefined ? undefined : Math.round(ttlMs), Date.now());
    },

    async subscribe(topics, listener) {
      gate.assertOpen();
      return pubSub.subscribe(topics, listener);
    },

    async readHistory(topic, afterId, limit) {
      if (!isEventId(afterId)) {
        throw engineErrors.invalidArgument(`Invalid event id: ${truncate(afterId)}`);
      }
      return log.read(topic, afterId, limit, Date.now());
    },

    async lastEventId(topic) {
      return log.lastId(topic, Date.now());
    },
  };
}
