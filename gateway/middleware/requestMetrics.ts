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
    res.locals.startedAt = started;
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      const route = routeOf(req);
      const status = String(res.statusCode);
      metrics.httpRequests.inc({ route, method: req.method, status });
      const seconds = (performance.now() - started) / 1000;
      // A stream's duration is observed when its headers go out (see markStreamStarted).
      if (!res.locals.streaming) metrics.httpDuration.observe({ route }, seconds);
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
    res.once('finish', record);
    res.once('close', record);
    next();
  };
}

/** Records the time to first byte of an SSE stream, which lasts for as long as the client stays. */
export function markStreamStarted(req: Request, res: Response, metrics: Metrics): void {
  res.locals.streaming = true;
  const started = res.locals.startedAt as number | undefined;
  if (started !== undefined) {
    metrics.httpDuration.observe({ route: routeOf(req) }, (performance.now() - started) / 1000);
  }
}

function routeOf(req: Request): string {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' ? req.baseUrl + path : 'unmatched';
}
