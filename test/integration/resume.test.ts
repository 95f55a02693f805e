/**
 * Issue 4: nothing lost. Two gateway processes and two workers over one real Redis: resume with
 * Last-Event-ID on another pod, a SIGKILLed gateway whose EventSource clients reconnect to the
 * other pod through a switchable proxy, a SIGTERM drain, and workers finishing their calls on
 * SIGTERM. Processes run the compiled dist/ (make builds it).
 */
import Redis from 'ioredis';
import { issueToken } from '../../shared/auth';
import type { TokenType } from '../../shared/types';
import { reapAll, spawnRole, type SpawnedProcess } from '../helpers/processes';
import { startProxy, type TestProxy } from '../helpers/proxy';
import { provideRedis, uniquePrefix, type ProvidedRedis } from '../../devSupport/redis';
import {
  openSseClient,
  sendCommand,
  type ReceivedEvent,
  type SseClient,
} from '../helpers/sseClient';
import { scrapeMetric } from '../helpers/scrape';
import { sleep, waitFor } from '../../devSupport/waitFor';
import { openRawSse, type RawSseStream } from '../unit/gateway/rawSse';

const SECRET = 'resume-test-secret-0123456789abcdef';
const token = (type: TokenType, sub = `${type}-1`) => issueToken(SECRET, { type, sub, ttl: '1h' });
const tokens = { master: token('master'), team: token('team') };

let redis: ProvidedRedis;
let env: Record<string, string>;
let gatewayA: SpawnedProcess;
let gatewayB: SpawnedProcess;
let workers: SpawnedProcess[] = [];
let proxy: TestProxy | undefined;
const clients: SseClient[] = [];
const raws: RawSseStream[] = [];

async function broadcast(gateway: SpawnedProcess, seq: number, run: string): Promise<void> {
  const res = await fetch(`${gateway.url}/mcp/sse/broadcast`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${tokens.master}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ message: { type: 'tick', run, seq } }),
  });
  expect(res.status).toBe(202);
}

/**
 * Broadcasts seq 1, 2, ... through `gateway` every `everyMs` until stopped; `stop` returns the
 * count, `sent` how many were accepted (202) so far.
 */
function steadyBroadcasts(gateway: () => SpawnedProcess, run: string, everyMs = 20) {
  let seq = 0;
  let sent = 0;
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      await broadcast(gateway(), ++seq, run);
      sent = seq;
      await sleep(everyMs); // the pace of the load, not a wait for something to happen
    }
    return seq;
  })();
  return {
    sent: () => sent,
    stop: async () => {
      stopped = true;
      return done;
    },
  };
}

/** A topic's history stream in Redis (fields e=<event>, d=<data>), oldest first. */
async function historyOf(topic: string): Promise<{ event: string; data: string }[]> {
  const admin = new Redis(redis.url);
  try {
    const entries = await admin.xrange(`${env.REDIS_PREFIX}h:${topic}`, '-', '+');
    return entries.map(([, fields]) => {
      const field = new Map<string, string>();
      for (let i = 0; i + 1 < fields.length; i += 2) field.set(fields[i], fields[i + 1]);
      return { event: field.get('e') ?? '', data: field.get('d') ?? '' };
    });
  } finally {
    admin.disconnect();
  }
}

/** The sum of a metric's samples in a process's /metrics whose labels include `labels`. */
const metric = (proc: SpawnedProcess, name: string, labels = '') =>
  scrapeMetric(proc.url, name, labels);

/**
 * Waits until every client has received the ticks of `run` up to `broadcasts.sent() + more` (the
 * load went on for `more` further broadcasts, and reached each of them).
 */
async function moreTicksReachEvery(
  group: SseClient[],
  broadcasts: { sent(): number },
  run: string,
  more: number,
  what: string,
): Promise<void> {
  const mark = broadcasts.sent() + more;
  for (const [i, c] of group.entries()) {
    await waitFor(() => ticks(c.events, run).length >= mark, 20_000, `client ${i}: ${what}`);
  }
}

const ticks = (events: ReceivedEvent[], run: string) =>
  events.filter((e) => e.event === 'tick' && e.json.run === run).map((e) => e.json.seq as number);
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** Posts `create_project` commands for a client; returns their request ids. */
async function postCalls(
  gateway: SpawnedProcess,
  client: SseClient,
  count: number,
  run: string,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const { status, body } = await sendCommand(gateway.url, tokens.team, client.connectionId, {
      method: 'tools/call',
      params: { name: 'create_project', arguments: { name: `${run}-${client.connectionId}-${i}` } },
    });
    expect(status).toBe(202);
    ids.push(body.requestId!);
  }
  return ids;
}

