// Over 300 lines: the one SSE writer (head, detach from the HTTP layer, framing, per-tick batching, send queue, close).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import {
  acceptsGzip,
  compressionOn,
  createStreamGzip,
  gzipEnd,
  gzipFrame,
  type StreamGzip,
} from './compression';

/** Result of writing a frame: bytes accepted (> 0), SKIPPED or OVERFLOW. */
export const SKIPPED = 0;
/** The send queue is over its bound: the caller must close the stream (slow consumer). */
export const OVERFLOW = -1;

export interface SendQueueLimits {
  maxBytes: number;
  maxEvents: number;
}

/**
 * How the response body is delimited. `close`: by the end of the connection (no chunked
 * framing; the HTTP layer is let go of after the head), for streams that last as long as their
 * client stays. `chunked`: HTTP/1.1 chunks written straight to the socket, the response ended
 * through Node, so the client's connection is reused for its next request (a POST's stream).
 */
export type BodyFraming = 'close' | 'chunked';

/** Why the peer side went away (the owner decides what follows). */
export type PeerClose = 'client-closed' | 'socket-error';

// Node's HTTP internals: what its own upgrade path calls to let a socket go.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { freeParser } = require('_http_common') as {
  freeParser(parser: unknown, req: IncomingMessage | null, socket: Socket): void;
};

/** The writer of a socket (or of a chunked response), found by shared listeners: no closures. */
const kWriter = Symbol('sseWriter');
type Owned<T> = T & { [kWriter]?: SseWriter | null; parser?: unknown };

/** The socket events Node's HTTP server listens to. */
const HTTP_SOCKET_EVENTS = ['close', 'error', 'drain', 'data', 'end', 'timeout', 'resume', 'pause'];

/** The listeners net.Socket puts on every socket; the HTTP server's are the others. */
const NET_OWN_LISTENERS: ReadonlyMap<string, ReadonlySet<unknown>> = (() => {
  const probe = new Socket();
  const own = new Map<string, Set<unknown>>();
  for (const name of HTTP_SOCKET_EVENTS) own.set(name, new Set(probe.listeners(name)));
  probe.destroy();
  return own;
})();

/**
 * Frames waiting while the socket is backed up, in pairs (per-stream head such as the id line,
 * shared body), so broadcast bodies stay shared. Allocated on the first backup only.
 */
interface SendQueue {
  items: Array<string | Buffer>;
  next: number;
  bytes: number;
  events: number;
  /** Index in `items` of the queued progress frame of each request (coalescing). */
  progress: Map<string, number> | null;
}

let batchWindowMs = 0;

/**
 * SSE_BATCH_MS: frames written to a socket within this window go out as one write. 0 (the
 * default): per event-loop tick only. Set once at start-up (createGatewayApp).
 */
export function setSseBatchWindow(ms: number): void {
  batchWindowMs = ms;
}

/**
 * One SSE stream's wire side: the head, the frames, backpressure with a bounded send queue,
 * and the end. Subclassed by the stream kinds (seed connection, MCP stream), so a stream is one
 * object. Frames are `head` + `body`: the head is the stream's own bytes (its id line), the
 * body may be shared by many streams.
 *
 * Frames are gathered by the writer and sent as one plain socket write when the tick (or
 * SSE_BATCH_MS window) ends: N events to one socket are one write and one syscall, and one
 * event pays no cork/uncork/writev path (at low rates most flushes carry one event). From a
 * backup on (checked after each flush), frames wait in the queue until the socket drains; past
 * the limits a write returns OVERFLOW.
 */
export abstract class SseWriter {
  private socket: Owned<Socket> | null = null;
  /** Chunked framing only: the response, ended through Node so the connection is reused. */
  private response: ServerResponse | null = null;
  private wireState: 'idle' | 'open' | 'done' = 'idle';
  /**
   * This tick's (or window's) frames, gathered here and handed to the socket as one write at
   * the flush: the first frame in two fields (the common case at low rates: no array), further
   * ones in `pendingMore` as head/body pairs.
   */
  private pendingHead: string | null = null;
  private pendingBody: string | Buffer = '';
  private pendingMore: Array<string | Buffer> | null = null;
  private pendingBytes = 0;
  private blocked = false;
  /** A wake-up (socket 'drain' or the next turn) is pending for the blocked socket. */
  private drainArmed = false;
  /** Blocked at the previous isStuck() check and not drained since. */
  private stuck = false;
  private queue: SendQueue | null = null;
  private drainWaiters: Array<() => void> | null = null;
  /** `close` framing: the response, until the HTTP layer lets the socket go. */
  private detaching: ServerResponse | null = null;
  /** SSE_COMPRESSION=gzip and a client that accepts it: this stream's own deflate state. */
  private gzip: StreamGzip | null = null;

