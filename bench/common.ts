/**
 * What every benchmark scenario shares: the settings (BENCH_* variables, documented at the top
 * of bench/run.ts), the servers' environment, CPU and memory sampling, logging.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { cpuTimes, rssKb, sleep, ROOT, type Proc } from './procs';

/** A process whose CPU and memory are read (a child of ours, or one adopted: nginx's worker). */
export interface Pid {
  pid: number;
}

function envList(name: string, fallback: number[], min: number): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const values = raw.split(',').map((v) => Number(v.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < min)) {
    throw new Error(
      `${name} must be integers >= ${min}, comma-separated (got ${JSON.stringify(raw)})`,
    );
  }
  return values;
}

export function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be an integer >= ${min} (got ${JSON.stringify(raw)})`);
  }
  return value;
}

export const settings = {
  rounds: envInt('BENCH_ROUNDS', 2, 1),
  subscribers: envInt('BENCH_SUBSCRIBERS', 1000, 1),
  broadcasts: envInt('BENCH_BROADCASTS', 150, 1),
  broadcastsPerSecond: envInt('BENCH_BROADCAST_RATE', 50, 1),
  saturatedSubscribers: envInt('BENCH_SATURATED_SUBSCRIBERS', 10_000, 1),
  saturatedOffered: envInt('BENCH_SATURATED_OFFERED', 500_000, 1),
  saturatedDeliveries: envInt('BENCH_SATURATED_DELIVERIES', 200_000, 1),
  sweepSizes: envList('BENCH_SWEEP_SIZES', [2000, 10_000, 18_000], 1),
  warmupBroadcasts: envInt('BENCH_WARMUP_BROADCASTS', 5, 0),
  /** Streams per load generator process at most (each holds one descriptor per stream). */
  streamsPerClient: envInt('BENCH_STREAMS_PER_CLIENT', 10_000, 1),
  openConcurrency: envInt('BENCH_OPEN_CONCURRENCY', 100, 1),
  /** At most this long for the holders' RSS to settle with the streams idle (memory row). */
  idleSettleS: envInt('BENCH_IDLE_SETTLE_S', 20, 0),
  // The tools/call comparison alone takes 1-3 minutes (6 runs of 11,000 calls on fresh processes).
  timeoutS: envInt('BENCH_TIMEOUT_S', 1500, 10),
  cpuProfile: process.env.BENCH_CPU_PROFILE === '1',
  /** batching: the SSE_BATCH_MS values compared (the first is the baseline). */
  batchWindowsMs: envList('BENCH_BATCH_MS', [0, 5, 20], 0),
  /** compression: its own, smaller plan (a 50 KB event to every stream is heavy). */
  compressionSubscribers: envInt('BENCH_COMPRESSION_SUBSCRIBERS', 100, 1),
  compressionBroadcasts: envInt('BENCH_COMPRESSION_BROADCASTS', 50, 1),
  compressionRate: envInt('BENCH_COMPRESSION_RATE', 10, 1),
  compressionEventBytes: envList('BENCH_COMPRESSION_EVENT_BYTES', [200, 51_200], 150),
};

export const RESULTS_DIR = path.join(ROOT, 'bench/results');
export const DIST_BENCH = __dirname;
export const now = () => performance.timeOrigin + performance.now();
export const log = (line: string) =>
  console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);

/**
 * The environment of every gateway and worker under test. Limits that would throttle the load
 * generator are raised; heartbeats and the cleanup sweep (periodic work per connection, not per
 * event) are pushed past the run, so they do not land inside a measurement window.
 */
export function serverEnv(
  /** A redis:// URL, or the variables of a Redis mode (bench/benchRedis.ts: a Cluster's nodes). */
  redis: string | Record<string, string>,
  secret: string,
): Record<string, string> {
  return {
    ...(typeof redis === 'string' ? { REDIS_URL: redis } : redis),
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
export function profileArgs(name: string): string[] {
  if (!settings.cpuProfile) return [];
  const dir = path.join(RESULTS_DIR, 'profiles');
  return [
    '--cpu-prof',
    `--cpu-prof-dir=${dir}`,
    `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`,
  ];
}

export type CpuSample = Record<string, { user: number; system: number }>;

/** CPU used per process between two samples, in µs: user, system and their sum. */
export type CpuUse = Record<string, { user: number; system: number; total: number }>;

export function sampleCpu(procs: Record<string, Pid>): CpuSample {
  const sample: CpuSample = {};
  for (const [name, proc] of Object.entries(procs)) sample[name] = cpuTimes(proc.pid);
  return sample;
}

export function cpuDelta(before: CpuSample, after: CpuSample): CpuUse {
  const use: CpuUse = {};
  for (const name of Object.keys(before)) {
    const user = Math.round(after[name].user - before[name].user);
    const system = Math.round(after[name].system - before[name].system);
    use[name] = { user, system, total: user + system };
  }
  return use;
}

/** Sum of a Prometheus metric's samples (every label set), or null when absent. */
export function metricValue(text: string, name: string): number | null {
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
export async function rssAfterGc(proc: Proc): Promise<number> {
  proc.child.kill('SIGUSR2');
  await sleep(500);
  return rssKb(proc.pid);
}
