import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Redis, { type Cluster } from 'ioredis';
import { freePort } from './ports';
import { answersPing } from './redis';
import { spawnRedisProcess, stopProcess, type RedisProcess } from './redisProcess';

const execFileAsync = promisify(execFile);

/** A Redis Cluster of loopback redis-servers that this process started (tests, bench). */
export interface ProvidedRedisCluster {
  /** Seed nodes in REDIS_CLUSTER_NODES form: `127.0.0.1:p1,127.0.0.1:p2,...`. */
  nodes: string;
  /** Every server's client port, masters first (in creation order). */
  ports: number[];
  /** Every server's process id, in the order of `ports` (the bench reads their CPU). */
  pids: number[];
  /** SIGKILLs the server on this port (a shard master's crash) and waits for its exit. */
  killNode(port: number): Promise<void>;
  /**
   * Sends a signal to the server on this port: SIGSTOP freezes a replica, SIGCONT thaws it
   * (frozen and cut off by its master with CLIENT KILL TYPE replica, it misses the writes made
   * meanwhile, which a failover to it then loses).
   */
  signalNode(port: number, signal: NodeJS.Signals): void;
  /**
   * Moves one hash slot, with its keys, to the master on `toPort` while the cluster serves, the
   * way an operator reshards (migrateSlot below). Resolves when every master names the new owner.
   */
  migrateSlot(slot: number, toPort: number, options?: MigrateSlotOptions): Promise<void>;
  /** Kills every server, waits for their exits and removes their directory. */
  stop(): Promise<void>;
}

/** Stages of a slot migration a caller may act in (migrateSlot's `between`). */
export type MigrationStage = 'migrating' | 'batchMoved' | 'keysMoved';

export interface MigrateSlotOptions {
  /** Keys per MIGRATE (redis-cli's --cluster-pipeline, default 10). */
  keysPerBatch?: number;
  /**
   * Awaited at each stage, so a test can run traffic inside the window: 'migrating' once the
   * slot is IMPORTING on the target and MIGRATING on the source (no key moved yet), 'batchMoved'
   * after each MIGRATE that left keys behind, 'keysMoved' once the source holds no key of the
   * slot (commands are ASK-redirected to the target) and before the ownership moves.
   */
  between?: (stage: MigrationStage) => Promise<void>;
}

export interface RedisClusterOptions {
  /** Masters (slot owners); at least 3, as `redis-cli --cluster create` demands. */
  masters?: number;
  /** Replicas per master. */
  replicasPerMaster?: number;
  /** requirepass (and masterauth) of every node, set once the cluster is formed: REDIS_PASSWORD. */
  password?: string;
}

const START_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;

type ClusterServer = RedisProcess;

/**
 * Starts `masters x (1 + replicasPerMaster)` redis-servers with cluster mode on, free loopback
 * ports (client and bus), persistence off, each in its own directory under one temp dir; joins
 * them with `redis-cli --cluster create`; resolves when every node reports `cluster_state:ok`.
 */
