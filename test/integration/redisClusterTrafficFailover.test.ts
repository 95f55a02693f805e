/**
 * Issue 15, Cluster: a shard master SIGKILLed during traffic, through real processes. A 3-master
 * Cluster with one replica per master, two gateways, two workers; broadcasts on the three
 * token-type topics and tool calls whose results go to connection topics on every shard. The
 * master of the broadcast topics' shard is killed, its replica is promoted, traffic goes on.
 * Every message is counted per topic (sent, accepted, delivered, duplicated, reordered, lost,
 * flagged `history-lost`) and printed as one line (README, Redis modes: Redis Cluster).
 */
import { Cluster } from 'ioredis';
import { issueToken } from '../../shared/auth';
import { parseClusterNodes } from '../../shared/engine/redis/redisConnections';
import { topics } from '../../shared/protocol';
import { TOKEN_TYPES, type TokenType } from '../../shared/types';
import { masterPortOf, type ProvidedRedisCluster } from '../../devSupport/redisCluster';
import { waitFor } from '../../devSupport/waitFor';
import { type PodsOnRedis, startPodsOnRedisCluster } from '../helpers/cluster';
import { countSequence, cursorRegressions, histogram } from '../helpers/faultCounts';
import { readyStatus, type SpawnedProcess } from '../helpers/processes';
import {
  broadcastTick,
  historyLost,
  isFinalResult,
  masterPorts,
  pause,
  shardSubscribersOn,
  ticks,
} from '../helpers/clusterTraffic';
import {
  openSseClient,
  sendCommand,
  type ReceivedEvent,
  type SseClient,
} from '../helpers/sseClient';

const SECRET = 'cluster-failover-secret-0123456789abcdef';
const token = (type: TokenType) => issueToken(SECRET, { type, sub: `${type}-1`, ttl: '1h' });
const tokens = Object.fromEntries(TOKEN_TYPES.map((t) => [t, token(t)])) as Record<
  TokenType,
  string
>;

/** Pacing of the traffic: a broadcast per token type every 30 ms, a tool call per shard every 100 ms. */
const BROADCAST_EVERY_MS = 30;
const CALL_EVERY_MS = 100;

let pods: PodsOnRedis & { redisCluster: ProvidedRedisCluster };
let admin: Cluster;
const clients: SseClient[] = [];

