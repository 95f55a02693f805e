/**
 * The broadcast scenarios: the project and nchan measured the same way in the same run, each
 * round running the peer and then the project on fresh processes (peer, project, peer,
 * project, ...; BENCH_ROUNDS). Each figure of the table is the median across rounds.
 *
 * One measurement (measureFanout): start the target, read its holders' RSS, open N idle SSE
 * streams from load generator processes, read the RSS again (memory per idle stream), warm up
 * with a few broadcasts, then POST the measured broadcasts at a set rate and count, at the
 * clients, every delivery (lost, duplicated, latency from the send time in the message). Server
 * CPU (user + system from /proc/<pid>/stat) is taken from just before the first POST to when
 * the last delivery was seen.
 *
 * "Saturated" is the same for both: broadcasts offered at BENCH_SATURATED_OFFERED deliveries/s
 * (several times what either delivers here), so the server is busy for the whole window and
 * may batch as it can; its CPU is counted until the last delivery.
 */
import { waitFor } from '../devSupport/waitFor';
import { performance } from 'node:perf_hooks';
import { Histogram, round } from './histogram';
import { rssKb, sleep } from './procs';
import { BENCH_EVENT, WARM_EVENT, type LoadgenReport } from './protocol';
import { startProject, type BroadcastTarget } from './broadcastTarget';
import { nchanMissing, nchanName, startNchan } from './peers/nchan';
import { median, type Comparison, type ScenarioResult } from './comparison';

import { settings, now, log, sampleCpu, cpuDelta, type CpuUse } from './common';
import {
  startLoadgens,
  tell,
  total,
  broadcast,
  expectBroadcasts,
  requestReports,
  type Loadgen,
} from './loadgens';

interface FanoutPlan {
  streams: number;
  broadcasts: number;
  perSecond: number;
  /** Also read the holders' memory once it settled with the streams idle (see settledRssKb). */
  settleIdleMemory?: boolean;
  /** The text of each broadcast, to set its size (bench/eventFiller.ts); a short line if unset. */
  filler?: string;
}

/** One measurement of one target. */
export interface FanoutRun {
  target: string;
  streams: number;
  streamsOpen: number;
  streamsFailed: number;
  openFailures: string[];
  openSeconds: number | null;
  broadcasts: number;
  broadcastsPerSecond: number;
  postsFailed: number;
  postFailures: string[];
  expectedDeliveries: number;
  deliveries: number;
  lost: number;
  duplicates: number;
  complete: boolean;
  unexpectedCloses: number;
  /** From the first POST sent to the last delivery. */
  wallSeconds: number | null;
  /** From the first POST sent to the last. */
  postSeconds: number | null;
  /** From the last POST sent to the last delivery: well above one fan-out, the server lagged. */
  drainSeconds: number | null;
  offeredDeliveriesPerSecond: number;
  deliveriesPerSecond: number | null;
  /** The CPU window: from just before the first POST to when the last delivery was seen. */
  cpuWindowSeconds: number | null;
  cpuMicros: CpuUse;
  loadGeneratorCpuMicros: number;
  /** Every server process (project: gateways + Redis; nchan: nginx + Redis). */
  cpuMicrosPerDelivery: number | null;
  /** The stream holders alone (gateways; nginx worker + master). */
  holdersCpuMicrosPerDelivery: number | null;
  cpuMicrosPerDeliveryByProcess: Record<string, number | null>;
  latencyMs: ReturnType<Histogram['summary']>;
  /** Response body bytes read per delivery, warm-up included (compressed when gzipStreams > 0). */
  wireBytesPerDelivery: number | null;
  /** Streams answered with `Content-Encoding: gzip`. */
  gzipStreams: number;
  memory: {
    holdersBaselineKb: number;
    /** The holders' RSS without streams once settled (null unless the plan asked). */
    holdersIdleBaselineKb: number | null;
    holdersOpenKb: number;
    /** (holders' RSS 1 s after the last stream opened - without) / streams, in KB. */
    kbPerStreamAfterOpen: number | null;
    /** The holders' RSS once it settled with the streams idle (null unless the plan asked). */
    holdersIdleKb: number | null;
    /** (holders' settled RSS - settled baseline) / streams, in KB; the 1 s readings when not settled. */
    kbPerStream: number | null;
    /** The highest sum of every server process's RSS sampled in the CPU window. */
    serversPeakRssKb: number;
  };
}

