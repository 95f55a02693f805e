/**
 * redisCluster: does event and command throughput grow with Redis shards on this machine? The
 * same project processes against one redis-server and against a Redis Cluster of
 * BENCH_CLUSTER_MASTERS (3) masters without replicas, interleaved over BENCH_ROUNDS (one Redis,
 * Cluster, one Redis, ...), fresh processes each time, medians.
 *
 * events: 2 gateways hold BENCH_CLUSTER_TOPICS (600) streams (bench/loadgen.ts), each on its own
 *   topic (`conn:<connectionId>`, so the topics spread over the shards' slots).
 *   BENCH_CLUSTER_PUBLISHERS (2) publisher processes (bench/topicPublisher.ts: the project's
 *   engine, the call a worker makes for each progress or result event) publish
 *   BENCH_CLUSTER_EVENTS_PER_TOPIC (100) events to every topic as fast as Redis answers, at most
 *   BENCH_CLUSTER_IN_FLIGHT (200) each awaiting a reply. Every delivery is counted per stream
 *   (lost, duplicated): deliveries per second from the first publish to the last delivery.
 * commands: 2 gateways and 2 workers, BENCH_CLUSTER_CLIENTS (50) closed-loop seed-API clients,
 *   each with a token of its own (`POST /mcp/sse/send` tools/call `list_projects`, the result
 *   read on the client's stream), BENCH_CLUSTER_CALLS (5,000) after BENCH_CLUSTER_WARMUP_CALLS
 *   (500); the Cluster's processes get COMMAND_PARTITIONS=BENCH_CLUSTER_COMMAND_PARTITIONS (3),
 *   one Redis keeps the default (one command stream). A build without partitions ignores it.
 *
 * Every process's CPU (user + system, /proc/<pid>/stat) over each window is reported as a share
 * of one core, each redis-server apart, with the load generators and publishers: whether one
 * Redis (or one shard) was saturated, or the Node processes and the machine's cores were.
 */
import http from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { waitFor } from '../devSupport/waitFor';
import { issueToken } from '../shared/auth';
import { topics as topicNames } from '../shared/protocol';
import { startClusterRedis, startOneRedis, type BenchRedis } from './benchRedis';
import { median, type Comparison, type ScenarioResult } from './comparison';
import { Histogram, round } from './histogram';
import {
  expectBroadcasts,
  requestReports,
  startLoadgens,
  tell,
  total,
  type Loadgen,
} from './loadgens';
import { busyPercent, measure, openCallers, startCluster, type CallRun } from './mcpCallScenario';
import { SeedSession } from './mcpClient';
import {
  forkScript,
  machineCpuTimes,
  sleep,
  spawnRole,
  type Proc,
  type SpawnedRole,
} from './procs';
import { BENCH_EVENT, WARM_EVENT } from './protocol';
import type { FromPublisher, ToPublisher } from './topicPublisher';
import {
  DIST_BENCH,
  cpuDelta,
  envInt,
  log,
  sampleCpu,
  serverEnv,
  settings,
  type CpuUse,
  type Pid,
} from './common';

export const clusterSettings = {
  masters: envInt('BENCH_CLUSTER_MASTERS', 3, 3),
  topics: envInt('BENCH_CLUSTER_TOPICS', 600, 1),
  eventsPerTopic: envInt('BENCH_CLUSTER_EVENTS_PER_TOPIC', 100, 1),
  publishers: envInt('BENCH_CLUSTER_PUBLISHERS', 2, 1),
  inFlight: envInt('BENCH_CLUSTER_IN_FLIGHT', 200, 1),
  clients: envInt('BENCH_CLUSTER_CLIENTS', 50, 1),
  calls: envInt('BENCH_CLUSTER_CALLS', 5_000, 1),
  warmupCalls: envInt('BENCH_CLUSTER_WARMUP_CALLS', 500, 0),
  commandPartitions: envInt('BENCH_CLUSTER_COMMAND_PARTITIONS', 3, 1),
};

type Mode = 'one' | 'cluster';

/** Each process's CPU over a window as a share of one core (100 = one core busy throughout). */
type CoreShares = Record<string, number>;

