import type { KeyValueStore, SetMode } from '../engine';
import type { RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/** TTL'd strings under `<prefix>kv:<key>`: SET PX (NX/XX), GETEX PX, PEXPIRE, DEL. */
export class RedisKeyValueStore implements KeyValueStore {
  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
  ) {}

  async set(key: string, value: string, ttlMs: number, mode: SetMode = 'always'): Promise<boolean> {
    assertTtl(ttlMs);
    const k = this.keys.value(key);
    const reply =
      mode === 'ifAbsent'
        ? await this.redis.set(k, value, 'PX', ttlMs, 'NX')
        : mode === 'ifPresent'
          ? await this.redis.set(k, value, 'PX', ttlMs, 'XX')
          : await this.redis.set(k, value, 'PX', ttlMs);
    return reply === 'OK';
  }

  async get(key: string, refreshTtlMs?: number): Promise<string | undefined> {
    const k = this.keys.value(key);
    if (refreshTtlMs === undefined) return (await this.redis.get(k)) ?? undefined;
    assertTtl(refreshTtlMs);
    return (await this.redis.getex(k, 'PX', refreshTtlMs)) ?? undefined;
  }

  async touch(key: string, ttlMs: number, expected?: string): Promise<boolean> {
    assertTtl(ttlMs);
    const k = this.keys.value(key);
    if (expected === undefined) return (await this.redis.pexpire(k, ttlMs)) === 1;
    return (await this.redis.keyIfValue(k, expected, ttlMs)) === 1;
  }

  async delete(key: string, expected?: string): Promise<boolean> {
    const k = this.keys.value(key);
    if (expected === undefined) return (await this.redis.del(k)) === 1;
    return (await this.redis.keyIfValue(k, expected, 0)) === 1;
  }
}

function assertTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs < 1) {
    throw new RangeError(`ttlMs must be a positive integer, got ${ttlMs}`);
  }
}