const perDelivery = (micros: number, deliveries: number) =>
  deliveries ? round(micros / deliveries, 2) : null;

/** Load generators enough for `streams` (each process holds one descriptor per stream). */
function loadgensFor(streams: number): Loadgen[] {
  return startLoadgens(Math.max(2, Math.ceil(streams / settings.streamsPerClient)));
}

/**
 * The stream holders' RSS once the streams have idled long enough for it to settle: read every
 * 2 s until a reading falls by less than 1 % from the one before, for at most
 * BENCH_IDLE_SETTLE_S. A garbage-collected server gives back the free heap pages an opening
 * burst left behind (V8's memory reducer compacts after some seconds idle); nginx's RSS does
 * not move. Both servers are read the same way.
 */
async function settledRssKb(target: BroadcastTarget, firstKb: number): Promise<number> {
  const deadline = performance.now() + settings.idleSettleS * 1000;
  let last = firstKb;
  while (performance.now() < deadline) {
    await sleep(2000);
    const kb = await target.holdersRssKb();
    const settled = kb > last * 0.99;
    last = Math.min(last, kb);
    if (settled) break;
  }
  return last;
}

function serversRssKb(target: BroadcastTarget): number {
  let sum = 0;
  for (const p of Object.values(target.servers)) sum += rssKb(p.pid);
  return sum;
}

/**
 * Measures one target (started by `start`, stopped before it returns) at each plan in turn,
 * the streams of one plan staying open for the next (sizes must grow).
 */
export async function measureFanout(
  start: () => Promise<BroadcastTarget>,
  plans: FanoutPlan[],
): Promise<FanoutRun[]> {
  const target = await start();
  const loadgens = loadgensFor(Math.max(...plans.map((p) => p.streams)));
  try {
    await sleep(1000); // start-up garbage and lazy initialisation settle
    const holdersBaselineKb = await target.holdersRssKb();
    // Settled readings are compared with a settled baseline: start-up garbage goes the same way.
    const holdersIdleBaselineKb = plans.some((p) => p.settleIdleMemory)
      ? await settledRssKb(target, holdersBaselineKb)
      : null;
    const runs: FanoutRun[] = [];
    for (const plan of plans) {
      runs.push(await measureOne(target, loadgens, plan, holdersBaselineKb, holdersIdleBaselineKb));
    }
    return runs;
  } finally {
    for (const lg of loadgens) if (lg.proc.child.connected) tell(lg, { cmd: 'close' });
    await Promise.all(loadgens.map((lg) => lg.proc.stop('SIGTERM', 5000)));
    await target.stop();
  }
}

