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
 * 3. tools/call beside the MCP SDK's reference Streamable HTTP server (bench/mcpCallScenario.ts):
 *    closed-loop clients with a session each, against the SDK's example server, the project's
 *    /mcp and its seed path (2 gateways, 2 workers, Redis), interleaved; calls/s, p99, CPU per call.
 *
 * Every process it starts is stopped before it exits; the whole run is bounded by
 * BENCH_TIMEOUT_S. Nothing here is asserted: missed targets are reported, not failed; lost or
 * duplicated deliveries and failed calls make the exit code 2.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { round } from './histogram';
import { cpuTickMicros, openFilesLimit, reapAll, redisVersion } from './procs';

import { TARGETS, settings, RESULTS_DIR, log } from './common';
import { benchBroadcast } from './broadcastScenario';
import { benchMcpCalls } from './mcpCallScenario';
import { ratioOf, meetsTarget, type ScenarioResult } from './comparison';
import { benchResumeStorm } from './resumeStormScenario';

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
  // BENCH_ONLY=resumeStorm (make bench-resume-storm): that scenario alone.
  if (process.env.BENCH_ONLY === 'resumeStorm') {
    return reportOnly(await benchResumeStorm(secret), startedAt);
  }

  const { broadcast: broadcastResult, memory } = await benchBroadcast(secret);
  const mcpCalls = await benchMcpCalls(secret);
  const storm = await benchResumeStorm(secret);

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
    },
    broadcast: broadcastResult,
    memory,
    mcpCalls: { rows: mcpCalls.rows, ...mcpCalls.details },
    [storm.name]: storm.details,
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
  ]);
  console.log('');
  console.log(
    `Broadcasts: ${fmt(b.offeredDeliveriesPerSecond)} deliveries/s offered, ` +
      `${fmt(b.deliveriesPerSecond)}/s delivered; the last arrived ${b.drainSeconds} s after the ` +
      `last POST. Load generators used ${fmt(round(b.cpuMicros.loadGenerators / 1e6, 2))} CPU-s ` +
      `meanwhile (${fmt(b.streamsOpen)} streams opened in ${b.openSeconds} s).`,
  );
  printComparisons([mcpCalls, storm]);
  console.log(`Results written to ${path.relative(process.cwd(), file) || file}`);

  const broken =
    storm.broken.length > 0 ||
    b.lost > 0 ||
    b.duplicates > 0 ||
    !b.complete ||
    b.postsFailed > 0 ||
    b.streamsFailed > 0 ||
    mcpCalls.broken.length > 0;
  for (const why of mcpCalls.broken) console.error(`bench: ${why}`);
  if (broken) {
    console.error('bench: some deliveries or calls were lost or failed (see above)');
    process.exitCode = 2;
  }
}

/** The side-by-side rows: peer, project, ratio against the target. */
function printComparisons(results: ScenarioResult[]): void {
  console.log('');
  const rows = [['measure', 'peer', 'project', 'ratio (target)', '']];
  for (const result of results) {
    for (const row of result.rows) {
      const ratio = ratioOf(row);
      rows.push([
        row.measure,
        `${fmt(row.peerValue, ` ${row.unit}`)} (${row.peer})`,
        fmt(row.projectValue, ` ${row.unit}`),
        `${ratio === null ? 'n/a' : ratio.toFixed(2)} (${row.better === 'lower' ? '<=' : '>='} ${row.targetRatio})`,
        verdict(meetsTarget(row)),
      ]);
    }
  }
  printTable(rows);
  for (const result of results) {
    for (const row of result.rows) if (row.detail) console.log(`- ${row.measure}: ${row.detail}`);
    for (const line of result.lines) console.log(line);
  }
}

/** One scenario's lines and details (bench/results/<name>.json); broken makes the exit code 2. */
function reportOnly(result: ScenarioResult, startedAt: Date): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${result.name}.json`);
  const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version };
  const saved = { startedAt: startedAt.toISOString(), machine, ...result.details };
  writeFileSync(file, `${JSON.stringify(saved, null, 2)}\n`);
  console.log('');
  for (const line of result.lines) console.log(line);
  console.log(`Results written to ${path.relative(process.cwd(), file) || file}`);
  for (const why of result.broken) console.error(`bench: ${why}`);
  if (result.broken.length > 0) process.exitCode = 2;
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
