import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { freePort } from './ports';
import { answersPing } from './redis';
import { spawnRedisProcess, type RedisProcess } from './redisProcess';
import { waitFor } from './waitFor';

/**
 * A Sentinel group for tests, on loopback: one master, one replica, three sentinels (quorum 2),
 * tuned to notice a dead master within a second and to fail over within a few.
 */
export interface SentinelGroup {
  /** The master group name the sentinels monitor (REDIS_SENTINEL_MASTER). */
  masterName: string;
  /** The sentinels' ports (REDIS_SENTINELS=127.0.0.1:port,...). */
  sentinelPorts: number[];
  /** REDIS_SENTINELS for this group. */
  sentinelsEnv: string;
  /** The port of the current master, as the sentinels report it. */
  masterPort(): Promise<number>;
  /** SIGKILLs the current master (no shutdown, no save) and waits for its exit. */
  killMaster(): Promise<number>;
  /** The port of the data server that is not the current master (the replica, or the dead one). */
  replicaPort(): Promise<number>;
  /**
   * Sends a signal to the data server on `port`: SIGSTOP freezes a replica, SIGCONT thaws it.
   * Frozen and cut off by its master (CLIENT KILL TYPE replica), a replica misses the writes made
   * meanwhile: a failover to it loses them.
   */
  signalDataServer(port: number, signal: NodeJS.Signals): void;
  /**
   * A switchover (SENTINEL FAILOVER): the replica is promoted while the master lives on and is
   * turned into its replica. Resolves with the new master's port once the old one follows it.
   */
  switchover(): Promise<number>;
  /** Waits until every sentinel names a master other than `oldPort`, and it accepts writes. */
  waitForFailover(oldPort: number, timeoutMs?: number): Promise<number>;
  /** Kills every process of the group and removes its files. */
  stop(): Promise<void>;
}

type Node = RedisProcess;

/** The master is subjectively down after this much silence (the default is 30 s). */
const DOWN_AFTER_MS = 1000;
/** Least time between two failover attempts of the same master (the default is 3 min). */
const FAILOVER_TIMEOUT_MS = 5000;
const START_TIMEOUT_MS = 15_000;

/**
 * The sentinel binary: Debian's `redis-sentinel` when installed, else `redis-server --sentinel`
 * (the same program in sentinel mode; Debian's redis-server package has it without the
 * redis-sentinel package).
 */
function sentinelCommand(configFile: string): [string, string[]] {
  const probe = spawnSync('redis-sentinel', ['--version'], { stdio: 'ignore' });
  if (!probe.error && probe.status === 0) return ['redis-sentinel', [configFile]];
  return ['redis-server', [configFile, '--sentinel']];
}

export interface SentinelGroupOptions {
  /** The master group name (default `mcpgw`). */
  masterName?: string;
  /** requirepass (and masterauth) of the master and replica: REDIS_PASSWORD. */
  password?: string;
  /** requirepass of the sentinels: REDIS_SENTINEL_PASSWORD. */
  sentinelPassword?: string;
}

