/**
 * Event ids within a topic are `<ms>-<seq>` (the Redis stream id format, which the memory engine
 * copies), so both engines order and compare them the same way.
 */
export const ZERO_EVENT_ID = '0-0';

const EVENT_ID = /^(\d{1,16})-(\d{1,16})$/;

export function isEventId(id: string): boolean {
  return EVENT_ID.test(id);
}

/** Negative when a < b, 0 when equal, positive when a > b. Both must be valid ids. */
export function compareEventIds(a: string, b: string): number {
  const [am, as] = splitId(a);
  const [bm, bs] = splitId(b);
  return am !== bm ? am - bm : as - bs;
}

function splitId(id: string): [number, number] {
  const dash = id.indexOf('-');
  return [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
}