  constructor(protected readonly limits: SendQueueLimits) {}

  /** The socket or the response went away without our end()/destroy(). Called once. */
  protected abstract onPeerClose(reason: PeerClose): void;

  /**
   * Watches the response until the head is sent: a client that leaves while the stream opens
   * is noticed (its close arrives through onPeerClose).
   */
  protected watchResponse(res: ServerResponse): void {
    (res as Owned<ServerResponse>)[kWriter] = this;
    res.once('close', onResponseClose);
  }

  /** True once the head was sent and until the stream ends. */
  protected get wireOpen(): boolean {
    return this.wireState === 'open';
  }

  /** True while the socket is backed up (writes wait in the send queue). */
  get isBlocked(): boolean {
    return this.blocked;
  }

  /**
   * Sends the status line and headers. With `close` framing the HTTP layer then lets the socket
   * go (parser freed, its listeners removed, request and response dropped), as Node does on an
   * upgrade. A HEAD request gets the head alone. Returns false when the client is gone.
   */
  protected sendHead(
    res: ServerResponse,
    headers: Readonly<Record<string, string>>,
    framing: BodyFraming,
  ): boolean {
    const socket = res.socket as Owned<Socket> | null;
    // Gone or HEAD: the response's 'close' (watchResponse) reports the end to the owner.
    if (!socket || socket.destroyed || res.destroyed || res.writableEnded) return false;
    const gzip = compressionOn() && acceptsGzip(res.req.headers['accept-encoding']);
    if (gzip) headers = { ...headers, 'Content-Encoding': 'gzip', Vary: 'Accept-Encoding' };
    if (framing === 'close') {
      res.useChunkedEncodingByDefault = false;
      res.writeHead(200, { ...headers, Connection: 'close' });
    } else {
      res.writeHead(200, headers);
    }
    if (res.req.method === 'HEAD') {
      res.end();
      return false;
    }
    res.flushHeaders();
    if (gzip) this.gzip = createStreamGzip();
    this.wireState = 'open';
    this.socket = socket;
    socket[kWriter] = this;
    if (framing === 'chunked') {
      // The response's 'close' (watchResponse) stays how a departure is noticed.
      this.response = res;
      return true;
    }
    socket.on('close', onSocketClose);
    socket.on('error', onSocketError);
    // Not from within the parser's own run (a route may open synchronously): on the next turn.
    this.detaching = res;
    setImmediate(detachLater, this);
    return true;
  }

  /** The HTTP layer lets the socket go (see detachFromHttp), unless the request is unfinished. */
  detachHttp(): void {
    const res = this.detaching;
    this.detaching = null;
    const socket = this.socket;
    if (!res || !socket || this.wireState !== 'open' || !res.req.complete) return;
    res.removeListener('close', onResponseClose);
    (res as Owned<ServerResponse>)[kWriter] = null;
    detachFromHttp(res, socket);
    socket.on('end', onSocketEnd);
    // Keep reading: a client's FIN or RST is how we learn it left.
    socket.resume();
  }

  /**
   * Writes one frame (`head` + `body`). `progressOf` names the request a progress frame is
   * about: while it waits in a backed-up queue, a newer one of that request replaces it.
   */
  protected writeFrame(head: string, body: string | Buffer, progressOf?: string): number {
    if (this.wireState !== 'open') return SKIPPED;
    const bytes = head.length + body.length;
    if (this.blocked) return this.enqueue(head, body, bytes, progressOf);
    this.send(head, body);
    return bytes;
  }

  /**
   * Adds a frame to this flush's. False once they and what the socket buffers reach its high
   * water mark, as a write to a corked socket would: further frames then wait in the queue.
   */
  private send(head: string, body: string | Buffer): boolean {
    const bytes = head.length + body.length;
    if (this.pendingHead === null) {
      this.pendingHead = head;
      this.pendingBody = body;
      scheduleFlush(this);
    } else {
      (this.pendingMore ??= []).push(head, body);
    }
    this.pendingBytes += bytes;
    const socket = this.socket as Socket;
    if (this.pendingBytes + socket.writableLength < socket.writableHighWaterMark) return true;
    this.blocked = true;
    return false;
  }

