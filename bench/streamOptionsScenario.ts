/**
 * The stream options' costs (issue 16), the project against itself with the option off, on
 * fresh processes, interleaved over BENCH_ROUNDS, medians:
 *
 * batching: SSE_BATCH_MS at each of BENCH_BATCH_MS (0,5,20) on the fanoutAtRate plan (2
 *   gateways + Redis, BENCH_SUBSCRIBERS streams, BENCH_BROADCASTS at BENCH_BROADCAST_RATE):
 *   server CPU per delivery and p50/p99 from the POST to the line read.
 * compression: SSE_COMPRESSION off and gzip, every stream asking `Accept-Encoding: gzip`, one
 *   gateway + Redis, BENCH_COMPRESSION_SUBSCRIBERS (100) streams, BENCH_COMPRESSION_BROADCASTS
 *   (50) at BENCH_COMPRESSION_RATE (10/s), events of each of BENCH_COMPRESSION_EVENT_BYTES
 *   (200, 51200): the gateway's CPU per delivery and the response bytes read per delivery. A
 *   gateway that answers without `Content-Encoding: gzip` does not compress: its gzip figures
 *   are n/a with that reason.
 */
import { round } from './histogram';
import { startProject } from './broadcastTarget';
import { measureFanout, type FanoutRun } from './broadcastScenario';
import { eventFiller } from './eventFiller';
import { median, type Comparison, type ScenarioResult } from './comparison';
import { settings, log } from './common';

function med(runs: FanoutRun[], pick: (r: FanoutRun) => number | null): number | null {
  const m = median(runs.map(pick).filter((v): v is number => v !== null));
  return m === null ? null : round(m, 2);
}

const fmt = (v: number | null, unit: string) =>
  v === null ? 'n/a' : `${v.toLocaleString('en-US')} ${unit}`;

/** One line of a setting's medians: CPU per delivery, bytes read per delivery, p50 and p99. */
function summary(runs: FanoutRun[], cpuOf: 'server' | 'gateway'): string {
  const cpu = (x: FanoutRun) =>
    cpuOf === 'server' ? x.cpuMicrosPerDelivery : x.holdersCpuMicrosPerDelivery;
  return (
    `${cpuOf} CPU ${fmt(med(runs, cpu), 'µs')}/delivery, ` +
    `${fmt(
      med(runs, (x) => x.wireBytesPerDelivery),
      'B',
    )} read/delivery, ` +
    `p50 ${fmt(
      med(runs, (x) => x.latencyMs.p50Ms),
      'ms',
    )}, ` +
    `p99 ${fmt(
      med(runs, (x) => x.latencyMs.p99Ms),
      'ms',
    )}`
  );
}

/** Lost, duplicated or missing deliveries of a run: each makes the exit code 2. */
function problems(label: string, run: FanoutRun): string[] {
  const found: string[] = [];
  if (run.streamsFailed) found.push(`${label}: ${run.streamsFailed} streams failed to open`);
  if (run.postsFailed) found.push(`${label}: ${run.postsFailed} broadcasts failed`);
  if (run.lost) found.push(`${label}: ${run.lost} deliveries lost`);
  if (run.duplicates) found.push(`${label}: ${run.duplicates} deliveries duplicated`);
  if (!run.complete) found.push(`${label}: deliveries still missing when the wait ended`);
  if (run.unexpectedCloses) found.push(`${label}: ${run.unexpectedCloses} streams closed`);
  return found;
}

/** SSE_BATCH_MS 0, 5, 20: CPU per delivery and p99 at 1,000 subscribers × 50/s. */
export async function benchBatching(secret: string): Promise<ScenarioResult> {
  const plan = {
    streams: settings.subscribers,
    broadcasts: settings.broadcasts,
    perSecond: settings.broadcastsPerSecond,
  };
  const windows = settings.batchWindowsMs;
  const runs = new Map<number, FanoutRun[]>(windows.map((ms) => [ms, []]));
  for (let r = 1; r <= settings.rounds; r++) {
    for (const ms of windows) {
      log(`batching, round ${r} of ${settings.rounds}: SSE_BATCH_MS=${ms}`);
      const [run] = await measureFanout(
        () => startProject(secret, 2, `batch-${ms}`, { env: { SSE_BATCH_MS: String(ms) } }),
        [plan],
      );
      runs.get(ms)!.push(run);
    }
  }
  const size = `${plan.streams.toLocaleString('en-US')} subscribers × ${plan.perSecond}/s`;
  const [base, ...others] = windows;
  const baseRuns = runs.get(base)!;
  const baseline = `project, SSE_BATCH_MS=${base}`;
  const rows: Comparison[] = others.flatMap((ms) => [
    {
      measure: `CPU per delivery, SSE_BATCH_MS=${ms}, ${size}`,
      peer: baseline,
      peerValue: med(baseRuns, (x) => x.cpuMicrosPerDelivery),
      projectValue: med(runs.get(ms)!, (x) => x.cpuMicrosPerDelivery),
      unit: 'µs',
      better: 'lower' as const,
      targetRatio: 1.0,
      detail: 'server CPU (2 gateways + Redis) per delivery: batching exists to lower it',
    },
    {
      measure: `p99 send→read, SSE_BATCH_MS=${ms}, ${size}`,
      peer: baseline,
      peerValue: med(baseRuns, (x) => x.latencyMs.p99Ms),
      projectValue: med(runs.get(ms)!, (x) => x.latencyMs.p99Ms),
      unit: 'ms',
      better: 'lower' as const,
      // Each event may wait up to the window: the target allows that much over the baseline.
      targetRatio:
        Math.round((1 + ms / Math.max(1, med(baseRuns, (x) => x.latencyMs.p99Ms) ?? 1)) * 100) /
        100,
      detail: `an event waits at most ${ms} ms for its batch: target baseline p99 + ${ms} ms`,
    },
  ]);
  const lines = windows.map(
    (ms) => `batching, ${size}, SSE_BATCH_MS=${ms}: ${summary(runs.get(ms)!, 'server')}`,
  );
  return {
    name: 'batching',
    rows,
    lines,
    details: { plan, runs: Object.fromEntries(runs) },
    broken: windows.flatMap((ms) =>
      runs.get(ms)!.flatMap((run) => problems(`SSE_BATCH_MS=${ms}`, run)),
    ),
  };
}

