/**
 * The resume storm: what a gateway's death costs its clients. Two gateways and one
 * redis-server; BENCH_STORM_STREAMS seed streams (GET /mcp/sse) spread over both, held by
 * load generator processes (bench/stormLoadgen.ts); broadcasts at BENCH_STORM_RATE per second,
 * each with a seq; BENCH_STORM_KILL_AFTER_S into them one gateway is SIGKILLed, and each of its
 * clients reconnects to the survivor with Last-Event-ID, as EventSource does.
 *
 * Reported: lost, duplicated and reordered broadcasts (per stream, by seq), the recovery from
 * the kill to the first broadcast read after reconnecting (p50 / p99 / max per stream), the
 * resumes per second the survivor took, its CPU during the storm, and the listen-queue
 * overflows and drops of the burst (/proc/net/netstat, for the whole network namespace).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { waitFor } from '../devSupport/waitFor';
import { issueToken } from '../shared/auth';
import type { ScenarioResult } from './comparison';
import { cpuDelta, envInt, log, now, profileArgs, sampleCpu, serverEnv } from './common';
import { Histogram, round } from './histogram';
import { broadcast, forkLoadgens, tell, total, type LoadgenOf } from './loadgens';
import { publishBroadcast, publisherAgent } from './broadcastTarget';
import { openFilesLimit, sleep, spawnRedis, spawnRole } from './procs';
import { BENCH_EVENT } from './protocol';
import {
  RECONNECT_PHASES,
  type StormProgress,
  type StormReport,
  type ToStormLoadgen,
} from './stormLoadgen';

const streamsWanted = envInt('BENCH_STORM_STREAMS', 10_000, 2);
export const stormSettings = {
  streams: streamsWanted,
  broadcastsPerSecond: envInt('BENCH_STORM_RATE', 10, 1),
  /** Broadcasting lasts this long; the kill comes BENCH_STORM_KILL_AFTER_S into it. */
  seconds: envInt('BENCH_STORM_SECONDS', 20, 2),
  killAfterS: envInt('BENCH_STORM_KILL_AFTER_S', 5, 1),
  /** Streams per token `sub`: the per-token registry entries stay as many as a real user's. */
  streamsPerToken: envInt('BENCH_STORM_STREAMS_PER_TOKEN', 100, 1),
  clientProcesses: envInt(
    'BENCH_STORM_CLIENT_PROCS',
    Math.max(2, Math.ceil(streamsWanted / 8000)),
    1,
  ),
  openConcurrency: envInt('BENCH_OPEN_CONCURRENCY', 100, 1),
  /** Unset: the gateways' default LISTEN_BACKLOG. Set, e.g. 511, to see Node's default. */
  listenBacklog: process.env.BENCH_STORM_BACKLOG ?? '',
  /** Waiting for every stream to catch up after the last broadcast. */
  settleS: envInt('BENCH_STORM_SETTLE_S', 60, 1),
};

type StormLoadgen = LoadgenOf<StormProgress, StormReport>;

function startStormLoadgens(count: number): StormLoadgen[] {
  return forkLoadgens<StormProgress, StormReport>(count, 'stormLoadgen.js', 'storm-loadgen', {
    type: 'progress',
    opened: 0,
    failed: 0,
    complete: 0,
    dropped: 0,
    recovered: 0,
  });
}

/** TcpExt counters of /proc/net/netstat (this network namespace: every socket of the machine). */
function listenCounters(): { overflows: number; drops: number } {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const header = lines.findIndex((l) => l.startsWith('TcpExt:'));
  const names = lines[header].split(/\s+/);
  const values = lines[header + 1].split(/\s+/);
  const value = (name: string) => Number(values[names.indexOf(name)]);
  return { overflows: value('ListenOverflows'), drops: value('ListenDrops') };
}

