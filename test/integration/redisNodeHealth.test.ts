import { RedisEngine } from '../../shared/engine/redis';
import { silentLogger } from '../../shared/logger';
import { createMetrics, type Metrics } from '../../shared/metrics';
import { provideRedis, restartRedis, uniquePrefix } from '../../devSupport/redis';
import { startRedisCluster, type ProvidedRedisCluster } from '../../devSupport/redisCluster';
import { startSentinelGroup, type SentinelGroup } from '../../devSupport/sentinel';
import { waitFor } from '../../devSupport/waitFor';
import { reapAll, spawnRole, type SpawnedProcess } from '../helpers/processes';
import { TEST_JWT_SECRET } from '../helpers/gatewayHarness';

/**
 * Per-node Redis health (mcpgw_redis_node_up and friends, engine/redis/nodeHealth.ts) on real
 * servers: a 3-master Cluster with a replica each behind a real gateway process's /metrics, a
 * Sentinel group and one server through the engine's registry. Each kills a node and waits for
 * it to be reported down.
 */

jest.setTimeout(120_000);

/** The probe runs this often here (5 s by default), so the waits below stay short. */
const PROBE_INTERVAL_MS = 200;

interface NodeSample {
  node: string;
  redisRole: string;
  shard: string;
  value: number;
}

/** The samples of a metric in Prometheus text format, with their labels. */
function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const [, labelText, value] of text.matchAll(
    new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'),
  )) {
    const labels = Object.fromEntries(
      [...labelText.matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v]),
    );
    out.push({ labels, value: Number(value) });
  }
  return out;
}

function nodeSamples(text: string, name = 'mcpgw_redis_node_up'): NodeSample[] {
  return samples(text, name).map(({ labels, value }) => ({
    node: labels.node,
    redisRole: labels.redis_role,
    shard: labels.shard ?? '',
    value,
  }));
}

const metricsText = (metrics: Metrics) => metrics.registry.metrics();

describe('Redis Cluster (3 masters, 1 replica each), through a gateway process', () => {
  let cluster: ProvidedRedisCluster;
  let gateway: SpawnedProcess;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
    gateway = await spawnRole('gateway', {
      REDIS_CLUSTER_NODES: cluster.nodes,
      REDIS_PREFIX: uniquePrefix('node-health'),
      REDIS_HEALTH_INTERVAL_MS: String(PROBE_INTERVAL_MS),
      JWT_SECRET: TEST_JWT_SECRET,
    });
  });

  afterAll(async () => {
    await reapAll();
    await cluster?.stop();
  });

  const scrape = async () => (await fetch(`${gateway.url}/metrics`)).text();

  test('every node up with its role and shard; a killed master reported down and replaced', async () => {
    const allUp = (nodes: NodeSample[]) =>
      nodes.length === cluster.ports.length && nodes.every((n) => n.value === 1);
    let nodes: NodeSample[] = [];
    await waitFor(
      async () => allUp((nodes = nodeSamples(await scrape()))),
      15_000,
      'every cluster node reported up',
    );
    expect(nodes.map((n) => Number(n.node.split(':')[1])).sort()).toEqual(
      [...cluster.ports].sort(),
    );
    const masters = nodes.filter((n) => n.redisRole === 'master');
    const replicas = nodes.filter((n) => n.redisRole === 'replica');
    expect(masters).toHaveLength(3);
    expect(replicas).toHaveLength(3);
    // Each shard (its slot ranges) has one master and one replica.
    const shards = masters.map((m) => m.shard).sort();
    expect(new Set(shards).size).toBe(3);
    expect(shards.every((s) => /^\d+-\d+/.test(s))).toBe(true);
    expect(replicas.map((r) => r.shard).sort()).toEqual(shards);
    const text = await scrape();
    expect(nodeSamples(text, 'mcpgw_redis_node_ping_seconds')).toHaveLength(6);
    expect(samples(text, 'mcpgw_redis_cluster_state')).toContainEqual({
      labels: expect.objectContaining({ state: 'ok' }),
      value: 1,
    });
    expect(samples(text, 'mcpgw_redis_cluster_slots')).toContainEqual({
      labels: expect.objectContaining({ state: 'ok' }),
      value: 16384,
    });

    const victim = masters[0];
    await cluster.killNode(Number(victim.node.split(':')[1]));
    // Down at once (its label may lose the shard once a replica took its slots over).
    await waitFor(
      async () => nodeSamples(await scrape()).some((n) => n.node === victim.node && n.value === 0),
      15_000,
      'the killed master reported down',
    );
    // The shard's replica is promoted: a new master of the same slots, up, and counted.
    await waitFor(
      async () => {
        const now = nodeSamples(await scrape());
        return now.some(
          (n) =>
            n.redisRole === 'master' &&
            n.shard === victim.shard &&
            n.node !== victim.node &&
            n.value === 1,
        );
      },
      30_000,
      'a new master of the killed master shard',
    );
    await waitFor(
      async () => {
        const after = await scrape();
        const changes = samples(after, 'mcpgw_redis_master_changes_total').filter(
          (s) => s.labels.shard === victim.shard,
        );
        const ok = samples(after, 'mcpgw_redis_cluster_state').find((s) => s.labels.state === 'ok');
        return changes.length === 1 && changes[0].value === 1 && ok?.value === 1;
      },
      30_000,
      'the master change counted and the cluster ok again',
    );
    // The dead node stays listed, down, while the Cluster knows it.
    const final = nodeSamples(await scrape());
    expect(final.filter((n) => n.node === victim.node).map((n) => n.value)).toEqual([0]);
    expect(final.filter((n) => n.value === 1)).toHaveLength(5);
  });
});

