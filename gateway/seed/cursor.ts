import { ZERO_EVENT_ID, compareEventIds, isEventId } from '../../shared/engine/eventId';

/**
 * Where a connection stands in the two topics it reads: its own connection topic (results,
 * errors, progress) and its token type's broadcast topic. Each part is an engine event id
 * (`<ms>-<seq>`, see shared/engine/eventId.ts); an event is new for the connection only when its
 * id is greater than the matching part.
 */
export interface StreamCursor {
  /** Last event delivered from topics.connection(connectionId). */
  connection: string;
  /** Last event delivered from topics.tokenType(tokenType). */
  tokenType: string;
}

/** The cursor of a connection that has seen nothing of either topic. */
export const START_CURSOR: Readonly<StreamCursor> = Object.freeze({
  connection: ZERO_EVENT_ID,
  tokenType: ZERO_EVENT_ID,
});

/** `<connectionTopicId>_<tokenTypeTopicId>`, e.g. `0-0_1732521600000-4`. */
export function formatCursor(cursor: StreamCursor): string {
  return `${cursor.connection}_${cursor.tokenType}`;
}

/** The cursor in a `formatCursor` string, or undefined when it is not one. */
export function parseCursor(text: string): StreamCursor | undefined {
  const sep = text.indexOf('_');
  if (sep < 0) return undefined;
  const connection = text.slice(0, sep);
  const tokenType = text.slice(sep + 1);
  return isEventId(connection) && isEventId(tokenType) ? { connection, tokenType } : undefined;
}

/**
 * The SSE `id:` of every event of a stream: `<connectionId>_<connectionTopicId>_<tokenTypeTopicId>`.
 * The connection id is part of it because a browser's EventSource reconnects to the same URL and
 * only adds `Last-Event-ID`: the id alone must name the connection to resume and where to resume.
 */
export function formatEventId(connectionId: string, cursor: StreamCursor): string {
  return `${connectionId}_${cursor.connection}_${cursor.tokenType}`;
}

export interface ParsedEventId {
  connectionId: string;
  cursor: StreamCursor;
}

const CONNECTION_ID = /^[A-Za-z0-9-]{1,64}$/;

/** The connection and cursor named by a `formatEventId` string (a Last-Event-ID), or undefined. */
export function parseEventId(text: string): ParsedEventId | undefined {
  const sep = text.indexOf('_');
  if (sep < 0) return undefined;
  const connectionId = text.slice(0, sep);
  const cursor = parseCursor(text.slice(sep + 1));
  return cursor && CONNECTION_ID.test(connectionId) ? { connectionId, cursor } : undefined;
}

// The last comparison: a broadcast's fan-out asks the same (id, position) of every connection.
let lastId = '';
let lastPosition = '';
let lastAfter = false;

/** True when `id` is after `position` (so not yet delivered). Both must be engine event ids. */
export function isAfter(id: string, position: string): boolean {
  if (id === position) return false;
  if (id !== lastId || position !== lastPosition) {
    lastId = id;
    lastPosition = position;
    lastAfter = compareEventIds(id, position) > 0;
  }
  return lastAfter;
}