/** Opens streams up to `plan.streams`, then one measurement on all of them. */
async function measureOne(
  target: BroadcastTarget,
  loadgens: Loadgen[],
  plan: FanoutPlan,
  holdersBaselineKb: number,
  holdersIdleBaselineKb: number | null,
): Promise<FanoutRun> {
  const n = plan.streams;
  const more = n - total(loadgens, 'opened') - total(loadgens, 'failed');
  const urls = target.streamUrls;
  loadgens.forEach((lg, i) => {
    const share = Math.floor(more / loadgens.length) + (i < more % loadgens.length ? 1 : 0);
    const from = i % urls.length;
    tell(lg, {
      cmd: 'open',
      // Each process starts on another URL so that the streams split evenly.
      urls: [...urls.slice(from), ...urls.slice(0, from)],
      headers: target.streamHeaders,
      count: share,
      concurrency: settings.openConcurrency,
    });
  });
  const openStarted = performance.now();
  await waitFor(
    () => total(loadgens, 'opened') + total(loadgens, 'failed') >= n,
    30_000 + more * 20,
    `opening ${n} SSE streams on ${target.label}`,
  );
  const openSeconds = (performance.now() - openStarted) / 1000;
  const opened = total(loadgens, 'opened');
  log(
    `${target.label}: ${opened} streams open (${more} in ${openSeconds.toFixed(1)} s, ` +
      `${total(loadgens, 'failed')} failed)`,
  );
  await sleep(1000);
  const holdersOpenKb = await target.holdersRssKb();
  const holdersIdleKb = plan.settleIdleMemory ? await settledRssKb(target, holdersOpenKb) : null;
  await expectBroadcasts(loadgens, plan.broadcasts);

  // Warm-up (not measured): JIT, buffers and subscriptions at full size.
  if (settings.warmupBroadcasts > 0) {
    const warm = await broadcast(
      target.publish,
      WARM_EVENT,
      settings.warmupBroadcasts,
      plan.perSecond,
      undefined,
      plan.filler,
    );
    if (warm.failures.length) throw new Error(`warm-up broadcast failed: ${warm.failures[0]}`);
    await waitFor(
      () => total(loadgens, 'warm') >= opened * settings.warmupBroadcasts,
      60_000,
      `warm-up broadcasts to arrive on ${target.label}`,
    );
  }
  await sleep(500);

  log(`${target.label}: ${plan.broadcasts} broadcasts at ${plan.perSecond}/s to ${opened} streams`);
  const clients = Object.fromEntries(loadgens.map((lg) => [lg.proc.name, lg.proc]));
  let serversPeakRssKb = serversRssKb(target);
  const rssSampler = setInterval(() => {
    serversPeakRssKb = Math.max(serversPeakRssKb, serversRssKb(target));
  }, 250);
  const cpuBefore = sampleCpu({ ...target.servers, ...clients });
  const started = performance.now();
  const firstSent = now();
  const sent = await broadcast(
    target.publish,
    BENCH_EVENT,
    plan.broadcasts,
    plan.perSecond,
    undefined,
    plan.filler,
  );
  const expected = opened * (plan.broadcasts - sent.failures.length);
  let complete = true;
  try {
    // At least 20,000 deliveries a second, or something is wrong.
    await waitFor(
      () => total(loadgens, 'deliveries') >= expected,
      30_000 + expected / 20,
      `broadcast deliveries on ${target.label}`,
    );
  } catch {
    complete = false; // reported as missing
  }
  const finished = performance.now();
  const cpuAfter = sampleCpu({ ...target.servers, ...clients });
  clearInterval(rssSampler);
  serversPeakRssKb = Math.max(serversPeakRssKb, serversRssKb(target));
  const reports = await requestReports(loadgens);

  const cpu = cpuDelta(cpuBefore, cpuAfter);
  const latency = new Histogram();
  for (const r of reports) latency.merge(r.latency);
  const sum = (key: keyof LoadgenReport) => reports.reduce((acc, r) => acc + (r[key] as number), 0);
  const deliveries = sum('deliveries');
  const lastArrival = Math.max(...reports.map((r) => r.lastArrival));
  const deliverySeconds = (lastArrival - firstSent) / 1000;
  const cpuOf = (names: string[]) => names.reduce((acc, name) => acc + cpu[name].total, 0);
  const serverNames = Object.keys(target.servers);
  const serverCpu = Object.fromEntries(serverNames.map((name) => [name, cpu[name]]));
  log(
    `${target.label}: ${deliveries} of ${expected} delivered in ${deliverySeconds.toFixed(1)} s ` +
      `(${((lastArrival - sent.lastSent) / 1000).toFixed(1)} s after the last POST)`,
  );

  return {
    target: target.label,
    streams: n,
    streamsOpen: opened,
    streamsFailed: sum('failed'),
    openFailures: reports.flatMap((r) => r.failures).slice(0, 5),
    openSeconds: round(openSeconds, 2),
    broadcasts: plan.broadcasts,
    broadcastsPerSecond: plan.perSecond,
    postsFailed: sent.failures.length,
    postFailures: sent.failures.slice(0, 5),
    expectedDeliveries: expected,
    deliveries,
    lost: sum('missing'),
    duplicates: sum('duplicates'),
    complete,
    unexpectedCloses: sum('unexpectedCloses'),
    wallSeconds: round(deliverySeconds, 3),
    postSeconds: round((sent.lastSent - firstSent) / 1000, 3),
    drainSeconds: round((lastArrival - sent.lastSent) / 1000, 3),
    offeredDeliveriesPerSecond: opened * plan.perSecond,
    deliveriesPerSecond: round(deliveries / deliverySeconds, 0),
    cpuWindowSeconds: round((finished - started) / 1000, 3),
    cpuMicros: serverCpu,
    loadGeneratorCpuMicros: cpuOf(Object.keys(clients)),
    cpuMicrosPerDelivery: perDelivery(cpuOf(serverNames), deliveries),
    holdersCpuMicrosPerDelivery: perDelivery(cpuOf(Object.keys(target.holders)), deliveries),
    cpuMicrosPerDeliveryByProcess: Object.fromEntries(
      serverNames.map((name) => [name, perDelivery(cpu[name].total, deliveries)]),
    ),
    latencyMs: latency.summary(),
    // The counters (and bytes) reset before the warm-up: its deliveries are in both.
    wireBytesPerDelivery: perDelivery(sum('wireBytes'), deliveries + sum('warm')),
    gzipStreams: sum('gzipStreams'),
    memory: {
      holdersBaselineKb,
      holdersIdleBaselineKb,
      holdersOpenKb,
      kbPerStreamAfterOpen: opened ? round((holdersOpenKb - holdersBaselineKb) / opened, 2) : null,
      holdersIdleKb,
      kbPerStream: opened
        ? round(
            holdersIdleKb !== null && holdersIdleBaselineKb !== null
              ? (holdersIdleKb - holdersIdleBaselineKb) / opened
              : (holdersOpenKb - holdersBaselineKb) / opened,
            2,
          )
        : null,
      serversPeakRssKb,
    },
  };
}