  /** Resolves once the send queue drained (at once when not blocked) or the stream ended. */
  drained(): Promise<void> {
    if (!this.blocked || this.wireState !== 'open') return Promise.resolve();
    return new Promise((resolve) => (this.drainWaiters ??= []).push(resolve));
  }

  /** True when the socket is gone without the stream having noticed its close. */
  isSocketGone(): boolean {
    const socket = this.socket;
    return this.wireState === 'open' && (!socket || socket.destroyed || !socket.writable);
  }

  /** Called once per cleanup sweep: true when the send queue has not drained since the last one. */
  isStuck(): boolean {
    if (!this.blocked) {
      this.stuck = false;
      return false;
    }
    if (this.stuck) return true;
    this.stuck = true;
    return false;
  }

  /**
   * Ends the stream gracefully: this tick's frames and those queued behind a backup (bounded by
   * the limits) are handed to the socket first, so the last events are not lost, then the body
   * ends. With `close` framing that is the end of the TCP connection, so a client's reconnect
   * reaches the load balancer afresh rather than riding a kept-alive socket back to this pod
   * (it may be draining).
   */
  protected endWire(): void {
    if (this.wireState !== 'open') return this.release();
    const queue = this.queue;
    this.queue = null;
    for (let i = queue?.next ?? 0; queue && i < queue.items.length; i += 2) {
      if (queue.items[i].length + queue.items[i + 1].length > 0) {
        this.send(queue.items[i] as string, queue.items[i + 1]);
      }
    }
    this.flush();
    // The gzip trailer, so a client reading to the end sees a complete gzip member.
    if (this.gzip && this.socket && !this.socket.destroyed) {
      const trailer = gzipEnd(this.gzip);
      this.socket.write(this.response ? chunk(trailer) : trailer);
    }
    this.release();
    if (this.response) this.response.end();
    else if (this.socket) endSocket(this.socket);
    this.forget();
  }

  /** Drops the connection at once (dead, stuck or slow clients). */
  protected destroyWire(): void {
    const wasOpen = this.wireState === 'open';
    this.release();
    if (!wasOpen) return;
    if (this.response) this.response.destroy();
    else this.socket?.destroy();
    this.forget();
  }

  private release(): void {
    this.wireState = 'done';
    this.queue = null;
    this.wakeDrainWaiters();
  }

  /** Unhooks our listeners: the socket (or, chunked, the response) is no longer ours. */
  private forget(): void {
    const socket = this.socket;
    const response = this.response as Owned<ServerResponse> | null;
    const detaching = this.detaching as Owned<ServerResponse> | null;
    if (socket && socket[kWriter] === this) socket[kWriter] = null;
    if (detaching) detaching[kWriter] = null;
    if (response) {
      // A kept-alive connection goes on to its next request: none of ours stays on it.
      response[kWriter] = null;
      response.removeListener('close', onResponseClose);
    } else if (socket) {
      // 'error' stays: a late error must not go unhandled.
      socket.removeListener('close', onSocketClose);
      socket.removeListener('end', onSocketEnd);
    }
    this.socket = null;
    this.response = null;
    this.detaching = null;
    // Its native memory is freed now, not at some later garbage collection.
    this.gzip?.close();
    this.gzip = null;
  }

  /**
   * From the shared listeners: the peer left (FIN, RST, socket error, or the response closed
   * before or after the head). Not called after our own end or destroy.
   */
  peerClosed(reason: PeerClose): void {
    if (this.wireState === 'done') return;
    this.release();
    if (this.socket && !this.response && !this.socket.destroyed) this.socket.destroy();
    this.forget();
    this.onPeerClose(reason);
  }

  /**
   * Sends this tick's (or window's) frames as one socket write (no cork, no writev: one
   * buffered entry, one syscall); then checks for a backup.
   */
  flush(): void {
    const head = this.pendingHead;
    if (head === null) return;
    const body = this.pendingBody;
    const more = this.pendingMore;
    this.pendingHead = null;
    this.pendingBody = '';
    this.pendingMore = null;
    this.pendingBytes = 0;
    const socket = this.socket;
    if (!socket || this.wireState !== 'open') return;
    let data = more === null ? oneWrite(head, body) : gather(head, body, more);
    // Compressed and sync-flushed as one block: the client can decode every event at once.
    if (this.gzip) data = gzipFrame(this.gzip, data);
    socket.write(this.response ? chunk(data) : data);
    this.checkBackpressure();
  }

