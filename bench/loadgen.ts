/**
 * A load generator (forked by bench/run.ts): opens and holds many idle SSE streams with raw
 * `http` GETs (no EventSource: the client side must stay cheap) and counts, per stream, the
 * broadcasts that arrive (bench/deliveryCounter.ts: the project's framing or nchan's), their
 * latency, and which (connection, seq) arrived, to find losses and duplicates.
 */
import http from 'node:http';
import zlib from 'node:zlib';
import { performance } from 'node:perf_hooks';
import { closeStreamsAndExit } from './loadgenExit';
import { DeliveryCounter, tally, type CountedStream } from './deliveryCounter';
import { type FromLoadgen, type LoadgenReport, type ToLoadgen } from './protocol';

const OPEN_TIMEOUT_MS = 30_000;

interface Stream extends CountedStream {
  failed: boolean;
  /** The project's welcome names it (nchan has none): the stream's own topic, conn:<id>. */
  connectionId?: string;
  /** The stream's first bytes until the welcome's connectionId was read in them. */
  head: string;
  req?: http.ClientRequest;
  onWelcome?: () => void;
}

const streams: Stream[] = [];
const failures: string[] = [];
let counter = new DeliveryCounter();
let closing = false;
let opened = 0;
let failed = 0;
let unexpectedCloses = 0;
let broadcasts = 0;
let wireBytes = 0;
let gzipStreams = 0;
/** The last `expect` command's epoch: progress reports it once the counters are reset. */
let epoch = 0;

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
    head: '',
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
        if (res.headers['content-encoding'] === 'gzip') {
          // Compressed (SSE_COMPRESSION=gzip): each event is flushed, so it inflates on arrival.
          gzipStreams++;
          res.on('data', (raw: Buffer) => (wireBytes += raw.length));
          const body = res.pipe(zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH }));
          body.setEncoding('latin1');
          body.on('data', (chunk: string) => onChunk(stream, chunk));
          body.on('error', (err) => fail(stream, `gunzip: ${err.message}`));
        } else {
          res.on('data', (raw: Buffer) => {
            wireBytes += raw.length;
            onChunk(stream, raw.toString('latin1'));
          });
        }
        res.on('close', () => {
          if (!closing && stream.welcomed) unexpectedCloses++;
        });
      },
    );
    stream.req = req;
    req.on('error', (err) => fail(stream, `socket: ${err.message}`));
  });
}

const CONNECTION_ID = /"connectionId":"([^"]+)"/;
/** Past this many bytes without a connectionId the stream has none (nchan's). */
const HEAD_MAX = 4096;

function onChunk(stream: Stream, chunk: string): void {
  const now = performance.timeOrigin + performance.now();
  if (stream.failed) return;
  if (stream.connectionId === undefined && stream.head.length < HEAD_MAX) {
    stream.head += chunk;
    const match = CONNECTION_ID.exec(stream.head);
    if (match) {
      stream.connectionId = match[1];
      stream.head = '';
    }
  }
  if (counter.onChunk(stream, chunk, now)) {
    opened++;
    stream.onWelcome?.();
  }
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
  const { missing, duplicates } = tally(streams);
  const cpu = process.cpuUsage();
  return {
    type: 'report',
    opened,
    failed,
    failures,
    warm: counter.warm,
    benchEvents: counter.benchEvents,
    deliveries: counter.deliveries,
    duplicates,
    missing,
    otherEvents: counter.otherEvents,
    unexpectedCloses,
    latency: counter.latency.toJSON(),
    lastArrival: counter.lastArrival,
    cpuMicros: cpu.user + cpu.system,
    wireBytes,
    gzipStreams,
    connectionIds: streams.flatMap((s) =>
      s.welcomed && s.connectionId !== undefined ? [s.connectionId] : [],
    ),
  };
}

let lastProgress = '';
function sendProgress(): void {
  const { warm, deliveries } = counter;
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
  counter = new DeliveryCounter();
  wireBytes = 0;
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
  closeStreamsAndExit(streams, progressTimer);
}

// The benchmark went away: nothing to hold the streams for.
process.on('disconnect', shutdown);
