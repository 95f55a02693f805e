/**
 * The resume storm's load generator (forked by bench/resumeStormScenario.ts): holds SSE streams
 * on two gateways with raw `http` GETs and, when a stream's gateway dies, reconnects it the way
 * EventSource does: after the server's `retry:` (EventSource's 3 s without one), with
 * `Last-Event-ID` set to the last `id:` it read, and again after every failed attempt. It
 * stands in for the load balancer too: reconnects go to the surviving gateway. Per stream it
 * checks the measured broadcasts by seq (lost, duplicated, out of order) and times the recovery.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { closeStreamsAndExit } from './loadgenExit';
import { Histogram, type HistogramData } from './histogram';
import { BENCH_EVENT } from './protocol';

export type ToStormLoadgen =
  | {
      cmd: 'open';
      /** Stream i opens on urls[i % urls.length]. */
      urls: string[];
      /** Where a stream whose gateway died reconnects (the load balancer's choice). */
      reconnectUrl: string;
      /** Stream i uses tokens[i % tokens.length]. */
      tokens: string[];
      count: number;
      concurrency: number;
      /** Measured broadcasts to expect (seq 0 .. broadcasts-1). */
      broadcasts: number;
    }
  | { cmd: 'report'; killedAt: number }
  | { cmd: 'close' };

export interface StormProgress {
  type: 'progress';
  opened: number;
  failed: number;
  /** Streams that received every measured broadcast. */
  complete: number;
  /** Streams that lost their socket. */
  dropped: number;
  /** Dropped streams that read a measured broadcast on their new socket. */
  recovered: number;
}

export interface StormReport {
  type: 'report';
  opened: number;
  failed: number;
  failures: string[];
  dropped: number;
  recovered: number;
  /** (stream, seq) pairs never received, received twice or more, received after a later seq. */
  lost: number;
  duplicates: number;
  reorders: number;
  /** Reconnect attempts that failed (refused, reset, or an HTTP error), retried after `retry:`. */
  failedAttempts: number;
  /** `connection-status` `history-lost`: a resume that could not replay everything. */
  historyLost: number;
  /** From the kill to the first measured broadcast read on the new socket, per dropped stream. */
  recovery: HistogramData;
  /** From the kill to the new socket's first event (the `resumed` status), per dropped stream. */
  reopen: HistogramData;
  /** From the kill to noticing the socket was gone, per dropped stream. */
  drop: HistogramData;
  /**
   * The phases of the reconnect that succeeded, per dropped stream: kill → its connect began,
   * connect began → TCP connected (SYN retries show here), TCP connected → response headers
   * (the gateway's accept, parse and open), headers → first event, first event → first
   * measured broadcast (the replay or the next live one).
   */
  phases: Record<ReconnectPhase, HistogramData>;
  /** Connect attempts after the drop, per dropped stream (1 = the first one got through). */
  attempts: HistogramData;
  /** Epoch ms of the first and last resume answered (first event of a new socket). */
  firstReopenAt: number;
  lastReopenAt: number;
  /** The `retry:` values read (ms), min and max. */
  retryMs: [number, number] | null;
  cpuMicros: number;
}

export const RECONNECT_PHASES = [
  'killToConnect',
  'connectToTcp',
  'tcpToHeaders',
  'headersToFirstEvent',
  'firstEventToMeasured',
] as const;
export type ReconnectPhase = (typeof RECONNECT_PHASES)[number];

export type FromStormLoadgen = StormProgress | StormReport | { type: 'error'; message: string };

/** EventSource's reconnection time until the server sends `retry:` (Chrome's and the npm package's). */
const DEFAULT_RETRY_MS = 3000;
const OPEN_TIMEOUT_MS = 60_000;
const DATA_PREFIX = `data: {"type":"${BENCH_EVENT}","seq":`;
const HISTORY_LOST = 'data: {"type":"connection-status","status":"history-lost"';

interface Stream {
  token: string;
  url: string;
  carry: string;
  lastEventId: string;
  retryMs: number;
  welcomed: boolean;
  failed: boolean;
  /** Copies received of each measured broadcast. */
  got: Uint8Array;
  distinct: number;
  lastSeq: number;
  /** Epoch ms the socket was lost; 0 while it was never lost. */
  droppedAt: number;
  /** First event, first measured broadcast on the socket opened after the drop. */
  reopenedAt: number;
  recoveredAt: number;
  /** The current reconnect attempt's connect start, TCP connected, response headers (epoch ms). */
  attemptAt: number;
  tcpAt: number;
  headersAt: number;
  /** Connect attempts since the drop. */
  attempts: number;
  /** The current socket (a new one on each attempt). */
  req?: http.ClientRequest;
  onWelcome?: () => void;
}