beforeAll(async () => {
  pods = await startPodsOnRedisCluster('cluster-traffic-failover', {
    gateways: 2,
    workers: 2,
    jwtSecret: SECRET,
    replicasPerMaster: 1,
    env: {
      HEARTBEAT_INTERVAL_MS: '1000',
      CLEANUP_INTERVAL_MS: '500',
      CLAIM_IDLE_MS: '1000',
      RESUME_GRACE_MS: '30000',
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

const PHASES = ['before', 'during', 'after'] as const;
type Phase = (typeof PHASES)[number];

interface BroadcastPost {
  seq: number;
  phase: Phase;
  postedAt: number;
  status: number;
  /** The engine's id of the event (from the 202). */
  eventId?: string;
  /** The error body of a refusal. */
  error?: string;
}

interface CallPost {
  phase: Phase;
  status: number;
  requestId?: string;
  /** The error body of a refusal. */
  error?: string;
}

/** Events of a caller's stream and of the streams that resumed it, in order. */
type EventSource = Pick<SseClient, 'events' | 'named'>;

/**
 * A tool caller's connection: its stream, and after resume() the stream that resumed it on
 * the same gateway (Last-Event-ID), as a client whose network failed would.
 */
class CallerStream implements EventSource {
  readonly streams: SseClient[];

  constructor(
    first: SseClient,
    readonly gateway: SpawnedProcess,
    readonly label: string,
  ) {
    this.streams = [first];
  }

  get connectionId(): string {
    return this.streams[0].connectionId;
  }

  get events(): ReceivedEvent[] {
    return this.streams.flatMap((s) => s.events);
  }

  named(event: string): ReceivedEvent[] {
    return this.events.filter((e) => e.event === event);
  }

  /** Cuts the stream and resumes it from the last id it got, trying again while refused. */
  async resume(): Promise<void> {
    const last = this.streams.at(-1)!;
    last.close();
    const lastEventId = last.events.at(-1)!.id;
    await waitFor(
      async () => {
        try {
          const resumed = await openSseClient(this.gateway.url, tokens.team, {
            headers: { 'Last-Event-ID': lastEventId },
            timeoutMs: 5_000,
          });
          clients.push(resumed);
          this.streams.push(resumed);
          return true;
        } catch {
          return false; // refused (503) while the registry's shard has no master
        }
      },
      30_000,
      'stream resumed',
    );
  }
}

async function connect(gateway: SpawnedProcess, type: TokenType): Promise<SseClient> {
  const client = await openSseClient(gateway.url, tokens[type], { extraEvents: ['tick'] });
  clients.push(client);
  return client;
}

/** How many connections (one per gateway) hold a shard subscription to the topic's channel. */
async function shardSubscribers(channel: string): Promise<number> {
  return shardSubscribersOn(await masterPortOf(admin, channel), channel);
}

test('a shard master SIGKILLed during traffic: replica promoted, nothing lost but the unreplicated last writes', async () => {
  const [gatewayA, gatewayB] = pods.gateways;
  const keys = pods.keys;
  const processes = [...pods.gateways, ...pods.workers];

  // Listeners: one stream per token type on each gateway.
  const listeners = new Map<TokenType, SseClient[]>();
  for (const type of TOKEN_TYPES) {
    listeners.set(type, [await connect(gatewayA, type), await connect(gatewayB, type)]);
  }
  // The three token-type topics hash to one master here; that shard is the one killed.
  const topicMaster = new Map<TokenType, number>();
  for (const type of TOKEN_TYPES) {
    topicMaster.set(type, await masterPortOf(admin, keys.history(topics.tokenType(type))));
  }
  const victim = topicMaster.get('team')!;
  const killedTypes = TOKEN_TYPES.filter((type) => topicMaster.get(type) === victim);

  // Callers: a team stream whose connection topic (its results) is on each master.
  const masters = await masterPorts(admin);
  expect(masters).toHaveLength(3);
  const callers = new Map<number, CallerStream>();
  for (let i = 0; callers.size < masters.length && i < 40; i++) {
    const gateway = i % 2 ? gatewayB : gatewayA;
    const client = await connect(gateway, 'team');
    const port = await masterPortOf(admin, keys.history(topics.connection(client.connectionId)));
    if (!callers.has(port)) {
      callers.set(port, new CallerStream(client, gateway, i % 2 ? 'B' : 'A'));
    } else {
      client.close();
    }
  }
  expect([...callers.keys()].sort()).toEqual(masters);

  let phase: Phase = 'before';
  let running = true;
  const posts = new Map<TokenType, BroadcastPost[]>(TOKEN_TYPES.map((t) => [t, []]));
  const broadcastLoops = TOKEN_TYPES.map(async (type) => {
    for (let seq = 1; running; seq++) {
      const post: BroadcastPost = { seq, phase, postedAt: Date.now(), status: -1 };
      posts.get(type)!.push(post);
      Object.assign(
        post,
        await broadcastTick((seq % 2 ? gatewayA : gatewayB).url, tokens.master, type, seq),
      );
      await pause(BROADCAST_EVERY_MS);
    }
  });
  const calls = new Map<number, CallPost[]>([...callers.keys()].map((port) => [port, []]));
  const callLoops = [...callers].map(async ([port, client]) => {
    for (let n = 1; running; n++) {
      const call: CallPost = { phase, status: -1 };
      calls.get(port)!.push(call);
      try {
        const { status, body } = await sendCommand(
          (n % 2 ? gatewayB : gatewayA).url,
          tokens.team,
          client.connectionId,
          {
            method: 'tools/call',
            params: { name: 'create_project', arguments: { name: `shard-${port}-${n}` } },
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
  });
  // /ready of every process, sampled every 50 ms from before the kill to the end.
  const readiness = new Map<SpawnedProcess, { at: number; status: number }[]>(
    processes.map((p) => [p, []]),
  );
  const readinessLoop = (async () => {
    while (running) {
      await Promise.all(
        processes.map(async (p) => {
          const at = Date.now();
          readiness.get(p)!.push({ at, status: await readyStatus(p) });
        }),
      );
      await pause(50);
    }
  })();

  const finals = (client: EventSource) => client.events.filter(isFinalResult);
  // A wait that fails stops the traffic and the test, after the counts so far are printed.
  let failure: unknown;
  const step = async (wait: () => Promise<void>) => {
    if (failure === undefined) await wait().catch((error: unknown) => (failure = error));
  };
  await step(() =>
    waitFor(
      () =>
        [...listeners.values()].flat().every((c) => ticks(c).length >= 10) &&
        [...callers.values()].every((c) => finals(c).length >= 3),
      15_000,
      'traffic flowing on every shard',
    ),
  );

  const killedAt = Date.now();
  let promotedAt = NaN;
  let resuming: Promise<void> = Promise.resolve();
  if (failure === undefined) {
    phase = 'during';
    await pods.redisCluster.killNode(victim);
    // The killed shard's caller loses its stream now and resumes it (its old subscription is
    // released while the shard has no master, its new one taken while it gets one again).
    resuming = callers.get(victim)!.resume();
    resuming.catch(() => undefined); // awaited below, unless an earlier wait failed
  }
  await step(() =>
    waitFor(
      async () => {
        try {
          return (await masterPortOf(admin, keys.history(topics.tokenType('team')))) !== victim;
        } catch {
          return false; // the admin client is finding its way too
        }
      },
      20_000,
      'replica promoted',
    ).then(() => void (promotedAt = Date.now())),
  );
  // Deliveries resume on the killed shard's topics: a broadcast posted after the kill arrives.
  const postedAfterKill = (type: TokenType) =>
    new Set(
      posts
        .get(type)!
        .filter((p) => p.postedAt > killedAt)
        .map((p) => p.seq),
    );
  const firstDeliveryAfterKill = (client: SseClient, type: TokenType) =>
    client.named('tick').find((e) => postedAfterKill(type).has(e.json.seq as number))?.receivedAt;
  await step(() =>
    waitFor(
      () =>
        killedTypes.every((type) =>
          listeners.get(type)!.every((c) => firstDeliveryAfterKill(c, type) !== undefined),
        ),
      20_000,
      'deliveries resumed on the killed shard',
    ),
  );
  await step(() => resuming);
  phase = 'after';
  const afterFrom = new Map(TOKEN_TYPES.map((t) => [t, posts.get(t)!.length + 1]));
  const callsAfterFrom = new Map([...calls].map(([port, list]) => [port, list.length]));
  await step(() =>
    waitFor(
      () =>
        TOKEN_TYPES.every((type) =>
          listeners
            .get(type)!
            .every((c) => ticks(c).filter((seq) => seq >= afterFrom.get(type)!).length >= 20),
        ) &&
        [...callers].every(([port, client]) => {
          const ids = new Set(
            calls
              .get(port)!
              .slice(callsAfterFrom.get(port))
              .map((c) => c.requestId),
          );
          return finals(client).filter((e) => ids.has(e.json.requestId as string)).length >= 5;
        }),
      20_000,
      'traffic flowing again after the failover',
    ),
  );
  running = false;
  await Promise.all([...broadcastLoops, ...callLoops, readinessLoop]);

  // Settle: the last accepted broadcast of each topic reaches its listeners, and every
  // accepted call gets its answer, or does not within this time.
  const accepted = (type: TokenType) => posts.get(type)!.filter((p) => p.status === 202);
  await step(() =>
    waitFor(
      () =>
        TOKEN_TYPES.every((type) => {
          const last = accepted(type).at(-1)?.seq;
          return listeners.get(type)!.every((c) => last === undefined || ticks(c).includes(last));
        }),
      10_000,
      'the last accepted broadcasts',
    ),
  );
  const outcome = (client: EventSource, requestId?: string) => {
    const events = client.events.filter((e) => e.json.requestId === requestId);
    const results = events.filter(isFinalResult).length;
    if (results > 1) return 'duplicate';
    if (results === 1) return 'result';
    return events.some((e) => e.event === 'mcp-error') ? 'error' : 'none';
  };
  if (failure === undefined)
    await waitFor(
      () =>
        [...callers].every(([port, client]) =>
          calls
            .get(port)!
            .every((c) => c.status !== 202 || outcome(client, c.requestId) !== 'none'),
        ),
      15_000,
      'every accepted call answered',
    ).catch(() => undefined); // counted and asserted below

  // What the promoted replica holds of the killed shard's topics.
  const inHistory = new Map<TokenType, Set<string>>();
  for (const type of killedTypes) {
    const entries = (await admin.xrange(keys.history(topics.tokenType(type)), '-', '+')) as [
      string,
      unknown,
    ][];
    inHistory.set(type, new Set(entries.map(([id]) => id)));
  }

  const broadcastReport = Object.fromEntries(
    TOKEN_TYPES.map((type) => {
      const all = posts.get(type)!;
      const ok = accepted(type);
      const killed = killedTypes.includes(type);
      const byClient = listeners.get(type)!.map((client) => {
        const counted = countSequence(
          ticks(client),
          ok.map((p) => p.seq),
        );
        const received = new Set(ticks(client));
        return {
          ...counted,
          cursorRegressions: cursorRegressions(client.events, (e) =>
            e.event === 'tick' ? 'tokenType' : undefined,
          ),
          historyLost: historyLost(client).length,
          // Answered other than 202 (refused, or the answer lost with the master) yet delivered.
          deliveredUnaccepted: all.filter((p) => p.status !== 202 && received.has(p.seq)).length,
        };
      });
      // Accepted, yet absent from the promoted replica's history: the unreplicated last writes.
      const missingFromHistory = killed
        ? ok.filter((p) => !inHistory.get(type)!.has(p.eventId!)).map((p) => p.seq)
        : [];
      return [
        type,
        {
          killedShard: killed,
          posted: all.length,
          accepted: ok.length,
          statuses: histogram(all.map((p) => p.status)),
          errors: histogram(all.flatMap((p) => (p.error ? [p.error] : []))),
          missingFromHistory,
          clients: byClient,
        },
      ];
    }),
  );

  // Subscriptions follow the failover: both gateways on each token-type topic, the holding
  // gateway on each caller's connection topic.
  const subscribed: Record<string, number> = {};
  for (const type of TOKEN_TYPES) {
    subscribed[type] = await shardSubscribers(keys.channel(topics.tokenType(type)));
  }
  for (const [port, client] of callers) {
    subscribed[port === victim ? 'killedShard' : `shard-${port}`] = await shardSubscribers(
      keys.channel(topics.connection(client.connectionId)),
    );
  }

  const callReport = Object.fromEntries(
    await Promise.all(
      [...callers].map(async ([port, client]) => {
        const list = calls.get(port)!;
        const byPhase = Object.fromEntries(
          PHASES.map((p) => {
            const inPhase = list.filter((c) => c.phase === p);
            const outcomes = inPhase
              .filter((c) => c.status === 202)
              .map((c) => outcome(client, c.requestId));
            return [
              p,
              {
                statuses: histogram(inPhase.map((c) => c.status)),
                errors: histogram(inPhase.flatMap((c) => (c.error ? [c.error] : []))),
                outcomes: histogram(outcomes),
              },
            ];
          }),
        ) as Record<Phase, Record<'statuses' | 'errors' | 'outcomes', Record<string, number>>>;
        return [
          port === victim ? 'killedShard' : `shard-${port}`,
          {
            gateway: client.label,
            ...byPhase,
            statusEvents: histogram(
              client.named('connection-status').map((e) => String(e.json.status)),
            ),
            historyEntries: await admin.xlen(keys.history(topics.connection(client.connectionId))),
            cursorRegressions: cursorRegressions(client.events, (e) =>
              e.event === 'tool-result' || e.event === 'mcp-error' ? 'connection' : undefined,
            ),
            historyLost: historyLost(client).length,
          },
        ] as const;
      }),
    ),
  );

  // /ready: how long each process answered other than 200 (samples every 50 ms).
  const notReadyMs = (samples: { at: number; status: number }[]) =>
    samples.reduce(
      (sum, s, i) =>
        s.status !== 200 && i + 1 < samples.length ? sum + samples[i + 1].at - s.at : sum,
      0,
    );
  const gapMs = Math.min(
    ...killedTypes.flatMap((type) =>
      listeners.get(type)!.map((c) => (firstDeliveryAfterKill(c, type) ?? NaN) - killedAt),
    ),
  );
  // Requests a gateway answered 500 log their error (errorHandler): what they were.
  const gatewayErrors = histogram(
    pods.gateways.flatMap((g) =>
      g
        .output()
        .split('\n')
        .filter((line) => line.includes('"Request failed"'))
        .map((line) => String((JSON.parse(line) as { error?: unknown }).error).slice(0, 120)),
    ),
  );
  // Streams a gateway closed because their catch-up read failed (its client resumes at once).
  const catchUpsFailed = histogram(
    pods.gateways.flatMap((g) =>
      g
        .output()
        .split('\n')
        .filter((line) => line.includes('Catching up after a reconnect failed'))
        .map((line) => String((JSON.parse(line) as { error?: unknown }).error).slice(0, 100)),
    ),
  );
  // Streams cut and resumed by their client (EventSource reconnects with Last-Event-ID).
  const resumedOnPurpose = new Set(callers.get(victim)!.streams.slice(1));
  const streamsResumed = clients.filter(
    (c) =>
      !resumedOnPurpose.has(c) &&
      c.named('connection-status').some((e) => e.json.status === 'resumed'),
  ).length;
  const report = {
    failover: {
      killedMaster: victim,
      killedTypes,
      promotedAfterMs: promotedAt - killedAt,
      firstDeliveryAfterKillMs: gapMs,
      notReadyMs: Object.fromEntries(
        processes.map((p, i) => [`${p.role}-${i}`, notReadyMs(readiness.get(p)!)]),
      ),
    },
    broadcasts: broadcastReport,
    calls: callReport,
    subscribed,
    catchUpsFailed,
    streamsResumed,
    gatewayErrors,
  };
  console.log(`cluster shard-master failover: ${JSON.stringify(report)}`);
  if (failure !== undefined) throw failure;

  // Nobody restarted.
  for (const p of processes) expect(p.child.exitCode).toBeNull();
  // Refused while the shard had no master with 503 (the engine unavailable), never anything else.
  for (const type of TOKEN_TYPES) {
    for (const p of posts.get(type)!) expect([202, 503]).toContain(p.status);
  }
  for (const list of calls.values()) for (const c of list) expect([202, 503]).toContain(c.status);
  // No stream was cut: each gateway caught its streams up once the shard was back.
  expect({ catchUpsFailed, streamsResumed }).toEqual({ catchUpsFailed: {}, streamsResumed: 0 });
  // Every subscription followed the failover: both gateways on each token-type topic, the
  // stream's gateway on each caller's connection topic.
  expect(subscribed).toEqual(
    Object.fromEntries(Object.keys(subscribed).map((k) => [k, k in tokens ? 2 : 1])),
  );
  for (const type of TOKEN_TYPES) {
    const { clients: byClient, missingFromHistory } = broadcastReport[type];
    const ok = accepted(type);
    for (const counted of byClient) {
      // No duplicates, no reordering on any topic.
      expect(counted.duplicates).toBe(0);
      expect(counted.reordered).toBe(0);
      expect(counted.cursorRegressions).toBe(0);
      // Lost: only what the promoted replica never got (an accepted event in its history is
      // delivered, live or by the catch-up).
      expect(counted.lost.filter((seq) => !missingFromHistory.includes(seq))).toEqual([]);
    }
    // And what it never got is the killed master's last writes: acknowledged before the kill,
    // after every write it did replicate (asynchronous replication loses a suffix).
    if (missingFromHistory.length > 0) {
      const firstMissing = ok.findIndex((p) => p.seq === missingFromHistory[0]);
      const suffix = ok.slice(firstMissing).filter((p) => p.postedAt < killedAt);
      expect(missingFromHistory).toEqual(suffix.map((p) => p.seq));
    }
  }
  for (const [shard, byPhase] of Object.entries(callReport)) {
    expect(byPhase.cursorRegressions).toBe(0);
    // Each accepted call answered once: a result, or an error event, never two results.
    for (const p of PHASES) {
      expect({ shard, phase: p, duplicate: byPhase[p].outcomes.duplicate ?? 0 }).toEqual({
        shard,
        phase: p,
        duplicate: 0,
      });
    }
    // After the failover every call gets its result.
    expect({ shard, ...byPhase.after.outcomes }).toEqual({
      shard,
      result: expect.any(Number) as number,
    });
  }
}, 90_000);
