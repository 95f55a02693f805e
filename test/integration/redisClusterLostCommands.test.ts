import Redis, { Cluster } from 'ioredis';
import { redisKeys } from '../../shared/engine/redis/keys';
import { parseClusterNodes } from '../../shared/engine/redis/redisConnections';
import type { CommandEnvelope } from '../../shared/types';
import { uniquePrefix } from '../../devSupport/redis';
import { startRedisCluster, type ProvidedRedisCluster } from '../../devSupport/redisCluster';
import { waitFor } from '../../devSupport/waitFor';
import { startClusterEngine } from '../helpers/clusterEngine';

/**
 * Issue 15, Cluster: the master of the command stream's shard dies with commands its replica
 * had not received (the replica frozen and cut off first); once the replica is promoted, the
 * engine that queued them reports exactly those as lost (a gateway answers them -32012).
 */

jest.setTimeout(90_000);

let cluster: ProvidedRedisCluster;
let admin: Cluster;
const direct: Redis[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
  admin = new Cluster(parseClusterNodes(cluster.nodes));
});

afterAll(async () => {
  admin?.disconnect();
  for (const connection of direct) connection.disconnect();
  await cluster?.stop();
});

/** The client port of the master that owns this key's slot. */
async function masterPortOf(key: string): Promise<number> {
  const slot = (await admin.cluster('KEYSLOT', key)) as number;
  const ranges = (await admin.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
  const range = ranges.find(([from, to]) => slot >= from && slot <= to);
  if (!range) throw new Error(`slot ${slot} has no master`);
  return range[2][1];
}

function connect(port: number): Redis {
  const connection = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  connection.on('error', () => undefined);
  direct.push(connection);
  return connection;
}

let counter = 0;
function command(): CommandEnvelope {
  counter += 1;
  return {
    requestId: `cluster-lost-${counter}`,
    connectionId: 'conn-1',
    sub: 'alice',
    tokenType: 'team',
    message: { method: 'tools/list' },
    enqueuedAt: Date.now(),
  };
}

test('commands the promoted replica of the {cmd} shard never received are reported lost', async () => {
  const prefix = uniquePrefix('cluster-lost');
  const keys = redisKeys(prefix, { hashTags: true });
  const engine = await startClusterEngine(cluster, prefix);
  const reported: string[] = [];
  engine.onCommandsLost((commands) => reported.push(...commands.map((c) => c.requestId)));
  try {
    const kept = [command(), command()];
    await engine.enqueueCommands(kept);
    const masterPort = await masterPortOf(keys.commandPartition(0).commands);
    const master = connect(masterPort);
    const replication = await master.info('replication');
    const replicaPort = Number(/^slave0:.*port=(\d+)/m.exec(replication)?.[1]);
    expect(replicaPort).toBeGreaterThan(0);
    // Everything so far reached the replica (WAIT after a write of our own, in the same slot).
    await master.set(`${prefix}{cmd}marker`, '1');
    expect(await master.wait(1, 10_000)).toBe(1);

    cluster.signalNode(replicaPort, 'SIGSTOP');
    await master.call('CLIENT', 'KILL', 'TYPE', 'replica');
    const lost = [command(), command(), command()];
    await engine.enqueueCommands(lost);
    expect(await master.xlen(keys.commandPartition(0).commands)).toBe(5);

    await cluster.killNode(masterPort);
    cluster.signalNode(replicaPort, 'SIGCONT');
    await waitFor(
      async () =>
        (await masterPortOf(keys.commandPartition(0).commands).catch(() => 0)) === replicaPort,
      30_000,
      'the replica promoted',
    );
    await waitFor(() => reported.length >= lost.length, 30_000, 'the lost commands reported');
    expect(reported.sort()).toEqual(lost.map((c) => c.requestId).sort());
    expect(await connect(replicaPort).xlen(keys.commandPartition(0).commands)).toBe(2);
  } finally {
    await engine.close();
  }
});
