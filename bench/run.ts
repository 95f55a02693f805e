/**
 * `make bench`: measures the gateway against real processes on this machine and prints the
 * measurements beside the targets of README's Performance section; the same goes to bench/results/latest.json.
 *
 * 1. Broadcast fan-out: one gateway and its own redis-server, BENCH_SUBSCRIBERS idle SSE streams
 *    held by load generator processes, BENCH_BROADCASTS broadcasts (POST /mcp/sse/broadcast) at
 *    BENCH_BROADCAST_RATE per second. Server CPU (gateway + redis-server, /proc/<pid>/stat) per
 *    delivery counted at the clients; latency from the POST to arrival.
 * 2. Memory per idle SSE stream: the gateway's VmRSS before and after opening them, divided by
 *    their number (both after a full GC, and without one).
 * 3. tools/call through Redis and one worker: BENCH_CALLS `list_projects` calls via
 *    POST /mcp/sse/send, BENCH_CONCURRENCY in flight, results read on one SSE stream. Calls per
 *    second and CPU (gateway + worker + redis-server) per call.
 *
 * Every process it starts is stopped before it exits; the whole run is bounded by
 * BENCH_TIMEOUT_S. Nothing here is asserted: missed targets are reported, not failed; lost or
 * duplicated deliveries and failed calls make the exit code 2.
 */
import { randomBytes } from 'node:crypto';
import { waitFor } from '../test/helpers/waitFor';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Histogram, round } from './histogram';
import {
  cpuTickMicros,
  cpuTimes,
  forkScript,
  issueToken,
  openFilesLimit,
  reapAll,
  redisVersion,
  httpText,
  rssKb,
  sleep,
  spawnRedis,
  spawnRole,
  ROOT,
  type Proc,
  type SpawnedRole,
} from './procs';
import {
  BENCH_EVENT,
  WARM_EVENT,
  type FromLoadgen,
  type LoadgenProgress,
  type LoadgenReport,
  type ToLoadgen,
} from './protocol';
import { openSseStream, postJson } from './sseStream';

/** The targets of README's Performance section. */
const TARGETS = {
  cpuMicrosPerDelivery: 9.7,
  kbPerIdleConnection: 8,
  /** The MCP SDK's reference server: ~2,300 calls/s at ~460 µs of CPU per call. */
  sdkCpuMicrosPerCall: 460,
  nchanP99Ms: 30,
};