const sizeLabel = (bytes: number) =>
  bytes >= 1024 ? `${round(bytes / 1024, 1)} KB` : `${bytes} B`;

/** SSE_COMPRESSION off and gzip: CPU per delivery and bytes on the wire, 200 B and 50 KB events. */
export async function benchCompression(secret: string): Promise<ScenarioResult> {
  const rows: Comparison[] = [];
  const lines: string[] = [];
  const broken: string[] = [];
  const details: Record<string, unknown> = {};
  /** Why gzip has no figures (null while the gateway compressed). */
  let gzipUnavailable: string | null = null;
  for (const bytes of settings.compressionEventBytes) {
    const plan = {
      streams: settings.compressionSubscribers,
      broadcasts: settings.compressionBroadcasts,
      perSecond: settings.compressionRate,
      filler: eventFiller(bytes),
    };
    const byMode: Record<'off' | 'gzip', FanoutRun[]> = { off: [], gzip: [] };
    for (let r = 1; r <= settings.rounds; r++) {
      for (const mode of ['off', 'gzip'] as const) {
        if (mode === 'gzip' && gzipUnavailable !== null) continue;
        log(`compression, ${sizeLabel(bytes)} events, round ${r}: SSE_COMPRESSION=${mode}`);
        const [run] = await measureFanout(
          () =>
            startProject(secret, 1, `compression-${mode}`, {
              env: { SSE_COMPRESSION: mode },
              streamHeaders: { 'Accept-Encoding': 'gzip' },
            }),
          [plan],
        );
        broken.push(...problems(`SSE_COMPRESSION=${mode}, ${sizeLabel(bytes)}`, run));
        if (mode === 'gzip' && run.gzipStreams === 0) {
          gzipUnavailable =
            'the gateway does not compress: with SSE_COMPRESSION=gzip, GET /mcp/sse with ' +
            '`Accept-Encoding: gzip` came back without `Content-Encoding: gzip`';
          log(`compression: ${gzipUnavailable}`);
          continue;
        }
        byMode[mode].push(run);
      }
    }
    const label = `${sizeLabel(bytes)} events, ${plan.streams} subscribers × ${plan.perSecond}/s`;
    const row = (
      measure: string,
      pick: (x: FanoutRun) => number | null,
      unit: string,
      targetRatio: number,
      detail: string,
    ): Comparison => ({
      measure,
      peer: 'project, SSE_COMPRESSION=off',
      peerValue: med(byMode.off, pick),
      projectValue: gzipUnavailable === null ? med(byMode.gzip, pick) : null,
      unit,
      better: 'lower',
      targetRatio,
      detail: gzipUnavailable === null ? detail : `gzip n/a: ${gzipUnavailable}`,
    });
    rows.push(
      row(
        `bytes on the wire per delivery, gzip, ${label}`,
        (x) => x.wireBytesPerDelivery,
        'B',
        bytes >= 1024 ? 0.5 : 1.0,
        'response body bytes read per event, each event flushed on its own',
      ),
      row(
        `gateway CPU per delivery, gzip, ${label}`,
        (x) => x.holdersCpuMicrosPerDelivery,
        'µs',
        // What compression may cost: it is off by default for this reason.
        bytes >= 1024 ? 4.0 : 2.0,
        'the gateway process alone (Redis in the details): compression runs per socket',
      ),
    );
    const modeLine = (mode: 'off' | 'gzip') => `${mode}: ${summary(byMode[mode], 'gateway')}`;
    lines.push(
      `compression, ${label}: ${modeLine('off')}; ` +
        (gzipUnavailable === null ? modeLine('gzip') : `gzip n/a: ${gzipUnavailable}`),
    );
    details[String(bytes)] = {
      plan: { ...plan, filler: `${plan.filler.length} chars` },
      ...byMode,
    };
  }
  return { name: 'compression', rows, lines, details, broken };
}
