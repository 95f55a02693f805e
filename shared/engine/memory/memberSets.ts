import type { MemberAdd, MemberSets } from '../engine';

interface Entry {
  members: Set<string>;
  expiresAt: number;
}

/** The memory engine's MemberSets: a map of sets with lazy expiry (Redis: SADD, SREM, PEXPIRE). */
export class MemoryMemberSets implements MemberSets {
  private readonly sets = new Map<string, Entry>();

  constructor(private readonly now: () => number = Date.now) {}

  async add(key: string, member: string, ttlMs: number, maxMembers: number): Promise<MemberAdd> {
    assertTtl(ttlMs);
    const now = this.now();
    this.prune(now);
    let entry = this.live(key, now);
    if (entry?.members.has(member)) {
      entry.expiresAt = now + ttlMs;
      return 'present';
    }
    if ((entry?.members.size ?? 0) >= maxMembers) return 'full';
    entry ??= { members: new Set(), expiresAt: 0 };
    entry.members.add(member);
    entry.expiresAt = now + ttlMs;
    this.sets.set(key, entry);
    return 'added';
  }

  async remove(key: string, member: string): Promise<boolean> {
    const entry = this.live(key, this.now());
    if (!entry?.members.delete(member)) return false;
    if (entry.members.size === 0) this.sets.delete(key);
    return true;
  }

  async members(key: string): Promise<string[]> {
    return [...(this.live(key, this.now())?.members ?? [])];
  }

  async touch(key: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    const now = this.now();
    const entry = this.live(key, now);
    if (!entry) return false;
    entry.expiresAt = now + ttlMs;
    return true;
  }

  async delete(key: string): Promise<void> {
    this.sets.delete(key);
  }

  private live(key: string, now: number): Entry | undefined {
    const entry = this.sets.get(key);
    if (entry && entry.expiresAt <= now) {
      this.sets.delete(key);
      return undefined;
    }
    return entry;
  }

  /** Drops expired sets; cheap enough at each add (sets are few and small). */
  private prune(now: number): void {
    for (const [key, entry] of this.sets) if (entry.expiresAt <= now) this.sets.delete(key);
  }
}

function assertTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs < 1) {
    throw new RangeError(`ttlMs must be a positive integer, got ${ttlMs}`);
  }
}
