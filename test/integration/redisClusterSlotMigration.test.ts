/**
 * Issue 15, Cluster: a slot MIGRATION (resharding) during traffic, through real processes. A
 * 3-master Cluster, two gateways, one worker; broadcasts on the three token-type topics and tool
 * calls. While they run, three slots are moved to another master the way an operator reshards
 * (devSupport/redisCluster.ts migrateSlot): the slot of the `team` token-type topic (one key per
 * MIGRATE, so a publish meets its history and meta on two nodes: TRYAGAIN), the slot of the
 * command partition `{cmd}` and the slot of the registry `{conns}`. Every message is counted
 * (sent, accepted, delivered, duplicated, reordered, lost, flagged `history-lost`) and printed as
 * one line (README, Redis modes: Redis Cluster). A second test moves the slot of a quiet topic
 * (nothing published meanwhile, so no redirection reaches any client): the engine's shard
 * subscription must follow it on the node's notice alone.
 */
import { Cluster } from 'ioredis';
import { issueToken } from '../../shared/auth';
import type { EngineEvent } from '../../shared/engine/engine';
import { redisKeys } from '../../shared/engine/redis/keys';
import { parseClusterNodes } from '../../shared/engine/redis/redisConnections';
import { topics } from '../../shared/protocol';
import { TOKEN_TYPES, type TokenType } from '../../shared/types';
import {
  masterPortOf,
  type MigrationStage,
  type ProvidedRedisCluster,
} from '../../devSupport/redisCluster';
import { uniquePrefix } from '../../devSupport/redis';
import { waitFor } from '../../devSupport/waitFor';
import { startClusterEngine } from '../helpers/clusterEngine';
import {
  broadcastTick,
  historyLost,
  isFinalResult,
  masterPorts,
  pause,
  shardSubscribersOn,
  ticks,
} from '../helpers/clusterTraffic';
import { type PodsOnRedis, startPodsOnRedisCluster } from '../helpers/cluster';
import { countSequence, cursorRegressions, histogram } from '../helpers/faultCounts';
import type { SpawnedProcess } from '../helpers/processes';
import { openSseClient, sendCommand, type SseClient } from '../helpers/sseClient';

const SECRET = 'cluster-migration-secret-0123456789abcdef';
const token = (type: TokenType) => issueToken(SECRET, { type, sub: `${type}-1`, ttl: '1h' });
const tokens = Object.fromEntries(TOKEN_TYPES.map((t) => [t, token(t)])) as Record<
  TokenType,
  string
>;

/** Pacing of the traffic: a broadcast per token type every 20 ms, a tool call every 50 ms. */
const BROADCAST_EVERY_MS = 20;
const CALL_EVERY_MS = 50;

let pods: PodsOnRedis & { redisCluster: ProvidedRedisCluster };
let admin: Cluster;
const clients: SseClient[] = [];

beforeAll(async () => {
  pods = await startPodsOnRedisCluster('cluster-slot-migration', {
    gateways: 2,
    workers: 1,
    jwtSecret: SECRET,
    env: {
      HEARTBEAT_INTERVAL_MS: '1000',
      CLEANUP_INTERVAL_MS: '500',
      // The whole run stays in history, so a missing id there means lost, not trimmed.
      HISTORY_MAXLEN: '5000',
      RATE_LIMIT_MAX: '1000000',
      MAX_INFLIGHT_PER_TOKEN: '1000',
      MAX_PROJECTS_PER_TOKEN: '10000',
    },
  });
  admin = new Cluster(parseClusterNodes(pods.redisCluster.nodes));
}, 60_000);

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  admin?.disconnect();
  await pods?.stop();
});

interface Post {
  seq: number;
  status: number;
  /** Date.now() when it was sent. */
  postedAt?: number;
  /** The error body of a refusal. */
  error?: string;
  requestId?: string;
}

async function connect(gateway: SpawnedProcess, type: TokenType): Promise<SseClient> {
  const client = await openSseClient(gateway.url, tokens[type], { extraEvents: ['tick'] });
  clients.push(client);
  return client;
}

/** A master other than the one owning `key`'s slot now. */
async function anotherMaster(key: string): Promise<number> {
  const owner = await masterPortOf(admin, key);
  return (await masterPorts(admin)).find((port) => port !== owner)!;
}