const finals = (events: ReceivedEvent[], ids: string[]) =>
  events
    .filter(
      (e) =>
        (e.event === 'tool-result' && e.json.metadata === undefined) || e.event === 'mcp-error',
    )
    .filter((e) => ids.includes(e.json.requestId as string));

/** Every event id names the connection and never goes back, per topic. */
function expectMonotonicIds(events: { id: string | undefined }[]): void {
  let conn = [0, 0];
  let type = [0, 0];
  const le = (a: number[], b: number[]) => a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]);
  for (const e of events) {
    const [, c, t] = e.id!.split('_');
    const cc = c.split('-').map(Number);
    const tt = t.split('-').map(Number);
    expect(le(conn, cc) && le(type, tt)).toBe(true);
    conn = cc;
    type = tt;
  }
}

async function startGateway(podId: string, extra: Record<string, string> = {}) {
  return spawnRole('gateway', { ...env, POD_ID: podId, ...extra });
}

beforeAll(async () => {
  redis = await provideRedis();
  env = {
    REDIS_URL: redis.url,
    REDIS_PREFIX: uniquePrefix('resume'),
    JWT_SECRET: SECRET,
    CLEANUP_INTERVAL_MS: '500',
    HEARTBEAT_INTERVAL_MS: '1000',
    CLAIM_IDLE_MS: '1000',
    RESUME_GRACE_MS: '15000',
    DRAIN_WINDOW_MS: '1000',
    HISTORY_MAXLEN: '5000',
    WORKER_CONCURRENCY: '4',
    // One token posts and creates many at once here; the per-token limits are tested elsewhere.
    MAX_INFLIGHT_PER_TOKEN: '1000',
    MAX_PROJECTS_PER_TOKEN: '10000',
  };
  [gatewayA, gatewayB, ...workers] = await Promise.all([
    startGateway('gateway-a'),
    startGateway('gateway-b'),
    spawnRole('worker', { ...env, POD_ID: 'worker-1' }),
    spawnRole('worker', { ...env, POD_ID: 'worker-2' }),
  ]);
}, 60_000);

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const r of raws.splice(0)) r.close();
  await proxy?.close();
  proxy = undefined;
});

afterAll(async () => {
  await reapAll();
  await redis?.stop();
});

test('a client of A resumes on B: what it missed once and in order, then live', async () => {
  const run = `cross-${Date.now()}`;
  const openOnA = () => metric(gatewayA, 'mcpgw_connections_open', 'token_type="team"');
  const openBefore = await openOnA();
  const first = await openRawSse(`${gatewayA.url}/mcp/sse`, {
    Authorization: `Bearer ${tokens.team}`,
  });
  raws.push(first);
  const welcome = await first.next((e) => e.event === 'mcp-notification');
  const connectionId = JSON.parse(welcome.data).connectionId as string;
  for (let i = 1; i <= 3; i++) await broadcast(gatewayB, i, run);
  await first.next((e) => e.event === 'tick' && e.data.includes(`"seq":3`));
  const lastId = first.events[first.events.length - 1].id!;
  first.close();
  // A noticed the client left: no pod holds the connection while it is away.
  await waitFor(async () => (await openOnA()) <= openBefore, 5_000, 'A closed the stream');

  // While away: broadcasts and the result of a command sent meanwhile go to history.
  for (let i = 4; i <= 6; i++) await broadcast(gatewayA, i, run);
  const sent = await sendCommand(gatewayB.url, tokens.team, connectionId, {
    method: 'tools/call',
    params: { name: 'create_project', arguments: { name: run } },
  });
  expect(sent.status).toBe(202);
  // The worker published the result while the client was away: it is in the connection's history.
  await waitFor(
    async () =>
      (await historyOf(`conn:${connectionId}`)).some(
        (e) =>
          e.event === 'tool-result' &&
          e.data.includes(sent.body.requestId!) &&
          !e.data.includes('"metadata"'),
      ),
    10_000,
    'the result in the history',
  );

  const second = await openRawSse(`${gatewayB.url}/mcp/sse`, {
    Authorization: `Bearer ${tokens.team}`,
    'Last-Event-ID': lastId,
  });
  raws.push(second);
  expect(second.status).toBe(200);
  const status = await second.next((e) => e.event === 'connection-status');
  expect(JSON.parse(status.data)).toMatchObject({ status: 'resumed', connectionId });
  await second.next((e) => e.event === 'tick' && e.data.includes(`"seq":6`));
  await second.next(
    (e) =>
      e.event === 'tool-result' &&
      e.data.includes(sent.body.requestId!) &&
      !e.data.includes('"metadata"'),
    10_000,
  );
  await broadcast(gatewayA, 7, run);
  await second.next((e) => e.event === 'tick' && e.data.includes(`"seq":7`));

  const seqOf = (data: string) => (JSON.parse(data) as { run: string; seq: number }).seq;
  const all = [...first.events, ...second.events].filter(
    (e) => e.event === 'tick' && e.data.includes(run),
  );
  expect(all.map((e) => seqOf(e.data))).toEqual([1, 2, 3, 4, 5, 6, 7]);
  expect(
    second.events.filter(
      (e) =>
        e.event === 'tool-result' &&
        e.data.includes(sent.body.requestId!) &&
        !e.data.includes('"metadata"'),
    ),
  ).toHaveLength(1);
  expectMonotonicIds(second.events);
  expect(second.events.every((e) => e.id!.startsWith(`${connectionId}_`))).toBe(true);
}, 30_000);

