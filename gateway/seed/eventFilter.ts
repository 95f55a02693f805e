import { errors } from '../../shared/errors';
import { SAFE_EVENT_NAME } from './frame';

/**
 * The seed event names a stream may be limited to. `connection-status` and the welcome are
 * written whatever the filter (they are the stream's own state); a heartbeat left out of the
 * filter is still sent, as an SSE comment: the stream stays alive through idle-timing proxies.
 */
export const FILTERABLE_EVENTS: readonly string[] = [
  'tool-result',
  'mcp-response',
  'mcp-error',
  'mcp-notification',
  'heartbeat',
  'connection-status',
];

/** How a broadcast's custom type is named in a filter: `broadcast:<type>` (typos of the names above stay 400s). */
export const BROADCAST_PREFIX = 'broadcast:';

const MAX_FILTER_LENGTH = 2048;

/** The wire event names a stream lets through; null: every event (no filter asked for). */
export type EventFilter = ReadonlySet<string> | null;

/**
 * Parses `?events=` or the `X-SSE-Events` header (the header wins): comma-separated names.
 * Throws a 400 naming the known events when a name is unknown.
 */
export function parseEventFilter(header: string | undefined, query: unknown): EventFilter {
  const text = header?.trim() || (typeof query === 'string' ? query.trim() : '');
  if (!text) return null;
  if (text.length > MAX_FILTER_LENGTH) {
    throw errors.badRequest(`The event filter is longer than ${MAX_FILTER_LENGTH} characters`);
  }
  const names = new Set<string>(['connection-status']);
  const unknown: string[] = [];
  for (const raw of text.split(',')) {
    const name = raw.trim();
    if (!name) continue;
    if (FILTERABLE_EVENTS.includes(name)) names.add(name);
    else if (
      name.startsWith(BROADCAST_PREFIX) &&
      SAFE_EVENT_NAME.test(name.slice(BROADCAST_PREFIX.length))
    )
      names.add(name.slice(BROADCAST_PREFIX.length));
    else unknown.push(name);
  }
  if (unknown.length > 0) {
    throw errors.badRequest(
      `Unknown event name(s) ${unknown.map((n) => JSON.stringify(n.slice(0, 80))).join(', ')} in the event filter; ` +
        `known: ${FILTERABLE_EVENTS.join(', ')}, or ${BROADCAST_PREFIX}<type> for a broadcast's custom type`,
    );
  }
  return names;
}
