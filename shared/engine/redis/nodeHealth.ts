import Redis, { type RedisOptions } from 'ioredis';
import type { Logger } from '../../logger';
import type { Metrics } from '../../metrics';
import { connectionName } from './connections';
import type { RedisNodeAddress, RedisTarget } from './redisConnections';

/** A node's PING (and its connect, when it has to reconnect) taking longer counts as down. */
const PROBE_TIMEOUT_MS = 1000;

/** One Redis data node, as the Cluster or the sentinels announce it. */
export interface RedisNode {
  /** host:port, the `node` label. */
  address: string;
  role: 'master' | 'replica';
  /**
   * Cluster: the hash slots of the node's shard (its master's), e.g. `0-5460`; empty for a
   * master that serves no slots (one that failed and was replaced) and in the other modes.
   */
  shard: string;
}

/** What one probe round saw: the nodes and their PING round trips (undefined: down). */
export interface NodeHealthRound {
  nodes: (RedisNode & { pingSeconds?: number })[];
  /** Cluster mode only: CLUSTER INFO of a node that answered (none answered: fail, no slots). */
  cluster?: { ok: boolean; slots?: { ok: number; pfail: number; fail: number } };
}

/** Where the node list comes from, by mode; undefined when no source answered this round. */
interface Topology {
  nodes: RedisNode[];
  cluster?: NodeHealthRound['cluster'];
}

/**
 * Per-node Redis health for /metrics, off every hot path: every `intervalMs` (never two rounds
 * at once) it lists the data nodes (Cluster: CLUSTER NODES; Sentinel: the sentinels' view of
 * the master and its replicas; one server: that one) and PINGs each over a connection of its
 * own, one per node, so a slow or dead node never holds up the engine's traffic. Its errors
 * are not counted in mcpgw_redis_errors_total: a dead replica must not look like Redis down.
 */
export class NodeHealthProbe {
  private readonly pool = new Map<string, Redis>();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  /** The last node list seen: pinged again while the topology source does not answer. */
  private known: RedisNode[] = [];
  /** Each shard's master at the last round, to count master changes. */
  private readonly masters = new Map<string, string>();
  private readonly down = new Set<string>();

  constructor(
    private readonly target: RedisTarget,
    private readonly prefix: string,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly intervalMs: number,
  ) {}

  /** Runs a first round now, then one every intervalMs after the previous one ends. */
  start(): void {
    if (this.stopped) return; // the engine closed while it was connecting
    const loop = () => {
      void this.round()
        .then(
          (round) => this.publish(round),
          (error: unknown) => {
            this.logger.warn('redis health probe failed', { error: String(error) });
          },
        )
        .finally(() => {
          if (this.stopped) return this.closeConnections(); // those the last round opened
          this.timer = setTimeout(loop, this.intervalMs);
          this.timer.unref();
        });
    };
    loop();
  }

  /** Stops at once: a round in flight finishes unpublished and closes what it opened. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.closeConnections();
  }

  private closeConnections(): void {
    for (const connection of this.pool.values()) connection.disconnect();
    this.pool.clear();
  }

  /** One round: the node list, then every node PINGed in parallel. */
  async round(): Promise<NodeHealthRound> {
    const topology = await this.topology();
    if (topology) this.known = topology.nodes;
    const nodes = await Promise.all(
      this.known.map(async (node) => ({
        ...node,
        pingSeconds: await this.ping(this.connection(node.address)),
      })),
    );
    this.prune();
    const cluster =
      this.target.kind === 'cluster' ? (topology?.cluster ?? { ok: false }) : undefined;
    return { nodes, ...(cluster ? { cluster } : {}) };
  }

  private async topology(): Promise<Topology | undefined> {
    const { target } = this;
    if (target.kind === 'url') {
      const url = new URL(target.url);
      return {
        nodes: [{ address: `${url.hostname}:${url.port || 6379}`, role: 'master', shard: '' }],
      };
    }
    if (target.kind === 'sentinel')
      return this.sentinelTopology(target.sentinels, target.masterName);
    // Known masters first (most likely up), then the rest, then the seed nodes.
    const candidates = [
      ...this.known.filter((n) => n.role === 'master').map((n) => n.address),
      ...this.known.filter((n) => n.role === 'replica').map((n) => n.address),
      ...target.nodes.map(hostPort),
    ];
    for (const address of new Set(candidates)) {
      try {
        const [nodes, info] = await withTimeout(
          this.connected(this.connection(address)).then((connection) =>
            Promise.all([connection.cluster('NODES'), connection.cluster('INFO')]),
          ),
        );
        return { nodes: parseClusterNodes(String(nodes)), cluster: parseClusterInfo(String(info)) };
      } catch {
        // that node is down or unreachable: ask the next
      }
    }
    return undefined;
  }

