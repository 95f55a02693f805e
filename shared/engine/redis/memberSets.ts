import type { MemberAdd, MemberSets } from '../engine';
import type { RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

const ADD_RESULTS: Record<number, MemberAdd> = { 0: 'full', 1: 'added', 2: 'present' };

/** Sets under `<prefix>set:<key>`: SADD bounded by a script (SCARD first), SREM, PEXPIRE. */
export class RedisMemberSets implements MemberSets {
  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
  ) {}

  async add(key: string, member: string, ttlMs: number, maxMembers: number): Promise<MemberAdd> {
    assertTtl(ttlMs);
    const reply = await this.redis.addMember(this.keys.memberSet(key), member, ttlMs, maxMembers);
    return ADD_RESULTS[Number(reply)] ?? 'full';
  }

  async remove(key: string, member: string): Promise<boolean> {
    return (await this.redis.srem(this.keys.memberSet(key), member)) === 1;
  }

  members(key: string): Promise<string[]> {
    return this.redis.smembers(this.keys.memberSet(key));
  }

  async touch(key: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    return (await this.redis.pexpire(this.keys.memberSet(key), ttlMs)) === 1;
  }

  async delete(key: string): Promise<void> {
    await this.redis.del(this.keys.memberSet(key));
  }
}

function assertTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs < 1) {
    throw new RangeError(`ttlMs must be a positive integer, got ${ttlMs}`);
  }
}