/** One events measurement. */
export interface TopicRun {
  mode: Mode;
  redis: string;
  streamsOpen: number;
  streamsFailed: number;
  published: number;
  publishFailed: number;
  publishFailures: string[];
  expectedDeliveries: number;
  deliveries: number;
  lost: number;
  duplicates: number;
  complete: boolean;
  unexpectedCloses: number;
  /** From the first publish to the last delivery read. */
  wallSeconds: number;
  deliveriesPerSecond: number | null;
  latencyMs: ReturnType<Histogram['summary']>;
  cpuWindowSeconds: number;
  cpuMicros: CpuUse;
  coreShares: CoreShares;
  /** The whole machine's busy CPU over the window, % of one core (other work included). */
  machineBusyPercent: number | null;
  /** CPU per delivery of gateways, publishers and Redis (not the load generators). */
  serverMicrosPerDelivery: number | null;
  /** Redis CPU per event published: all servers, and the busiest one. */
  redisMicrosPerEvent: number | null;
  busiestRedisMicrosPerEvent: number | null;
  /** Keys each redis-server held after the run (how the topics spread). */
  keysByServer: Record<string, number>;
}

/** One commands measurement: mcpCallScenario's run, with the CPU shares. */
export interface CommandRun extends CallRun {
  mode: Mode;
  redis: string;
  coreShares: CoreShares;
  busiestRedisMicrosPerCall: number | null;
  keysByServer: Record<string, number>;
}

const startRedis = (mode: Mode): Promise<BenchRedis> =>
  mode === 'one' ? startOneRedis() : startClusterRedis(clusterSettings.masters);

/** The Cluster's processes get the partitions; one Redis keeps the default. */
const modeEnv = (mode: Mode): Record<string, string> =>
  mode === 'cluster' ? { COMMAND_PARTITIONS: String(clusterSettings.commandPartitions) } : {};

const isRedis = (name: string, redis: BenchRedis) => name in redis.servers;

function coreShares(cpu: CpuUse, windowSeconds: number): CoreShares {
  return Object.fromEntries(
    Object.entries(cpu).map(([name, use]) => [name, Math.round(use.total / (windowSeconds * 1e4))]),
  );
}

function busiestRedisMicros(cpu: CpuUse, redis: BenchRedis, per: number): number | null {
  if (per === 0) return null;
  const shares = Object.keys(redis.servers).map((name) => cpu[name]?.total ?? 0);
  return round(Math.max(...shares) / per, 2);
}

interface Publisher {
  proc: Proc;
  ready: boolean;
  done?: Extract<FromPublisher, { type: 'done' }>;
  error?: string;
}

function startPublishers(count: number, env: Record<string, string>): Publisher[] {
  return Array.from({ length: count }, (_, i) => {
    const proc = forkScript(
      `publisher-${i + 1}`,
      path.join(DIST_BENCH, 'topicPublisher.js'),
      [],
      env,
    );
    const publisher: Publisher = { proc, ready: false };
    proc.child.on('message', (message: FromPublisher) => {
      if (message.type === 'ready') publisher.ready = true;
      else if (message.type === 'done') publisher.done = message;
      else publisher.error = message.message;
    });
    return publisher;
  });
}

/** True once every publisher did `what`; throws if one failed or exited. */
function publishersAll(publishers: Publisher[], what: (p: Publisher) => boolean): boolean {
  for (const p of publishers) {
    if (p.error) throw new Error(`${p.proc.name}: ${p.error}`);
    if (!p.proc.isRunning()) throw new Error(`${p.proc.name} exited:\n${p.proc.output()}`);
  }
  return publishers.every(what);
}

/** Each publisher publishes `count` events of `event` to its share of the topics; resolves when all are done. */
async function publishRound(
  publishers: Publisher[],
  topics: string[],
  count: number,
  event: string,
): Promise<Extract<FromPublisher, { type: 'done' }>[]> {
  publishers.forEach((p, i) => {
    p.done = undefined;
    const message: ToPublisher = {
      cmd: 'publish',
      topics: topics.filter((_, t) => t % publishers.length === i),
      count,
      event,
      inFlight: clusterSettings.inFlight,
    };
    p.proc.child.send(message);
  });
  await waitFor(
    () => publishersAll(publishers, (p) => p.done !== undefined),
    60_000 + topics.length * count,
    `publishers to publish ${count} × ${topics.length} ${event} events`,
  );
  return publishers.map((p) => p.done!);
}

