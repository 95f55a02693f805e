import type { RequestHandler } from 'express';
import { ipKeyGenerator, rateLimit, type Store } from 'express-rate-limit';
import type { Config } from '../../shared/config';
import type { Engine, WindowCounters } from '../../shared/engine/engine';
import { errors } from '../../shared/errors';
import { optionalClaimsOf } from './auth';

/**
 * RATE_LIMIT_MAX requests per RATE_LIMIT_WINDOW_MS per token sub (per client IP for requests
 * without a valid token). The count lives in the engine: cluster-wide with Redis (every pod
 * adds to the same window), in this process with the memory engine. Runs after `authenticate`.
 */
export function createRateLimiter(
  config: Config,
  engine: Pick<Engine, 'counters' | 'isReady'>,
): RequestHandler {
  return rateLimit({
    windowMs: config.rateLimitWindowMs,
    limit: config.rateLimitMax,
    store: new EngineRateLimitStore(engine, config.rateLimitWindowMs),
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
}

/**
 * express-rate-limit's store over the engine's window counters. When the engine cannot count
 * (Redis down), the request gets 503 at once, like every other that needs the engine.
 */
class EngineRateLimitStore implements Store {
  private readonly counters: WindowCounters;

  constructor(
    private readonly engine: Pick<Engine, 'counters' | 'isReady'>,
    private readonly windowMs: number,
  ) {
    this.counters = engine.counters;
  }

  async increment(key: string): Promise<{ totalHits: number; resetTime: Date }> {
    const { hits, resetAt } = await this.counted(() => this.counters.add(key, this.windowMs));
    return { totalHits: hits, resetTime: new Date(resetAt) };
  }

  async decrement(key: string): Promise<void> {
    await this.counted(() => this.counters.add(key, this.windowMs, -1));
  }

  async resetKey(key: string): Promise<void> {
    await this.counted(() => this.counters.reset(key));
  }

  private async counted<T>(step: () => Promise<T>): Promise<T> {
    if (!this.engine.isReady()) throw errors.unavailable('Event engine not ready');
    try {
      return await step();
    } catch {
      throw errors.unavailable('Event engine not ready');
    }
  }
}