export async function startRedisCluster(
  options: RedisClusterOptions = {},
): Promise<ProvidedRedisCluster> {
  const masters = options.masters ?? 3;
  const replicasPerMaster = options.replicasPerMaster ?? 0;
  if (masters < 3) throw new RangeError('a Redis Cluster needs at least 3 masters');
  const dir = mkdtempSync(path.join(tmpdir(), 'redis-cluster-'));
  const servers: ClusterServer[] = [];
  const stop = async () => {
    await Promise.all(servers.map(stopServer));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const count = masters * (1 + replicasPerMaster);
    for (let i = 0; i < count; i += 1) {
      servers.push(await startServer(dir, await freePort(), await freePort()));
    }
    const addresses = servers.map((server) => `127.0.0.1:${server.port}`);
    await execFileAsync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...addresses,
        '--cluster-replicas',
        String(replicasPerMaster),
        '--cluster-yes',
      ],
      { timeout: START_TIMEOUT_MS },
    );
    await waitForClusterOk(servers, masters * replicasPerMaster);
    // Set after forming: redis-cli --cluster create and the readiness checks need no AUTH, and
    // the replication links already up stay authenticated.
    if (options.password) {
      for (const server of servers) await requirePassword(server.port, options.password);
    }
    const serverOn = (port: number) => {
      const server = servers.find((s) => s.port === port);
      if (!server) throw new Error(`no cluster node on port ${port}`);
      return server;
    };
    const killNode = async (port: number) => {
      const server = serverOn(port);
      server.child.kill('SIGKILL');
      await server.exited;
    };
    const signalNode = (port: number, signal: NodeJS.Signals) => {
      serverOn(port).child.kill(signal);
    };
    return {
      nodes: addresses.join(','),
      ports: servers.map((s) => s.port),
      pids: servers.map((s) => s.child.pid ?? 0),
      killNode,
      signalNode,
      migrateSlot: (slot, toPort, migrateOptions) =>
        migrateSlot(
          servers.filter((s) => s.child.exitCode === null).map((s) => s.port),
          slot,
          toPort,
          options.password,
          migrateOptions,
        ),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function startServer(dir: string, port: number, busPort: number): Promise<ClusterServer> {
  const server: ClusterServer = spawnRedisProcess(
    'redis-server',
    [
      '--port',
      String(port),
      '--cluster-port',
      String(busPort),
      '--bind',
      '127.0.0.1',
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      path.join(dir, `nodes-${port}.conf`),
      '--cluster-node-timeout',
      '2000',
      // A replica may take over however long its link was down (tests kill masters early).
      '--cluster-replica-validity-factor',
      '0',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--dbfilename',
      `dump-${port}.rdb`,
    ],
    port,
    { cwd: dir },
  );
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await answersPing(port))) {
    const failure = server.failure();
    if (failure) throw failure;
    if (Date.now() > deadline) {
      await stopServer(server);
      throw new Error(`redis-server on port ${port} did not answer PING:\n${server.output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return server;
}

/**
 * Every node must see the whole cluster as ok (slots all assigned, gossip converged), know
 * every replica, and every replica must have its replication link up (else it could not take
 * over from its master, which the fault tests rely on).
 */
async function waitForClusterOk(servers: ClusterServer[], replicas: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  const cli = async (port: number, ...args: string[]) =>
    (await execFileAsync('redis-cli', ['-p', String(port), ...args])).stdout;
  for (;;) {
    const states = await Promise.all(
      servers.map(async (server) => {
        if (!/cluster_state:ok/.test(await cli(server.port, 'cluster', 'info'))) return false;
        const nodes = await cli(server.port, 'cluster', 'nodes');
        if ((nodes.match(/\bslave\b/g) ?? []).length !== replicas) return false;
        const replication = await cli(server.port, 'info', 'replication');
        return !/role:slave/.test(replication) || /master_link_status:up/.test(replication);
      }),
    );
    if (states.every(Boolean)) return;
    if (Date.now() > deadline) throw new Error('Redis Cluster did not reach cluster_state:ok');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function requirePassword(port: number, password: string): Promise<void> {
  const cli = (...args: string[]) => execFileAsync('redis-cli', ['-p', String(port), ...args]);
  await cli('config', 'set', 'masterauth', password);
  await cli('config', 'set', 'requirepass', password);
}

async function stopServer(server: ClusterServer): Promise<void> {
  const { child, exited } = server;
  await stopProcess(child, exited, STOP_GRACE_MS);
}

/**
 * The client port of the master that owns this key's slot now (it changes with a failover),
 * asked through `admin`, a Cluster client of the caller's.
 */
export async function masterPortOf(admin: Cluster, key: string): Promise<number> {
  const slot = (await admin.cluster('KEYSLOT', key)) as number;
  const ranges = (await admin.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
  const range = ranges.find(([from, to]) => slot >= from && slot <= to);
  if (!range) throw new Error(`slot ${slot} has no master`);
  return range[2][1];
}

const MIGRATE_TIMEOUT_MS = 5_000;

/**
 * Resharding of one slot by hand (redis-cli --cluster reshard cannot choose the slot), the
 * sequence of the Redis Cluster specification: SETSLOT IMPORTING on the target, MIGRATING on the
 * source, MIGRATE the slot's keys in batches (GETKEYSINSLOT), then SETSLOT NODE on the target,
 * the source and every other master. Meanwhile the source serves the keys it still has and
 * answers ASK for the others; a command needing keys on both sides gets TRYAGAIN.
 */
async function migrateSlot(
  ports: number[],
  slot: number,
  toPort: number,
  password: string | undefined,
  options: MigrateSlotOptions = {},
): Promise<void> {
  const keysPerBatch = options.keysPerBatch ?? 10;
  const between = options.between ?? (() => Promise.resolve());
  const nodes = new Map(
    ports.map((port) => [port, new Redis(port, '127.0.0.1', { password, lazyConnect: true })]),
  );
  const node = (port: number) => {
    const client = nodes.get(port);
    if (!client) throw new Error(`no cluster node on port ${port}`);
    return client;
  };
  try {
    const target = node(toPort);
    const ranges = (await target.cluster('SLOTS')) as unknown as [
      number,
      number,
      [string, number],
    ][];
    const range = ranges.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`slot ${slot} has no master`);
    const fromPort = range[2][1];
    if (fromPort === toPort) throw new RangeError(`slot ${slot} is on port ${toPort} already`);
    const source = node(fromPort);
    const targetId = (await target.cluster('MYID')) as string;
    const sourceId = (await source.cluster('MYID')) as string;
    await target.cluster('SETSLOT', slot, 'IMPORTING', sourceId);
    await source.cluster('SETSLOT', slot, 'MIGRATING', targetId);
    await between('migrating');
    for (;;) {
      const keys = (await source.cluster('GETKEYSINSLOT', slot, keysPerBatch)) as string[];
      if (keys.length === 0) break;
      const auth = password ? ['AUTH', password] : [];
      await source.call(
        'MIGRATE',
        '127.0.0.1',
        toPort,
        '',
        0,
        MIGRATE_TIMEOUT_MS,
        ...auth,
        'KEYS',
        ...keys,
      );
      if (((await source.cluster('COUNTKEYSINSLOT', slot)) as number) > 0) {
        await between('batchMoved');
      }
    }
    await between('keysMoved');
    // The target first: once the source stops answering ASK, the target must own the slot.
    await target.cluster('SETSLOT', slot, 'NODE', targetId);
    await source.cluster('SETSLOT', slot, 'NODE', targetId);
    const masters: number[] = [];
    for (const [port, client] of nodes) {
      if (/role:master/.test(await client.info('replication'))) masters.push(port);
    }
    for (const port of masters) {
      if (port !== toPort && port !== fromPort) {
        await node(port).cluster('SETSLOT', slot, 'NODE', targetId);
      }
    }
    // Gossip carries the new owner to the replicas; wait until every node names it.
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const owners = await Promise.all(
        [...nodes.values()].map(async (client) => {
          const slots = (await client.cluster('SLOTS')) as unknown as [
            number,
            number,
            [string, number],
          ][];
          return slots.find(([from, to]) => slot >= from && slot <= to)?.[2][1];
        }),
      );
      if (owners.every((port) => port === toPort)) return;
      if (Date.now() > deadline)
        throw new Error(`slot ${slot}: not every node names port ${toPort}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    for (const client of nodes.values()) client.disconnect();
  }
}
