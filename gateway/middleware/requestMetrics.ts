import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from '../../shared/logger';
import type { Metrics } from '../../shared/metrics';

/**
 * Counts every request by route pattern (not the raw path: bounded labels) and logs it at `http`
 * level, with the path only: a query string may hold a token.
 */
export function requestMetrics(metrics: Metrics, logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      const route = routeOf(req);
      const status = String(res.statusCode);
      metrics.httpRequests.inc({ route, method: req.method, status });
      const seconds = (performance.now() - started) / 1000;
      metrics.httpDuration.observe({ route }, seconds);
      if (logger.isLevelEnabled('http')) {
        logger.http('HTTP request', {
          method: req.method,
          route,
          path: req.path,
          status: res.statusCode,
          durationMs: Math.round(seconds * 1000),
        });
      }
    };
    res.locals.recordRequest = record;
    res.once('finish', record);
    res.once('close', record);
    next();
  };
}

/**
 * An SSE stream is counted and logged when its head goes out, its duration being the time to
 * first byte: it lasts as long as its client stays, and the SSE writer lets the response object
 * go after the head (no 'finish' or 'close' would come).
 */
export function markStreamStarted(res: Response): void {
  (res.locals.recordRequest as (() => void) | undefined)?.();
}

function routeOf(req: Request): string {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' ? req.baseUrl + path : 'unmatched';
}
