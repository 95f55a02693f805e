import type { RequestHandler } from 'express';
import { ipKeyGenerator } from 'express-rate-limit';
import type { Config } from '../../shared/config';
import type { Engine } from '../../shared/engine/engine';
import { errors } from '../../shared/errors';
import { optionalClaimsOf } from './auth';

/**
 * RATE_LIMIT_MAX requests per RATE_LIMIT_WINDOW_MS per token sub (per client IP for requests
 * without a valid token). The count lives in the engine: cluster-wide with Redis (every pod
 * adds to the same window), in this process with the memory engine. Runs after `authenticate`.
 * When the engine cannot count (Redis down), the request gets 503 at once, like every other
 * that needs the engine.
 *
 * The answer carries the IETF draft-7 headers (`RateLimit-Policy: <limit>;w=<window s>` and
 * `RateLimit: limit=.., remaining=.., reset=<s>`), a refusal 429 with Retry-After: what
 * express-rate-limit sends with `standardHeaders: 'draft-7'`, without its per-request awaits,
 * validations and debug calls (2-3% of a gateway's CPU on the per-call routes).
 */
export function createRateLimiter(
  config: Config,
  engine: Pick<Engine, 'counters' | 'isReady'>,
): RequestHandler {
  const windowMs = config.rateLimitWindowMs;
  const limit = config.rateLimitMax;
  const windowSeconds = Math.ceil(windowMs / 1000);
  const policy = `${limit};w=${windowSeconds}`;
  const unavailable = () => errors.unavailable('Event engine not ready');
  return (req, res, next) => {
    if (!engine.isReady()) return next(unavailable());
    const claims = optionalClaimsOf(res);
    // Behind a load balancer X-Forwarded-For is expected; the key is the sub whenever there is one.
    const key = claims ? `sub:${claims.sub}` : `ip:${ipKeyGenerator(req.ip ?? '')}`;
    engine.counters.add(key, windowMs).then(
      ({ hits, resetAt }) => {
        const resetSeconds = Math.max(0, Math.ceil((resetAt - Date.now()) / 1000));
        if (!res.headersSent) {
          res.setHeader('RateLimit-Policy', policy);
          const remaining = Math.max(limit - hits, 0);
          res.setHeader(
            'RateLimit',
            `limit=${limit}, remaining=${remaining}, reset=${resetSeconds}`,
          );
        }
        if (hits <= limit) return next();
        if (!res.headersSent) res.setHeader('Retry-After', String(resetSeconds));
        next(errors.rateLimited(resetSeconds > 0 ? resetSeconds : windowSeconds));
      },
      () => next(unavailable()),
    );
  };
}
