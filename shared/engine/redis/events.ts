import type {
  EventListener,
  EventPort,
  HistoryPage,
  PublishOptions,
  Subscription,
} from '../engine';
import { engineErrors } from '../../errors';
import type { EngineGate } from '../gate';
import { assertPositiveTtl } from '../limits';
import { unavailable } from './connections';
import type { EventLog } from './eventLog';
import type { RedisKeys } from './keys';
import type { Subscriber } from './pubSub';

/** The Redis engine's event port: each topic's history stream, and this process's subscriber. */
export class RedisEvents implements EventPort {
  constructor(
    private readonly log: EventLog,
    private readonly subscriber: Subscriber,
    private readonly keys: RedisKeys,
    private readonly gate: EngineGate,
  ) {}

  publish(topic: string, event: string, data: string, options?: PublishOptions): Promise<string> {
    if (this.gate.closed) return Promise.reject(engineErrors.unavailable('Engine is closed'));
    const completes = options?.completesRequest;
    return this.log.publish(
      topic,
      event,
      data,
      completes && this.keys.processed(completes),
      options?.historyTtlMs,
    );
  }

  async capHistoryTtl(topic: string, ttlMs?: number): Promise<void> {
    if (ttlMs !== undefined) assertPositiveTtl(ttlMs);
    try {
      await this.log.capTtl(topic, ttlMs);
    } catch (error) {
      throw unavailable('History TTL not set', error);
    }
  }

  async subscribe(topics: string[], listener: EventListener): Promise<Subscription> {
    this.gate.assertOpen();
    try {
      return await this.subscriber.subscribe(topics, listener);
    } catch (error) {
      throw unavailable('Subscription failed', error);
    }
  }

  readHistory(topic: string, afterId: string, limit: number): Promise<HistoryPage> {
    return this.log.readHistory(topic, afterId, limit);
  }

  lastEventId(topic: string): Promise<string> {
    return this.log.lastEventId(topic);
  }
}
