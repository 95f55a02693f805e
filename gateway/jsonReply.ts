import type { ServerResponse } from 'node:http';

/**
 * A JSON answer of a per-call route, written at once with what `res.json` would send (status,
 * `application/json; charset=utf-8`, Content-Length) but without its per-answer work: setting
 * lookups, a Buffer copy of the body, the freshness check. `text` is JSON already.
 */
export function replyJson(res: ServerResponse, status: number, text: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}
