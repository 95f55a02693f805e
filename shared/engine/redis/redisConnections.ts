import Redis, { Cluster, type RedisOptions } from 'ioredis';

/** One Redis node address: a Cluster seed node or a sentinel. */
export interface RedisNodeAddress {
  host: string;
  port: number;
}

/**
 * Where the engine's Redis is: one server by URL (REDIS_URL, which carries its own password), a
 * Redis Cluster through its seed nodes (REDIS_CLUSTER_NODES), or the master of a Sentinel group
 * (REDIS_SENTINELS + REDIS_SENTINEL_MASTER), found through the sentinels and found again after a
 * failover. `password` is REDIS_PASSWORD: AUTH for the Cluster's nodes, or for the Sentinel
 * group's master and replicas.
 */
export type RedisTarget =
  | { kind: 'url'; url: string }
  | { kind: 'cluster'; nodes: RedisNodeAddress[]; password?: string }
  | {
      kind: 'sentinel';
      sentinels: RedisNodeAddress[];
      /** The master group name the sentinels monitor. */
      masterName: string;
      password?: string;
      /** AUTH for the sentinels themselves (REDIS_SENTINEL_PASSWORD). */
      sentinelPassword?: string;
    };

/** How long a command waits for a Cluster that is re-electing a master or moving a slot. */
const CLUSTER_RETRY_DELAY_MS = 200;

/**
 * How often a Cluster subscriber reads the slot map anew: a slot moved by resharding sends no
 * redirection to a connection that only listens, so this bounds how long a shard subscription
 * can stay on a node that no longer serves its slot (when the node's notice is missed).
 */
const SUBSCRIBER_SLOTS_REFRESH_MS = 1000;

/** The longest wait for a sentinel's answer: a dead one is skipped after this. */
const SENTINEL_COMMAND_TIMEOUT_MS = 1000;

/**
 * The one place the engine's ioredis clients are made: `options` say what the connection is for
 * (retries, pipelining), the target says where it goes. A Cluster client follows MOVED/ASK
 * redirects and slot-map changes itself, and answers the same commands as a single Redis for keys
 * of one slot (which the engine's key layout guarantees, keys.ts), so the engine uses every
 * client through the Redis type.
 */
export function createRedisClient(
  target: RedisTarget,
  options: RedisOptions,
  role: 'commands' | 'subscriber' | 'blocking',
): Redis {
  if (target.kind === 'url') return new Redis(target.url, options);
  if (target.kind === 'sentinel') {
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
  const { lazyConnect, retryStrategy, ...redisOptions } = options;
  const cluster = new Cluster(target.nodes, {
    lazyConnect,
    // Off on a Cluster: ioredis groups auto-pipelined commands by the slot of their first
    // string argument, which for XINFO, XGROUP and the like is a subcommand, not the key; one
    // misgrouped command fails the whole batch (every command in it) with a slot error.
    enableAutoPipelining: false,
    clusterRetryStrategy: retryStrategy,
    retryDelayOnFailover: CLUSTER_RETRY_DELAY_MS,
    retryDelayOnClusterDown: CLUSTER_RETRY_DELAY_MS,
    retryDelayOnTryAgain: CLUSTER_RETRY_DELAY_MS,
    // The subscriber holds one connection per master, each following its slots' moves.
    shardedSubscribers: role === 'subscriber',
    slotsRefreshInterval: role === 'subscriber' ? SUBSCRIBER_SLOTS_REFRESH_MS : undefined,
    redisOptions: { ...redisOptions, password: target.password },
  });
  if (role === 'subscriber') followSlotMigrations(cluster);
  return cluster as unknown as Redis;
}

/**
 * A node that gives a slot away (CLUSTER SETSLOT ... NODE, the end of a resharding) drops the
 * shard subscriptions of the slot's channels and tells the subscriber with a SUNSUBSCRIBE it did
 * not ask for; ioredis reports that reply as a "Command queue state error" (nodeError) and
 * does nothing else, so the channel would stay unsubscribed. Reading the slot map at once makes
 * ioredis subscribe the channel on its new owner and emit 'subscribersReady', on which the
 * engine's streams catch up from history (index.ts). SUBSCRIBER_SLOTS_REFRESH_MS is the net
 * when the map read here is older than the move.
 */
function followSlotMigrations(cluster: Cluster): void {
  cluster.on('nodeError', (error: unknown) => {
    if (error instanceof Error && /Last reply: sunsubscribe,/.test(error.message)) {
      cluster.refreshSlotsCache();
    }
  });
}

/** A host:port list entry: a hostname or IPv4 address, or an IPv6 one in brackets. */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/;

/**
 * Parses a `host:port,host:port` list (REDIS_CLUSTER_NODES, REDIS_SENTINELS); `variable` names
 * it in errors. Throws a RangeError on an empty list or any bad entry (an empty one included).
 */
export function parseHostPorts(variable: string, value: string): RedisNodeAddress[] {
  const entries = value.split(',').map((entry) => entry.trim());
  if (entries.every((entry) => entry === ''))
    throw new RangeError(`${variable} lists no host:port`);
  return entries.map((entry) => {
    const match = HOST_PORT.exec(entry);
    const port = match ? Number(match[2]) : NaN;
    if (!match || port < 1 || port > 65_535) {
      throw new RangeError(`${variable}: "${entry}" is not host:port`);
    }
    return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
  });
}

/** Parses REDIS_CLUSTER_NODES (the test helpers' `nodes` too). Throws a RangeError. */
export function parseClusterNodes(value: string): RedisNodeAddress[] {
  return parseHostPorts('REDIS_CLUSTER_NODES', value);
}

/** The target fit for logs: no password. */
export function describeTarget(target: RedisTarget): string {
  const list = (nodes: RedisNodeAddress[]) => nodes.map((n) => `${n.host}:${n.port}`).join(',');
  if (target.kind === 'cluster') return `cluster ${list(target.nodes)}`;
  if (target.kind === 'sentinel') {
    return `sentinel master "${target.masterName}" via ${list(target.sentinels)}`;
  }
  return redactUrl(target.url);
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
