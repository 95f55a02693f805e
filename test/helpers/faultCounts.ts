import { compareEventIds } from '../../shared/engine/eventId';
import { parseEventId } from '../../gateway/seed/cursor';
import type { ReceivedEvent } from './sseClient';

/** How many times each value occurs: `{ "202": 410, "503": 12 }`. */
export function histogram(values: (number | string)[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

/** What one client got of a sequence of numbered messages, in arrival order. */
export interface SequenceCount {
  /** Distinct numbers received. */
  delivered: number;
  /** Arrivals of a number already received. */
  duplicates: number;
  /** Arrivals of a number lower than the one before it. */
  reordered: number;
  /** Expected numbers never received. */
  lost: number[];
}

/** Counts `received` (numbers in arrival order) against `expected` (the accepted ones). */
export function countSequence(received: number[], expected: number[]): SequenceCount {
  const seen = new Set<number>();
  let duplicates = 0;
  let reordered = 0;
  received.forEach((n, i) => {
    if (seen.has(n)) duplicates++;
    else if (i > 0 && n < received[i - 1]) reordered++;
    seen.add(n);
  });
  return {
    delivered: seen.size,
    duplicates,
    reordered,
    lost: expected.filter((n) => !seen.has(n)),
  };
}

/**
 * Events whose SSE id moved a topic's position backwards or not at all (README, Event ids: each
 * id holds the position in the connection topic and in the token-type topic): an event of a
 * topic must move that topic's part forward, and no event may move either part back.
 */
export function cursorRegressions(
  events: ReceivedEvent[],
  topicOf: (e: ReceivedEvent) => 'connection' | 'tokenType' | undefined,
): number {
  let regressions = 0;
  let previous: { connection: string; tokenType: string } | undefined;
  for (const e of events) {
    const cursor = parseEventId(e.id)?.cursor;
    if (!cursor) continue;
    if (previous) {
      const own = topicOf(e);
      for (const part of ['connection', 'tokenType'] as const) {
        const order = compareEventIds(cursor[part], previous[part]);
        if (order < 0 || (order === 0 && own === part)) regressions++;
      }
    }
    previous = cursor;
  }
  return regressions;
}
