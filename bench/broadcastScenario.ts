/**
 * Scenarios 1 and 2: broadcast fan-out to BENCH_SUBSCRIBERS idle SSE streams (server CPU per
 * delivery, latency from POST to arrival) and the memory each idle stream costs.
 */
import { waitFor } from '../devSupport/waitFor';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Histogram, round } from './histogram';
import { issueToken, httpText, rssKb, sleep, spawnRedis, spawnRole } from './procs';
import { BENCH_EVENT, WARM_EVENT, type LoadgenReport } from './protocol';

import {
  settings,
  DIST_BENCH,
  now,
  log,
  serverEnv,
  profileArgs,
  sampleCpu,
  cpuDelta,
  metricValue,
  rssAfterGc,
} from './common';
import { startLoadgens, tell, total, broadcast, requestReports } from './loadgens';

export async function benchBroadcast(secret: string) {
  const n = settings.subscribers;
  const m = settings.broadcasts;
  const redis = await spawnRedis('redis (broadcast)');
  const nodeArgs = ['--expose-gc', '-r', path.join(DIST_BENCH, 'gcOnSignal.js')];
  const gateway = await spawnRole('gateway', 'gateway', serverEnv(redis.url, secret), [
    ...nodeArgs,
    ...profileArgs('broadcast-gateway'),
  ]);
  const team = issueToken(secret, 'team', 'bench-subscriber');
  const master = issueToken(secret, 'master', 'bench-broadcaster');
  log(`gateway pid ${gateway.proc.pid} on ${gateway.url}, redis-server pid ${redis.proc.pid}`);

  // Memory: the gateway idle (after its start-up garbage is collected), then with n streams.
  await sleep(1000);
  const rssBaselineRaw = rssKb(gateway.proc.pid);
  const rssBaseline = await rssAfterGc(gateway.proc);
  const redisRssBaseline = rssKb(redis.proc.pid);
  const heapBaseline = metricValue(
    await httpText(`${gateway.url}/metrics`),
    'mcpgw_nodejs_heap_size_used_bytes',
  );

  const loadgens = startLoadgens(settings.clientProcesses);
  const openStarted = performance.now();
  loadgens.forEach((lg, i) => {
    const share = Math.floor(n / loadgens.length) + (i < n % loadgens.length ? 1 : 0);
    tell(lg, {
      cmd: 'open',
      url: gateway.url,
      token: team,
      count: share,
      concurrency: settings.openConcurrency,
      broadcasts: m,
    });
  });
  log(`opening ${n} SSE streams from ${loadgens.length} load generator processes`);
  await waitFor(
    () => total(loadgens, 'opened') + total(loadgens, 'failed') >= n,
    90_000,
    `opening ${n} SSE streams`,
  );
  const openSeconds = (performance.now() - openStarted) / 1000;
  const opened = total(loadgens, 'opened');
  const openFailed = total(loadgens, 'failed');
  log(`${opened} streams open in ${openSeconds.toFixed(1)} s (${openFailed} failed)`);
  await sleep(1000);
  const rssOpenRaw = rssKb(gateway.proc.pid);
  const rssOpen = await rssAfterGc(gateway.proc);
  const redisRssOpen = rssKb(redis.proc.pid);
  const heapOpen = metricValue(
    await httpText(`${gateway.url}/metrics`),
    'mcpgw_nodejs_heap_size_used_bytes',
  );

  // Warm-up broadcasts (not measured): JIT-compile the fan-out path at full size.
  if (settings.warmupBroadcasts > 0) {
    const { failures: warmFailures } = await broadcast(
      gateway,
      master,
      WARM_EVENT,
      settings.warmupBroadcasts,
      settings.broadcastsPerSecond,
    );
    if (warmFailures.length) throw new Error(`warm-up broadcast failed: ${warmFailures[0]}`);
    await waitFor(
      () => total(loadgens, 'warm') >= opened * settings.warmupBroadcasts,
      30_000,
      'warm-up broadcasts to arrive',
    );
  }
  await sleep(500);

  log(`${m} broadcasts at ${settings.broadcastsPerSecond}/s to ${opened} streams`);
  const servers = { gateway: gateway.proc, redis: redis.proc };
  const clients = Object.fromEntries(loadgens.map((lg) => [lg.proc.name, lg.proc]));
  const metricsBefore = await httpText(`${gateway.url}/metrics`);
  const cpuBefore = sampleCpu({ ...servers, ...clients });
  const started = performance.now();
  const firstSent = now();
  const { failures: postFailures, lastSent } = await broadcast(
    gateway,
    master,
    BENCH_EVENT,
    m,
    settings.broadcastsPerSecond,
  );
  const expected = opened * (m - postFailures.length);
  let complete = true;
  try {
    await waitFor(() => total(loadgens, 'deliveries') >= expected, 30_000, 'broadcast deliveries');
  } catch {
    complete = false; // reported as missing below
  }
  const finished = performance.now();
  const cpuAfter = sampleCpu({ ...servers, ...clients });
  const metricsAfter = await httpText(`${gateway.url}/metrics`);
  const reports = await requestReports(loadgens);

  const cpu = cpuDelta(cpuBefore, cpuAfter);
  const latency = new Histogram();
  for (const r of reports) latency.merge(r.latency);
  const sum = (key: keyof LoadgenReport) => reports.reduce((acc, r) => acc + (r[key] as number), 0);
  const deliveries = sum('deliveries');
  const lastArrival = Math.max(...reports.map((r) => r.lastArrival));
  const deliverySeconds = (lastArrival - firstSent) / 1000;
  const serverCpu = cpu.gateway.total + cpu.redis.total;
  const clientCpu = loadgens.reduce((acc, lg) => acc + cpu[lg.proc.name].total, 0);
  const fanoutSum = (text: string) => metricValue(text, 'mcpgw_broadcast_fanout_seconds_sum');
  const fanoutCount = (text: string) => metricValue(text, 'mcpgw_broadcast_fanout_seconds_count');
  const fanoutSeconds = (fanoutSum(metricsAfter) ?? 0) - (fanoutSum(metricsBefore) ?? 0);
  const fanoutBroadcasts = (fanoutCount(metricsAfter) ?? 0) - (fanoutCount(metricsBefore) ?? 0);

  for (const lg of loadgens) tell(lg, { cmd: 'close' });
  await Promise.all(loadgens.map((lg) => lg.proc.stop('SIGTERM', 5000)));
  await gateway.proc.stop('SIGTERM', 10_000);
  await redis.proc.stop('SIGTERM', 5000);

  const broadcastResult = {
    subscribers: n,
    streamsOpen: opened,
    streamsFailed: openFailed,
    openFailures: reports.flatMap((r) => r.failures).slice(0, 5),
    openSeconds: round(openSeconds, 2),
    broadcasts: m,
    broadcastsPerSecond: settings.broadcastsPerSecond,
    postFailures: postFailures.slice(0, 5),
    postsFailed: postFailures.length,
    expectedDeliveries: expected,
    deliveries,
    lost: sum('missing'),
    duplicates: sum('duplicates'),
    complete,
    unexpectedCloses: sum('unexpectedCloses'),
    /** From the first POST sent to the last delivery. */
    wallSeconds: round(deliverySeconds, 3),
    /** From the first POST sent to the last. */
    postSeconds: round((lastSent - firstSent) / 1000, 3),
    /** From the last POST sent to the last delivery: well above one fan-out, the gateway lagged. */
    drainSeconds: round((lastArrival - lastSent) / 1000, 3),
    offeredDeliveriesPerSecond: opened * settings.broadcastsPerSecond,
    deliveriesPerSecond: round(deliveries / deliverySeconds, 0),
    /** The CPU window: from just before the first POST to when the benchmark saw the last delivery. */
    cpuWindowSeconds: round((finished - started) / 1000, 3),
    cpuMicros: {
      gateway: cpu.gateway,
      redis: cpu.redis,
      loadGenerators: Math.round(clientCpu),
    },
    cpuMicrosPerDelivery: deliveries ? round(serverCpu / deliveries, 2) : null,
    gatewayCpuMicrosPerDelivery: deliveries ? round(cpu.gateway.total / deliveries, 2) : null,
    gatewayUserMicrosPerDelivery: deliveries ? round(cpu.gateway.user / deliveries, 2) : null,
    gatewaySystemMicrosPerDelivery: deliveries ? round(cpu.gateway.system / deliveries, 2) : null,
    redisCpuMicrosPerDelivery: deliveries ? round(cpu.redis.total / deliveries, 2) : null,
    /**
     * The gateway's own timing of its fan-out loop (mcpgw_broadcast_fanout_seconds): wall time,
     * without the socket writes flushed after the loop.
     */
    fanoutLoopWallMicrosPerDelivery:
      deliveries && fanoutBroadcasts ? round((fanoutSeconds * 1e6) / deliveries, 2) : null,
    latencyMs: latency.summary(),
  };
  const memoryResult = {
    connections: opened,
    rssBaselineKb: rssBaseline,
    rssOpenKb: rssOpen,
    kbPerConnection: opened ? round((rssOpen - rssBaseline) / opened, 2) : null,
    rssBaselineNoGcKb: rssBaselineRaw,
    rssOpenNoGcKb: rssOpenRaw,
    kbPerConnectionNoGc: opened ? round((rssOpenRaw - rssBaselineRaw) / opened, 2) : null,
    heapUsedKbPerConnection:
      opened && heapBaseline !== null && heapOpen !== null
        ? round((heapOpen - heapBaseline) / 1024 / opened, 2)
        : null,
    /** Not part of the target: what the same streams cost in redis-server (subscriptions, registry). */
    redisKbPerConnection: opened ? round((redisRssOpen - redisRssBaseline) / opened, 2) : null,
  };
  return { broadcast: broadcastResult, memory: memoryResult };
}

// ---------------------------------------------------------------------------------------------
// 3: tools/call through Redis and one worker