/** Losses and failures of the project's run: each makes the exit code 2. */
function problems(run: FanoutRun): string[] {
  const found: string[] = [];
  if (run.streamsFailed) found.push(`${run.streamsFailed} streams failed to open`);
  if (run.postsFailed) found.push(`${run.postsFailed} broadcasts failed: ${run.postFailures[0]}`);
  if (run.lost) found.push(`${run.lost} deliveries lost`);
  if (run.duplicates) found.push(`${run.duplicates} deliveries duplicated`);
  if (!run.complete) found.push('deliveries still missing when the wait ended');
  if (run.unexpectedCloses) found.push(`${run.unexpectedCloses} streams closed by the server`);
  return found;
}

/** Runs of the peer and the project, interleaved over the rounds. */
interface Paired {
  peerName: string;
  /** Why the peer has no figures (null when it ran). */
  peerUnavailable: string | null;
  peer: FanoutRun[];
  project: FanoutRun[];
}

async function interleaved(
  what: string,
  plans: FanoutPlan[],
  startProjectTarget: () => Promise<BroadcastTarget>,
): Promise<Paired[]> {
  const peerName = `${nchanName()} (Redis, 1 worker)`;
  let peerUnavailable = nchanMissing();
  const paired: Paired[] = plans.map(() => ({
    peerName,
    peerUnavailable: null,
    peer: [],
    project: [],
  }));
  for (let round = 1; round <= settings.rounds; round++) {
    log(`${what}, round ${round} of ${settings.rounds}`);
    if (peerUnavailable === null) {
      try {
        const runs = await measureFanout(startNchan, plans);
        runs.forEach((run, i) => paired[i].peer.push(run));
      } catch (err) {
        // The peer failing is reported (its column says n/a), never fatal to the bench.
        peerUnavailable = err instanceof Error ? err.message : String(err);
        log(`nchan: ${peerUnavailable}`);
      }
    }
    const runs = await measureFanout(startProjectTarget, plans);
    runs.forEach((run, i) => paired[i].project.push(run));
  }
  if (peerUnavailable !== null) {
    for (const p of paired) {
      p.peerUnavailable = peerUnavailable;
      p.peer = [];
    }
  }
  return paired;
}

/** The median across rounds of one figure, or null. */
const fmtKb = (kb: number | null) => (kb === null ? 'n/a' : `${kb} KB`);

