/**
 * Issue 3: the seed API across two gateway processes and two worker processes sharing one
 * real Redis, with no sticky sessions; issue 15: the same on a 3-master Redis Cluster.
 * Processes run the compiled dist/ (make builds it). cluster.test.ts and
 * redisCluster.pods.test.ts run it, one per Redis mode.
 */
import { issueToken } from '../../shared/auth';
import type { TokenType } from '../../shared/types';
import { type PodsOnRedis, type RedisMode, type TestCluster, startPods } from '../helpers/cluster';
import { spawnRole, type SpawnedProcess } from '../helpers/processes';
import { restartRedis } from '../../devSupport/redis';
import { callTool, openSseClient, sendCommand, type SseClient } from '../helpers/sseClient';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'cluster-test-secret-0123456789abcdef';
const token = (type: TokenType, sub = `${type}-1`) => issueToken(SECRET, { type, sub, ttl: '1h' });
const tokens = { master: token('master'), team: token('team'), readonly: token('readonly') };

/**
 * The suite on pods sharing a Redis of this mode; `commandPartitions` sets COMMAND_PARTITIONS
 * on every process.
 */
export function describeClusterSuite(mode: RedisMode, commandPartitions = 1): void {
  let cluster: PodsOnRedis;
  let env: Record<string, string>;
  let gatewayA: SpawnedProcess;
  let gatewayB: SpawnedProcess;
  let workers: SpawnedProcess[] = [];
  const clients: SseClient[] = [];

  async function connect(
    gateway: SpawnedProcess,
    type: TokenType,
    extraEvents: string[] = [],
  ): Promise<SseClient> {
    const client = await openSseClient(gateway.url, tokens[type], { extraEvents });
    clients.push(client);
    return client;
  }

  async function stats(
    gateway: SpawnedProcess,
  ): Promise<{ totalConnections: number; connectionsByType: Record<TokenType, number> }> {
    const res = await fetch(`${gateway.url}/mcp/sse/stats`, {
      headers: { Authorization: `Bearer ${tokens.master}` },
    });
    expect(res.status).toBe(200);
    return (await res.json()) as never;
  }

  async function broadcast(
    gateway: SpawnedProcess,
    message: Record<string, unknown>,
    tokenTypes?: TokenType[],
  ): Promise<void> {
    const res = await fetch(`${gateway.url}/mcp/sse/broadcast`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${tokens.master}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ message, ...(tokenTypes ? { filter: { tokenTypes } } : {}) }),
    });
    expect(res.status).toBe(202);
  }

  beforeAll(async () => {
    cluster = await startPods(mode, 'cluster', {
      gateways: 2,
      workers: 2,
      jwtSecret: SECRET,
      env: {
        CLEANUP_INTERVAL_MS: '500',
        // Closed connections stay resumable this long; the stats test below waits for the sweep.
        RESUME_GRACE_MS: '1000',
        HEARTBEAT_INTERVAL_MS: '1000',
        CLAIM_IDLE_MS: '1000',
        WORKER_CONCURRENCY: '8',
        // The delivery tests below post up to 200 commands at once with one token
        // (test/integration/fairness.test.ts covers the per-token limit).
        MAX_INFLIGHT_PER_TOKEN: '1000',
        MAX_PROJECTS_PER_TOKEN: '1000',
        COMMAND_PARTITIONS: String(commandPartitions),
      },
    });
    ({ env, workers } = cluster);
    [gatewayA, gatewayB] = cluster.gateways;
  }, 60_000);

  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });

  afterAll(() => cluster?.stop());

  test('a client on gateway A gets the result of a command posted to gateway B', async () => {
    const client = await connect(gatewayA, 'team');
    const { status, body } = await sendCommand(gatewayB.url, tokens.team, client.connectionId, {
      method: 'tools/list',
    });
    expect(status).toBe(202);
    const response = await client.next(
      (e) => e.event === 'mcp-response' && e.json.requestId === body.requestId,
    );
    const tools = (response.json.result as { tools: { name: string }[] }).tools.map((t) => t.name);
    expect(tools).toEqual(
      expect.arrayContaining(['list_projects', 'create_project', 'get_project_tree']),
    );

    const created = await callTool(gatewayB.url, tokens.team, client, 'create_project', {
      name: 'cross-pod',
    });
    expect(created.event).toBe('tool-result');
    expect(JSON.stringify(created.json.result)).toContain('cross-pod');
  });

  test('a broadcast posted to B reaches every matching client on A and B, and only those', async () => {
    const names = ['team-news', 'all-news'];
    const teamA = await connect(gatewayA, 'team', names);
    const teamB = await connect(gatewayB, 'team', names);
    const readonlyA = await connect(gatewayA, 'readonly', names);
    const masterB = await connect(gatewayB, 'master', names);

    await broadcast(gatewayB, { type: 'team-news', text: 'for team only' }, ['team']);
    // Then one to everybody: once it arrived, the first would have arrived before it (one stream
    // per token type keeps order), so no waiting for something not to happen.
    await broadcast(gatewayB, { type: 'all-news', text: 'for everybody' });

    for (const c of [teamA, teamB, readonlyA, masterB]) await c.next((e) => e.event === 'all-news');
    for (const c of [teamA, teamB]) {
      const news = c.named('team-news');
      expect(news).toHaveLength(1);
      expect(news[0].json).toMatchObject({ type: 'team-news', text: 'for team only' });
      expect(typeof news[0].json.timestamp).toBe('string');
    }
    for (const c of [readonlyA, masterB]) expect(c.named('team-news')).toHaveLength(0);
  });

  test('/mcp/sse/stats on either gateway counts the connections of both', async () => {
    // The streams of earlier tests (closed by afterEach) leave the count as their gateways see
    // them close: counting from before that lands would be off by one.
    await waitFor(async () => (await stats(gatewayA)).totalConnections === 0, 5000, 'no streams');
    const before = await stats(gatewayA);
    await connect(gatewayA, 'team');
    await connect(gatewayA, 'readonly');
    await connect(gatewayB, 'team');
    const [onA, onB] = [await stats(gatewayA), await stats(gatewayB)];
    expect(onA.totalConnections).toBe(before.totalConnections + 3);
    expect(onB.totalConnections).toBe(onA.totalConnections);
    expect(onA.connectionsByType.team).toBe(before.connectionsByType.team + 2);
    expect(onB.connectionsByType.readonly).toBe(before.connectionsByType.readonly + 1);
  });

  test('two workers writing one story concurrently lose no write', async () => {
    const client = await connect(gatewayA, 'team');
    const structured = async (name: string, args: Record<string, unknown>) => {
      const e = await callTool(gatewayB.url, tokens.team, client, name, args);
      expect(e.event).toBe('tool-result');
      return (e.json.result as { structuredContent: Record<string, unknown> }).structuredContent;
    };
    const project = await structured('create_project', { name: 'concurrent writes' });
    const actor = await structured('add_actor', { projectId: project.id, name: 'Customer' });
    const story = await structured('add_story_to_actor', { actorId: actor.id, title: 'Checkout' });

    // All at once through both gateways, so both workers update the same document together.
    const writes = [
      ...Array.from({ length: 60 }, (_, i) => ({
        name: 'add_feature_to_story',
        arguments: { storyId: story.id, title: `feature-${i}` },
      })),
      { name: 'update_story', arguments: { storyId: story.id, description: 'described' } },
      { name: 'update_story', arguments: { storyId: story.id, status: 'in_progress' } },
      { name: 'update_story', arguments: { storyId: story.id, priority: 'high' } },
    ];
    const posted = await Promise.all(
      writes.map((params, i) =>
        sendCommand(i % 2 ? gatewayA.url : gatewayB.url, tokens.team, client.connectionId, {
          method: 'tools/call',
          params,
        }),
      ),
    );
    const ids = new Set(posted.map((p) => p.body.requestId));
    await waitFor(
      () =>
        client.events.filter((e) => ids.has(e.json.requestId as string) && e.json.result).length ===
        writes.length,
      20_000,
      'every write answered',
    );
    expect(
      client.named('mcp-error').filter((e) => ids.has(e.json.requestId as string)),
    ).toHaveLength(0);

    const tree = await structured('get_story_tree', { storyId: story.id });
    expect((tree.features as { title: string }[]).map((f) => f.title).sort()).toEqual(
      Array.from({ length: 60 }, (_, i) => `feature-${i}`).sort(),
    );
    expect(tree).toMatchObject({
      description: 'described',
      status: 'in_progress',
      priority: 'high',
    });
  }, 60_000);

  test('200 commands in flight, one worker SIGKILLed: one result each, effects applied once', async () => {
    const client = await connect(gatewayA, 'team');
    const run = `batch-${Date.now()}`;
    // Posted all at once through both gateways: every fourth a slow tool that keeps worker slots
    // busy, so that commands are in a worker's hands (read, not acked) when it is killed.
    const isCreate = (i: number) => i % 4 !== 0;
    const posted = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        sendCommand(i % 2 === 0 ? gatewayA.url : gatewayB.url, tokens.team, client.connectionId, {
          method: 'tools/call',
          params: isCreate(i)
            ? { name: 'create_project', arguments: { name: `${run}-${i}` } }
            : { name: 'simulate_work', arguments: { steps: 3, delayMs: 100 } },
        }),
      ),
    );
    expect(posted.every((p) => p.status === 202)).toBe(true);
    const requestIds = posted.map((p) => p.body.requestId!);
    const finals = () =>
      client.events.filter(
        (e) =>
          e.event === 'tool-result' &&
          e.json.metadata === undefined &&
          requestIds.includes(e.json.requestId as string),
      );
    await waitFor(() => finals().length >= 20, 20_000, 'first results');
    // Kill worker-1 while it holds commands (read from the stream, not yet acked).
    const redisClient = cluster.admin();
    const heldByWorker1 = async () => {
      let held = 0;
      for (let i = 0; i < commandPartitions; i += 1) {
        const stream = cluster.keys.commandPartition(i).commands;
        const rows = (await redisClient.xpending(stream, 'workers', '-', '+', 100, 'worker-1')) as
          unknown[] | undefined;
        held += rows?.length ?? 0;
      }
      return held;
    };
    await waitFor(async () => (await heldByWorker1()) > 0, 10_000, 'worker-1 holding commands');
    const killed = workers.shift()!;
    await killed.kill('SIGKILL');
    expect(await heldByWorker1()).toBeGreaterThan(0);
    await waitFor(() => finals().length >= 200, 60_000, 'all 200 results');

    const perRequest = new Map<string, number>();
    for (const e of finals())
      perRequest.set(
        e.json.requestId as string,
        (perRequest.get(e.json.requestId as string) ?? 0) + 1,
      );
    expect(perRequest.size).toBe(200);
    expect([...perRequest.values()].every((n) => n === 1)).toBe(true);
    expect(
      client.named('mcp-error').filter((e) => requestIds.includes(e.json.requestId as string)),
    ).toHaveLength(0);

    // Every page of list_projects (100 at most per page).
    const projects: { name: string }[] = [];
    let cursor: string | undefined;
    do {
      const listed = await callTool(gatewayB.url, tokens.team, client, 'list_projects', {
        limit: 100,
        ...(cursor ? { cursor } : {}),
      });
      const page = (
        listed.json.result as {
          structuredContent: { projects: { name: string }[]; nextCursor?: string };
        }
      ).structuredContent;
      projects.push(...page.projects);
      cursor = page.nextCursor;
    } while (cursor);
    const ours = projects.filter((p) => p.name.startsWith(`${run}-`)).map((p) => p.name);
    expect(ours).toHaveLength(150);
    expect(new Set(ours).size).toBe(150);
    // What worker-1 held was claimed by the survivor and acked.
    await waitFor(async () => (await heldByWorker1()) === 0, 10_000, 'worker-1 commands reclaimed');
    redisClient.disconnect();

    const replacement = await spawnRole('worker', {
      ...env,
      POD_ID: 'worker-3',
      LOG_LEVEL: 'info',
    });
    workers.push(replacement);
    // Each process logs its role and id when it starts.
    expect(replacement.output()).toMatch(
      /"message":"Worker started".*"podId":"worker-3"|"podId":"worker-3".*"message":"Worker started"/,
    );
    expect(replacement.output()).toContain('"role":"worker"');
  }, 120_000);

  // A Cluster's failover is the fault tests' subject; this restarts the one server.
  if (mode === 'single')
    test('after redis-server restarts, commands and broadcasts flow again without restarting a process', async () => {
      const team = await connect(gatewayA, 'team', ['after-restart']);
      const teamB = await connect(gatewayB, 'team', ['after-restart']);
      const readyStatus = async (p: SpawnedProcess) => (await fetch(`${p.url}/ready`)).status;
      await restartRedis((cluster as TestCluster).redis, async () => {
        // While Redis is down every gateway and worker says it is not ready.
        for (const p of [gatewayA, gatewayB, ...workers]) {
          await waitFor(async () => (await readyStatus(p)) === 503, 10_000, `${p.role} not ready`);
        }
      });
      for (const p of [gatewayA, gatewayB, ...workers]) {
        await waitFor(async () => (await readyStatus(p)) === 200, 15_000, `${p.role} ready again`);
      }
      // The client's stream stayed open through the outage; its pod re-registers it.
      await waitFor(
        async () =>
          (await sendCommand(gatewayB.url, tokens.team, team.connectionId, { method: 'ping' }))
            .status === 202,
        10_000,
        'send accepted',
      );
      const result = await callTool(
        gatewayB.url,
        tokens.team,
        team,
        'create_project',
        { name: 'after-restart' },
        10_000,
      );
      expect(result.event).toBe('tool-result');
      await broadcast(gatewayA, { type: 'after-restart' });
      await team.next((e) => e.event === 'after-restart', 5_000);
      await teamB.next((e) => e.event === 'after-restart', 5_000);
    }, 60_000);

  test("a SIGKILLed gateway's connections leave the cluster-wide stats within the cleanup interval", async () => {
    await connect(gatewayA, 'readonly');
    await connect(gatewayA, 'readonly');
    const onB = await stats(gatewayB);
    const onA = await stats(gatewayA);
    expect(onB.totalConnections).toBe(onA.totalConnections);
    await gatewayA.kill('SIGKILL');
    // Sweeps drop entries not refreshed for 3 cleanup intervals (1.5 s here).
    await waitFor(
      async () => (await stats(gatewayB)).connectionsByType.readonly === 0,
      5_000,
      "A's connections swept",
    );
    expect((await stats(gatewayB)).totalConnections).toBe(0);
  }, 30_000);

  test('gateways and workers shut down cleanly on SIGTERM (exit 0)', async () => {
    const codes = await Promise.all([gatewayB, ...workers].map((p) => p.kill('SIGTERM')));
    expect(codes).toEqual(codes.map(() => 0));
  }, 30_000);
}