/** Opens `n` streams, split over the gateways and the load generators; resolves to the topics. */
async function openStreams(
  loadgens: Loadgen[],
  gateways: SpawnedRole[],
  token: string,
  n: number,
): Promise<string[]> {
  const urls = gateways.map((g) => `${g.url}/mcp/sse`);
  loadgens.forEach((lg, i) => {
    const from = i % urls.length;
    tell(lg, {
      cmd: 'open',
      urls: [...urls.slice(from), ...urls.slice(0, from)],
      headers: { Authorization: `Bearer ${token}` },
      count: Math.floor(n / loadgens.length) + (i < n % loadgens.length ? 1 : 0),
      concurrency: settings.openConcurrency,
    });
  });
  await waitFor(
    () => total(loadgens, 'opened') + total(loadgens, 'failed') >= n,
    30_000 + n * 20,
    `opening ${n} SSE streams`,
  );
  const reports = await requestReports(loadgens);
  return reports.flatMap((r) => r.connectionIds).map((id) => topicNames.connection(id));
}

/** events: one measurement on fresh processes. */
async function measureTopics(mode: Mode, roundNo: number, secret: string): Promise<TopicRun> {
  const { topics: streams, eventsPerTopic, publishers: publisherCount } = clusterSettings;
  const redis = await startRedis(mode);
  const env = { ...serverEnv(redis.env, secret), ...modeEnv(mode) };
  const gateways: SpawnedRole[] = [];
  let loadgens: Loadgen[] = [];
  let publishers: Publisher[] = [];
  try {
    for (const n of [1, 2]) {
      gateways.push(
        await spawnRole(`gateway${n}`, 'gateway', { ...env, POD_ID: `bench-gateway-${n}` }),
      );
    }
    loadgens = startLoadgens(2);
    publishers = startPublishers(publisherCount, env);
    const token = issueToken(secret, { type: 'team', sub: 'bench-subscriber', ttl: '1h' });
    const topics = await openStreams(loadgens, gateways, token, streams);
    if (topics.length !== total(loadgens, 'opened')) {
      throw new Error(`${total(loadgens, 'opened')} streams open, ${topics.length} ids read`);
    }
    await waitFor(() => publishersAll(publishers, (p) => p.ready), 20_000, 'publishers ready');
    log(`redisCluster events, ${redis.label}, round ${roundNo}: ${topics.length} streams open`);

    await expectBroadcasts(loadgens, eventsPerTopic);
    // Warm-up (not measured): one event per topic, JIT and subscriptions at full size.
    await publishRound(publishers, topics, 1, WARM_EVENT);
    await waitFor(
      () => total(loadgens, 'warm') >= topics.length,
      60_000,
      'warm-up events to arrive',
    );
    await sleep(300);

    const clients = Object.fromEntries(loadgens.map((lg) => [lg.proc.name, lg.proc]));
    const pubs = Object.fromEntries(publishers.map((p) => [p.proc.name, p.proc]));
    const holders = Object.fromEntries(gateways.map((g) => [g.proc.name, g.proc]));
    const procs: Record<string, Pid> = { ...holders, ...redis.servers, ...pubs, ...clients };
    const cpuBefore = sampleCpu(procs);
    const machineBefore = machineCpuTimes();
    const started = performance.now();
    const done = await publishRound(publishers, topics, eventsPerTopic, BENCH_EVENT);
    const published = done.reduce((a, d) => a + d.published, 0);
    const publishFailed = done.reduce((a, d) => a + d.failed, 0);
    // One stream per topic: every event published is one delivery.
    const expected = published;
    let complete = true;
    try {
      await waitFor(
        () => total(loadgens, 'deliveries') >= expected,
        30_000 + expected / 10,
        `deliveries of ${expected} events`,
      );
    } catch {
      complete = false; // reported as missing
    }
    const windowSeconds = (performance.now() - started) / 1000;
    const cpu = cpuDelta(cpuBefore, sampleCpu(procs));
    const machineBusy = busyPercent(machineBefore, machineCpuTimes());
    const reports = await requestReports(loadgens);
    const keysByServer = await redis.keysByServer();

    const latency = new Histogram();
    for (const r of reports) latency.merge(r.latency);
    const sum = (pick: (r: (typeof reports)[number]) => number) =>
      reports.reduce((a, r) => a + pick(r), 0);
    const deliveries = sum((r) => r.deliveries);
    const firstSent = Math.min(...done.map((d) => d.firstSent));
    const wallSeconds = (Math.max(...reports.map((r) => r.lastArrival)) - firstSent) / 1000;
    const redisMicros = Object.keys(redis.servers).reduce((a, n) => a + cpu[n].total, 0);
    const run: TopicRun = {
      mode,
      redis: redis.label,
      streamsOpen: total(loadgens, 'opened'),
      streamsFailed: total(loadgens, 'failed'),
      published,
      publishFailed,
      publishFailures: done.flatMap((d) => d.failures).slice(0, 5),
      expectedDeliveries: expected,
      deliveries,
      // A failed publish is missing at its stream too; it is reported as failed, not lost.
      lost: Math.max(0, sum((r) => r.missing) - publishFailed),
      duplicates: sum((r) => r.duplicates),
      complete,
      unexpectedCloses: sum((r) => r.unexpectedCloses),
      wallSeconds: round(wallSeconds, 3) ?? 0,
      deliveriesPerSecond: wallSeconds > 0 ? round(deliveries / wallSeconds, 0) : null,
      latencyMs: latency.summary(),
      cpuWindowSeconds: round(windowSeconds, 3) ?? 0,
      cpuMicros: cpu,
      coreShares: coreShares(cpu, windowSeconds),
      machineBusyPercent: machineBusy,
      serverMicrosPerDelivery: deliveries
        ? round(
            Object.keys({ ...holders, ...redis.servers, ...pubs }).reduce(
              (a, n) => a + cpu[n].total,
              0,
            ) / deliveries,
            2,
          )
        : null,
      redisMicrosPerEvent: published ? round(redisMicros / published, 2) : null,
      busiestRedisMicrosPerEvent: busiestRedisMicros(cpu, redis, published),
      keysByServer,
    };
    log(
      `redisCluster events, ${redis.label}, round ${roundNo}: ${deliveries} of ${expected} ` +
        `delivered, ${run.deliveriesPerSecond}/s; % of a core: ${sharesText(run.coreShares)}`,
    );
    return run;
  } finally {
    for (const p of publishers) if (p.proc.child.connected) p.proc.child.send({ cmd: 'close' });
    for (const lg of loadgens) if (lg.proc.child.connected) tell(lg, { cmd: 'close' });
    await Promise.all([
      ...publishers.map((p) => p.proc.stop('SIGTERM', 5000)),
      ...loadgens.map((lg) => lg.proc.stop('SIGTERM', 5000)),
    ]);
    await Promise.all(gateways.map((g) => g.proc.stop('SIGTERM', 10_000)));
    await redis.stop();
  }
}