function med(runs: FanoutRun[], pick: (r: FanoutRun) => number | null): number | null {
  const values = runs.map(pick).filter((v): v is number => v !== null);
  const m = median(values);
  return m === null ? null : round(m, 2);
}

/** A row of one figure, the median of each side's runs (lower is better). */
function medianRow(
  paired: Paired,
  measure: string,
  pick: (run: FanoutRun) => number | null,
  unit: string,
  targetRatio: number,
  detail: string,
): Comparison {
  return {
    measure,
    peer: paired.peerName,
    peerValue: med(paired.peer, pick),
    projectValue: med(paired.project, pick),
    unit,
    better: 'lower',
    targetRatio,
    detail: peerDetail(paired, detail),
  };
}

function peerDetail(paired: Paired, detail: string): string {
  return paired.peerUnavailable === null ? detail : `nchan n/a: ${paired.peerUnavailable}`;
}

/** Why the peer has no figures, or what it lost: printed under the table. */
function peerNotes(paired: Paired): string[] {
  if (paired.peerUnavailable !== null) return [`nchan n/a: ${paired.peerUnavailable}`];
  return paired.peer
    .filter((r) => r.lost || r.duplicates || !r.complete)
    .map(
      (r) => `note: nchan lost ${r.lost}, duplicated ${r.duplicates} of ${r.expectedDeliveries}`,
    );
}

const fmt = (v: number | null) => (v === null ? 'n/a' : v.toLocaleString('en-US'));
/** Deliveries per second, the median of the rounds. */
const rateOf = (runs: FanoutRun[]) =>
  fmt(
    round(
      med(runs, (r) => r.deliveriesPerSecond),
      0,
    ),
  );

function breakdown(run: FanoutRun | undefined): string {
  if (!run) return '';
  return Object.entries(run.cpuMicrosPerDeliveryByProcess)
    .map(([name, v]) => `${name} ${fmt(v)}`)
    .join(', ');
}

/** a. 1,000 subscribers × 50 broadcasts/s: CPU per delivery and p99 send→read. */
export async function fanoutAtRate(secret: string): Promise<ScenarioResult> {
  const plan = {
    streams: settings.subscribers,
    broadcasts: settings.broadcasts,
    perSecond: settings.broadcastsPerSecond,
  };
  const [paired] = await interleaved(
    `${plan.streams} subscribers × ${plan.perSecond}/s`,
    [plan],
    () => startProject(secret, 2, 'rate'),
  );
  const size = `${plan.streams.toLocaleString('en-US')} subscribers × ${plan.perSecond}/s`;
  const rows: Comparison[] = [
    medianRow(
      paired,
      `CPU per delivery, ${size}`,
      (r) => r.cpuMicrosPerDelivery,
      'µs',
      1.0,
      `server CPU (nchan: nginx + Redis; project: 2 gateways + Redis) per delivery`,
    ),
    medianRow(
      paired,
      `p99 send→read, ${size}`,
      (r) => r.latencyMs.p99Ms,
      'ms',
      1.5,
      'from the POST to the line read at the client',
    ),
  ];
  const last = paired.project[paired.project.length - 1];
  const lines = [
    `${size}: project CPU µs/delivery by process (last round): ${breakdown(last)}` +
      (paired.peer.length ? `; nchan: ${breakdown(paired.peer[paired.peer.length - 1])}` : ''),
    `${size}: p50 nchan ${fmt(med(paired.peer, (r) => r.latencyMs.p50Ms))} ms, project ` +
      `${fmt(med(paired.project, (r) => r.latencyMs.p50Ms))} ms; project drained ` +
      `${fmt(med(paired.project, (r) => r.drainSeconds))} s after the last POST`,
    ...peerNotes(paired),
  ];
  return {
    name: 'fanoutAtRate',
    rows,
    lines,
    details: { plan, ...paired },
    broken: paired.project.flatMap(problems),
  };
}

/** The saturated plan for `streams` streams (see the header: the same for both servers). */
function saturatedPlan(streams: number): FanoutPlan {
  return {
    streams,
    broadcasts: Math.max(5, Math.round(settings.saturatedDeliveries / streams)),
    perSecond: Math.max(1, Math.round(settings.saturatedOffered / streams)),
  };
}