function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be an integer >= ${min} (got ${JSON.stringify(raw)})`);
  }
  return value;
}

const subscribers = envInt('BENCH_SUBSCRIBERS', 2000, 1);
const settings = {
  subscribers,
  broadcasts: envInt('BENCH_BROADCASTS', 50, 1),
  broadcastsPerSecond: envInt('BENCH_BROADCAST_RATE', 50, 1),
  warmupBroadcasts: envInt('BENCH_WARMUP_BROADCASTS', 5, 0),
  clientProcesses: envInt('BENCH_CLIENT_PROCS', Math.max(2, Math.ceil(subscribers / 10_000)), 1),
  openConcurrency: envInt('BENCH_OPEN_CONCURRENCY', 100, 1),
  calls: envInt('BENCH_CALLS', 2000, 1),
  warmupCalls: envInt('BENCH_WARMUP_CALLS', 200, 0),
  concurrency: envInt('BENCH_CONCURRENCY', 64, 1),
  timeoutS: envInt('BENCH_TIMEOUT_S', 240, 10),
  cpuProfile: process.env.BENCH_CPU_PROFILE === '1',
};

const RESULTS_DIR = path.join(ROOT, 'bench/results');
const DIST_BENCH = __dirname;
const now = () => performance.timeOrigin + performance.now();
const log = (line: string) =>
  console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);

/**
 * The environment of every gateway and worker under test. Limits that would throttle the load
 * generator are raised; heartbeats and the cleanup sweep (periodic work per connection, not per
 * event) are pushed past the run, so they do not land inside a measurement window.
 */
function serverEnv(redisUrl: string, secret: string): Record<string, string> {
  return {
    REDIS_URL: redisUrl,
    REDIS_PREFIX: 'bench:',
    JWT_SECRET: secret,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
    RATE_LIMIT_MAX: '1000000000',
    MAX_CONNECTIONS_PER_TOKEN: '1000000000',
    // One token drives every call: no per-token in-flight limit, every worker slot for it.
    MAX_INFLIGHT_PER_TOKEN: '1000000000',
    WORKER_SLOTS_PER_TOKEN: '1000000000',
    HEARTBEAT_INTERVAL_MS: '600000',
    CLEANUP_INTERVAL_MS: '600000',
    DRAIN_WINDOW_MS: '0',
  };
}

/**
 * BENCH_CPU_PROFILE=1: the process writes a V8 CPU profile (open it in Chrome DevTools) to
 * bench/results/profiles/ when it exits. Profiling costs CPU: do not compare such a run's numbers.
 */
function profileArgs(name: string): string[] {
  if (!settings.cpuProfile) return [];
  const dir = path.join(RESULTS_DIR, 'profiles');
  return [
    '--cpu-prof',
    `--cpu-prof-dir=${dir}`,
    `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`,
  ];
}

type CpuSample = Record<string, { user: number; system: number }>;

/** CPU used per process between two samples, in µs: user, system and their sum. */
type CpuUse = Record<string, { user: number; system: number; total: number }>;

function sampleCpu(procs: Record<string, Proc>): CpuSample {
  const sample: CpuSample = {};
  for (const [name, proc] of Object.entries(procs)) sample[name] = cpuTimes(proc.pid);
  return sample;
}

function cpuDelta(before: CpuSample, after: CpuSample): CpuUse {
  const use: CpuUse = {};
  for (const name of Object.keys(before)) {
    const user = Math.round(after[name].user - before[name].user);
    const system = Math.round(after[name].system - before[name].system);
    use[name] = { user, system, total: user + system };
  }
  return use;
}

/** Sum of a Prometheus metric's samples (every label set), or null when absent. */
function metricValue(text: string, name: string): number | null {
  let total: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const next = line.charAt(name.length);
    if (next !== ' ' && next !== '{') continue;
    total = (total ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** Full GC in the gateway (bench/gcOnSignal.ts), then its VmRSS in KB. */
async function rssAfterGc(proc: Proc): Promise<number> {
  proc.child.kill('SIGUSR2');
  await sleep(500);
  return rssKb(proc.pid);
}

// ---------------------------------------------------------------------------------------------
// 1 + 2: broadcast fan-out and memory per idle stream

interface Loadgen {
  proc: Proc;
  progress: LoadgenProgress;
  report?: LoadgenReport;
  error?: string;
}

function startLoadgens(count: number): Loadgen[] {
  return Array.from({ length: count }, (_, i) => {
    const proc = forkScript(`loadgen-${i + 1}`, path.join(DIST_BENCH, 'loadgen.js'));
    const lg: Loadgen = {
      proc,
      progress: { type: 'progress', opened: 0, failed: 0, warm: 0, deliveries: 0 },
    };
    proc.child.on('message', (message: FromLoadgen) => {
      if (message.type === 'progress') lg.progress = message;
      else if (message.type === 'report') lg.report = message;
      else lg.error = message.message;
    });
    return lg;
  });
}

function tell(lg: Loadgen, message: ToLoadgen): void {
  lg.proc.child.send(message);
}

function total(loadgens: Loadgen[], key: 'opened' | 'failed' | 'warm' | 'deliveries'): number {
  let sum = 0;
  for (const lg of loadgens) {
    if (lg.error) throw new Error(`${lg.proc.name}: ${lg.error}`);
    if (!lg.proc.isRunning()) throw new Error(`${lg.proc.name} exited:\n${lg.proc.output()}`);
    sum += lg.progress[key];
  }
  return sum;
}

/**
 * POSTs `count` broadcasts at `perSecond`, each with its send time in the message, and resolves
 * once every POST answered: the statuses that were not 202, and when the last one was sent.
 */
async function broadcast(
  gateway: SpawnedRole,
  token: string,
  event: string,
  count: number,
  perSecond: number,
): Promise<{ failures: string[]; lastSent: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const url = `${gateway.url}/mcp/sse/broadcast`;
  const interval = 1000 / perSecond;
  const start = performance.now();
  const posts: Array<Promise<string | undefined>> = [];
  for (let seq = 0; seq < count; seq++) {
    const due = start + seq * interval - performance.now();
    if (due > 0) await sleep(due);
    const message = {
      type: event,
      seq,
      sentAt: now(),
      result: { message: 'Server maintenance in 5 minutes', level: 'warning' },
    };
    posts.push(
      postJson(agent, url, token, { message, filter: { tokenTypes: ['team'] } }).then(
        (r) => (r.status === 202 ? undefined : `HTTP ${r.status} ${JSON.stringify(r.body)}`),
        (err: unknown) => String(err),
      ),
    );
  }
  const lastSent = now();
  const failures = (await Promise.all(posts)).filter((f): f is string => f !== undefined);
  agent.destroy();
  return { failures, lastSent };
}

async function requestReports(loadgens: Loadgen[]): Promise<LoadgenReport[]> {
  for (const lg of loadgens) {
    lg.report = undefined;
    tell(lg, { cmd: 'report' });
  }
  await waitFor(() => loadgens.every((lg) => lg.report), 10_000, 'load generator reports');
  return loadgens.map((lg) => lg.report!);
}

async function benchBroadcast(secret: string) {
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

async function benchToolsCall(secret: string) {
  const redis = await spawnRedis('redis (tools/call)');
  const env = serverEnv(redis.url, secret);
  const [gateway, worker] = await Promise.all([
    spawnRole(
      'gateway',
      'gateway',
      { ...env, POD_ID: 'bench-gateway' },
      profileArgs('tools-gateway'),
    ),
    spawnRole('worker', 'worker', { ...env, POD_ID: 'bench-worker' }, profileArgs('tools-worker')),
  ]);
  log(
    `gateway pid ${gateway.proc.pid}, worker pid ${worker.proc.pid}, redis-server pid ${redis.proc.pid}`,
  );
  const token = issueToken(secret, 'team', 'bench-caller');
  const agent = new http.Agent({ keepAlive: true, maxSockets: settings.concurrency });

  interface Outcome {
    ok: boolean;
    at: number;
  }
  const waiting = new Map<string, (o: Outcome) => void>();
  const early = new Map<string, Outcome>();
  const stream = await openSseStream(gateway.url, token, (event, data) => {
    if (event !== 'tool-result' && event !== 'mcp-error') return;
    const parsed = JSON.parse(data) as {
      requestId: string;
      metadata?: unknown;
      result?: { isError?: boolean };
    };
    if (event === 'tool-result' && parsed.metadata !== undefined) return; // progress
    const outcome = { ok: event === 'tool-result' && !parsed.result?.isError, at: now() };
    const wake = waiting.get(parsed.requestId);
    if (wake) {
      waiting.delete(parsed.requestId);
      wake(outcome);
    } else early.set(parsed.requestId, outcome);
  });

  const errors: string[] = [];
  let failedCalls = 0;
  const call = async (
    name: string,
    args: Record<string, unknown>,
    latency?: Histogram,
  ): Promise<void> => {
    const started = now();
    const { status, body } = await postJson(agent, `${gateway.url}/mcp/sse/send`, token, {
      connectionId: stream.connectionId,
      message: { method: 'tools/call', params: { name, arguments: args } },
    });
    if (status !== 202 || typeof body.requestId !== 'string') {
      failedCalls++;
      if (errors.length < 5) errors.push(`HTTP ${status} ${JSON.stringify(body)}`);
      return;
    }
    const requestId = body.requestId;
    let outcome = early.get(requestId);
    early.delete(requestId);
    outcome ??= await new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => {
        waiting.delete(requestId);
        resolve({ ok: false, at: NaN });
      }, 30_000);
      waiting.set(requestId, (o) => {
        clearTimeout(timer);
        resolve(o);
      });
    });
    if (!outcome.ok) {
      failedCalls++;
      if (errors.length < 5) {
        errors.push(Number.isNaN(outcome.at) ? `no result for ${requestId}` : `${name} failed`);
      }
    } else latency?.record(outcome.at - started);
  };
  const runCalls = async (count: number, latency?: Histogram) => {
    let next = 0;
    const lane = async () => {
      while (next < count) {
        next++;
        await call('list_projects', {}, latency);
      }
    };
    await Promise.all(Array.from({ length: Math.min(settings.concurrency, count) }, lane));
  };

  // A few projects for list_projects to list, and a warm-up (not measured).
  for (let i = 1; i <= 3; i++) await call('create_project', { name: `Bench project ${i}` });
  await runCalls(settings.warmupCalls);
  const seedFailures = failedCalls;
  failedCalls = 0;
  await sleep(300);

  log(`${settings.calls} tools/call list_projects, ${settings.concurrency} in flight`);
  const procs = { gateway: gateway.proc, worker: worker.proc, redis: redis.proc };
  const cpuBefore = sampleCpu(procs);
  const clientBefore = process.cpuUsage();
  const latency = new Histogram();
  const started = performance.now();
  await runCalls(settings.calls, latency);
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuDelta(cpuBefore, sampleCpu(procs));
  const client = process.cpuUsage(clientBefore);

  stream.close();
  agent.destroy();
  await Promise.all([gateway.proc.stop('SIGTERM', 10_000), worker.proc.stop('SIGTERM', 10_000)]);
  await redis.proc.stop('SIGTERM', 5000);

  const serverCpu = cpu.gateway.total + cpu.worker.total + cpu.redis.total;
  const calls = settings.calls;
  return {
    calls,
    concurrency: settings.concurrency,
    tool: 'list_projects (3 projects in the store)',
    failed: failedCalls,
    warmupFailed: seedFailures,
    errors,
    wallSeconds: round(seconds, 3),
    callsPerSecond: round(calls / seconds, 0),
    cpuMicros: { ...cpu, client: client.user + client.system },
    cpuMicrosPerCall: round(serverCpu / calls, 1),
    cpuMicrosPerCallByProcess: {
      gateway: round(cpu.gateway.total / calls, 1),
      worker: round(cpu.worker.total / calls, 1),
      redis: round(cpu.redis.total / calls, 1),
    },
    callsPerCpuSecond: serverCpu > 0 ? round((calls * 1e6) / serverCpu, 0) : null,
    latencyMs: latency.summary(),
  };
}

// ---------------------------------------------------------------------------------------------

type Verdict = 'met' | 'MISSED' | 'n/a';

function verdict(ok: boolean | null): Verdict {
  return ok === null ? 'n/a' : ok ? 'met' : 'MISSED';
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ');
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));
}

const fmt = (v: number | null | undefined, unit = '') =>
  v === null || v === undefined ? 'n/a' : `${v.toLocaleString('en-US')}${unit}`;

async function main(): Promise<void> {
  const fdLimit = openFilesLimit();
  if (settings.subscribers + 200 > fdLimit) {
    throw new Error(
      `BENCH_SUBSCRIBERS=${settings.subscribers}: one gateway process may hold at most ` +
        `${fdLimit} file descriptors here (ulimit -n); use at most ${fdLimit - 200}`,
    );
  }
  const perProcess = Math.ceil(settings.subscribers / settings.clientProcesses);
  if (perProcess + 200 > fdLimit) {
    throw new Error(
      `${perProcess} streams per load generator exceed the ${fdLimit} file descriptors a ` +
        `process may hold: raise BENCH_CLIENT_PROCS`,
    );
  }
  const startedAt = new Date();
  const loadBefore = os.loadavg();
  const secret = randomBytes(32).toString('hex');
  log(`settings ${JSON.stringify(settings)}`);

  const { broadcast: broadcastResult, memory } = await benchBroadcast(secret);
  const tools = await benchToolsCall(secret);

  const sdkCallsPerCpuSecond = Math.round(1e6 / TARGETS.sdkCpuMicrosPerCall);
  const results = {
    startedAt: startedAt.toISOString(),
    durationSeconds: round((Date.now() - startedAt.getTime()) / 1000, 1),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      node: process.version,
      redis: redisVersion(),
      loadAverageBefore: loadBefore.map((l) => round(l, 2)),
      loadAverageAfter: os.loadavg().map((l) => round(l, 2)),
      openFilesLimit: fdLimit,
      cpuTickMicros: cpuTickMicros(),
    },
    settings,
    targets: {
      cpuMicrosPerDelivery: {
        target: `<= ${TARGETS.cpuMicrosPerDelivery}`,
        measured: broadcastResult.cpuMicrosPerDelivery,
        verdict: verdict(
          broadcastResult.cpuMicrosPerDelivery === null
            ? null
            : broadcastResult.cpuMicrosPerDelivery <= TARGETS.cpuMicrosPerDelivery,
        ),
      },
      kbPerIdleConnection: {
        target: `<= ${TARGETS.kbPerIdleConnection}`,
        measured: memory.kbPerConnection,
        verdict: verdict(
          memory.kbPerConnection === null
            ? null
            : memory.kbPerConnection <= TARGETS.kbPerIdleConnection,
        ),
      },
      toolsCallsPerCpuSecond: {
        target: `> ${sdkCallsPerCpuSecond} (SDK reference server, ${TARGETS.sdkCpuMicrosPerCall} µs/call)`,
        measured: tools.callsPerCpuSecond,
        verdict: verdict(
          tools.callsPerCpuSecond === null ? null : tools.callsPerCpuSecond > sdkCallsPerCpuSecond,
        ),
      },
    },
    broadcast: broadcastResult,
    memory,
    toolsCall: tools,
    notes: [
      'CPU is user+system time from /proc/<pid>/stat (all threads), sampled just before the ' +
        'first measured request and just after the last result arrived.',
      'Load generators run on the same cores as the servers; their CPU is reported, not counted.',
      'Heartbeats and the cleanup sweep are set to 10 minutes so they fall outside the windows.',
      'Broadcasts go to the team token type only (filter.tokenTypes), which every subscriber ' +
        'has: one topic, like one nchan channel. Unfiltered, each broadcast is published to ' +
        'three topics.',
      'Per-delivery CPU depends on the rate: when the gateway lags, several broadcasts share ' +
        'one write per socket; drainSeconds shows whether it kept up.',
      'kbPerConnection is measured after a full GC in the gateway (SIGUSR2 handler preloaded ' +
        'by bench/gcOnSignal.ts); kbPerConnectionNoGc without it.',
    ],
  };

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, 'latest.json');
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);

  const b = broadcastResult;
  console.log('');
  console.log(
    `Measured on this machine (${results.machine.cpus} × ${results.machine.cpuModel}, ` +
      `Node ${process.version}, Redis ${results.machine.redis}; load average before ` +
      `${loadBefore.map((l) => l.toFixed(2)).join(' ')}):`,
  );
  console.log('');
  printTable([
    ['measure', 'target (README)', 'measured', ''],
    [
      'CPU per broadcast delivery (gateway + redis)',
      `<= ${TARGETS.cpuMicrosPerDelivery} µs`,
      `${fmt(b.cpuMicrosPerDelivery, ' µs')} (gateway ${fmt(b.gatewayUserMicrosPerDelivery)} user + ` +
        `${fmt(b.gatewaySystemMicrosPerDelivery)} sys, redis ${fmt(b.redisCpuMicrosPerDelivery)})`,
      results.targets.cpuMicrosPerDelivery.verdict,
    ],
    [
      'memory per idle SSE stream (gateway RSS)',
      `<= ${TARGETS.kbPerIdleConnection} KB`,
      `${fmt(memory.kbPerConnection, ' KB')} after GC (${fmt(memory.kbPerConnectionNoGc, ' KB')} without)`,
      results.targets.kbPerIdleConnection.verdict,
    ],
    [
      'tools/call per CPU-second (gateway + worker + redis)',
      `> ${fmt(sdkCallsPerCpuSecond)} (SDK: ${TARGETS.sdkCpuMicrosPerCall} µs/call)`,
      `${fmt(tools.callsPerCpuSecond)} (${fmt(tools.cpuMicrosPerCall, ' µs/call')})`,
      results.targets.toolsCallsPerCpuSecond.verdict,
    ],
    [
      'broadcast latency POST -> arrival, p50 / p99',
      `nchan: p99 < ${TARGETS.nchanP99Ms} ms (1,000 subs × 50/s)`,
      `${fmt(b.latencyMs.p50Ms)} / ${fmt(b.latencyMs.p99Ms, ' ms')} (${fmt(b.streamsOpen)} subs × ${b.broadcastsPerSecond}/s)`,
      'info',
    ],
    [
      'broadcast deliveries (counted at the clients)',
      `${fmt(b.expectedDeliveries)} expected`,
      `${fmt(b.deliveries)}: lost ${b.lost}, duplicated ${b.duplicates}`,
      b.lost === 0 && b.duplicates === 0 && b.complete && b.postsFailed === 0 ? 'ok' : 'LOSS',
    ],
    [
      'tools/call throughput',
      '(SDK: ~2,300/s)',
      `${fmt(tools.callsPerSecond, ' calls/s')}, p50 ${fmt(tools.latencyMs.p50Ms)} / p99 ${fmt(tools.latencyMs.p99Ms, ' ms')}, ${tools.failed} failed`,
      tools.failed === 0 ? 'info' : 'FAILED CALLS',
    ],
  ]);
  console.log('');
  console.log(
    `Broadcasts: ${fmt(b.offeredDeliveriesPerSecond)} deliveries/s offered, ` +
      `${fmt(b.deliveriesPerSecond)}/s delivered; the last arrived ${b.drainSeconds} s after the ` +
      `last POST. Load generators used ${fmt(round(b.cpuMicros.loadGenerators / 1e6, 2))} CPU-s ` +
      `meanwhile (${fmt(b.streamsOpen)} streams opened in ${b.openSeconds} s).`,
  );
  console.log(`Results written to ${path.relative(process.cwd(), file) || file}`);

  const broken =
    b.lost > 0 ||
    b.duplicates > 0 ||
    !b.complete ||
    b.postsFailed > 0 ||
    b.streamsFailed > 0 ||
    tools.failed > 0;
  if (broken) {
    console.error('bench: some deliveries or calls were lost or failed (see above)');
    process.exitCode = 2;
  }
}

async function shutdown(code: number, why?: unknown): Promise<never> {
  if (why !== undefined) console.error(`bench: ${why instanceof Error ? why.stack : String(why)}`);
  await reapAll(3000);
  process.exit(code);
}

const watchdog = setTimeout(
  () => void shutdown(1, `gave up after BENCH_TIMEOUT_S=${settings.timeoutS} s`),
  settings.timeoutS * 1000,
);
process.once('SIGINT', () => void shutdown(130, 'interrupted'));
process.once('SIGTERM', () => void shutdown(143, 'terminated'));

main().then(
  async () => {
    clearTimeout(watchdog);
    await reapAll(3000);
  },
  (err: unknown) => {
    clearTimeout(watchdog);
    void shutdown(1, err);
  },
);
