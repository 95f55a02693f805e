/**
 * A load generator (forked by bench/run.ts): opens and holds many idle SSE streams with raw
 * `http` GETs (no EventSource: the client side must stay cheap) and reads them line by line.
 * The streams may come from the project's gateways or from nchan, whose framing differs: nchan
 * opens with a `: hi` comment and sends no `event:` line (its `id:` is `<time>:<n>`), the
 * project opens with a welcome event. So a stream counts as open at its first line, whatever it
 * is, and broadcasts are recognised by their `data:` line, which both servers pass through as
 * the benchmark POSTed it. For each measured broadcast it records the latency (the `sentAt` the
 * benchmark put in the message, to arrival) and which (connection, seq) arrived, to find
 * losses and duplicates.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { Histogram } from './histogram';
import {
  BENCH_EVENT,
  WARM_EVENT,
  type FromLoadgen,
  type LoadgenReport,
  type ToLoadgen,
} from './protocol';

const OPEN_TIMEOUT_MS = 30_000;
/** A measured broadcast's data line starts so (the benchmark controls the message's key order). */
const DATA_PREFIX = `data: {"type":"${BENCH_EVENT}","seq":`;
const WARM_PREFIX = `data: {"type":"${WARM_EVENT}",`;
const SENT_AT = '"sentAt":';
const BENCH_LINE = `event: ${BENCH_EVENT}`;
const WARM_LINE = `event: ${WARM_EVENT}`;

interface Stream {
  carry: string;
  welcomed: boolean;
  failed: boolean;
  /** Copies received of each measured broadcast. */
  got: Uint8Array;
  req?: http.ClientRequest;
  onWelcome?: () => void;
}

const streams: Stream[] = [];
let latency = new Histogram();
const failures: string[] = [];
let closing = false;
let opened = 0;
let failed = 0;
let warm = 0;
let benchEvents = 0;
let deliveries = 0;
let otherEvents = 0;
let unexpectedCloses = 0;
let broadcasts = 0;
/** The last `expect` command's epoch: progress reports it once the counters are reset. */
let epoch = 0;
/** Epoch ms (fractional) of the last measured delivery. */
let lastArrival = 0;

function send(message: FromLoadgen): void {
  process.send?.(message);
}

function fail(stream: Stream, why: string): void {
  if (stream.failed || stream.welcomed) return;
  stream.failed = true;
  failed++;
  if (failures.length < 5) failures.push(why);
  stream.req?.destroy();
  stream.onWelcome?.();
}

/** Opens one stream; resolves once its first line arrived or it failed. */
function openStream(url: string, headers: Record<string, string>): Promise<void> {
  const stream: Stream = {
    carry: '',
    welcomed: false,
    failed: false,
    got: new Uint8Array(broadcasts),
  };
  streams.push(stream);
  return new Promise<void>((resolve) => {
    let settled = false;
    stream.onWelcome = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(
      () => fail(stream, `no first line within ${OPEN_TIMEOUT_MS} ms`),
      OPEN_TIMEOUT_MS,
    );
    const req = http.get(
      url,
      { agent: false, headers: { ...headers, Accept: 'text/event-stream' } },
      (res) => {
        if (res.statusCode !== 200) {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => fail(stream, `HTTP ${res.statusCode} ${body.slice(0, 200)}`));
          return;
        }
        res.setEncoding('latin1');
        res.on('data', (chunk: string) => onChunk(stream, chunk));
        res.on('close', () => {
          if (!closing && stream.welcomed) unexpectedCloses++;
        });
      },
    );
    stream.req = req;
    req.on('error', (err) => fail(stream, `socket: ${err.message}`));
  });
}