test('bad resume ids: garbage answers 400, another token 403', async () => {
  const garbage = await fetch(`${gatewayB.url}/mcp/sse`, {
    headers: { Authorization: `Bearer ${tokens.team}`, 'Last-Event-ID': 'not-an-id' },
  });
  expect(garbage.status).toBe(400);
  expect(((await garbage.json()) as { error: { code: string } }).error.code).toBe('bad_request');

  const mine = await openSseClient(gatewayA.url, tokens.team);
  clients.push(mine);
  const foreign = await fetch(`${gatewayB.url}/mcp/sse?lastEventId=${mine.events[0].id}`, {
    headers: { Authorization: `Bearer ${token('team', 'someone-else')}` },
  });
  expect(foreign.status).toBe(403);
});

test('gateway A SIGKILLed: its EventSource clients resume on B with every event once, in order', async () => {
  const run = `kill-${Date.now()}`;
  proxy = await startProxy(gatewayA.port);
  const n = 50;
  for (let i = 0; i < n; i++)
    clients.push(await openSseClient(proxy.url, tokens.team, { extraEvents: ['tick'] }));
  const broadcasts = steadyBroadcasts(() => gatewayB, run);
  const calls = await Promise.all(clients.map((c) => postCalls(gatewayB, c, 3, run)));
  // A dies while the load is reaching every client through it.
  await moreTicksReachEvery(clients, broadcasts, run, 25, '25 more ticks through A');

  proxy.setUpstream(gatewayB.port);
  await gatewayA.kill('SIGKILL');
  const moreCalls = await Promise.all(clients.map((c) => postCalls(gatewayB, c, 3, run)));
  for (const [i, c] of clients.entries()) {
    await waitFor(
      () => c.named('connection-status').some((e) => e.json.status === 'resumed'),
      20_000,
      `client ${i} resumed on B`,
    );
  }
  // Every client is back, and the load goes on through B for a while before it stops.
  await moreTicksReachEvery(clients, broadcasts, run, 25, '25 more ticks through B');
  const total = await broadcasts.stop();

  for (const [i, c] of clients.entries()) {
    const ids = [...calls[i], ...moreCalls[i]];
    await waitFor(
      () => ticks(c.events, run).length >= total && finals(c.events, ids).length >= ids.length,
      20_000,
      `client ${i} caught up`,
    );
  }
  for (const [i, c] of clients.entries()) {
    const ids = [...calls[i], ...moreCalls[i]];
    expect(ticks(c.events, run)).toEqual(range(total));
    const results = finals(c.events, ids);
    expect(results.map((e) => e.event)).toEqual(ids.map(() => 'tool-result'));
    expect(new Set(results.map((e) => e.json.requestId)).size).toBe(ids.length);
    expect(c.named('mcp-notification')).toHaveLength(1); // resumed, never a new connection
    expect(c.named('connection-status').some((e) => e.json.status === 'resumed')).toBe(true);
    expectMonotonicIds(c.events);
  }
  gatewayA = await startGateway('gateway-a2');
}, 90_000);