  private async sentinelTopology(
    sentinels: RedisNodeAddress[],
    masterName: string,
  ): Promise<Topology | undefined> {
    for (const sentinel of sentinels) {
      try {
        const [master, replicas] = await withTimeout(
          this.connected(this.connection(`sentinel ${hostPort(sentinel)}`, sentinel)).then(
            (connection) =>
              Promise.all([
                connection.call('SENTINEL', 'MASTER', masterName),
                connection.call('SENTINEL', 'REPLICAS', masterName),
              ]),
          ),
        );
        const fields = toRecord(master as string[]);
        const nodes: RedisNode[] = [
          { address: `${fields.ip}:${fields.port}`, role: 'master', shard: '' },
          ...(replicas as string[][])
            .map(toRecord)
            .map((r): RedisNode => ({ address: `${r.ip}:${r.port}`, role: 'replica', shard: '' })),
        ];
        return { nodes };
      } catch {
        // that sentinel is down or does not know the group: ask the next
      }
    }
    return undefined;
  }

  /** Seconds of a PING round trip, or undefined when the node did not answer in time. */
  private async ping(connection: Redis): Promise<number | undefined> {
    try {
      return await withTimeout(
        (async () => {
          await this.connected(connection);
          const started = performance.now();
          await connection.ping();
          return (performance.now() - started) / 1000;
        })(),
      );
    } catch {
      return undefined;
    }
  }

  /** Connects a probe connection not connected yet, or closed since (it never reconnects). */
  private async connected(connection: Redis): Promise<Redis> {
    if (connection.status === 'wait' || connection.status === 'end') await connection.connect();
    return connection;
  }

  /**
   * The probe's connection to a node (or sentinel): made on first use; it never reconnects by
   * itself (each round connects again if needed), and fails a command at once when down.
   */
  private connection(key: string, sentinel?: RedisNodeAddress): Redis {
    let connection = this.pool.get(key);
    if (connection) return connection;
    const options: RedisOptions = {
      lazyConnect: true,
      connectTimeout: PROBE_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableReadyCheck: false,
      connectionName: connectionName(`${this.prefix}health`),
    };
    const { target } = this;
    if (target.kind === 'url') {
      connection = new Redis(target.url, options);
    } else {
      const [host, port] = splitHostPort(key.replace(/^sentinel /, ''));
      const password = sentinel
        ? target.kind === 'sentinel'
          ? target.sentinelPassword
          : undefined
        : target.password;
      connection = new Redis({ ...options, host, port, password });
    }
    connection.on('error', () => undefined); // the round reports the node down
    this.pool.set(key, connection);
    return connection;
  }

  /** Closes connections to nodes that left the list (a node forgotten by the Cluster). */
  private prune(): void {
    const keep = new Set(this.known.map((n) => n.address));
    if (this.target.kind === 'cluster') for (const n of this.target.nodes) keep.add(hostPort(n));
    if (this.target.kind === 'sentinel') {
      for (const s of this.target.sentinels) keep.add(`sentinel ${hostPort(s)}`);
    }
    for (const [key, connection] of this.pool) {
      if (this.target.kind !== 'url' && !keep.has(key)) {
        connection.disconnect();
        this.pool.delete(key);
      }
    }
  }

