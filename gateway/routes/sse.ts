import { Router } from 'express';
import { claimsOf } from '../middleware/auth';
import { markStreamStarted } from '../middleware/requestMetrics';
import { guarded, type RouteContext } from './context';

/** GET /mcp/sse: opens an event stream (Bearer header, or ?token= for browsers' EventSource). */
export function sseRoutes(ctx: RouteContext): Router {
  const router = Router();
  router.get('/mcp/sse', ...guarded(ctx, { allowQueryToken: true }), async (req, res) => {
    const clientIP = req.ip ?? req.socket.remoteAddress ?? 'unknown';
    await ctx.hub.open(res, claimsOf(res), clientIP);
    if (res.headersSent) markStreamStarted(req, res, ctx.metrics);
  });
  return router;
}
