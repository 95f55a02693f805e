/**
 * `tools/call` side by side with the MCP SDK's reference Streamable HTTP server.
 *
 * BENCH_MCP_CLIENTS (50) closed-loop clients, each with its own session, make BENCH_MCP_CALLS
 * (10,000) calls between them after BENCH_MCP_WARMUP_CALLS (1,000) unmeasured ones, against:
 * - sdk: the SDK's examples/server/simpleStreamableHttp.js (one process), tool `greet`;
 * - mcp: the project's `/mcp` through 2 gateways, 2 workers and one redis-server, clients spread
 *   over both gateways, tool `list_projects` (the project's cheapest call, over 3 projects);
 * - seed: the same topology and tool through the seed API (`POST /mcp/sse/send`, the result
 *   read as `tool-result` on each client's own `GET /mcp/sse` stream on the same gateway).
 * Each round runs the three in that order on fresh processes; BENCH_ROUNDS (2) rounds, and the
 * rows are the medians. Server CPU is user + system of every server process over the measured
 * window (/proc/<pid>/stat).
 */
import http from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import Redis from 'ioredis';
import type { Comparison, ScenarioResult } from './comparison';
import { median } from './comparison';
import { Histogram, round } from './histogram';
import {
  issueToken,
  sdkExampleServer,
  machineCpuTimes,
  sdkVersion,
  sleep,
  spawnRole,
  spawnSdkServer,
  type SpawnedRole,
} from './procs';
import { startOneRedis, type BenchRedis } from './benchRedis';
import { McpHttpSession, SeedSession, type ToolCaller } from './mcpClient';
import {
  DIST_BENCH,
  cpuDelta,
  envInt,
  log,
  now,
  profileArgs,
  sampleCpu,
  serverEnv,
  settings,
  type CpuUse,
  type Pid,
} from './common';

export const mcpCallSettings = {
  clients: envInt('BENCH_MCP_CLIENTS', 50, 1),
  calls: envInt('BENCH_MCP_CALLS', 10_000, 1),
  warmupCalls: envInt('BENCH_MCP_WARMUP_CALLS', 1_000, 0),
  rounds: envInt('BENCH_ROUNDS', 2, 1),
};

export type Target = 'sdk' | 'mcp' | 'seed';

/** The tool each side calls: the SDK example's `greet` and the project's `list_projects`. */
const TOOLS: Record<Target, { name: string; args: Record<string, unknown> }> = {
  sdk: { name: 'greet', args: { name: 'bench' } },
  mcp: { name: 'list_projects', args: {} },
  seed: { name: 'list_projects', args: {} },
};
const PROJECTS_LISTED = 3;

export interface CallRun {
  target: Target;
  round: number;
  calls: number;
  failed: number;
  errors: string[];
  wallSeconds: number | null;
  callsPerSecond: number | null;
  latencyMs: ReturnType<Histogram['summary']>;
  /** Server CPU per call in µs: all server processes, and by role. */
  cpuMicrosPerCall: number | null;
  cpuMicrosPerCallByRole: Record<string, number | null>;
  /** This (client) process's CPU per call, µs: not counted as server CPU. */
  clientCpuMicrosPerCall: number | null;
  cpuMicros: CpuUse;
  /**
   * The whole machine's busy CPU over the window in % of one core (at most 100 × cores),
   * whoever used it: what is left for the servers on a machine busy with other work.
   */
  machineBusyPercent: number | null;
  /**
   * The measured window on CLOCK_MONOTONIC in µs, the clock of V8's CPU profiles: with
   * BENCH_CPU_PROFILE=1, the samples between these two are the measured calls' (startup and
   * warm-up excluded).
   */
  windowMonotonicMicros: [number, number];
  /** Redis commands during the window (project only): calls and server time per tools/call. */
  redisCommandsPerCall?: RedisCommandUse[];
}

interface RedisCommandUse {
  command: string;
  callsPerCall: number | null;
  microsPerCall: number | null;
}

/** Redis's own time by command (INFO commandstats), reset when the window opens. */
class RedisCommandStats {
  private readonly admin: Redis;

