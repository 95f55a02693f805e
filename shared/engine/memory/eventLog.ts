import type { EngineEvent, HistoryPage } from '../engine';
import { ZERO_EVENT_ID, compareEventIds } from '../eventId';
import { Fifo } from './fifo';
import { StreamIdGenerator } from './streamId';

/** One topic's capped history, like one Redis stream trimmed with an exact MAXLEN. */
class TopicHistory {
  readonly ids = new StreamIdGenerator();
  readonly events = new Fifo<EngineEvent>();
  lastId = ZERO_EVENT_ID;
  /** Newest id trimmed away (Redis: max-deleted-entry-id); tells readers they missed events. */
  maxDeletedId = ZERO_EVENT_ID;
  expiresAt = 0;
}

/**
 * Histories of every topic. Topics not published to for `ttlMs` (or the TTL given with their
 * last publish) are forgotten, as a Redis key with EXPIRE refreshed on each publish would be.
 * The map is kept in last-publish order (re-inserted on publish), so forgetting idle topics
 * only looks at the oldest ones (an expired topic behind a live one is dropped when read).
 */
export class EventLog {
  private readonly topics = new Map<string, TopicHistory>();

  constructor(
    private readonly maxLen: number,
    private readonly ttlMs: number,
  ) {}

  /** Topics currently held (for tests). */
  get topicCount(): number {
    return this.topics.size;
  }

  /** `ttlMs`: this topic's history lifetime from now, instead of the log's. */
  append(topic: string, event: string, data: string, now: number, ttlMs = this.ttlMs): EngineEvent {
    this.forgetIdleTopics(now);
    let history = this.topics.get(topic);
    if (history) this.topics.delete(topic);
    else history = new TopicHistory();
    this.topics.set(topic, history);
    history.expiresAt = now + ttlMs;

    const id = history.ids.next(now);
    // Frozen: the same object goes to history and to every listener, none may alter it.
    const entry: EngineEvent = Object.freeze({ topic, id, event, data });
    history.lastId = id;
    history.events.push(entry);
    while (history.events.length > this.maxLen) {
      history.maxDeletedId = (history.events.shift() as EngineEvent).id;
    }
    return entry;
  }

  read(topic: string, afterId: string, limit: number, now: number): HistoryPage {
    const history = this.liveTopic(topic, now);
    if (!history) {
      // Nothing is known of the topic: a reader who had seen some of it has lost the rest.
      return { events: [], truncated: compareEventIds(afterId, ZERO_EVENT_ID) > 0 };
    }
    const truncated = compareEventIds(afterId, history.maxDeletedId) < 0;
    const events = history.events;
    const start = firstIndexAfter(events, afterId);
    const end = Math.min(events.length, start + Math.max(0, limit));
    const page: EngineEvent[] = [];
    for (let i = start; i < end; i += 1) page.push(events.at(i));
    return { events: page, truncated };
  }

  lastId(topic: string, now: number): string {
    return this.liveTopic(topic, now)?.lastId ?? ZERO_EVENT_ID;
  }

  private liveTopic(topic: string, now: number): TopicHistory | undefined {
    const history = this.topics.get(topic);
    if (history && this.isIdle(history, now)) {
      this.topics.delete(topic);
      return undefined;
    }
    return history;
  }

  private isIdle(history: TopicHistory, now: number): boolean {
    return now >= history.expiresAt;
  }

  private forgetIdleTopics(now: number): void {
    for (const [topic, history] of this.topics) {
      if (!this.isIdle(history, now)) break;
      this.topics.delete(topic);
    }
  }
}

/** Binary search: index of the first event whose id is greater than `afterId`. */
function firstIndexAfter(events: Fifo<EngineEvent>, afterId: string): number {
  let low = 0;
  let high = events.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (compareEventIds(events.at(mid).id, afterId) <= 0) low = mid + 1;
    else high = mid;
  }
  return low;
}