test('rolling restart by SIGTERM: A drains to B, A comes back, B drains to A; nothing lost', async () => {
  const run = `drain-${Date.now()}`;
  proxy = await startProxy(gatewayA.port);
  const n = 10;
  for (let i = 0; i < n; i++)
    clients.push(await openSseClient(proxy.url, tokens.team, { extraEvents: ['tick'] }));
  let stable = gatewayB;
  const broadcasts = steadyBroadcasts(() => stable, run);
  const calls = await Promise.all(clients.map((c) => postCalls(gatewayB, c, 2, run)));
  await moreTicksReachEvery(clients, broadcasts, run, 15, '15 more ticks through A');

  /** A load balancer stops routing to a pod once its /ready fails; the proxy does it at once. */
  const drain = async (leaving: SpawnedProcess, to: SpawnedProcess, round: number) => {
    proxy!.setUpstream(to.port);
    const exit = leaving.kill('SIGTERM');
    await waitFor(
      async () => (await fetch(`${leaving.url}/ready`).catch(() => undefined))?.status !== 200,
      5_000,
      'not ready',
    );
    expect(await exit).toBe(0);
    for (const [i, c] of clients.entries())
      await waitFor(
        () =>
          c.named('connection-status').filter((e) => e.json.status === 'resumed').length >= round,
        10_000,
        `client ${i} resumed`,
      );
  };
  await drain(gatewayA, gatewayB, 1);
  gatewayA = await startGateway('gateway-a3');
  stable = gatewayA;
  const moreCalls = await Promise.all(clients.map((c) => postCalls(gatewayA, c, 2, run)));
  await moreTicksReachEvery(clients, broadcasts, run, 15, '15 more ticks through B');
  await drain(gatewayB, gatewayA, 2);
  gatewayB = await startGateway('gateway-b2');
  await moreTicksReachEvery(clients, broadcasts, run, 15, '15 more ticks through A3');
  const total = await broadcasts.stop();

  for (const [i, c] of clients.entries()) {
    const ids = [...calls[i], ...moreCalls[i]];
    await waitFor(
      () => ticks(c.events, run).length >= total && finals(c.events, ids).length >= ids.length,
      20_000,
      `client ${i} caught up`,
    );
  }
  for (const [i, c] of clients.entries()) {
    const ids = [...calls[i], ...moreCalls[i]];
    expect(ticks(c.events, run)).toEqual(range(total));
    const results = finals(c.events, ids);
    expect(results).toHaveLength(ids.length);
    expect(new Set(results.map((e) => e.json.requestId)).size).toBe(ids.length);
    expect(c.named('connection-status').map((e) => e.json.status)).toEqual([
      'draining',
      'resumed',
      'draining',
      'resumed',
    ]);
    expect(c.named('mcp-notification')).toHaveLength(1);
    expectMonotonicIds(c.events);
  }
}, 90_000);

test('a gateway whose Redis subscriber dropped replays what it missed: every event once', async () => {
  const run = `resub-${Date.now()}`;
  const client = await openSseClient(gatewayB.url, tokens.team, { extraEvents: ['tick'] });
  clients.push(client);
  const admin = new Redis(redis.url);
  try {
    const broadcasts = steadyBroadcasts(() => gatewayA, run, 5);
    await moreTicksReachEvery([client], broadcasts, run, 20, '20 more ticks live');
    const reconnects = () => metric(gatewayB, 'mcpgw_redis_reconnects_total');
    const reconnectsBefore = await reconnects();
    // Drops every pub/sub connection; the publishing connections keep writing history.
    await admin.client('KILL', 'TYPE', 'pubsub');
    await waitFor(async () => (await reconnects()) > reconnectsBefore, 10_000, 'B resubscribed');
    // Broadcasts go on after B subscribed again, and reach the client (replayed, then live).
    await moreTicksReachEvery([client], broadcasts, run, 20, '20 more ticks after resubscribing');
    const total = await broadcasts.stop();
    await waitFor(() => ticks(client.events, run).length >= total, 10_000, 'caught up');
    expect(ticks(client.events, run)).toEqual(range(total));
    expectMonotonicIds(client.events);
  } finally {
    admin.disconnect();
  }
}, 30_000);

test('a worker on SIGTERM finishes the calls it holds and exits 0', async () => {
  const client = await openSseClient(gatewayB.url, tokens.team);
  clients.push(client);
  const run = `worker-term-${Date.now()}`;
  const ids = await postCalls(gatewayB, client, 40, run);
  await waitFor(() => finals(client.events, ids).length >= 2, 10_000, 'first results');
  const codes = await Promise.all(workers.map((w) => w.kill('SIGTERM')));
  expect(codes).toEqual([0, 0]);
  // Nothing left pending in the consumer group: what they held was finished and acked.
  const admin = new Redis(redis.url);
  try {
    const [pending] = (await admin.xpending(`${env.REDIS_PREFIX}cmd`, 'workers')) as [number];
    expect(pending).toBe(0);
  } finally {
    admin.disconnect();
  }
  workers = [await spawnRole('worker', { ...env, POD_ID: 'worker-3' })];
  await waitFor(() => finals(client.events, ids).length >= ids.length, 20_000, 'all results');
  const results = finals(client.events, ids);
  expect(new Set(results.map((e) => e.json.requestId)).size).toBe(ids.length);
  expect(results.every((e) => e.event === 'tool-result')).toBe(true);
  expect(results).toHaveLength(ids.length);
}, 60_000);