/** Scans complete lines; only `event:` lines and broadcasts' data lines are looked at. */
function onChunk(stream: Stream, chunk: string): void {
  const now = performance.timeOrigin + performance.now();
  const text = stream.carry ? stream.carry + chunk : chunk;
  let pos = 0;
  if (!stream.welcomed && !stream.failed && text.includes('\n')) {
    stream.welcomed = true;
    opened++;
    stream.onWelcome?.();
  }
  for (;;) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) break;
    const first = text.charCodeAt(pos);
    if (first === 101 /* e */ && text.startsWith('event: ', pos)) {
      if (nl - pos === BENCH_LINE.length && text.startsWith(BENCH_LINE, pos)) benchEvents++;
      else if (!(nl - pos === WARM_LINE.length && text.startsWith(WARM_LINE, pos))) otherEvents++;
    } else if (first === 100 /* d */) {
      if (text.startsWith(DATA_PREFIX, pos))
        onMeasured(stream, text, pos + DATA_PREFIX.length, nl, now);
      else if (text.startsWith(WARM_PREFIX, pos)) warm++;
    }
    pos = nl + 1;
  }
  stream.carry = pos < text.length ? text.slice(pos) : '';
}

/** `<seq>,"sentAt":<ms>,...`: counted, and its latency recorded. */
function onMeasured(stream: Stream, text: string, from: number, end: number, now: number): void {
  let seq: number;
  let sentAt: number;
  const comma = text.indexOf(',', from);
  const sentFrom = comma + 1 + SENT_AT.length;
  const sentEnd = text.indexOf(',', sentFrom);
  if (
    comma > 0 &&
    comma < end &&
    text.startsWith(SENT_AT, comma + 1) &&
    sentEnd > 0 &&
    sentEnd < end
  ) {
    seq = Number(text.slice(from, comma));
    sentAt = Number(text.slice(sentFrom, sentEnd));
  } else {
    const data = JSON.parse(text.slice(from - DATA_PREFIX.length + 6, end)) as {
      seq: number;
      sentAt: number;
    };
    seq = data.seq;
    sentAt = data.sentAt;
  }
  deliveries++;
  lastArrival = now;
  if (seq >= 0 && seq < stream.got.length && stream.got[seq] < 255) stream.got[seq]++;
  latency.record(now - sentAt);
}

/** Opens `count` streams, `concurrency` at a time, spread round-robin over `urls`. */
async function open(
  urls: string[],
  headers: Record<string, string>,
  count: number,
  concurrency: number,
): Promise<void> {
  let next = 0;
  const opener = async () => {
    while (next < count && !closing) {
      const url = urls[next % urls.length];
      next++;
      await openStream(url, headers);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, opener));
}

function report(): LoadgenReport {
  let duplicates = 0;
  let missing = 0;
  for (const s of streams) {
    if (!s.welcomed) continue;
    for (const n of s.got) {
      if (n === 0) missing++;
      else duplicates += n - 1;
    }
  }
  const cpu = process.cpuUsage();
  return {
    type: 'report',
    opened,
    failed,
    failures,
    warm,
    benchEvents,
    deliveries,
    duplicates,
    missing,
    otherEvents,
    unexpectedCloses,
    latency: latency.toJSON(),
    lastArrival,
    cpuMicros: cpu.user + cpu.system,
  };
}

let lastProgress = '';
function sendProgress(): void {
  const progress = { type: 'progress' as const, opened, failed, warm, deliveries, epoch };
  const text = JSON.stringify(progress);
  if (text !== lastProgress) {
    lastProgress = text;
    send(progress);
  }
}
const progressTimer = setInterval(sendProgress, 100);

/** A new measurement on the streams already open (and those still to open): counters reset. */
function expect(count: number, next: number): void {
  broadcasts = count;
  for (const s of streams) s.got = new Uint8Array(count);
  warm = 0;
  benchEvents = 0;
  deliveries = 0;
  lastArrival = 0;
  latency = new Histogram();
  epoch = next;
  sendProgress();
}

process.on('message', (message: ToLoadgen) => {
  if (message.cmd === 'open') {
    const { urls, headers, count, concurrency } = message;
    void open(urls, headers, count, concurrency).catch((err: unknown) =>
      send({ type: 'error', message: String(err) }),
    );
  } else if (message.cmd === 'expect') {
    expect(message.broadcasts, message.epoch);
  } else if (message.cmd === 'report') {
    send(report());
  } else if (message.cmd === 'close') {
    shutdown();
  }
});

function shutdown(): void {
  closing = true;
  clearInterval(progressTimer);
  for (const s of streams) s.req?.destroy();
  // Give the IPC channel a moment to flush the last messages, then leave.
  setTimeout(() => process.exit(0), 50);
}

// The benchmark went away: nothing to hold the streams for.
process.on('disconnect', shutdown);