describe('engine registry', () => {
  async function engineWithMetrics(target: ConstructorParameters<typeof RedisEngine>[0]['target']) {
    const metrics = createMetrics('all');
    const engine = new RedisEngine({
      target,
      prefix: uniquePrefix('node-health'),
      historyMaxLen: 10,
      historyTtlS: 60,
      logger: silentLogger(),
      metrics,
      healthIntervalMs: PROBE_INTERVAL_MS,
    });
    await engine.start();
    return { engine, metrics };
  }

  describe('Sentinel group', () => {
    let group: SentinelGroup;
    beforeAll(async () => {
      group = await startSentinelGroup();
    });
    afterAll(async () => {
      await group?.stop();
    });

    test('master and replica up; after the master is killed, it is down and the replica master', async () => {
      const { engine, metrics } = await engineWithMetrics({
        kind: 'sentinel',
        sentinels: group.sentinelsEnv.split(',').map((s) => {
          const [host, port] = s.split(':');
          return { host, port: Number(port) };
        }),
        masterName: group.masterName,
      });
      try {
        const oldMaster = `127.0.0.1:${await group.masterPort()}`;
        await waitFor(
          async () => {
            const nodes = nodeSamples(await metricsText(metrics));
            return (
              nodes.length === 2 &&
              nodes.every((n) => n.value === 1) &&
              nodes.some((n) => n.node === oldMaster && n.redisRole === 'master')
            );
          },
          10_000,
          'master and replica reported up',
        );
        await group.killMaster();
        const newMaster = `127.0.0.1:${await group.waitForFailover(Number(oldMaster.split(':')[1]))}`;
        await waitFor(
          async () => {
            const nodes = nodeSamples(await metricsText(metrics));
            return (
              nodes.some(
                (n) => n.node === newMaster && n.redisRole === 'master' && n.value === 1,
              ) && nodes.some((n) => n.node === oldMaster && n.value === 0)
            );
          },
          30_000,
          'the promoted replica reported master, the killed master down',
        );
        const changes = samples(await metricsText(metrics), 'mcpgw_redis_master_changes_total');
        expect(changes.map((c) => c.value)).toEqual([1]);
      } finally {
        await engine.close();
      }
    });
  });

  test('one server: up, down while it is stopped, up again', async () => {
    const redis = await provideRedis();
    const { engine, metrics } = await engineWithMetrics({ kind: 'url', url: redis.url });
    const port = new URL(redis.url).port;
    const state = async () =>
      nodeSamples(await metricsText(metrics)).map((n) => [n.node, n.redisRole, n.value]);
    try {
      await waitFor(
        async () =>
          JSON.stringify(await state()) === JSON.stringify([[`127.0.0.1:${port}`, 'master', 1]]),
        10_000,
        'the server reported up',
      );
      await restartRedis(redis, async () => {
        await waitFor(
          async () =>
            JSON.stringify(await state()) === JSON.stringify([[`127.0.0.1:${port}`, 'master', 0]]),
          10_000,
          'the stopped server reported down',
        );
      });
      await waitFor(
        async () =>
          JSON.stringify(await state()) === JSON.stringify([[`127.0.0.1:${port}`, 'master', 1]]),
        10_000,
        'the server reported up again',
      );
      // No Cluster: no cluster series.
      expect(samples(await metricsText(metrics), 'mcpgw_redis_cluster_state')).toEqual([]);
    } finally {
      await engine.close();
      await redis.stop();
    }
  });
});