test('slots of a topic, the command partition and the registry migrated during traffic: nothing lost, nothing twice', async () => {
  const [gatewayA, gatewayB] = pods.gateways;
  const keys = pods.keys;

  // Listeners: one stream per token type on each gateway; a caller whose results come back.
  const listeners = new Map<TokenType, SseClient[]>();
  for (const type of TOKEN_TYPES) {
    listeners.set(type, [await connect(gatewayA, type), await connect(gatewayB, type)]);
  }
  const caller = await connect(gatewayA, 'team');

  let running = true;
  const posts = new Map<TokenType, Post[]>(TOKEN_TYPES.map((t) => [t, []]));
  const broadcastLoops = TOKEN_TYPES.map(async (type) => {
    for (let seq = 1; running; seq++) {
      const post: Post = { seq, status: -1, postedAt: Date.now() };
      posts.get(type)!.push(post);
      Object.assign(
        post,
        await broadcastTick((seq % 2 ? gatewayA : gatewayB).url, tokens.master, type, seq),
      );
      await pause(BROADCAST_EVERY_MS);
    }
  });
  const calls: Post[] = [];
  const callLoop = (async () => {
    for (let n = 1; running; n++) {
      const call: Post = { seq: n, status: -1 };
      calls.push(call);
      try {
        const { status, body } = await sendCommand(
          (n % 2 ? gatewayB : gatewayA).url,
          tokens.team,
          caller.connectionId,
          {
            method: 'tools/call',
            params: { name: 'create_project', arguments: { name: `p${n}` } },
          },
        );
        call.status = status;
        call.requestId = body.requestId;
        if (body.error) call.error = `${status} ${body.error.code}: ${body.error.message}`;
      } catch {
        call.status = 0;
      }
      await pause(CALL_EVERY_MS);
    }
  })();

  const answered = (type: TokenType) => posts.get(type)!.filter((p) => p.status !== -1).length;
  const accepted = (type: TokenType) => posts.get(type)!.filter((p) => p.status === 202);
  const callsAccepted = () => calls.filter((c) => c.status === 202).length;
  const callsAnswered = () => calls.filter((c) => c.status !== -1).length;
  const finals = () => caller.events.filter(isFinalResult);
  // A wait that fails stops the traffic and the test, after the counts so far are printed.
  let failure: unknown;
  const step = async (wait: () => Promise<void>) => {
    if (failure === undefined) await wait().catch((error: unknown) => (failure = error));
  };
  const moreBroadcasts = (type: TokenType, count: number, what: (t: TokenType) => number) => {
    const from = what(type);
    return waitFor(() => what(type) >= from + count, 20_000, `${count} more ${type} broadcasts`);
  };

  await step(() =>
    waitFor(
      () =>
        [...listeners.values()].flat().every((c) => ticks(c).length >= 10) && finals().length >= 3,
      15_000,
      'traffic flowing',
    ),
  );

  // 1. The `team` topic's slot, one key per MIGRATE. Traffic goes on in each window: while its
  // history and meta are on two nodes (TRYAGAIN), and once both are on the target (ASK).
  const teamHistory = keys.history(topics.tokenType('team'));
  const teamChannel = keys.channel(topics.tokenType('team'));
  const topicSlot = (await admin.cluster('KEYSLOT', teamHistory)) as number;
  const topicFrom = await masterPortOf(admin, teamHistory);
  const topicTo = await anotherMaster(teamHistory);
  const stages: MigrationStage[] = [];
  const topicWindows = async (stage: MigrationStage) => {
    stages.push(stage);
    if (stage === 'batchMoved') await step(() => moreBroadcasts('team', 1, answered));
    if (stage === 'keysMoved') {
      await step(() => moreBroadcasts('team', 5, (t) => accepted(t).length));
    }
  };
  let migratedAt = 0;
  if (failure === undefined) {
    await pods.redisCluster.migrateSlot(topicSlot, topicTo, {
      keysPerBatch: 1,
      between: topicWindows,
    });
    migratedAt = Date.now();
  }
  // Deliveries go on from the new owner.
  const acceptedBy = accepted('team').length;
  await step(() =>
    waitFor(
      () => listeners.get('team')!.every((c) => ticks(c).includes(acceptedBy + 10)),
      15_000,
      'team broadcasts delivered after the migration',
    ),
  );

  // 2. The command partition's slot (stream, consumer group, in-flight sets) while calls flow.
  const queue = keys.commandPartition(0).commands;
  const queueFrom = await masterPortOf(admin, queue);
  const queueTo = await anotherMaster(queue);
  if (failure === undefined) {
    await pods.redisCluster.migrateSlot(
      (await admin.cluster('KEYSLOT', queue)) as number,
      queueTo,
      {
        between: async (stage) => {
          // Every key of the slot is on the target, which admits (ASKING) a script only if
          // all its keys exist there: an enqueue whose in-flight set is new gets TRYAGAIN.
          if (stage === 'keysMoved') {
            const from = callsAnswered();
            await step(() => waitFor(() => callsAnswered() >= from + 1, 20_000, 'a call answered'));
          }
        },
      },
    );
  }

  // 3. The registry's slot (every /send looks its connection up there).
  const registry = keys.connections;
  const registryTo = await anotherMaster(registry);
  if (failure === undefined) {
    await pods.redisCluster.migrateSlot(
      (await admin.cluster('KEYSLOT', registry)) as number,
      registryTo,
    );
  }
  const callsBy = calls.length;
  await step(() =>
    waitFor(
      () =>
        finals().some((e) => e.json.requestId === calls[callsBy + 5]?.requestId) &&
        TOKEN_TYPES.every((type) =>
          listeners.get(type)!.every((c) => ticks(c).length >= accepted(type).length - 5),
        ),
      20_000,
      'traffic flowing after the three migrations',
    ),
  );
  running = false;
  await Promise.all([...broadcastLoops, callLoop]);

  // Settle: the last accepted broadcasts arrive, every accepted call is answered.
  await waitFor(
    () =>
      TOKEN_TYPES.every((type) => {
        const last = accepted(type).at(-1)?.seq;
        return listeners.get(type)!.every((c) => last === undefined || ticks(c).includes(last));
      }) &&
      calls.every(
        (c) => c.status !== 202 || caller.events.some((e) => e.json.requestId === c.requestId),
      ),
    10_000,
    'the last accepted broadcasts and calls',
  ).catch(() => undefined); // counted and asserted below

  const outcome = (requestId?: string) => {
    const events = caller.events.filter((e) => e.json.requestId === requestId);
    const results = events.filter(isFinalResult).length;
    if (results > 1) return 'duplicate';
    if (results === 1) return 'result';
    return events.some((e) => e.event === 'mcp-error') ? 'error' : 'none';
  };
  // The longest silence of a `team` listener: the migration's gap as its clients see it.
  const longestSilenceMs = (client: SseClient) => {
    const at = client.named('tick').map((e) => e.receivedAt);
    return Math.max(0, ...at.slice(1).map((t, i) => t - at[i]));
  };
  // The longest wait of an accepted `team` broadcast for its delivery: those published through
  // ASK on the target while the subscriptions were still on the source arrive by the catch-up.
  const longestDelayMs = (client: SseClient) => {
    const postedAt = new Map(accepted('team').map((p) => [p.seq, p.postedAt!]));
    return Math.max(
      0,
      ...client.named('tick').map((e) => e.receivedAt - (postedAt.get(e.json.seq as number) ?? 0)),
    );
  };
  const broadcastReport = Object.fromEntries(
    TOKEN_TYPES.map((type) => {
      const all = posts.get(type)!;
      const ok = accepted(type);
      return [
        type,
        {
          posted: all.length,
          accepted: ok.length,
          statuses: histogram(all.map((p) => p.status)),
          errors: histogram(all.flatMap((p) => (p.error ? [p.error] : []))),
          clients: listeners.get(type)!.map((client) => ({
            ...countSequence(
              ticks(client),
              ok.map((p) => p.seq),
            ),
            cursorRegressions: cursorRegressions(client.events, (e) =>
              e.event === 'tick' ? 'tokenType' : undefined,
            ),
            historyLost: historyLost(client).length,
            longestSilenceMs: type === 'team' ? longestSilenceMs(client) : undefined,
            longestDelayMs: type === 'team' ? longestDelayMs(client) : undefined,
          })),
        },
      ];
    }),
  );
  const callReport = {
    posted: calls.length,
    statuses: histogram(calls.map((c) => c.status)),
    errors: histogram(calls.flatMap((c) => (c.error ? [c.error] : []))),
    outcomes: histogram(calls.filter((c) => c.status === 202).map((c) => outcome(c.requestId))),
    cursorRegressions: cursorRegressions(caller.events, (e) =>
      e.event === 'tool-result' || e.event === 'mcp-error' ? 'connection' : undefined,
    ),
    historyLost: historyLost(caller).length,
  };
  // Both gateways follow the `team` channel to its new owner, and left the old one.
  const subscribed = {
    newOwner: await shardSubscribersOn(topicTo, teamChannel),
    oldOwner: await shardSubscribersOn(topicFrom, teamChannel),
  };
  const gatewayErrors = histogram(
    [...pods.gateways, ...pods.workers].flatMap((p) =>
      p
        .output()
        .split('\n')
        .filter((line) => /"level":"(error|warn)"/.test(line))
        .map((line) => {
          const { message, error } = JSON.parse(line) as { message?: unknown; error?: unknown };
          return `${String(message)}${error ? `: ${String(error)}` : ''}`.slice(0, 160);
        }),
    ),
  );
  const report = {
    migrations: {
      topic: { slot: topicSlot, from: topicFrom, to: topicTo, stages },
      queue: { from: queueFrom, to: queueTo },
      registry: { to: registryTo },
      topicMigratedAt: migratedAt,
    },
    broadcasts: broadcastReport,
    calls: callReport,
    subscribed,
    warningsAndErrors: gatewayErrors,
  };
  console.log(`cluster slot migration: ${JSON.stringify(report)}`);
  if (failure !== undefined) throw failure;

  // Nobody restarted; the windows were met (TRYAGAIN with one key moved, ASK with both).
  for (const p of [...pods.gateways, ...pods.workers]) expect(p.child.exitCode).toBeNull();
  expect(stages).toEqual(['migrating', 'batchMoved', 'keysMoved']);
  // Refused, if ever, with 503 (the engine unavailable), never anything else.
  for (const type of TOKEN_TYPES) {
    for (const p of posts.get(type)!) expect([202, 503]).toContain(p.status);
  }
  for (const c of calls) expect([202, 503]).toContain(c.status);
  for (const type of TOKEN_TYPES) {
    for (const counted of broadcastReport[type].clients) {
      // Every accepted broadcast delivered once, in order, none flagged lost.
      expect({ type, ...counted, longestSilenceMs: undefined, longestDelayMs: undefined }).toEqual({
        type,
        delivered: accepted(type).length,
        duplicates: 0,
        reordered: 0,
        lost: [],
        cursorRegressions: 0,
        historyLost: 0,
        longestSilenceMs: undefined,
        longestDelayMs: undefined,
      });
    }
  }
  // Every accepted call consumed and answered exactly once.
  expect(callReport.outcomes).toEqual({ result: callsAccepted() });
  expect({
    cursorRegressions: callReport.cursorRegressions,
    historyLost: callReport.historyLost,
  }).toEqual({ cursorRegressions: 0, historyLost: 0 });
  expect(subscribed).toEqual({ newOwner: 2, oldOwner: 0 });
}, 60_000);