  /**
   * Blocks when the socket is backed up, and arranges the wake-up that flushes the queue: the
   * socket's 'drain', or the next turn when only this flush's writes were large.
   */
  private checkBackpressure(): void {
    if (this.wireState !== 'open' || this.drainArmed) return;
    const socket = this.socket as Owned<Socket>;
    if (!socket.destroyed && socket.writableNeedDrain) {
      this.blocked = true;
      this.drainArmed = true;
      socket.once('drain', onSocketDrain);
    } else if (this.blocked) {
      this.drainArmed = true;
      setImmediate(drainLater, this);
    } else {
      this.wakeDrainWaiters();
    }
  }

  /** The socket drained: writes what waited, as far as the socket takes it. */
  drainQueue(): void {
    this.drainArmed = false;
    this.blocked = false;
    this.stuck = false;
    const queue = this.queue;
    if (this.wireState !== 'open') return this.wakeDrainWaiters();
    if (!queue) return this.checkBackpressure();
    let writable = true;
    while (writable && queue.next < queue.items.length) {
      const head = queue.items[queue.next] as string;
      const body = queue.items[queue.next + 1];
      queue.next += 2;
      if (head.length + body.length === 0) continue; // a superseded progress frame
      queue.bytes -= head.length + body.length;
      queue.events--;
      writable = this.send(head, body);
    }
    if (queue.next >= queue.items.length) this.queue = null;
    if (!writable) this.blocked = true;
  }

  private enqueue(
    head: string,
    body: string | Buffer,
    bytes: number,
    progressOf: string | undefined,
  ): number {
    const queue = (this.queue ??= { items: [], next: 0, bytes: 0, events: 0, progress: null });
    // Progress of a request still waiting here is superseded by its newer progress: latest wins.
    if (progressOf !== undefined) {
      const at = queue.progress?.get(progressOf);
      if (at !== undefined && at >= queue.next) {
        queue.bytes -= queue.items[at].length + queue.items[at + 1].length;
        queue.items[at] = queue.items[at + 1] = '';
        queue.events--;
      }
    }
    if (queue.events >= this.limits.maxEvents || queue.bytes + bytes > this.limits.maxBytes) {
      return OVERFLOW;
    }
    if (progressOf !== undefined)
      (queue.progress ??= new Map()).set(progressOf, queue.items.length);
    queue.items.push(head, body);
    queue.bytes += bytes;
    queue.events++;
    return bytes;
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = null;
    for (const wake of waiters ?? []) wake();
  }
}

/**
 * Lets the HTTP layer go of a socket whose response head was sent, as Node's own upgrade path
 * does: the response forgets the socket, the server's listeners come off, the parser is freed
 * (and taken off the server's request-timeout list). The request and response objects, and
 * Express's state on them, become garbage once the route handler returns.
 */
function detachFromHttp(res: ServerResponse, socket: Owned<Socket>): void {
  res.detachSocket(socket);
  for (const name of HTTP_SOCKET_EVENTS) {
    const own = NET_OWN_LISTENERS.get(name);
    for (const listener of socket.listeners(name)) {
      if (own?.has(listener) || OUR_LISTENERS.has(listener)) continue;
      socket.removeListener(name, listener as (...a: unknown[]) => void);
    }
  }
  const parser = socket.parser;
  if (parser) freeParser(parser, res.req, socket);
}

/**
 * A frame as one write: a string stays a string (the socket encodes it as it writes, no Buffer
 * of ours), a shared Buffer body is copied once behind its head. The head is ASCII (ids), so
 * its length is its byte length.
 */
function oneWrite(head: string, body: string | Buffer): string | Buffer {
  if (head === '') return body;
  if (typeof body === 'string') return head + body;
  const out = Buffer.allocUnsafe(head.length + body.length);
  out.write(head, 0, 'latin1');
  body.copy(out, head.length);
  return out;
}