/** commands: one measurement on fresh processes (2 gateways, 2 workers). */
async function measureCommands(
  mode: Mode,
  roundNo: number,
  secret: string,
  tokens: string[],
  agent: http.Agent,
): Promise<CommandRun> {
  const redis = await startRedis(mode);
  const cluster = await startCluster(`cluster-${mode}`, roundNo, secret, {
    redis,
    env: modeEnv(mode),
  });
  try {
    const urls = cluster.gateways.map((g) => g.url);
    const callers = await openCallers(
      urls,
      (url, client) => new SeedSession(agent, url, tokens[client]).open(),
      tokens.length,
    );
    const roleOf = (name: string) => (isRedis(name, redis) ? 'redis' : name.replace(/\d+$/, 's'));
    const run = await measure('seed', roundNo, callers, cluster.procs, roleOf, undefined, {
      calls: clusterSettings.calls,
      warmupCalls: clusterSettings.warmupCalls,
    });
    await Promise.all(callers.map((c) => c.close()));
    const keysByServer = await redis.keysByServer();
    const shares = coreShares(run.cpuMicros, run.wallSeconds ?? 0);
    // The clients are this process (mcpCallScenario's closed loop): their share too.
    shares['clients (bench)'] = Math.round(
      ((run.clientCpuMicrosPerCall ?? 0) * run.calls) / ((run.wallSeconds ?? 1) * 1e4),
    );
    log(
      `redisCluster commands, ${redis.label}, round ${roundNo}: ${run.callsPerSecond} calls/s; ` +
        `% of a core: ${sharesText(shares)}`,
    );
    return {
      ...run,
      mode,
      redis: redis.label,
      coreShares: shares,
      busiestRedisMicrosPerCall: busiestRedisMicros(run.cpuMicros, redis, run.calls),
      keysByServer,
    };
  } finally {
    await cluster.stop();
  }
}

const sharesText = (shares: CoreShares) =>
  Object.entries(shares)
    .map(([name, pct]) => `${name} ${pct}`)
    .join(', ');

/** The median of each process's share over the rounds (processes named alike in each round). */
function medianShares(runs: Array<{ coreShares: CoreShares }>): CoreShares {
  const names = Object.keys(runs[0]?.coreShares ?? {});
  return Object.fromEntries(
    names.map((n) => [n, Math.round(median(runs.map((r) => r.coreShares[n] ?? 0)) ?? 0)]),
  );
}