export async function benchResumeStorm(secret: string): Promise<ScenarioResult> {
  const s = stormSettings;
  const n = s.streams;
  const m = s.broadcastsPerSecond * s.seconds;
  const perProcess = Math.ceil(n / s.clientProcesses);
  const fdLimit = openFilesLimit();
  if (perProcess + 200 > fdLimit || n + 200 > fdLimit) {
    throw new Error(
      `BENCH_STORM_STREAMS=${n}: ${perProcess} streams per load generator and ${n} on the ` +
        `survivor must stay under ${fdLimit - 200} (ulimit -n); raise BENCH_STORM_CLIENT_PROCS`,
    );
  }
  log(`resume storm: ${JSON.stringify(s)}`);
  const redis = await spawnRedis('redis (storm)');
  const env = {
    ...serverEnv(redis.url, secret),
    ...(s.listenBacklog ? { LISTEN_BACKLOG: s.listenBacklog } : {}),
  };
  const [victim, survivor] = await Promise.all([
    spawnRole('gateway-a (killed)', 'gateway', { ...env, POD_ID: 'storm-a' }),
    spawnRole('gateway-b (survivor)', 'gateway', { ...env, POD_ID: 'storm-b' }, [
      ...profileArgs('storm-survivor'),
    ]),
  ]);
  const tokens = Array.from({ length: Math.ceil(n / s.streamsPerToken) }, (_, i) =>
    issueToken(secret, { type: 'team', sub: `storm-${i}`, ttl: '1h' }),
  );
  const master = issueToken(secret, { type: 'master', sub: 'storm-broadcaster', ttl: '1h' });

  const loadgens = startStormLoadgens(s.clientProcesses);
  const openStarted = performance.now();
  let victimStreams = 0;
  loadgens.forEach((lg, i) => {
    const count = Math.floor(n / loadgens.length) + (i < n % loadgens.length ? 1 : 0);
    victimStreams += Math.ceil(count / 2); // stream j opens on urls[j % 2]
    tell<ToStormLoadgen>(lg, {
      cmd: 'open',
      urls: [victim.url, survivor.url],
      reconnectUrl: survivor.url,
      // Each process its own slice of the tokens, so every sub's streams sit on both gateways.
      tokens: tokens.filter((_, t) => t % loadgens.length === i),
      count,
      concurrency: s.openConcurrency,
      broadcasts: m,
    });
  });
  await waitFor(
    () => total(loadgens, 'opened') + total(loadgens, 'failed') >= n,
    180_000,
    `opening ${n} SSE streams`,
  );
  const opened = total(loadgens, 'opened');
  log(
    `${opened} streams open on two gateways in ${((performance.now() - openStarted) / 1000).toFixed(1)} s ` +
      `(${total(loadgens, 'failed')} failed); ${m} broadcasts at ${s.broadcastsPerSecond}/s, ` +
      `gateway-a SIGKILLed after ${s.killAfterS} s`,
  );
  await sleep(1000);

  const servers = { survivor: survivor.proc, redis: redis.proc };
  const clients = Object.fromEntries(loadgens.map((lg) => [lg.proc.name, lg.proc]));
  let killedAt = 0;
  let cpuAtKill = sampleCpu({ ...servers, ...clients });
  let countersAtKill = listenCounters();
  const killTimer = setTimeout(() => {
    countersAtKill = listenCounters();
    cpuAtKill = sampleCpu({ ...servers, ...clients });
    killedAt = now();
    victim.proc.child.kill('SIGKILL');
  }, s.killAfterS * 1000);
  // One at a time: published in seq order, so any reorder a client sees is the gateways'.
  const agent = publisherAgent();
  const sending = broadcast(
    (message) => publishBroadcast(agent, survivor.url, master, message),
    BENCH_EVENT,
    m,
    s.broadcastsPerSecond,
    1,
  );
  await waitFor(() => killedAt > 0, (s.killAfterS + 5) * 1000, 'the kill');
  // The storm: until every dropped stream read a broadcast on its new socket.
  let allRecovered = true;
  try {
    await waitFor(
      () => total(loadgens, 'recovered') >= victimStreams,
      (s.seconds + s.settleS) * 1000,
      'every dropped stream to recover',
    );
  } catch {
    allRecovered = false;
  }
  const stormSeconds = (now() - killedAt) / 1000;
  const cpuAfterStorm = sampleCpu({ ...servers, ...clients });
  const countersAfter = listenCounters();
  const { failures: postFailures } = await sending;
  agent.destroy();
  clearTimeout(killTimer);
  let complete = true;
  try {
    await waitFor(
      () => total(loadgens, 'complete') >= opened,
      s.settleS * 1000,
      'every stream to receive every broadcast',
    );
  } catch {
    complete = false;
  }
  for (const lg of loadgens) {
    lg.report = undefined;
    tell<ToStormLoadgen>(lg, { cmd: 'report', killedAt });
  }
  await waitFor(() => loadgens.every((lg) => lg.report), 20_000, 'storm load generator reports');
  const reports = loadgens.map((lg) => lg.report!);
  for (const lg of loadgens) tell<ToStormLoadgen>(lg, { cmd: 'close' });
  await Promise.all(loadgens.map((lg) => lg.proc.stop('SIGTERM', 5000)));
  await survivor.proc.stop('SIGTERM', 10_000);
  await redis.proc.stop('SIGTERM', 5000);

  const sum = (key: keyof StormReport) => reports.reduce((a, r) => a + (r[key] as number), 0);
  const recovery = new Histogram();
  const reopen = new Histogram();
  const drop = new Histogram();
  const phases = RECONNECT_PHASES.map((p) => ({ name: p, histogram: new Histogram() }));
  const attempts = new Histogram();
  for (const r of reports) {
    recovery.merge(r.recovery);
    reopen.merge(r.reopen);
    drop.merge(r.drop);
    for (const p of phases) p.histogram.merge(r.phases[p.name]);
    attempts.merge(r.attempts);
  }
  const firstReopen = Math.min(...reports.map((r) => r.firstReopenAt || Infinity));
  const lastReopen = Math.max(...reports.map((r) => r.lastReopenAt));
  const resumes = reopen.count;
  const cpu = cpuDelta(cpuAtKill, cpuAfterStorm);
  const retries = reports.flatMap((r) => (r.retryMs ? r.retryMs : []));
  const details = {
    settings: s,
    streamsOpen: opened,
    streamsFailed: sum('failed'),
    failures: reports.flatMap((r) => r.failures).slice(0, 5),
    broadcasts: m,
    postsFailed: postFailures.length,
    postFailures: postFailures.slice(0, 5),
    dropped: sum('dropped'),
    recovered: sum('recovered'),
    allRecovered,
    complete,
    lost: sum('lost'),
    duplicates: sum('duplicates'),
    reorders: sum('reorders'),
    failedReconnectAttempts: sum('failedAttempts'),
    historyLost: sum('historyLost'),
    retryMs: retries.length ? [Math.min(...retries), Math.max(...retries)] : null,
    /** Kill → first broadcast read on the new socket, per dropped stream. */
    recoveryMs: recovery.summary(),
    /** Kill → first event of the new socket (the `resumed` status). */
    reopenMs: reopen.summary(),
    /** Kill → the client noticed its socket was gone (then waits `retry:`). */
    dropNoticedMs: drop.summary(),
    /** The phases of each stream's reconnect that got through (see stormLoadgen.ts). */
    reconnectPhasesMs: Object.fromEntries(phases.map((p) => [p.name, p.histogram.summary()])),
    /** Connect attempts per dropped stream. */
    connectAttempts: attempts.summary(),
    resumes,
    /** Resumes answered per second, from the first to the last. */
    resumesPerSecond:
      resumes > 1 && lastReopen > firstReopen
        ? Math.round((resumes - 1) / ((lastReopen - firstReopen) / 1000))
        : null,
    stormSeconds: round(stormSeconds, 2),
    listenOverflows: countersAfter.overflows - countersAtKill.overflows,
    listenDrops: countersAfter.drops - countersAtKill.drops,
    cpuMicros: {
      survivor: cpu.survivor,
      redis: cpu.redis,
      loadGenerators: loadgens.reduce((a, lg) => a + cpu[lg.proc.name].total, 0),
    },
    /** Survivor CPU over the storm window, as a share of one core. */
    survivorCpuPercent: round((cpu.survivor.total / 1e6 / stormSeconds) * 100, 1),
  };
  const ms = (v: number | null) => (v === null ? 'n/a' : `${(v / 1000).toFixed(2)} s`);
  const lines = [
    `Resume storm: ${opened.toLocaleString('en-US')} streams on 2 gateways, one SIGKILLed at ` +
      `${s.broadcastsPerSecond} broadcasts/s; ${details.dropped.toLocaleString('en-US')} streams ` +
      `resumed on the survivor: recovery p50 ${ms(recovery.percentile(0.5))}, p99 ` +
      `${ms(recovery.percentile(0.99))}, max ${ms(recovery.count ? recovery.maxMs : null)} ` +
      `(target p99 < 3 s); lost ${details.lost}, duplicated ${details.duplicates}, reordered ` +
      `${details.reorders}.`,
    `  ${details.resumesPerSecond ?? 'n/a'} resumes/s; survivor CPU ` +
      `${details.survivorCpuPercent}% of a core over ${details.stormSeconds} s; listen queue ` +
      `overflows ${details.listenOverflows}, drops ${details.listenDrops}; ` +
      `${details.failedReconnectAttempts} failed reconnect attempts, retry: ` +
      `${details.retryMs ? details.retryMs.join('-') + ' ms' : 'none (3 s default)'}.`,
    `  reconnect phases p50 / p99: ` +
      phases
        .map(
          (p) =>
            `${p.name} ${ms(p.histogram.percentile(0.5))} / ${ms(p.histogram.percentile(0.99))}`,
        )
        .join(', ') +
      `; connect attempts p99 ${Math.round(attempts.percentile(0.99) ?? 0)}, max ${attempts.maxMs}.`,
  ];
  const broken: string[] = [];
  if (details.lost > 0) broken.push(`resume storm: ${details.lost} broadcasts lost`);
  if (details.duplicates > 0) broken.push(`resume storm: ${details.duplicates} duplicated`);
  if (details.reorders > 0) broken.push(`resume storm: ${details.reorders} out of order`);
  if (!allRecovered || !complete) broken.push('resume storm: some streams never caught up');
  if (postFailures.length > 0) broken.push(`resume storm: ${postFailures.length} POSTs failed`);
  if (details.streamsFailed > 0) broken.push(`resume storm: ${details.streamsFailed} opens failed`);
  return { name: 'resumeStorm', rows: [], lines, details, broken };
}
