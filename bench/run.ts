/**
 * `make bench`: the project measured beside its peers (nchan, the MCP SDK's server) in the same
 * run, on real processes of this machine. It runs the scenarios below in order, prints one
 * side-by-side table (measure | peer | peer value | project value | ratio | target | verdict)
 * and each scenario's notes, and writes bench/results/latest.json (every figure, the machine)
 * and bench/results/latest.md (the table). Lost, duplicated or failed work makes the exit code
 * 2; missed targets are reported, not failed.
 *
 * Broadcast scenarios (bench/broadcastScenario.ts), nchan and the project interleaved over
 * BENCH_ROUNDS (2) rounds, each figure the median across rounds:
 *   a. BENCH_SUBSCRIBERS (1,000) streams, BENCH_BROADCASTS (150) broadcasts at
 *      BENCH_BROADCAST_RATE (50/s): server CPU per delivery, p99 from the POST to arrival.
 *   b. BENCH_SATURATED_SUBSCRIBERS (10,000) streams, saturated: CPU per delivery, memory per
 *      idle stream, server RSS. The project runs as 2 gateways + Redis in a and b.
 *   c. One gateway process against one nchan worker, saturated, at each of BENCH_SWEEP_SIZES
 *      (2000,10000,18000) streams: CPU per delivery of that process.
 *   Saturated: broadcasts offered at BENCH_SATURATED_OFFERED (500,000) deliveries/s, about
 *   BENCH_SATURATED_DELIVERIES (200,000) deliveries per measurement.
 *   Also: BENCH_WARMUP_BROADCASTS (5), BENCH_STREAMS_PER_CLIENT (10,000 streams per load
 *   generator process), BENCH_OPEN_CONCURRENCY (100).
 * mcpCalls (bench/mcpCallScenario.ts): tools/call beside the MCP SDK's reference Streamable
 *   HTTP server: BENCH_MCP_CLIENTS (50) closed-loop clients with a session each, against the
 *   SDK's example server, the project's /mcp and its seed path (2 gateways, 2 workers, Redis),
 *   interleaved over BENCH_ROUNDS; calls/s, p99, CPU per call. BENCH_MCP_CALLS (10,000),
 *   BENCH_MCP_WARMUP_CALLS (1,000).
 * resumeStorm (bench/resumeStormScenario.ts): BENCH_STORM_STREAMS (10,000) streams on two
 *   gateways, one SIGKILLed mid-broadcast; lost, duplicated, reordered, recovery percentiles
 *   (`make bench-resume-storm` runs it alone; BENCH_STORM_* settings in that file).
 *
 * batching, compression (bench/streamOptionsScenario.ts): the project against itself with
 *   SSE_BATCH_MS at BENCH_BATCH_MS (0,5,20), and SSE_COMPRESSION off vs gzip with events of
 *   BENCH_COMPRESSION_EVENT_BYTES (200,51200) to BENCH_COMPRESSION_SUBSCRIBERS (100) streams,
 *   BENCH_COMPRESSION_BROADCASTS (50) at BENCH_COMPRESSION_RATE (10/s): CPU per delivery,
 *   p99, bytes on the wire (gzip n/a, with the reason, when the gateway does not compress).
 *
 * redisCluster (bench/redisClusterScenario.ts): one redis-server against a Redis Cluster of
 *   BENCH_CLUSTER_MASTERS (3) masters, same processes, interleaved over BENCH_ROUNDS: events to
 *   BENCH_CLUSTER_TOPICS (600) topics (one stream each, 2 gateways) from BENCH_CLUSTER_PUBLISHERS
 *   (2) engine publishers at full speed, and seed-API tools/call from BENCH_CLUSTER_CLIENTS (50)
 *   tokens through 2 gateways + 2 workers (COMMAND_PARTITIONS=BENCH_CLUSTER_COMMAND_PARTITIONS
 *   (3) on the Cluster); deliveries/s, calls/s, each process's share of a core, each shard's
 *   CPU. BENCH_CLUSTER_* settings in that file.
 *
 * BENCH_SCENARIOS=fanoutSweep,... runs only the scenarios named (all by default).
 * BENCH_CPU_PROFILE=1 writes V8 CPU profiles of the gateways and workers to
 * bench/results/profiles/. Every process started is stopped before exit; the whole run is
 * bounded by BENCH_TIMEOUT_S (1500).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { round } from './histogram';
import { cpuTickMicros, openFilesLimit, reapAll, redisVersion } from './procs';
import { meetsTarget, ratioOf, type Comparison, type ScenarioResult } from './comparison';

import { settings, RESULTS_DIR, log } from './common';
import { fanoutAtRate, fanoutSaturated, fanoutSweep } from './broadcastScenario';
import { benchMcpCalls } from './mcpCallScenario';
import { benchResumeStorm } from './resumeStormScenario';
import { benchBatching, benchCompression } from './streamOptionsScenario';
import { benchRedisCluster } from './redisClusterScenario';

interface Scenario {
  name: string;
  run: (secret: string) => Promise<ScenarioResult>;
}

/** What `make bench` runs, in order. */
const scenarios: Scenario[] = [
  { name: 'fanoutAtRate', run: fanoutAtRate },
  { name: 'fanoutSaturated', run: fanoutSaturated },
  { name: 'fanoutSweep', run: fanoutSweep },
  { name: 'mcpCalls', run: benchMcpCalls },
  { name: 'resumeStorm', run: benchResumeStorm },
  { name: 'batching', run: benchBatching },
  { name: 'compression', run: benchCompression },
  { name: 'redisCluster', run: benchRedisCluster },
];