const streams: Stream[] = [];
const failures: string[] = [];
let broadcasts = 0;
let reconnectUrl = '';
let closing = false;
let opened = 0;
let failed = 0;
let complete = 0;
let dropped = 0;
let recovered = 0;
let duplicates = 0;
let reorders = 0;
let failedAttempts = 0;
let historyLost = 0;
let retryMin = Infinity;
let retryMax = -Infinity;

const now = () => performance.timeOrigin + performance.now();

function note(why: string): void {
  if (failures.length < 5) failures.push(why);
}

/** One GET of the stream (the first or a reconnect); a lost socket schedules the next. */
function connect(stream: Stream): void {
  const headers: Record<string, string> = {
    Authorization: `Bearer ${stream.token}`,
    Accept: 'text/event-stream',
  };
  if (stream.droppedAt > 0 && stream.lastEventId) headers['Last-Event-ID'] = stream.lastEventId;
  let gone = false;
  if (stream.droppedAt > 0) {
    stream.attempts++;
    stream.attemptAt = now();
    stream.tcpAt = 0;
    stream.headersAt = 0;
  }
  const lost = (why: string, established: boolean) => {
    if (gone || closing) return;
    gone = true;
    if (!stream.welcomed) return openFailed(stream, why);
    if (stream.droppedAt === 0) {
      stream.droppedAt = now();
      dropped++;
      stream.url = reconnectUrl;
    } else if (!established) {
      failedAttempts++;
      note(why);
    }
    stream.carry = '';
    setTimeout(() => connect(stream), stream.retryMs);
  };
  const req = http.get(stream.url + '/mcp/sse', { agent: false, headers }, (res) => {
    if (stream.droppedAt > 0 && stream.reopenedAt === 0) stream.headersAt = now();
    if (res.statusCode !== 200) {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => lost(`HTTP ${res.statusCode} ${body.slice(0, 200)}`, false));
      return;
    }
    res.setEncoding('latin1');
    res.on('data', (chunk: string) => onChunk(stream, chunk));
    res.on('close', () => lost('stream ended', true));
  });
  stream.req = req;
  if (stream.droppedAt > 0) {
    req.on('socket', (socket) =>
      socket.once('connect', () => {
        if (stream.reopenedAt === 0) stream.tcpAt = now();
      }),
    );
  }
  req.on('error', (err) => lost(`socket: ${err.message}`, false));
}

function openFailed(stream: Stream, why: string): void {
  if (stream.failed) return;
  stream.failed = true;
  failed++;
  note(why);
  stream.req?.destroy();
  stream.onWelcome?.();
}

/** Scans complete lines: `id:`, `retry:`, `event:` and the measured data lines. */
function onChunk(stream: Stream, chunk: string): void {
  const at = now();
  const text = stream.carry ? stream.carry + chunk : chunk;
  let pos = 0;
  for (;;) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) break;
    switch (text.charCodeAt(pos)) {
      case 105 /* i */:
        if (text.startsWith('id: ', pos)) stream.lastEventId = text.slice(pos + 4, nl);
        break;
      case 114 /* r */:
        if (text.startsWith('retry: ', pos)) {
          const ms = Number(text.slice(pos + 7, nl));
          if (Number.isInteger(ms) && ms >= 0) {
            stream.retryMs = ms;
            retryMin = Math.min(retryMin, ms);
            retryMax = Math.max(retryMax, ms);
          }
        }
        break;
      case 101 /* e */:
        if (!stream.welcomed && !stream.failed) {
          stream.welcomed = true;
          opened++;
          stream.onWelcome?.();
        }
        if (stream.droppedAt > 0 && stream.reopenedAt === 0) stream.reopenedAt = at;
        break;
      case 100 /* d */:
        if (text.startsWith(DATA_PREFIX, pos))
          onMeasured(stream, text, pos + DATA_PREFIX.length, at);
        else if (text.startsWith(HISTORY_LOST, pos)) historyLost++;
        break;
    }
    pos = nl + 1;
  }
  stream.carry = pos < text.length ? text.slice(pos) : '';
}

function onMeasured(stream: Stream, text: string, from: number, at: number): void {
  const seq = parseInt(text.slice(from, text.indexOf(',', from)), 10);
  if (!(seq >= 0 && seq < stream.got.length)) return;
  if (stream.droppedAt > 0 && stream.recoveredAt === 0) {
    stream.recoveredAt = at;
    recovered++;
  }
  if (seq < stream.lastSeq) reorders++;
  stream.lastSeq = Math.max(stream.lastSeq, seq);
  if (stream.got[seq] > 0) duplicates++;
  else if (++stream.distinct === broadcasts) complete++;
  if (stream.got[seq] < 255) stream.got[seq]++;
}