export async function startSentinelGroup(
  options: SentinelGroupOptions = {},
): Promise<SentinelGroup> {
  const { masterName = 'mcpgw', password, sentinelPassword } = options;
  const dir = mkdtempSync(path.join(tmpdir(), 'mcpgw-sentinel-'));
  const dataServerArgs = (port: number): string[] => [
    ...['--port', `${port}`, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    // A replica writes the snapshot of its full sync to disk: into the group's directory.
    ...['--dir', dir, '--dbfilename', `dump-${port}.rdb`],
    ...(password ? ['--requirepass', password, '--masterauth', password] : []),
  ];
  const info = (port: number) => replicationInfo(port, password);
  const nodes = new Map<number, Node>();
  const admins: Redis[] = [];
  const stop = async () => {
    for (const admin of admins) admin.disconnect();
    await Promise.all([...nodes.values()].map((node) => killNode(node)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const masterPort = await freePort();
    nodes.set(
      masterPort,
      await startNode(dataServerArgs(masterPort), undefined, undefined, password),
    );
    const replicaPort = await freePort();
    const dataPorts = [masterPort, replicaPort];
    nodes.set(
      replicaPort,
      await startNode(
        [...dataServerArgs(replicaPort), '--replicaof', '127.0.0.1', `${masterPort}`],
        undefined,
        undefined,
        password,
      ),
    );
    const sentinelPorts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const configFile = path.join(dir, `sentinel-${port}.conf`);
      // Sentinels rewrite their config file (known peers, epochs): each gets its own.
      writeFileSync(
        configFile,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${masterName} ${DOWN_AFTER_MS}`,
          `sentinel failover-timeout ${masterName} ${FAILOVER_TIMEOUT_MS}`,
          `sentinel parallel-syncs ${masterName} 1`,
          ...(password ? [`sentinel auth-pass ${masterName} ${password}`] : []),
          // Sentinels talk to each other with sentinel-pass, to everyone else with requirepass.
          ...(sentinelPassword
            ? [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`]
            : []),
          '',
        ].join('\n'),
      );
      const [command, args] = sentinelCommand(configFile);
      nodes.set(port, await startNode(['--port', `${port}`], command, args, sentinelPassword));
      sentinelPorts.push(port);
    }
    for (const port of sentinelPorts) {
      admins.push(
        new Redis(port, '127.0.0.1', {
          lazyConnect: true,
          maxRetriesPerRequest: 1,
          password: sentinelPassword,
        }),
      );
    }
    // Agreed: every sentinel knows the other two and the replica, and the replica is in sync.
    await waitFor(
      async () => {
        for (const admin of admins) {
          const fields = toRecord((await admin.call('SENTINEL', 'MASTER', masterName)) as string[]);
          if (fields['num-other-sentinels'] !== '2' || fields['num-slaves'] !== '1') return false;
        }
        return (await info(replicaPort)).includes('master_link_status:up');
      },
      START_TIMEOUT_MS,
      'the sentinels to agree on the master, its replica and each other',
    );

    const masterPortNow = async (): Promise<number> => {
      const reply = (await admins[0].call(
        'SENTINEL',
        'GET-MASTER-ADDR-BY-NAME',
        masterName,
      )) as string[];
      return Number(reply[1]);
    };
    const waitForFailover = async (oldPort: number, timeoutMs = 30_000): Promise<number> => {
      let promoted = 0;
      await waitFor(
        async () => {
          const ports = await Promise.all(
            admins.map(async (admin) => {
              const reply = (await admin.call(
                'SENTINEL',
                'GET-MASTER-ADDR-BY-NAME',
                masterName,
              )) as string[];
              return Number(reply[1]);
            }),
          );
          if (ports.some((port) => port === oldPort || port !== ports[0])) return false;
          promoted = ports[0];
          return (await info(promoted)).includes('role:master');
        },
        timeoutMs,
        `the sentinels to promote a replica of port ${oldPort}`,
      );
      return promoted;
    };
    return {
      masterName,
      sentinelPorts,
      sentinelsEnv: sentinelPorts.map((port) => `127.0.0.1:${port}`).join(','),
      masterPort: masterPortNow,
      async killMaster() {
        const port = await masterPortNow();
        const node = nodes.get(port);
        if (!node) throw new Error(`no master process on port ${port}`);
        node.child.kill('SIGKILL');
        await node.exited;
        return port;
      },
      async replicaPort() {
        const master = await masterPortNow();
        return dataPorts.find((port) => port !== master)!;
      },
      signalDataServer(port, signal) {
        const node = dataPorts.includes(port) ? nodes.get(port) : undefined;
        if (!node) throw new Error(`no data server on port ${port}`);
        node.child.kill(signal);
      },
      async switchover() {
        const oldPort = await masterPortNow();
        await admins[0].call('SENTINEL', 'FAILOVER', masterName);
        const newPort = await waitForFailover(oldPort);
        await waitFor(
          async () => {
            const replication = await info(oldPort);
            return (
              replication.includes('role:slave') &&
              replication.includes(`master_port:${newPort}`) &&
              replication.includes('master_link_status:up')
            );
          },
          30_000,
          `the old master on port ${oldPort} to follow the new one`,
        );
        return newPort;
      },
      waitForFailover,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }

  async function startNode(
    args: string[],
    command = 'redis-server',
    commandArgs: string[] = args,
    requirepass?: string,
  ): Promise<Node> {
    const port = Number(args[args.indexOf('--port') + 1]);
    const node: Node = spawnRedisProcess(command, commandArgs, port);
    nodes.set(port, node);
    await waitFor(
      async () => {
        const failure = node.failure();
        if (failure) throw failure;
        return requirepass ? answersPingWith(port, requirepass) : answersPing(port);
      },
      START_TIMEOUT_MS,
      `${command} on port ${port} to answer PING`,
    );
    return node;
  }
}

/** Asks one question of the node on this port, without retries: `fallback` when it fails. */
async function askOnce<T>(
  port: number,
  password: string | undefined,
  ask: (client: Redis) => Promise<T>,
  fallback: T,
): Promise<T> {
  const client = new Redis(port, '127.0.0.1', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    password,
  });
  client.on('error', () => undefined);
  try {
    return await ask(client);
  } catch {
    return fallback;
  } finally {
    client.disconnect();
  }
}

/** PING with AUTH: a node with requirepass answers a bare PING with NOAUTH. */
async function answersPingWith(port: number, password: string): Promise<boolean> {
  return (await askOnce(port, password, (client) => client.ping(), '')) === 'PONG';
}

function replicationInfo(port: number, password?: string): Promise<string> {
  return askOnce(port, password, (client) => client.info('replication'), '');
}

function toRecord(flat: string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) record[flat[i]] = flat[i + 1];
  return record;
}

async function killNode(node: Node): Promise<void> {
  if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGKILL');
  await node.exited;
}
