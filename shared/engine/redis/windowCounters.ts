import type { WindowCount, WindowCounters } from '../engine';
import { assertWindow } from '../memory/windowCounters';
import type { RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/** Fixed-window counters under `<prefix>rl:<key>`: INCRBY and PEXPIRE in one script. */
export class RedisWindowCounters implements WindowCounters {
  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
  ) {}

  async add(key: string, windowMs: number, delta = 1): Promise<WindowCount> {
    assertWindow(windowMs);
    const [hits, ttlMs] = await this.redis.addToWindow(this.keys.counter(key), windowMs, delta);
    return { hits: Number(hits), resetAt: Date.now() + Number(ttlMs) };
  }

  async reset(key: string): Promise<void> {
    await this.redis.del(this.keys.counter(key));
  }
}