  /** Replaces the gauges in one synchronous step: a scrape never sees half a round. */
  private publish(round: NodeHealthRound): void {
    if (this.stopped) return;
    const { redisNodeUp, redisNodePing, redisClusterState, redisClusterSlots } = this.metrics;
    redisNodeUp.reset();
    redisNodePing.reset();
    for (const node of round.nodes) {
      const labels = { node: node.address, redis_role: node.role, shard: node.shard };
      const up = node.pingSeconds !== undefined;
      redisNodeUp.set(labels, up ? 1 : 0);
      if (up) redisNodePing.set(labels, node.pingSeconds!);
      this.logTransition(node, up);
      if (node.role === 'master' && up) this.noteMaster(node);
    }
    // Forget shards no node belongs to any more (slots moved): the map stays as small as the list.
    const shards = new Set(round.nodes.map((n) => n.shard));
    for (const shard of this.masters.keys()) if (!shards.has(shard)) this.masters.delete(shard);
    if (round.cluster) {
      redisClusterState.set({ state: 'ok' }, round.cluster.ok ? 1 : 0);
      redisClusterState.set({ state: 'fail' }, round.cluster.ok ? 0 : 1);
      redisClusterSlots.reset();
      for (const [state, count] of Object.entries(round.cluster.slots ?? {})) {
        redisClusterSlots.set({ state }, count);
      }
    }
  }

  private logTransition(node: RedisNode, up: boolean): void {
    const was = this.down.has(node.address);
    if (!up && !was) {
      this.down.add(node.address);
      this.logger.warn('redis node down', { node: node.address, role: node.role });
    } else if (up && was) {
      this.down.delete(node.address);
      this.logger.info('redis node up again', { node: node.address, role: node.role });
    }
  }

  /** Counts a shard (Sentinel: the group) whose answering master is another node than before. */
  private noteMaster(node: RedisNode): void {
    if (this.target.kind === 'url') return;
    if (this.target.kind === 'cluster' && node.shard === '') return;
    const before = this.masters.get(node.shard);
    this.masters.set(node.shard, node.address);
    if (before !== undefined && before !== node.address) {
      this.metrics.redisMasterChanges.inc({ shard: node.shard });
      this.logger.warn('redis master changed', {
        shard: node.shard,
        from: before,
        to: node.address,
      });
    }
  }
}

/**
 * CLUSTER NODES, one line per node: `<id> <ip:port@cport[,hostname]> <flags> <master-id>
 * <ping-sent> <pong-recv> <epoch> <link-state> <slot ranges...>`. A node announcing a hostname
 * is listed by it (what clients connect to); nodes without an address yet are skipped.
 */
export function parseClusterNodes(text: string): RedisNode[] {
  const lines = text
    .split('\n')
    .map((line) => line.trim().split(' '))
    .filter((fields) => fields.length >= 8);
  const slotsOf = new Map<string, string>();
  for (const [id, , , , , , , , ...slots] of lines) {
    // Slots being migrated or imported are listed as [slot->-id]: not owned ranges.
    slotsOf.set(id, slots.filter((s) => !s.startsWith('[')).join(','));
  }
  const nodes: RedisNode[] = [];
  for (const [id, address, flagList, masterId] of lines) {
    const flags = flagList.split(',');
    if (flags.includes('noaddr') || flags.includes('handshake')) continue;
    const [ipPort, hostname] = address.split(',');
    const [ip, port] = splitHostPort(ipPort.split('@')[0]);
    if (!ip || !port) continue;
    const role = flags.includes('master') ? 'master' : 'replica';
    const shard = slotsOf.get(role === 'master' ? id : masterId) ?? '';
    nodes.push({ address: `${hostname || ip}:${port}`, role, shard });
  }
  return nodes;
}

/** CLUSTER INFO: `cluster_state:ok`, `cluster_slots_ok:16384`, ... */
export function parseClusterInfo(text: string): NonNullable<NodeHealthRound['cluster']> {
  const fields = Object.fromEntries(
    text.split(/\r?\n/).map((line) => line.trim().split(':') as [string, string]),
  );
  return {
    ok: fields.cluster_state === 'ok',
    slots: {
      ok: Number(fields.cluster_slots_ok ?? 0),
      pfail: Number(fields.cluster_slots_pfail ?? 0),
      fail: Number(fields.cluster_slots_fail ?? 0),
    },
  };
}

function hostPort(node: RedisNodeAddress): string {
  return `${node.host}:${node.port}`;
}

/** `host:port`, the host possibly an IPv6 address (the last colon separates the port). */
function splitHostPort(address: string): [string, number] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at).replace(/^\[(.*)\]$/, '$1'), Number(address.slice(at + 1))];
}

function toRecord(flat: string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) record[flat[i]] = flat[i + 1];
  return record;
}

function withTimeout<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), PROBE_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
