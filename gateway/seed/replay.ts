import type { Engine, EngineEvent, HistoryPage } from '../../shared/engine/engine';
import { historyPages } from '../../shared/engine/history';
import { topics } from '../../shared/protocol';
import type { TokenType } from '../../shared/types';
import { isAfter, type StreamCursor } from './cursor';

export interface ReplayEvent {
  /** True for a broadcast of the token-type topic, false for the connection's own topic. */
  fromTypeTopic: boolean;
  ev: EngineEvent;
}

export interface Replay {
  /** Both topics' events after the cursor, merged in id order. */
  events: ReplayEvent[];
  /** Retention dropped some of what the connection missed. */
  truncated: boolean;
}

/** What a connection missed after `cursor`, from its own topic and its token type's topic. */
export async function readMissed(
  engine: Pick<Engine, 'readHistory'>,
  conn: { connectionId: string; tokenType: TokenType },
  cursor: StreamCursor,
): Promise<Replay> {
  const [own, typed] = await Promise.all([
    readAll(engine, topics.connection(conn.connectionId), cursor.connection),
    readAll(engine, topics.tokenType(conn.tokenType), cursor.tokenType),
  ]);
  const events: ReplayEvent[] = [];
  let i = 0;
  let j = 0;
  while (i < own.events.length || j < typed.events.length) {
    const takeOwn =
      j >= typed.events.length ||
      (i < own.events.length && !isAfter(own.events[i].id, typed.events[j].id));
    const ev = takeOwn ? own.events[i++] : typed.events[j++];
    events.push({ fromTypeTopic: !takeOwn, ev });
  }
  return { events, truncated: own.truncated || typed.truncated };
}

async function readAll(
  engine: Pick<Engine, 'readHistory'>,
  topic: string,
  afterId: string,
): Promise<{ events: EngineEvent[]; truncated: boolean }> {
  const events: EngineEvent[] = [];
  let truncated = false;
  for await (const page of historyPages(engine, topic, afterId)) {
    truncated ||= page.truncated;
    events.push(...page.events);
  }
  return { events, truncated };
}

interface PendingRead {
  topic: string;
  afterId: string;
  limit: number;
  resolve(page: HistoryPage): void;
  reject(error: unknown): void;
}

/**
 * engine.readHistory, with identical reads asked for in the same turn of the event loop sent
 * once and their page shared: after a pod's death thousands of resumes read their token type's
 * topic from the same cursor (the last broadcast they saw), in the turns where their
 * subscriptions are confirmed. The read is sent when the turn ends, so after every caller's
 * subscription was confirmed: none misses an event published in between.
 */
export class SharedHistoryReads implements Pick<Engine, 'readHistory'> {
  private batch = new Map<string, { promise: Promise<HistoryPage>; read: PendingRead }>();

  constructor(private readonly engine: Pick<Engine, 'readHistory'>) {}

  readHistory(topic: string, afterId: string, limit: number): Promise<HistoryPage> {
    const key = `${limit} ${afterId} ${topic}`;
    const pending = this.batch.get(key);
    if (pending) return pending.promise;
    let read!: PendingRead;
    const promise = new Promise<HistoryPage>((resolve, reject) => {
      read = { topic, afterId, limit, resolve, reject };
    });
    if (this.batch.size === 0) process.nextTick(() => this.flush());
    this.batch.set(key, { promise, read });
    return promise;
  }

  private flush(): void {
    const batch = this.batch;
    this.batch = new Map();
    for (const { read } of batch.values()) {
      this.engine.readHistory(read.topic, read.afterId, read.limit).then(read.resolve, read.reject);
    }
  }
}
