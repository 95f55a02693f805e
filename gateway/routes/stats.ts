import { Router } from 'express';
import { guarded, requireReady, type RouteContext } from './context';

/** GET /mcp/sse/stats (master): connection counts and ages for the whole cluster. */
export function statsRoutes(ctx: RouteContext): Router {
  const router = Router();
  router.get(
    '/mcp/sse/stats',
    ...guarded(ctx, { types: ['master'] }),
    requireReady(ctx.engine),
    async (_req, res) => {
      res.json(await ctx.engine.clusterStats());
    },
  );
  return router;
}
