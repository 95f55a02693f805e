import { Router } from 'express';
import { errors } from '../../shared/errors';
import { claimsOf } from '../middleware/auth';
import { markStreamStarted } from '../middleware/requestMetrics';
import { parseEventId, type ParsedEventId } from '../seed/cursor';
import { parseEventFilter } from '../seed/eventFilter';
import { guarded, type RouteContext } from './context';

/**
 * GET /mcp/sse: opens an event stream (Bearer header, or ?token= for browsers' EventSource).
 * With `Last-Event-ID` (or ?lastEventId= for clients that cannot set headers) it resumes that
 * connection, on any pod. `?events=a,b` (or `X-SSE-Events: a,b`) limits the stream to those
 * event types (see eventFilter.ts); a resume repeats it, as EventSource does with its URL.
 */
export function sseRoutes(ctx: RouteContext): Router {
  const router = Router();
  ctx.hotRoutes.get(router, '/mcp/sse', [
    ...guarded(ctx, { allowQueryToken: true }),
    async (req, res) => {
      const clientIP = req.ip ?? req.socket.remoteAddress ?? 'unknown';
      await ctx.hub.open(
        res,
        claimsOf(res),
        clientIP,
        resumePoint(req.get('Last-Event-ID'), req.query.lastEventId),
        parseEventFilter(req.get('X-SSE-Events'), req.query.events),
      );
      if (res.headersSent) markStreamStarted(res);
    },
  ]);
  return router;
}

/** The header wins over the query parameter; empty means none. Throws 400 when unparseable. */
function resumePoint(header: string | undefined, query: unknown): ParsedEventId | undefined {
  const text = header?.trim() || (typeof query === 'string' ? query.trim() : '');
  if (!text) return undefined;
  const parsed = text.length <= 256 ? parseEventId(text) : undefined;
  if (!parsed) {
    throw errors.badRequest(
      'Last-Event-ID is not an event id of this gateway (<connectionId>_<ms>-<seq>_<ms>-<seq>)',
    );
  }
  return parsed;
}