/** b. 10,000 subscribers saturated: CPU per delivery, memory per idle stream, total RSS. */
export async function fanoutSaturated(secret: string): Promise<ScenarioResult> {
  const plan = { ...saturatedPlan(settings.saturatedSubscribers), settleIdleMemory: true };
  const [paired] = await interleaved(`${plan.streams} subscribers saturated`, [plan], () =>
    startProject(secret, 2, 'saturated'),
  );
  const size = `${plan.streams.toLocaleString('en-US')} subscribers`;
  const rows: Comparison[] = [
    medianRow(
      paired,
      `CPU per delivery, ${size} saturated`,
      (r) => r.cpuMicrosPerDelivery,
      'µs',
      1.0,
      `${plan.broadcasts} broadcasts offered at ${plan.perSecond}/s; ` +
        'server CPU (nchan: nginx + Redis; project: 2 gateways + Redis) until the last delivery',
    ),
    medianRow(
      paired,
      `memory per idle SSE stream, ${size}`,
      (r) => r.memory.kbPerStream,
      'KB',
      0.8,
      'RSS growth of the stream holders (nginx master + worker; gateways after a full GC) ' +
        `once settled idle (≤ ${settings.idleSettleS} s); 1 s after the last open: nchan ` +
        `${fmtKb(med(paired.peer, (r) => r.memory.kbPerStreamAfterOpen))}, project ` +
        `${fmtKb(med(paired.project, (r) => r.memory.kbPerStreamAfterOpen))}`,
    ),
    medianRow(
      paired,
      `server RSS at ${size} saturated`,
      (r) => round(r.memory.serversPeakRssKb / 1024, 1),
      'MB',
      2.0,
      'peak sum of every server process RSS (Redis included)',
    ),
  ];
  const lines = [
    `${size} saturated: ${fmt(plan.streams * plan.perSecond)} deliveries/s offered; delivered ` +
      `nchan ${rateOf(paired.peer)}/s, project ${rateOf(paired.project)}/s; project CPU µs/delivery ` +
      `by process (last round): ${breakdown(paired.project[paired.project.length - 1])}`,
    ...peerNotes(paired),
  ];
  return {
    name: 'fanoutSaturated',
    rows,
    lines,
    details: { plan, ...paired },
    broken: paired.project.flatMap(problems),
  };
}

/**
 * c. One gateway process against one nchan worker, saturated, at BENCH_SWEEP_SIZES streams
 * (in growing order, the streams of one size staying open for the next).
 */
export async function fanoutSweep(secret: string): Promise<ScenarioResult> {
  const sizes = [...settings.sweepSizes].sort((a, b) => a - b);
  const plans = sizes.map(saturatedPlan);
  const all = await interleaved(`one process, ${sizes.join(', ')} streams saturated`, plans, () =>
    startProject(secret, 1, 'sweep'),
  );
  const rows: Comparison[] = [];
  const lines: string[] = [];
  const details: Record<string, unknown> = {};
  all.forEach((paired, i) => {
    const plan = plans[i];
    const size = plan.streams.toLocaleString('en-US');
    rows.push(
      medianRow(
        paired,
        `CPU per delivery, one process, ${size} streams saturated`,
        (r) => r.holdersCpuMicrosPerDelivery,
        'µs',
        1.0,
        `nginx worker + master against one gateway; ${plan.broadcasts} broadcasts at ` +
          `${plan.perSecond}/s (Redis in the details)`,
      ),
    );
    lines.push(
      `one process, ${size} streams: delivered nchan ` +
        `${rateOf(paired.peer)}/s, project ${rateOf(paired.project)}/s ` +
        `(${fmt(plan.streams * plan.perSecond)}/s offered)`,
    );
    details[String(plan.streams)] = { plan, ...paired };
  });
  lines.push(...peerNotes(all[0]));
  return {
    name: 'fanoutSweep',
    rows,
    lines,
    details,
    broken: all.flatMap((paired) => paired.project.flatMap(problems)),
  };
}
