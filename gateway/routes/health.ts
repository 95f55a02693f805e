import { Router } from 'express';
import { errors } from '../../shared/errors';
import type { RouteContext } from './context';

/** Probes and Prometheus: no token (they sit behind the cluster network, not the public API). */
export function healthRoutes(ctx: RouteContext): Router {
  const router = Router();
  router.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/ready', (_req, res) => {
    if (ctx.drain.active) throw errors.unavailable('Draining');
    if (!ctx.engine.isReady()) throw errors.unavailable('Event engine not ready');
    res.json({ status: 'ready' });
  });
  router.get('/metrics', async (_req, res) => {
    const body = await ctx.metrics.registry.metrics();
    res.set('Content-Type', ctx.metrics.registry.contentType).send(body);
  });
  return router;
}
