/**
 * Keys that are forgotten `ttlMs` after they were (last) added (Redis: SET key EX ttl).
 * The map stays in expiry order, since every key gets the same ttl and is re-inserted when
 * added again, so pruning only looks at the expired keys at its front.
 */
export class ExpiringSet {
  private readonly expiresAt = new Map<string, number>();

  constructor(private readonly ttlMs: number) {}

  get size(): number {
    return this.expiresAt.size;
  }

  add(key: string, now: number): void {
    this.prune(now);
    this.expiresAt.delete(key);
    this.expiresAt.set(key, now + this.ttlMs);
  }

  has(key: string, now: number): boolean {
    const expiry = this.expiresAt.get(key);
    return expiry !== undefined && expiry > now;
  }

  private prune(now: number): void {
    for (const [key, expiry] of this.expiresAt) {
      if (expiry > now) break;
      this.expiresAt.delete(key);
    }
  }
}
