import Redis, { Cluster, type RedisOptions } from 'ioredis';

/** A Cluster seed node. */
export interface ClusterNode {
  host: string;
  port: number;
}

/**
 * Where the engine's Redis is: one server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES,
 * its seed nodes). Each mode adds its branch to createRedisClient.
 */
export type RedisTarget = { kind: 'url'; url: string } | { kind: 'cluster'; nodes: ClusterNode[] };

/** How long a command waits for a Cluster that is re-electing a master or moving a slot. */
const CLUSTER_RETRY_DELAY_MS = 200;

/**
 * One client for the target, with the engine's per-role options. A Cluster client follows
 * MOVED/ASK redirects and slot-map changes itself. It answers the same commands as a single
 * Redis for keys of one slot (which the engine's key layout guarantees, keys.ts), so the engine
 * uses it through the Redis type: the one place where the two differ is construction, here.
 */
export function createRedisClient(
  target: RedisTarget,
  options: RedisOptions,
  role: 'commands' | 'subscriber' | 'blocking',
): Redis {
  if (target.kind === 'url') return new Redis(target.url, options);
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
    redisOptions,
  });
  return cluster as unknown as Redis;
}

/** Parses REDIS_CLUSTER_NODES: `host:port` entries separated by commas. Throws a RangeError. */
export function parseClusterNodes(value: string): ClusterNode[] {
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new RangeError('REDIS_CLUSTER_NODES lists no host:port');
  return entries.map((entry) => {
    const match = /^(.+):(\d{1,5})$/.exec(entry);
    const port = match ? Number(match[2]) : NaN;
    if (!match || port < 1 || port > 65_535) {
      throw new RangeError(`REDIS_CLUSTER_NODES: "${entry}" is not host:port`);
    }
    return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
  });
}

/** For logs: the URL with its password masked, or the cluster's seed nodes. */
export function describeTarget(target: RedisTarget): string {
  if (target.kind === 'cluster') {
    return `cluster ${target.nodes.map((node) => `${node.host}:${node.port}`).join(',')}`;
  }
  try {
    const parsed = new URL(target.url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<invalid url>';
  }
}
