import type { ServerResponse } from 'node:http';
import { jsonBodyFor } from './sse/compression';

/**
 * A JSON answer of a per-call route, written at once with what `res.json` would send (status,
 * `application/json; charset=utf-8`, Content-Length) but without its per-answer work: setting
 * lookups, a Buffer copy of the body, the freshness check. `text` is JSON already. Gzipped
 * from 1 KiB on when SSE_COMPRESSION=gzip and the client accepts it.
 */
export function replyJson(res: ServerResponse, status: number, text: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  const body = jsonBodyFor(res, text);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
