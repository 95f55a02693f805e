import type { RequestHandler } from 'express';
import { MemoryStore, ipKeyGenerator, rateLimit } from 'express-rate-limit';
import type { Config } from '../../shared/config';
import { errors } from '../../shared/errors';
import { optionalClaimsOf } from './auth';

export interface RateLimiter {
  middleware: RequestHandler;
  /** Stops the store's reset timer. */
  close(): void;
}

/**
 * RATE_LIMIT_MAX requests per RATE_LIMIT_WINDOW_MS per token sub (per client IP for requests
 * without a valid token), counted on this pod. Runs after `authenticate`.
 */
export function createRateLimiter(config: Config): RateLimiter {
  const store = new MemoryStore();
  const middleware = rateLimit({
    windowMs: config.rateLimitWindowMs,
    limit: config.rateLimitMax,
    store,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: (req, res) => {
      const claims = optionalClaimsOf(res);
      return claims ? `sub:${claims.sub}` : `ip:${ipKeyGenerator(req.ip ?? '')}`;
    },
    handler: (_req, res, next) => {
      const retryAfter = Number(res.getHeader('Retry-After'));
      next(
        errors.rateLimited(
          retryAfter > 0 ? retryAfter : Math.ceil(config.rateLimitWindowMs / 1000),
        ),
      );
    },
    // Behind a load balancer X-Forwarded-For is expected; the key is the sub whenever there is one.
    validate: { xForwardedForHeader: false },
  });
  return { middleware, close: () => store.shutdown() };
}