function med<T>(runs: T[], pick: (r: T) => number | null | undefined): number | null {
  const m = median(runs.map(pick).filter((v): v is number => typeof v === 'number'));
  return m === null ? null : round(m, 2);
}

/**
 * Where the time went, in words: a redis-server at 90 % of a core or more was the limit; else
 * the cores, when the whole machine (other work included) was 90 % busy or more; else neither
 * (the closed loop's round trips were).
 */
function bottleneck(shares: CoreShares, redisNames: string[], machineBusy: number | null): string {
  const ours = Object.values(shares).reduce((a, b) => a + b, 0);
  const capacity = os.cpus().length * 100;
  const busiest = redisNames.reduce(
    (top, n) => ((shares[n] ?? 0) > (shares[top] ?? 0) ? n : top),
    redisNames[0],
  );
  const busiestShare = shares[busiest] ?? 0;
  const machine =
    machineBusy === null
      ? `these processes ${ours} % of ${capacity} %`
      : `the machine ${machineBusy} % busy of ${capacity} %, these processes ${ours} % of it`;
  if (busiestShare >= 90) return `limit: ${busiest} at ${busiestShare} % of a core (${machine})`;
  if (machineBusy !== null && machineBusy >= 0.9 * capacity) {
    return `limit: the cores (${machine}), no redis-server above ${busiestShare} % of a core`;
  }
  return `no redis-server (at most ${busiestShare} %) nor the cores (${machine}) saturated`;
}

const fmt = (v: number | null) => (v === null ? 'n/a' : v.toLocaleString('en-US'));

