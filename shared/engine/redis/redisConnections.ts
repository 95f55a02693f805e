import Redis, { type RedisOptions } from 'ioredis';

/** One Redis node address, as REDIS_SENTINELS lists them. */
export interface RedisNodeAddress {
  host: string;
  port: number;
}

/**
 * Where the engine's Redis is: one server by URL (REDIS_URL), or the master of a Sentinel group
 * (REDIS_SENTINELS + REDIS_SENTINEL_MASTER), found through the sentinels and found again after
 * a failover.
 */
export type RedisTarget =
  | { mode: 'standalone'; url: string }
  | {
      mode: 'sentinel';
      sentinels: RedisNodeAddress[];
      /** The master group name the sentinels monitor. */
      masterName: string;
      /** AUTH for the master and replicas (REDIS_PASSWORD). */
      password?: string;
      /** AUTH for the sentinels themselves (REDIS_SENTINEL_PASSWORD). */
      sentinelPassword?: string;
    };

/** The longest wait for a sentinel's answer: a dead one is skipped after this. */
const SENTINEL_COMMAND_TIMEOUT_MS = 1000;

/**
 * The one place the engine's ioredis clients are made: `options` say what the connection is for
 * (retries, pipelining), the target says where it goes.
 */
export function createRedisClient(target: RedisTarget, options: RedisOptions): Redis {
  if (target.mode === 'standalone') return new Redis(target.url, options);
  return new Redis({
    ...options,
    sentinels: target.sentinels,
    name: target.masterName,
    role: 'master',
    password: target.password,
    sentinelPassword: target.sentinelPassword,
    sentinelCommandTimeout: SENTINEL_COMMAND_TIMEOUT_MS,
    // Asking the sentinels again on every reconnect attempt finds the promoted replica as soon
    // as they agree on it; the attempt's delay is the connection's own retryStrategy.
    sentinelRetryStrategy: (attempt) => Math.min(100 * attempt, 1000),
    // Subscribes to +switch-master on the sentinels (one connection to each, per client). The
    // sentinels kill the clients of a master they demote if they reach it; this also moves a
    // connection whose old master they could not reach (a partition) and that still answers.
    failoverDetector: true,
  });
}

/** The target fit for logs: no password. */
export function describeTarget(target: RedisTarget): string {
  if (target.mode === 'standalone') return redactUrl(target.url);
  const nodes = target.sentinels.map((node) => `${node.host}:${node.port}`).join(',');
  return `sentinel master "${target.masterName}" via ${nodes}`;
}

/** A Redis URL fit for logs: the password, if any, masked. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<invalid url>';
  }
}