test("a quiet topic's slot moved: the engine subscribes on the new owner and catches up", async () => {
  const prefix = uniquePrefix('cluster-slot-quiet');
  const listening = await startClusterEngine(pods.redisCluster, prefix);
  const publishing = await startClusterEngine(pods.redisCluster, prefix);
  let reconnects = 0;
  listening.onReconnect(() => (reconnects += 1));
  try {
    const topic = 'quiet-topic';
    const keys = redisKeys(prefix, { hashTags: true });
    const received: EngineEvent[] = [];
    await listening.subscribe([topic], (event) => received.push(event));
    const before = await publishing.publish(topic, 'e', 'before');
    await waitFor(() => received.some((e) => e.id === before), 5_000, 'event before the move');

    const from = await masterPortOf(admin, keys.history(topic));
    const to = await anotherMaster(keys.history(topic));
    const slot = (await admin.cluster('KEYSLOT', keys.history(topic))) as number;
    await pods.redisCluster.migrateSlot(slot, to);
    // The subscription moves by itself, and the engine tells its listeners to catch up.
    await waitFor(
      async () => (await shardSubscribersOn(to, keys.channel(topic))) === 1,
      10_000,
      'subscribed on the new owner',
    );
    await waitFor(() => reconnects > 0, 10_000, 'reconnect listeners told');
    expect(await shardSubscribersOn(from, keys.channel(topic))).toBe(0);
    const after = await publishing.publish(topic, 'e', 'after');
    await waitFor(() => received.some((e) => e.id === after), 5_000, 'event after the move');
    expect(received.map((e) => e.data)).toEqual(['before', 'after']);
  } finally {
    await Promise.all([listening.close(), publishing.close()]);
  }
}, 30_000);
