/**
 * SSE wire format. An event is built in two parts: the per-connection `id:` line and the body
 * (`event:` + `data:` lines + blank line), so a broadcast's body is built once and shared.
 */

/** Event names a client may choose for a broadcast (and the only ones written to the wire). */
export const SAFE_EVENT_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

const LINE_BREAK = /\r\n|\r|\n/;

/** The event name written to the wire for `event` (unsafe names become `message`). */
export function wireEventName(event: string): string {
  return SAFE_EVENT_NAME.test(event) ? event : 'message';
}

/** `event: <name>\ndata: <data>\n\n`; data with line breaks becomes several `data:` lines. */
export function eventBody(event: string, data: string): string {
  const name = wireEventName(event);
  // JSON.stringify never emits raw line breaks, so the split is the rare path.
  if (!LINE_BREAK.test(data)) return `event: ${name}\ndata: ${data}\n\n`;
  return `event: ${name}\ndata: ${data.split(LINE_BREAK).join('\ndata: ')}\n\n`;
}

/** `id: <id>\n`, the only per-connection bytes of an event. */
export function idLine(id: string): string {
  return `id: ${id}\n`;
}

/**
 * The response headers of every seed SSE stream: the original document's, plus proxy buffering
 * off, with `Connection: close` as the body is delimited by the connection's end (no chunks).
 */
export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache',
  Connection: 'close',
  'X-Accel-Buffering': 'no',
  'Access-Control-Allow-Headers':
    'Authorization, Cache-Control, Content-Type, Last-Event-ID, X-SSE-Events',
  'Access-Control-Allow-Methods': 'GET, OPTIONS',
});