export async function benchRedisCluster(secret: string): Promise<ScenarioResult> {
  const s = clusterSettings;
  const topicRuns: Record<Mode, TopicRun[]> = { one: [], cluster: [] };
  const commandRuns: Record<Mode, CommandRun[]> = { one: [], cluster: [] };
  const tokens = Array.from({ length: s.clients }, (_, i) =>
    issueToken(secret, { type: 'team', sub: `bench-caller-${i + 1}`, ttl: '1h' }),
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: s.clients });
  const loadBefore = os.loadavg()[0];
  try {
    for (let r = 1; r <= settings.rounds; r++) {
      for (const mode of ['one', 'cluster'] as const) {
        log(
          `redisCluster, round ${r} of ${settings.rounds}: ${mode === 'one' ? 'one Redis' : `${s.masters}-master Cluster`}`,
        );
        topicRuns[mode].push(await measureTopics(mode, r, secret));
        commandRuns[mode].push(await measureCommands(mode, r, secret, tokens, agent));
      }
    }
  } finally {
    agent.destroy();
  }
  const loadAfter = os.loadavg()[0];

  const cluster = `${s.masters}-master Cluster`;
  const peer = 'one Redis (same processes)';
  const eventsSetup =
    `${s.topics} streams on 2 gateways, one topic each, ${s.eventsPerTopic} events per topic ` +
    `from ${s.publishers} publishers (the engine's publish, as workers do) at full speed`;
  const commandsSetup =
    `${s.clients} closed-loop seed-API clients, a token each, 2 gateways + 2 workers; Cluster ` +
    `with COMMAND_PARTITIONS=${s.commandPartitions}`;
  const rows: Comparison[] = [
    {
      measure: `events to ${s.topics} topics: deliveries/s, ${cluster}`,
      peer,
      peerValue: med(topicRuns.one, (r) => r.deliveriesPerSecond),
      projectValue: med(topicRuns.cluster, (r) => r.deliveriesPerSecond),
      unit: 'deliveries/s',
      better: 'higher',
      targetRatio: 1.0,
      detail: eventsSetup,
    },
    {
      measure: `events to ${s.topics} topics: busiest redis-server's CPU per event`,
      peer,
      peerValue: med(topicRuns.one, (r) => r.busiestRedisMicrosPerEvent),
      projectValue: med(topicRuns.cluster, (r) => r.busiestRedisMicrosPerEvent),
      unit: 'µs',
      better: 'lower',
      // An even spread over 3 shards gives a third; half allows for uneven slots.
      targetRatio: 0.5,
      detail: 'how much of the Redis work the busiest server does: the spread over the shards',
    },
    {
      measure: `events to ${s.topics} topics: CPU per delivery`,
      peer,
      peerValue: med(topicRuns.one, (r) => r.serverMicrosPerDelivery),
      projectValue: med(topicRuns.cluster, (r) => r.serverMicrosPerDelivery),
      unit: 'µs',
      better: 'lower',
      targetRatio: 1.0,
      detail:
        'gateways, publishers and every redis-server: what the Cluster mode costs in all, ' +
        'which on a machine whose cores are busy is what bounds the throughput',
    },
    {
      measure: `tools/call, seed path, ${s.clients} tokens: calls/s, ${cluster}`,
      peer,
      peerValue: med(commandRuns.one, (r) => r.callsPerSecond),
      projectValue: med(commandRuns.cluster, (r) => r.callsPerSecond),
      unit: 'calls/s',
      better: 'higher',
      targetRatio: 1.0,
      detail: commandsSetup,
    },
    {
      measure: 'tools/call, seed path: server CPU per call',
      peer,
      peerValue: med(commandRuns.one, (r) => r.cpuMicrosPerCall),
      projectValue: med(commandRuns.cluster, (r) => r.cpuMicrosPerCall),
      unit: 'µs',
      better: 'lower',
      targetRatio: 1.0,
      detail: 'gateways, workers and every redis-server',
    },
    {
      measure: `tools/call, seed path: busiest redis-server's CPU per call`,
      peer,
      peerValue: med(commandRuns.one, (r) => r.busiestRedisMicrosPerCall),
      projectValue: med(commandRuns.cluster, (r) => r.busiestRedisMicrosPerCall),
      unit: 'µs',
      better: 'lower',
      targetRatio: 0.5,
      detail: 'the command stream, its consumer group and results: how they spread',
    },
  ];

  const lines: string[] = [];
  for (const mode of ['one', 'cluster'] as const) {
    const label = mode === 'one' ? 'one Redis' : cluster;
    const t = topicRuns[mode];
    const c = commandRuns[mode];
    const redisNames = Object.keys(t[0]?.keysByServer ?? {});
    const tShares = medianShares(t);
    const cShares = medianShares(c);
    const tBusy = med(t, (r) => r.machineBusyPercent);
    const cBusy = med(c, (r) => r.machineBusyPercent);
    lines.push(
      `redisCluster events, ${label}: ${fmt(med(t, (r) => r.deliveriesPerSecond))} deliveries/s, ` +
        `p99 ${fmt(med(t, (r) => r.latencyMs.p99Ms))} ms, Redis ${fmt(med(t, (r) => r.redisMicrosPerEvent))} µs/event ` +
        `in all; % of a core (median): ${sharesText(tShares)}; ${bottleneck(tShares, redisNames, tBusy)}; ` +
        `keys per server: ${sharesText(t[t.length - 1]?.keysByServer ?? {})}`,
      `redisCluster commands, ${label}: ${fmt(med(c, (r) => r.callsPerSecond))} calls/s, ` +
        `p99 ${fmt(med(c, (r) => r.latencyMs.p99Ms))} ms, server CPU ${fmt(med(c, (r) => r.cpuMicrosPerCall))} µs/call; ` +
        `% of a core (median): ${sharesText(cShares)}; ${bottleneck(cShares, redisNames, cBusy)}; ` +
        `keys per server: ${sharesText(c[c.length - 1]?.keysByServer ?? {})}`,
    );
  }
  lines.push(
    `redisCluster: load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after ` +
      `(other work on the machine shares the cores with every process above).`,
  );

  const broken: string[] = [];
  for (const run of [...topicRuns.one, ...topicRuns.cluster]) {
    const at = `redisCluster events (${run.redis})`;
    if (run.streamsFailed) broken.push(`${at}: ${run.streamsFailed} streams failed to open`);
    if (run.publishFailed) {
      broken.push(`${at}: ${run.publishFailed} publishes failed: ${run.publishFailures[0]}`);
    }
    if (run.lost) broken.push(`${at}: ${run.lost} deliveries lost`);
    if (run.duplicates) broken.push(`${at}: ${run.duplicates} deliveries duplicated`);
    if (!run.complete) broken.push(`${at}: deliveries still missing when the wait ended`);
    if (run.unexpectedCloses) broken.push(`${at}: ${run.unexpectedCloses} streams closed`);
  }
  for (const run of [...commandRuns.one, ...commandRuns.cluster]) {
    if (run.failed) {
      broken.push(
        `redisCluster commands (${run.redis}, round ${run.round}): ${run.failed} calls failed: ` +
          run.errors.join('; '),
      );
    }
  }
  return {
    name: 'redisCluster',
    rows,
    lines,
    details: { settings: clusterSettings, events: topicRuns, commands: commandRuns },
    broken,
  };
}
