import type { EngineEvent, HistoryPage } from '../engine';
import { ZERO_EVENT_ID, compareEventIds } from '../eventId';
import { Fifo } from './fifo';
import { StreamIdGenerator } from './streamId';

/** One topic's capped history, like one Redis stream trimmed with an exact MAXLEN. */
class TopicHistory {
  readonly ids = new StreamIdGenerator();
  readonly events = new Fifo<EngineEvent>();
  /** UTF-8 bytes of each event's name and data, beside `events`. */
  readonly sizes = new Fifo<number>();
  bytes = 0;
  lastId = ZERO_EVENT_ID;
  /** Newest id trimmed away (Redis: max-deleted-entry-id); tells readers they missed events. */
  maxDeletedId = ZERO_EVENT_ID;
  expiresAt = 0;
  /** The TTL class it is listed in (see EventLog.byTtl). */
  ttlMs = 0;
  /** Cap on its TTL (capHistoryTtl), undefined when none. */
  capMs?: number;
}

/**
 * Histories of every topic, capped by count and by bytes. Topics not published to for their
 * TTL (the log's, or the one given with their last publish, or their cap) are forgotten, as a
 * Redis key with PEXPIRE refreshed on each publish would be. Topics are listed by TTL: within
 * one TTL, in last-touch order, so expiry order too, and forgetting idle topics only looks at
 * the oldest of each list (a handful of distinct TTLs: the log's, MCP streams', resume windows).
 */
export class EventLog {
  private readonly topics = new Map<string, TopicHistory>();
  private readonly byTtl = new Map<number, Map<string, TopicHistory>>();

  constructor(
    private readonly maxLen: number,
    private readonly ttlMs: number,
    private readonly maxBytes = Infinity,
  ) {}

  /** Topics currently held (for tests). */
  get topicCount(): number {
    return this.topics.size;
  }

  /** `ttlMs`: this topic's history lifetime from now, instead of the log's. */
  append(topic: string, event: string, data: string, now: number, ttlMs = this.ttlMs): EngineEvent {
    this.forgetIdleTopics(now);
    const history = this.topics.get(topic) ?? new TopicHistory();
    this.topics.set(topic, history);
    this.keep(topic, history, Math.min(ttlMs, history.capMs ?? Infinity), now);

    const id = history.ids.next(now);
    // Frozen: the same object goes to history and to every listener, none may alter it.
    const entry: EngineEvent = Object.freeze({ topic, id, event, data });
    const size = Buffer.byteLength(event) + Buffer.byteLength(data);
    history.lastId = id;
    history.events.push(entry);
    history.sizes.push(size);
    history.bytes += size;
    // Oldest first: past the count, or past the bytes (the newest event always stays).
    while (
      history.events.length > this.maxLen ||
      (history.bytes > this.maxBytes && history.events.length > 1)
    ) {
      history.maxDeletedId = (history.events.shift() as EngineEvent).id;
      history.bytes -= history.sizes.shift() as number;
    }
    return entry;
  }

  /** See Engine.capHistoryTtl. */
  capTtl(topic: string, capMs: number | undefined, now: number): void {
    this.forgetIdleTopics(now);
    const history = this.liveTopic(topic, now);
    if (capMs === undefined) {
      if (!history) return;
      history.capMs = undefined;
      if (!isPlaceholder(history)) this.keep(topic, history, this.ttlMs, now);
      else this.forget(topic, history);
      return;
    }
    const capped = history ?? new TopicHistory();
    this.topics.set(topic, capped);
    capped.capMs = capMs;
    this.keep(topic, capped, capMs, now);
  }

  read(topic: string, afterId: string, limit: number, now: number): HistoryPage {
    const history = this.liveTopic(topic, now);
    if (!history || isPlaceholder(history)) {
      // Nothing is known of the topic: a reader who had seen some of it has lost the rest.
      return { events: [], truncated: compareEventIds(afterId, ZERO_EVENT_ID) > 0 };
    }
    const events = history.events;
    const start = firstIndexAfter(events, afterId);
    // Retention dropped events after afterId, or the history does not hold the event at afterId
    // (a reader's position this history never gave out): it cannot vouch for what followed.
    const truncated =
      compareEventIds(afterId, history.maxDeletedId) < 0 ||
      (compareEventIds(afterId, history.maxDeletedId) > 0 &&
        (start === 0 || events.at(start - 1).id !== afterId));
    const end = Math.min(events.length, start + Math.max(0, limit));
    const page: EngineEvent[] = [];
    for (let i = start; i < end; i += 1) page.push(events.at(i));
    return { events: page, truncated };
  }

  lastId(topic: string, now: number): string {
    return this.liveTopic(topic, now)?.lastId ?? ZERO_EVENT_ID;
  }

  /** Restarts the topic's TTL and lists it last among the topics of that TTL. */
  private keep(topic: string, history: TopicHistory, ttlMs: number, now: number): void {
    this.unlist(topic, history);
    let list = this.byTtl.get(ttlMs);
    if (!list) this.byTtl.set(ttlMs, (list = new Map()));
    list.set(topic, history);
    history.ttlMs = ttlMs;
    history.expiresAt = now + ttlMs;
  }

  private unlist(topic: string, history: TopicHistory): void {
    const list = this.byTtl.get(history.ttlMs);
    if (!list?.delete(topic)) return;
    if (list.size === 0) this.byTtl.delete(history.ttlMs);
  }

  private forget(topic: string, history: TopicHistory): void {
    this.unlist(topic, history);
    this.topics.delete(topic);
  }

  private liveTopic(topic: string, now: number): TopicHistory | undefined {
    const history = this.topics.get(topic);
    if (history && now >= history.expiresAt) {
      this.forget(topic, history);
      return undefined;
    }
    return history;
  }

  private forgetIdleTopics(now: number): void {
    for (const list of [...this.byTtl.values()]) {
      for (const [topic, history] of list) {
        if (now < history.expiresAt) break;
        this.forget(topic, history);
      }
    }
  }
}

/** A topic only capped, never published to: no history (Redis: no stream, only the cap). */
function isPlaceholder(history: TopicHistory): boolean {
  return history.lastId === ZERO_EVENT_ID;
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