describe('own gateways', () => {
  const own: SpawnedProcess[] = [];
  afterAll(async () => {
    await Promise.all(own.map((p) => p.kill('SIGKILL')));
  });
  const ownGateway = async (extra: Record<string, string>) => {
    const p = await spawnRole('gateway', {
      ...env,
      REDIS_PREFIX: uniquePrefix('resume-own'),
      POD_ID: `gateway-own-${own.length}`,
      ...extra,
    });
    own.push(p);
    return p;
  };
  const open = async (gateway: SpawnedProcess, headers: Record<string, string> = {}) => {
    const stream = await openRawSse(`${gateway.url}/mcp/sse`, {
      Authorization: `Bearer ${tokens.team}`,
      ...headers,
    });
    raws.push(stream);
    return stream;
  };
  const seqs = (stream: RawSseStream, run: string) =>
    stream.events
      .filter((e) => e.event === 'tick' && e.data.includes(run))
      .map((e) => (JSON.parse(e.data) as { seq: number }).seq);

  test('a Last-Event-ID older than retention gets history-lost first, then what is kept', async () => {
    const gateway = await ownGateway({ HISTORY_MAXLEN: '5' });
    const run = `lost-${Date.now()}`;
    const first = await open(gateway);
    const welcome = await first.next((e) => e.event === 'mcp-notification');
    first.close();
    for (let i = 1; i <= 12; i++) await broadcast(gateway, i, run);
    const second = await open(gateway, { 'Last-Event-ID': welcome.id! });
    await second.next((e) => e.event === 'tick' && e.data.includes(`"seq":12`));
    expect(second.events[0].event).toBe('connection-status');
    const statuses = second.events
      .filter((e) => e.event === 'connection-status')
      .map((e) => (JSON.parse(e.data) as { status: string }).status);
    expect(statuses).toEqual(['history-lost', 'resumed']);
    expect(seqs(second, run)).toEqual([8, 9, 10, 11, 12]);
  }, 30_000);

  test('a client that stops reading is cut off as a slow consumer, then resumes with every event', async () => {
    const gateway = await ownGateway({
      SEND_QUEUE_MAX_BYTES: '65536',
      SEND_QUEUE_MAX_EVENTS: '50',
      // Everything broadcast stays in history, so the resume can replay every event.
      HISTORY_MAXLEN: '20000',
      HISTORY_MAX_BYTES: String(256 * 1024 * 1024),
      RATE_LIMIT_MAX: '100000',
    });
    const run = `slow-${Date.now()}`;
    const slow = await open(gateway);
    await slow.next((e) => e.event === 'mcp-notification');
    slow.pause();
    const disconnects = () => scrapeMetric(gateway.url, 'mcpgw_slow_consumer_disconnects_total');
    const blob = 'x'.repeat(16_000);
    let total = 0;
    // Loopback socket buffers hold a few MB: broadcast until the gateway gives up on the client.
    while (total < 5000) {
      const batch = Array.from({ length: 20 }, () => ++total);
      const statuses = await Promise.all(
        batch.map((seq) =>
          fetch(`${gateway.url}/mcp/sse/broadcast`, {
            method: 'POST',
            headers: {
              Authorization: `Bearer ${tokens.master}`,
              'Content-Type': 'application/json',
            },
            body: JSON.stringify({ message: { type: 'tick', run, seq, blob } }),
          }).then((res) => res.status),
        ),
      );
      expect(statuses.every((status) => status === 202)).toBe(true);
      if (total % 200 === 0 && (await disconnects()) > 0) break;
    }
    expect(await disconnects()).toBe(1);
    slow.close();
    await slow.ended;
    // Broadcasts posted concurrently may be stored in any order: compare as sets.
    const got = seqs(slow, run);
    const lastId = [...slow.events].reverse().find((e) => e.id)!.id!;
    const resumed = await open(gateway, { 'Last-Event-ID': lastId });
    await waitFor(() => got.length + seqs(resumed, run).length >= total, 20_000, 'all events');
    const all = [...got, ...seqs(resumed, run)];
    expect(all).toHaveLength(total);
    expect(new Set(all).size).toBe(total);
    expectMonotonicIds([...slow.events, ...resumed.events]);
  }, 60_000);
});