function openStream(url: string, token: string): Promise<void> {
  const stream: Stream = {
    token,
    url,
    carry: '',
    lastEventId: '',
    retryMs: DEFAULT_RETRY_MS,
    welcomed: false,
    failed: false,
    got: new Uint8Array(broadcasts),
    distinct: 0,
    lastSeq: -1,
    droppedAt: 0,
    reopenedAt: 0,
    recoveredAt: 0,
    attemptAt: 0,
    tcpAt: 0,
    headersAt: 0,
    attempts: 0,
  };
  streams.push(stream);
  return new Promise<void>((resolve) => {
    const timer = setTimeout(
      () => openFailed(stream, `no welcome within ${OPEN_TIMEOUT_MS} ms`),
      OPEN_TIMEOUT_MS,
    );
    stream.onWelcome = () => {
      stream.onWelcome = undefined;
      clearTimeout(timer);
      resolve();
    };
    connect(stream);
  });
}

async function open(message: Extract<ToStormLoadgen, { cmd: 'open' }>): Promise<void> {
  let next = 0;
  const opener = async () => {
    while (next < message.count && !closing) {
      const i = next++;
      await openStream(
        message.urls[i % message.urls.length],
        message.tokens[i % message.tokens.length],
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(message.concurrency, message.count) }, opener));
}

function report(killedAt: number): StormReport {
  const recovery = new Histogram();
  const reopen = new Histogram();
  const drop = new Histogram();
  const phases = Object.fromEntries(RECONNECT_PHASES.map((p) => [p, new Histogram()])) as Record<
    ReconnectPhase,
    Histogram
  >;
  const attempts = new Histogram();
  let lost = 0;
  let firstReopenAt = Infinity;
  let lastReopenAt = 0;
  for (const s of streams) {
    if (!s.welcomed) continue;
    for (const n of s.got) if (n === 0) lost++;
    if (s.droppedAt > 0) drop.record(s.droppedAt - killedAt);
    if (s.recoveredAt > 0) recovery.record(s.recoveredAt - killedAt);
    if (s.droppedAt > 0) attempts.record(s.attempts);
    if (s.reopenedAt > 0 && s.tcpAt > 0 && s.headersAt > 0) {
      phases.killToConnect.record(s.attemptAt - killedAt);
      phases.connectToTcp.record(s.tcpAt - s.attemptAt);
      phases.tcpToHeaders.record(s.headersAt - s.tcpAt);
      phases.headersToFirstEvent.record(s.reopenedAt - s.headersAt);
      if (s.recoveredAt > 0) phases.firstEventToMeasured.record(s.recoveredAt - s.reopenedAt);
    }
    if (s.reopenedAt > 0) {
      reopen.record(s.reopenedAt - killedAt);
      firstReopenAt = Math.min(firstReopenAt, s.reopenedAt);
      lastReopenAt = Math.max(lastReopenAt, s.reopenedAt);
    }
  }
  const cpu = process.cpuUsage();
  return {
    type: 'report',
    opened,
    failed,
    failures,
    dropped,
    recovered,
    lost,
    duplicates,
    reorders,
    failedAttempts,
    historyLost,
    recovery: recovery.toJSON(),
    reopen: reopen.toJSON(),
    drop: drop.toJSON(),
    phases: Object.fromEntries(RECONNECT_PHASES.map((p) => [p, phases[p].toJSON()])) as Record<
      ReconnectPhase,
      HistogramData
    >,
    attempts: attempts.toJSON(),
    firstReopenAt: Number.isFinite(firstReopenAt) ? firstReopenAt : 0,
    lastReopenAt,
    retryMs: Number.isFinite(retryMin) ? [retryMin, retryMax] : null,
    cpuMicros: cpu.user + cpu.system,
  };
}

function send(message: FromStormLoadgen): void {
  process.send?.(message);
}

let lastProgress = '';
const progressTimer = setInterval(() => {
  const progress: StormProgress = {
    type: 'progress',
    opened,
    failed,
    complete,
    dropped,
    recovered,
  };
  const text = JSON.stringify(progress);
  if (text !== lastProgress) {
    lastProgress = text;
    send(progress);
  }
}, 100);

process.on('message', (message: ToStormLoadgen) => {
  if (message.cmd === 'open') {
    broadcasts = message.broadcasts;
    reconnectUrl = message.reconnectUrl;
    void open(message).catch((err: unknown) => send({ type: 'error', message: String(err) }));
  } else if (message.cmd === 'report') {
    send(report(message.killedAt));
  } else if (message.cmd === 'close') {
    shutdown();
  }
});

function shutdown(): void {
  closing = true;
  closeStreamsAndExit(streams, progressTimer);
}

process.on('disconnect', shutdown);
