import { engineErrors } from '../../errors';
import { exceedsBytes, truncate } from '../../text';
import type {
  EventListener,
  EventPort,
  HistoryPage,
  PublishOptions,
  Subscription,
} from '../engine';
import { isEventId } from '../eventId';
import type { EngineGate } from '../gate';
import { assertPositiveTtl } from '../limits';
import type { EventLog } from './eventLog';
import type { ExpiringSet } from './expiringSet';
import type { LocalPubSub } from './pubSub';

/** The memory engine's event port: each topic's history, and delivery to subscribers. */
export class MemoryEvents implements EventPort {
  constructor(
    private readonly log: EventLog,
    private readonly pubSub: LocalPubSub,
    /** Shared with the command port: a final publish marks its request processed. */
    private readonly processed: ExpiringSet,
    private readonly eventMaxBytes: number,
    private readonly gate: EngineGate,
  ) {}

  async publish(
    topic: string,
    event: string,
    data: string,
    options?: PublishOptions,
  ): Promise<string> {
    this.gate.assertOpen();
    const bytes = exceedsBytes(data, this.eventMaxBytes);
    if (bytes !== undefined) throw engineErrors.eventTooLarge(bytes, this.eventMaxBytes);
    const entry = this.log.append(topic, event, data, Date.now(), options?.historyTtlMs);
    if (options?.completesRequest) this.processed.add(options.completesRequest, Date.now());
    this.pubSub.deliver(entry);
    return entry.id;
  }

  async capHistoryTtl(topic: string, ttlMs?: number): Promise<void> {
    if (ttlMs !== undefined) assertPositiveTtl(ttlMs);
    this.log.capTtl(topic, ttlMs === undefined ? undefined : Math.round(ttlMs), Date.now());
  }

  async subscribe(topics: string[], listener: EventListener): Promise<Subscription> {
    this.gate.assertOpen();
    return this.pubSub.subscribe(topics, listener);
  }

  async readHistory(topic: string, afterId: string, limit: number): Promise<HistoryPage> {
    if (!isEventId(afterId))
      throw engineErrors.invalidArgument(`Invalid event id: ${truncate(afterId)}`);
    return this.log.read(topic, afterId, limit, Date.now());
  }

  async lastEventId(topic: string): Promise<string> {
    return this.log.lastId(topic, Date.now());
  }
}
