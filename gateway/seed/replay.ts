import type { Engine, EngineEvent } from '../../shared/engine/engine';
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