/** Several frames (head/body pairs after the first) as one write. */
function gather(
  head: string,
  body: string | Buffer,
  more: Array<string | Buffer>,
): string | Buffer {
  let allStrings = typeof body === 'string';
  for (let i = 1; allStrings && i < more.length; i += 2) allStrings = typeof more[i] === 'string';
  if (allStrings) return head + body + more.join('');
  let size = head.length + byteLength(body);
  for (let i = 0; i < more.length; i += 2) size += more[i].length + byteLength(more[i + 1]);
  const out = Buffer.allocUnsafe(size);
  let at = out.write(head, 0, 'latin1');
  at += copyInto(out, at, body);
  for (let i = 0; i < more.length; i += 2) {
    at += out.write(more[i] as string, at, 'latin1');
    at += copyInto(out, at, more[i + 1]);
  }
  return out;
}

function byteLength(data: string | Buffer): number {
  return typeof data === 'string' ? Buffer.byteLength(data) : data.length;
}

function copyInto(out: Buffer, at: number, data: string | Buffer): number {
  return typeof data === 'string' ? out.write(data, at) : data.copy(out, at);
}

/** Data as one HTTP/1.1 chunk: size line, data, CRLF in a single write. */
function chunk(data: string | Buffer): string | Buffer {
  if (typeof data === 'string') return `${Buffer.byteLength(data).toString(16)}\r\n${data}\r\n`;
  const size = `${data.length.toString(16)}\r\n`;
  const out = Buffer.allocUnsafe(size.length + data.length + 2);
  out.write(size, 0, 'latin1');
  data.copy(out, size.length);
  out.write('\r\n', size.length + data.length, 'latin1');
  return out;
}

/**
 * Ends our side, and closes the socket once what was written is flushed, without waiting for
 * the client's FIN: the HTTP server no longer tracks it, and its close must not wait on a
 * client that never reads to the end.
 */
function endSocket(socket: Socket): void {
  socket.once('finish', destroyOnFinish);
  socket.end();
}

function destroyOnFinish(this: Socket): void {
  this.destroy();
}

function onSocketClose(this: Owned<Socket>): void {
  this[kWriter]?.peerClosed('client-closed');
}

function onSocketError(this: Owned<Socket>): void {
  this[kWriter]?.peerClosed('socket-error');
}

/** The client half-closed: an SSE client only does that when it is gone. */
function onSocketEnd(this: Owned<Socket>): void {
  this[kWriter]?.peerClosed('client-closed');
}

function onSocketDrain(this: Owned<Socket>): void {
  this[kWriter]?.drainQueue();
}

function onResponseClose(this: Owned<ServerResponse>): void {
  const writer = this[kWriter];
  this[kWriter] = null;
  writer?.peerClosed('client-closed');
}

function detachLater(writer: SseWriter): void {
  writer.detachHttp();
}

const OUR_LISTENERS: ReadonlySet<unknown> = new Set([
  onSocketClose,
  onSocketError,
  onSocketEnd,
  onSocketDrain,
  destroyOnFinish,
]);

function drainLater(writer: SseWriter): void {
  writer.drainQueue();
}

/**
 * Sockets written per turn of the event loop at most (1,000). A broadcast to 10,000 streams of
 * one pod is flushed in slices with a turn between them, so new connections are accepted,
 * requests read and Redis replies handled meanwhile (Node accepts about one connection per
 * turn: a pod flushing one broadcast to every socket in one long turn takes reconnects at a
 * trickle).
 */
let flushSlice = 1000;

/** Sets the slice (tests: a slice of a few sockets instead of a thousand connections). */
export function setFlushSlice(sockets: number): void {
  flushSlice = sockets;
}

/** Writers with frames gathered since the last flush; one timer (or nextTick) flushes them all. */
let gathering: SseWriter[] = [];
let flushScheduled = false;

function scheduleFlush(writer: SseWriter): void {
  gathering.push(writer);
  if (flushScheduled) return;
  flushScheduled = true;
  if (batchWindowMs > 0) setTimeout(flushAll, batchWindowMs);
  else process.nextTick(flushAll);
}

/**
 * Flushes up to a slice of writers, the rest on the next turn (setImmediate: after I/O). A
 * writer waiting there keeps gathering: its frames stay in order, and leave in one write.
 */
function flushAll(): void {
  const list = gathering;
  const count = Math.min(list.length, flushSlice);
  for (let i = 0; i < count; i++) list[i].flush();
  if (count === list.length) {
    gathering = [];
    flushScheduled = false;
    return;
  }
  // A writer that gathered during these flushes went onto `list` (still `gathering`): the
  // lengths then differ, and it is flushed on the next turn.
  gathering = list.slice(count);
  setImmediate(flushAll);
}