/** BENCH_SCENARIOS (comma-separated names) runs only those, e.g. while profiling one. */
function selected(): Scenario[] {
  const names = (process.env.BENCH_SCENARIOS ?? '').split(',').filter(Boolean);
  if (names.length === 0) return scenarios;
  const unknown = names.filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length) {
    throw new Error(
      `BENCH_SCENARIOS: unknown ${unknown.join(', ')} (known: ${scenarios.map((s) => s.name).join(', ')})`,
    );
  }
  return scenarios.filter((s) => names.includes(s.name));
}

const fmt = (v: number | null, unit = '') =>
  v === null
    ? 'n/a'
    : `${v.toLocaleString('en-US', { maximumFractionDigits: 2 })}${unit ? ` ${unit}` : ''}`;

function tableCells(row: Comparison): string[] {
  const ratio = ratioOf(row);
  const met = meetsTarget(row);
  return [
    row.measure,
    row.peer,
    fmt(row.peerValue, row.unit),
    fmt(row.projectValue, row.unit),
    ratio === null ? 'n/a' : `${ratio.toFixed(2)}×`,
    `${row.better === 'lower' ? '≤' : '≥'} ${row.targetRatio}×`,
    met === null ? 'n/a' : met ? 'met' : 'MISSED',
  ];
}

const HEADER = ['measure', 'peer', 'peer value', 'project value', 'ratio', 'target', 'verdict'];

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ');
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));
}

function markdownTable(rows: string[][]): string {
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(rows[0]), line(rows[0].map(() => '---')), ...rows.slice(1).map(line)].join('\n');
}

function machine(loadBefore: number[]) {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    redis: redisVersion(),
    loadAverageBefore: loadBefore.map((l) => round(l, 2)),
    loadAverageAfter: os.loadavg().map((l) => round(l, 2)),
    openFilesLimit: openFilesLimit(),
    cpuTickMicros: cpuTickMicros(),
  };
}

async function main(): Promise<void> {
  const fdLimit = openFilesLimit();
  const largest = Math.max(
    settings.subscribers,
    settings.saturatedSubscribers,
    ...settings.sweepSizes,
  );
  if (largest + 200 > fdLimit) {
    throw new Error(
      `${largest} streams: one server process may hold at most ${fdLimit} file descriptors ` +
        `here (ulimit -n); use sizes of at most ${fdLimit - 200}`,
    );
  }
  if (settings.streamsPerClient + 200 > fdLimit) {
    throw new Error(`BENCH_STREAMS_PER_CLIENT must stay below ${fdLimit - 200} (ulimit -n)`);
  }
  const startedAt = new Date();
  const loadBefore = os.loadavg();
  const secret = randomBytes(32).toString('hex');
  log(`settings ${JSON.stringify(settings)}`);

  const results: ScenarioResult[] = [];
  for (const scenario of selected()) {
    log(`scenario ${scenario.name}`);
    try {
      results.push(await scenario.run(secret));
    } catch (err) {
      // One scenario failing does not hide the others' figures; it makes the exit code 2.
      const why = err instanceof Error ? err.message : String(err);
      log(`scenario ${scenario.name} failed: ${why}`);
      await reapAll(3000);
      results.push({ name: scenario.name, rows: [], lines: [], details: {}, broken: [why] });
    }
  }

  const where = machine(loadBefore);
  const machineLine =
    `${where.cpus} × ${where.cpuModel}, Node ${where.node}, Redis ${where.redis}; load average ` +
    `${where.loadAverageBefore.join(' ')} before, ${where.loadAverageAfter.join(' ')} after; ` +
    `${settings.rounds} round${settings.rounds > 1 ? 's' : ''}, medians`;
  const table = [HEADER, ...results.flatMap((r) => r.rows.map(tableCells))];
  const broken = results.flatMap((r) => r.broken.map((b) => `${r.name}: ${b}`));

  console.log('');
  console.log(`Measured on this machine (${machineLine}):`);
  console.log('');
  printTable(table);
  console.log('');
  for (const r of results) for (const line of r.lines) console.log(line);

  mkdirSync(RESULTS_DIR, { recursive: true });
  const json = path.join(RESULTS_DIR, 'latest.json');
  writeFileSync(
    json,
    `${JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        durationSeconds: round((Date.now() - startedAt.getTime()) / 1000, 1),
        machine: where,
        settings,
        comparisons: results.flatMap((r) =>
          r.rows.map((row) => ({ ...row, ratio: ratioOf(row), met: meetsTarget(row) })),
        ),
        scenarios: Object.fromEntries(results.map((r) => [r.name, r])),
        broken,
        notes: [
          'CPU is user+system time from /proc/<pid>/stat (all threads), sampled just before ' +
            'the first measured request and just after the last result arrived.',
          'Load generators run on the same cores as the servers; their CPU is reported, not counted.',
          'Heartbeats and the cleanup sweep are set to 10 minutes so they fall outside the windows.',
          'Broadcasts go to the team token type only (filter.tokenTypes), which every ' +
            'subscriber has: one topic, like one nchan channel.',
        ],
      },
      null,
      2,
    )}\n`,
  );
  const md = path.join(RESULTS_DIR, 'latest.md');
  writeFileSync(
    md,
    `Measured on ${machineLine}.\n\n${markdownTable(table)}\n\n` +
      results.flatMap((r) => r.lines.map((l) => `- ${l}`)).join('\n') +
      '\n',
  );
  console.log(
    `Results written to ${path.relative(process.cwd(), json)} and ${path.relative(process.cwd(), md)}`,
  );

  if (broken.length) {
    for (const b of broken) console.error(`bench: ${b}`);
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
    // Every process is reaped; a pipe or keep-alive socket left behind must not hold the run.
    process.exit(process.exitCode ?? 0);
  },
  (err: unknown) => {
    clearTimeout(watchdog);
    void shutdown(1, err);
  },
);