  constructor(url: string) {
    this.admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  }

  async reset(): Promise<void> {
    await this.admin.config('RESETSTAT');
  }

  /** Per tools/call, busiest first; the INFO call itself is left out. */
  async perCall(calls: number): Promise<RedisCommandUse[]> {
    const text = await this.admin.info('commandstats');
    const uses: RedisCommandUse[] = [];
    for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      if (m[1] === 'info' || m[1] === 'config|resetstat') continue;
      uses.push({
        command: m[1],
        callsPerCall: round(Number(m[2]) / calls, 2),
        microsPerCall: round(Number(m[3]) / calls, 1),
      });
    }
    return uses.sort((a, b) => (b.microsPerCall ?? 0) - (a.microsPerCall ?? 0));
  }

  close(): void {
    this.admin.disconnect();
  }
}

/** The machine's busy share between two machineCpuTimes() readings, in % of one core. */
export function busyPercent(
  before: { busy: number; total: number },
  after: { busy: number; total: number },
): number | null {
  const total = after.total - before.total;
  if (total <= 0) return null;
  return Math.round(((after.busy - before.busy) / total) * os.cpus().length * 100);
}

const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

/** The closed loop: each caller makes calls back to back until `total` have been started. */
async function closedLoop(
  callers: ToolCaller[],
  total: number,
  tool: { name: string; args: Record<string, unknown> },
  latency?: Histogram,
): Promise<{ failed: number; errors: string[] }> {
  let started = 0;
  let failed = 0;
  const errors: string[] = [];
  const lane = async (caller: ToolCaller) => {
    while (started < total) {
      started++;
      const t0 = now();
      try {
        await caller.callTool(tool.name, tool.args);
        latency?.record(now() - t0);
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(callers.map(lane));
  return { failed, errors };
}

/** Warm-up, then the measured calls with the servers' CPU sampled around them. */
export async function measure(
  target: Target,
  roundNo: number,
  callers: ToolCaller[],
  procs: Record<string, Pid>,
  roleOf: (procName: string) => string,
  redisStats?: RedisCommandStats,
  /** Calls measured and warm-up calls before them. */
  plan: { calls: number; warmupCalls: number } = mcpCallSettings,
): Promise<CallRun> {
  const tool = TOOLS[target];
  const warm = await closedLoop(callers, plan.warmupCalls, tool);
  await sleep(300);
  await redisStats?.reset();
  const calls = plan.calls;
  const cpuBefore = sampleCpu(procs);
  const machineBefore = machineCpuTimes();
  const clientBefore = process.cpuUsage();
  const latency = new Histogram();
  const windowStart = monotonicMicros();
  const t0 = performance.now();
  const measured = await closedLoop(callers, calls, tool, latency);
  const seconds = (performance.now() - t0) / 1000;
  const windowEnd = monotonicMicros();
  const cpu = cpuDelta(cpuBefore, sampleCpu(procs));
  const machineAfter = machineCpuTimes();
  const client = process.cpuUsage(clientBefore);
  const redisCommandsPerCall = await redisStats?.perCall(calls);

  const byRole: Record<string, number> = {};
  let serverCpu = 0;
  for (const [name, use] of Object.entries(cpu)) {
    byRole[roleOf(name)] = (byRole[roleOf(name)] ?? 0) + use.total;
    serverCpu += use.total;
  }
  const perCall = (micros: number) => round(micros / calls, 1);
  const run: CallRun = {
    target,
    round: roundNo,
    calls,
    failed: measured.failed + warm.failed,
    errors: [...warm.errors, ...measured.errors].slice(0, 5),
    wallSeconds: round(seconds, 3),
    callsPerSecond: round(calls / seconds, 0),
    latencyMs: latency.summary(),
    cpuMicrosPerCall: perCall(serverCpu),
    cpuMicrosPerCallByRole: Object.fromEntries(
      Object.entries(byRole).map(([role, micros]) => [role, perCall(micros)]),
    ),
    clientCpuMicrosPerCall: perCall(client.user + client.system),
    cpuMicros: cpu,
    machineBusyPercent: busyPercent(machineBefore, machineAfter),
    windowMonotonicMicros: [windowStart, windowEnd],
    ...(redisCommandsPerCall ? { redisCommandsPerCall } : {}),
  };
  const roles = Object.entries(run.cpuMicrosPerCallByRole)
    .map(([role, v]) => `${role} ${v}`)
    .join(', ');
  log(
    `${target} round ${roundNo}: ${run.callsPerSecond} calls/s, p50 ${run.latencyMs.p50Ms} / ` +
      `p99 ${run.latencyMs.p99Ms} ms, ${run.cpuMicrosPerCall} µs CPU/call (${roles}), ` +
      `client ${run.clientCpuMicrosPerCall} µs/call, ${run.failed} failed`,
  );
  if (settings.cpuProfile) {
    const files = target === 'sdk' ? 'sdk-server' : `${target}-{gateway,worker}*`;
    log(
      `${target} round ${roundNo}: node dist/bench/profileSummary.js --window ` +
        `${windowStart},${windowEnd} bench/results/profiles/${files}-${roundNo}-*.cpuprofile`,
    );
  }
  if (redisCommandsPerCall) {
    const top = redisCommandsPerCall
      .slice(0, 6)
      .map((c) => `${c.command} ${c.callsPerCall}× ${c.microsPerCall} µs`);
    log(`${target} round ${roundNo}: Redis time per call by command: ${top.join(', ')}`);
  }
  return run;
}

/** Opens one session per client (client `j` of `clients`), spread round-robin over `urls`. */
export async function openCallers<T extends ToolCaller>(
  urls: string[],
  open: (url: string, client: number) => Promise<T>,
  clients = mcpCallSettings.clients,
): Promise<T[]> {
  const callers: T[] = [];
  // A few at a time: opening sessions is not what is measured.
  for (let i = 0; i < clients; i += 10) {
    const batch = [];
    for (let j = i; j < Math.min(i + 10, clients); j++) {
      batch.push(open(urls[j % urls.length], j));
    }
    callers.push(...(await Promise.all(batch)));
  }
  return callers;
}

async function runSdk(roundNo: number, agent: http.Agent): Promise<CallRun> {
  const sdk = await spawnSdkServer('sdk-server', [
    '-r',
    path.join(DIST_BENCH, 'quietConsole.js'),
    ...profileArgs(`sdk-server-${roundNo}`),
  ]);
  try {
    const callers = await openCallers([sdk.url], (url) =>
      new McpHttpSession(agent, url, undefined).open(),
    );
    const run = await measure('sdk', roundNo, callers, { sdk: sdk.proc }, () => 'sdk');
    await Promise.all(callers.map((c) => c.close()));
    return run;
  } finally {
    // Its SIGINT handler closes the sessions and exits (writing a CPU profile when asked).
    await sdk.proc.stop('SIGINT', 10_000);
  }
}

export interface Cluster {
  gateways: SpawnedRole[];
  redis: BenchRedis;
  /** Gateways, workers and every redis-server. */
  procs: Record<string, Pid>;
  stop(): Promise<void>;
}

/**
 * 2 gateways and 2 workers, as in the issue's measurements, on `redis` (one redis-server unless
 * given; it is stopped with them), with `env` (settings under test) added to theirs.
 */
export async function startCluster(
  label: string,
  roundNo: number,
  secret: string,
  options: { redis?: BenchRedis; env?: Record<string, string> } = {},
): Promise<Cluster> {
  const redis = options.redis ?? (await startOneRedis(`redis (${label})`));
  const env = { ...serverEnv(redis.env, secret), ...options.env };
  const role = (kind: 'gateway' | 'worker', n: number) =>
    spawnRole(
      `${kind}${n}`,
      kind,
      { ...env, POD_ID: `bench-${kind}-${n}` },
      profileArgs(`${label}-${kind}${n}-${roundNo}`),
    );
  const started = await Promise.allSettled([
    role('gateway', 1),
    role('gateway', 2),
    role('worker', 1),
    role('worker', 2),
  ]);
  const pods = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const stop = async () => {
    await Promise.all(pods.map((p) => p.proc.stop('SIGTERM', 10_000)));
    await redis.stop();
  };
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  const [g1, g2, w1, w2] = pods;
  return {
    gateways: [g1, g2],
    redis,
    procs: {
      gateway1: g1.proc,
      gateway2: g2.proc,
      worker1: w1.proc,
      worker2: w2.proc,
      ...redis.servers,
    },
    stop,
  };
}

/** gateway1, gateway2 → gateways; worker1, worker2 → workers; redis → redis. */
const projectRole = (procName: string) => procName.replace(/\d+$/, 's');

async function runProject(
  target: 'mcp' | 'seed',
  roundNo: number,
  secret: string,
  token: string,
  agent: http.Agent,
): Promise<CallRun> {
  const cluster = await startCluster(target, roundNo, secret);
  const redisStats = new RedisCommandStats(cluster.redis.env.REDIS_URL);
  try {
    const urls = cluster.gateways.map((g) => g.url);
    const open = (url: string): Promise<ToolCaller> =>
      target === 'mcp'
        ? new McpHttpSession(agent, url, token).open()
        : new SeedSession(agent, url, token).open();
    // Projects for list_projects to list (not measured).
    const setup = await open(urls[0]);
    for (let i = 1; i <= PROJECTS_LISTED; i++) {
      await setup.callTool('create_project', { name: `Bench project ${i}` });
    }
    await setup.close();
    const callers = await openCallers(urls, open);
    const run = await measure(target, roundNo, callers, cluster.procs, projectRole, redisStats);
    await Promise.all(callers.map((c) => c.close()));
    return run;
  } finally {
    redisStats.close();
    await cluster.stop();
  }
}

/** The median of one figure over a target's rounds. */
function medianOf(runs: CallRun[], pick: (r: CallRun) => number | null | undefined): number | null {
  const value = median(runs.map(pick).filter((v): v is number => typeof v === 'number'));
  return value === null ? null : round(value, 1);
}

function byRoleText(runs: CallRun[]): string {
  const roles = Object.keys(runs[0]?.cpuMicrosPerCallByRole ?? {});
  return roles
    .map((role) => `${role} ${medianOf(runs, (r) => r.cpuMicrosPerCallByRole[role])}`)
    .join(', ');
}

export async function benchMcpCalls(secret: string): Promise<ScenarioResult> {
  const { clients, calls, warmupCalls, rounds } = mcpCallSettings;
  const token = issueToken(secret, 'team', 'bench-caller');
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  log(
    `tools/call: ${clients} clients, ${calls} calls (+${warmupCalls} warm-up) per run, ` +
      `${rounds} rounds of SDK, /mcp, seed path`,
  );
  const loadBefore = os.loadavg()[0];
  const runs: Record<Target, CallRun[]> = { sdk: [], mcp: [], seed: [] };
  try {
    for (let r = 1; r <= rounds; r++) {
      runs.sdk.push(await runSdk(r, agent));
      runs.mcp.push(await runProject('mcp', r, secret, token, agent));
      runs.seed.push(await runProject('seed', r, secret, token, agent));
    }
  } finally {
    agent.destroy();
  }

  const fig = (t: Target) => ({
    callsPerSecond: medianOf(runs[t], (r) => r.callsPerSecond),
    p50Ms: medianOf(runs[t], (r) => r.latencyMs.p50Ms),
    p99Ms: medianOf(runs[t], (r) => r.latencyMs.p99Ms),
    cpuMicrosPerCall: medianOf(runs[t], (r) => r.cpuMicrosPerCall),
    clientCpuMicrosPerCall: medianOf(runs[t], (r) => r.clientCpuMicrosPerCall),
  });
  const sdk = fig('sdk');
  const mcp = fig('mcp');
  const seed = fig('seed');
  const peer = `MCP SDK ${sdkVersion()} stateful server`;
  const setup =
    `${clients} closed-loop clients, one session each; SDK simpleStreamableHttp.js \`greet\` ` +
    `vs the project's \`list_projects\` (${PROJECTS_LISTED} projects) through 2 gateways, ` +
    `2 workers and Redis; median of ${rounds}`;
  const rows: Comparison[] = [
    {
      measure: `tools/call over Streamable HTTP, ${clients} clients: calls/s`,
      peer,
      peerValue: sdk.callsPerSecond,
      projectValue: mcp.callsPerSecond,
      unit: 'calls/s',
      better: 'higher',
      targetRatio: 1.0,
      detail: setup,
    },
    {
      measure: `tools/call over Streamable HTTP, ${clients} clients: p99`,
      peer,
      peerValue: sdk.p99Ms,
      projectValue: mcp.p99Ms,
      unit: 'ms',
      better: 'lower',
      targetRatio: 1.5,
      detail: `p50 ${mcp.p50Ms} ms (SDK ${sdk.p50Ms} ms)`,
    },
    {
      measure: `tools/call over Streamable HTTP: server CPU per call`,
      peer,
      peerValue: sdk.cpuMicrosPerCall,
      projectValue: mcp.cpuMicrosPerCall,
      unit: 'µs',
      better: 'lower',
      targetRatio: 1.0,
      detail: `for information; project ${byRoleText(runs.mcp)}`,
    },
    {
      measure: `tools/call, seed path (/mcp/sse/send → tool-result), ${clients} clients: calls/s`,
      peer,
      peerValue: sdk.callsPerSecond,
      projectValue: seed.callsPerSecond,
      unit: 'calls/s',
      better: 'higher',
      targetRatio: 1.0,
      detail:
        `same topology and tool; each client's stream and sends on one gateway; ` +
        `p50 ${seed.p50Ms} / p99 ${seed.p99Ms} ms; /mcp did ${mcp.callsPerSecond}/s`,
    },
    {
      measure: 'tools/call, seed path: server CPU per call',
      peer,
      peerValue: sdk.cpuMicrosPerCall,
      projectValue: seed.cpuMicrosPerCall,
      unit: 'µs',
      better: 'lower',
      targetRatio: 1.0,
      detail: `project ${byRoleText(runs.seed)}; /mcp ${mcp.cpuMicrosPerCall} µs`,
    },
  ];

  const all = [...runs.sdk, ...runs.mcp, ...runs.seed];
  const broken = all
    .filter((r) => r.failed > 0)
    .map(
      (r) =>
        `tools/call (${r.target}, round ${r.round}): ${r.failed} calls failed: ${r.errors.join('; ')}`,
    );
  const lines = [
    `tools/call: client CPU per call (not counted) SDK ${sdk.clientCpuMicrosPerCall} µs, ` +
      `/mcp ${mcp.clientCpuMicrosPerCall} µs, seed ${seed.clientCpuMicrosPerCall} µs; ` +
      `seed path / /mcp: calls/s ${ratioText(seed.callsPerSecond, mcp.callsPerSecond)}, ` +
      `CPU per call ${ratioText(seed.cpuMicrosPerCall, mcp.cpuMicrosPerCall)}.`,
    // The cores are shared per thread: on a busy machine the project's five processes get a
    // larger share than the SDK's one, which flatters the project's calls/s and p99.
    `tools/call: load average ${loadBefore.toFixed(1)} before, ${os.loadavg()[0].toFixed(1)} ` +
      `after; under other load calls/s and p99 favour the multi-process side, CPU per call does not.`,
  ];
  return {
    name: 'mcpCalls',
    rows,
    lines,
    details: {
      settings: mcpCallSettings,
      peer: {
        server: sdkExampleServer('simpleStreamableHttp.js'),
        version: sdkVersion(),
        note: 'its per-request console.log silenced (bench/quietConsole.ts preload)',
      },
      tools: TOOLS,
      medians: { sdk, mcp, seed },
      runs: all,
    },
    broken,
  };
}

function ratioText(a: number | null, b: number | null): string {
  return a === null || b === null || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}×`;
}
