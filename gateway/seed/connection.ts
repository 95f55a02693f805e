import type { ServerResponse } from 'node:http';
import type { Subscription } from '../../shared/engine/engine';
import type { TokenType } from '../../shared/types';
import { START_CURSOR, formatEventId, isAfter, type StreamCursor } from './cursor';
import { SSE_HEADERS, idLine } from './frame';

/** Result of offering an event to a connection: bytes accepted (> 0), SKIPPED or OVERFLOW. */
export const SKIPPED = 0;
/** The send queue is over its bound: the caller must close the connection (slow consumer). */
export const OVERFLOW = -1;

export interface SendQueueLimits {
  maxBytes: number;
  maxEvents: number;
}

export interface ConnectionIdentity {
  connectionId: string;
  /** The token's `sub`: only this token may send commands to the connection. */
  sub: string;
  tokenType: TokenType;
  /** The token's `exp` in epoch ms; the cleanup sweep closes the stream once it has passed. */
  expiresAtMs: number | undefined;
  clientIP: string;
  /** Epoch ms. */
  connectedAt: number;
}

type ConnectionState = 'opening' | 'open' | 'closed';

/** An event that arrived while the connection was opening, delivered (deduplicated) on open. */
interface HeldEvent {
  fromTypeTopic: boolean;
  id: string;
  body: string | Buffer;
  progressOf?: string;
}

/**
 * One SSE socket: its cursor, its framing and a bounded send queue. Kept small (one object per
 * open stream); the hub owns timers, subscriptions and the decision to close.
 *
 * Writes go straight to the socket until it reports backpressure (checked after each tick's
 * corked writes); from then on events wait in the queue (id line and body as separate chunks, so
 * broadcast bodies stay shared) until the socket drains. Past `limits` the offer returns OVERFLOW
 * and the hub closes the stream.
 */
export class SseConnection {
  readonly connectionId: string;
  readonly sub: string;
  readonly tokenType: TokenType;
  readonly expiresAtMs: number | undefined;
  readonly clientIP: string;
  readonly connectedAt: number;

  state: ConnectionState = 'opening';
  /** Engine state released when the connection closes. */
  subscription: Subscription | undefined;
  registered = false;

  private readonly cursor: StreamCursor;
  /** Live events are held (not written) while opening and while a replay runs. */
  private holding = true;
  private held: HeldEvent[] | null = null;
  /** Resolved when the send queue drained or the socket closed (replays pace on it). */
  private drainWaiters: Array<() => void> | null = null;
  private corked = false;
  private blocked = false;
  /** A wake-up (socket 'drain' or the next turn) is pending for the blocked socket. */
  private drainArmed = false;
  /** Blocked at the previous cleanup sweep and not drained since. */
  private stuck = false;
  /** Pending chunks while blocked, in pairs: id line, body. Null when empty. */
  private queue: Array<string | Buffer> | null = null;
  private queueHead = 0;
  private queuedBytes = 0;
  private queuedEvents = 0;
  /** Index in `queue` of the queued progress event of each request (coalescing). */
  private queuedProgress: Map<string, number> | null = null;

  constructor(
    identity: ConnectionIdentity,
    readonly res: ServerResponse,
    private readonly limits: SendQueueLimits,
    /** Where a resumed connection's client stands; a new connection starts at START_CURSOR. */
    cursor: StreamCursor = START_CURSOR,
  ) {
    this.cursor = { ...cursor };
    this.connectionId = identity.connectionId;
    this.sub = identity.sub;
    this.tokenType = identity.tokenType;
    this.expiresAtMs = identity.expiresAtMs;
    this.clientIP = identity.clientIP;
    this.connectedAt = identity.connectedAt;
  }

  /** A getter, so checks after an await are not narrowed away by the compiler. */
  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** The SSE id of the stream's current position: every event carries one, each a resume point. */
  get eventId(): string {
    return formatEventId(this.connectionId, this.cursor);
  }

  /** Where the stream stands (a copy). */
  get position(): StreamCursor {
    return { ...this.cursor };
  }

  /** True while the socket is backed up (writes wait in the send queue). */
  get isBlocked(): boolean {
    return this.blocked;
  }

  /** Sets where the token-type topic starts for this connection (its last id at connect time). */
  startTypeTopicAt(id: string): void {
    this.cursor.tokenType = id;
  }

  /**
   * Writes the headers and the first events (each at the current cursor). Unless `keepHolding`
   * (a replay follows, then releaseHeld), then writes the events that arrived while opening,
   * deduplicated against the cursor. Returns OVERFLOW when those did not fit.
   */
  open(firstEventBodies: string | string[], keepHolding = false): number {
    this.res.writeHead(200, SSE_HEADERS);
    this.state = 'open';
    this.res.once('close', () => this.wakeDrainWaiters());
    let result = SKIPPED;
    for (const body of typeof firstEventBodies === 'string' ? [firstEventBodies] : firstEventBodies)
      result = this.write(idLine(this.eventId), body);
    return keepHolding || result === OVERFLOW ? result : this.releaseHeld();
  }

  /** Holds live events from now on (until releaseHeld), so a replay can run before them. */
  hold(): void {
    this.holding = true;
  }

  /**
   * Stops holding: writes the events held meanwhile, skipping those at or before the cursor
   * (already replayed). Returns OVERFLOW when they did not fit.
   */
  releaseHeld(): number {
    this.holding = false;
    const held = this.held;
    this.held = null;
    let result = SKIPPED;
    for (const e of held ?? []) {
      result = this.deliver(e.fromTypeTopic, e.id, e.body, e.progressOf);
      if (result === OVERFLOW) break;
    }
    return result;
  }

  /**
   * Writes a replayed (history) event while live events are held. The caller awaits drained()
   * whenever the socket is blocked, so a replay never fills the send queue.
   */
  replay(fromTypeTopic: boolean, id: string, body: string | Buffer, progressOf?: string): number {
    return this.offer(fromTypeTopic, id, body, progressOf);
  }

  /** Resolves once the send queue drained (at once when not blocked) or the socket closed. */
  drained(): Promise<void> {
    if (!this.blocked || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => (this.drainWaiters ??= []).push(resolve));
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = null;
    for (const wake of waiters ?? []) wake();
  }

  /**
   * Offers an engine event: from the connection topic (`fromTypeTopic` false) or the token-type
   * topic. Events at or before the cursor were delivered already (or precede the connection).
   * While opening or replaying, live events are held (bounded) and written afterwards.
   * `progressOf` names the request of a progress event: while it waits in a backed-up queue,
   * a newer progress of that request replaces it (latest wins; results are never dropped).
   */
  deliver(fromTypeTopic: boolean, id: string, body: string | Buffer, progressOf?: string): number {
    if (this.holding && this.state !== 'closed') {
      this.held ??= [];
      if (this.held.length >= this.limits.maxEvents) return OVERFLOW;
      this.held.push({ fromTypeTopic, id, body, progressOf });
      return SKIPPED;
    }
    return this.offer(fromTypeTopic, id, body, progressOf);
  }

  private offer(
    fromTypeTopic: boolean,
    id: string,
    body: string | Buffer,
    progressOf?: string,
  ): number {
    if (this.state !== 'open') return SKIPPED;
    if (fromTypeTopic) {
      if (!isAfter(id, this.cursor.tokenType)) return SKIPPED;
      this.cursor.tokenType = id;
    } else {
      if (!isAfter(id, this.cursor.connection)) return SKIPPED;
      this.cursor.connection = id;
    }
    return this.write(idLine(this.eventId), body, progressOf);
  }

  /**
   * Writes an event of this pod's own (heartbeat, connection-status) at the current cursor.
   * A droppable event (heartbeat) is skipped while the socket is backed up.
   */
  sendLocal(body: string | Buffer, droppable: boolean): number {
    if (this.state !== 'open' || (droppable && this.blocked)) return SKIPPED;
    return this.write(idLine(this.eventId), body);
  }

  /** True when the socket is gone without us having noticed its close. */
  isSocketGone(): boolean {
    const socket = this.res.socket;
    return this.res.destroyed || this.res.writableEnded || !socket || socket.destroyed;
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

  /** Ends the stream gracefully (what was written still reaches the client). */
  end(): void {
    this.state = 'closed';
    this.queue = null;
    this.held = null;
    this.wakeDrainWaiters();
    if (this.res.writableEnded) return;
    // Flush this tick's corked writes first: a last event written just before must not be lost.
    if (this.corked) this.uncork();
    // The TCP connection goes too: a client's reconnect must not ride a kept-alive socket back
    // to this pod (it may be draining), but reach the load balancer afresh. So the socket is
    // ended (after what was written) with no closing chunk: a complete response would let the
    // client's connection pool reuse the socket for its next request in the moment before our
    // FIN arrives, and that request would fail. EventSource reconnects either way.
    const socket = this.res.socket;
    if (socket) socket.end();
    else this.res.end();
  }

  /** Drops the socket at once (dead, stuck or slow clients). */
  destroy(): void {
    this.state = 'closed';
    this.queue = null;
    this.held = null;
    this.wakeDrainWaiters();
    this.res.destroy();
  }

  /** Ends the per-tick cork (see corkForTick). */
  uncork(): void {
    this.corked = false;
    if (this.res.writableEnded) return;
    this.res.uncork();
    this.checkBackpressure();
  }

  /**
   * While corked, `res.write` only reports this tick's bytes; the socket's own buffer is known
   * once uncorked. Blocks when the socket is backed up, and arranges the wake-up that flushes
   * the queue: the socket's 'drain', or the next turn when only this tick's writes were large.
   */
  private checkBackpressure(): void {
    if (this.state === 'closed' || this.drainArmed) return;
    const socket = this.res.socket;
    if (socket && !socket.destroyed && socket.writableNeedDrain) {
      this.blocked = true;
      this.drainArmed = true;
      socket.once('drain', () => {
        this.drainArmed = false;
        this.flushQueue();
      });
    } else if (this.blocked) {
      this.drainArmed = true;
      setImmediate(() => {
        this.drainArmed = false;
        this.flushQueue();
      });
    } else {
      this.wakeDrainWaiters();
    }
  }

  /** `progressOf`: the request a progress event is about (queued progress is coalesced). */
  private write(head: string, body: string | Buffer, progressOf?: string): number {
    const bytes = head.length + body.length;
    if (this.blocked) return this.enqueue(head, body, bytes, progressOf);
    if (!this.corked) {
      this.corked = true;
      corkForTick(this);
    }
    if (!this.res.write(oneChunk(head, body))) this.blocked = true;
    return bytes;
  }

  private enqueue(
    head: string,
    body: string | Buffer,
    bytes: number,
    progressOf: string | undefined,
  ): number {
    this.queue ??= [];
    // Progress of a request still waiting here is superseded by its newer progress: latest wins.
    if (progressOf !== undefined) {
      const at = this.queuedProgress?.get(progressOf);
      if (at !== undefined && at >= this.queueHead) {
        this.queuedBytes -= this.queue[at].length + this.queue[at + 1].length;
        this.queue[at] = this.queue[at + 1] = '';
        this.queuedEvents--;
      }
    }
    if (
      this.queuedEvents >= this.limits.maxEvents ||
      this.queuedBytes + bytes > this.limits.maxBytes
    ) {
      return OVERFLOW;
    }
    if (progressOf !== undefined) {
      (this.queuedProgress ??= new Map()).set(progressOf, this.queue.length);
    }
    this.queue.push(head, body);
    this.queuedBytes += bytes;
    this.queuedEvents++;
    return bytes;
  }

  private flushQueue(): void {
    this.blocked = false;
    this.stuck = false;
    const queue = this.queue;
    if (this.state === 'closed') return this.wakeDrainWaiters();
    if (!queue) return this.checkBackpressure();
    if (!this.corked) {
      this.corked = true;
      corkForTick(this);
    }
    let writable = true;
    while (writable && this.queueHead < queue.length) {
      const head = queue[this.queueHead] as string;
      const body = queue[this.queueHead + 1];
      this.queueHead += 2;
      if (head === '') continue; // a coalesced progress event
      this.queuedBytes -= head.length + body.length;
      this.queuedEvents--;
      writable = this.res.write(oneChunk(head, body));
    }
    if (this.queueHead >= queue.length) {
      this.queue = null;
      this.queueHead = 0;
      this.queuedBytes = 0;
      this.queuedEvents = 0;
      this.queuedProgress = null;
    }
    if (!writable) this.blocked = true;
  }
}

/**
 * An event as one write: each `res.write` of a chunked response costs four socket writes (size,
 * CRLF, data, CRLF), so the id line and the shared body go out together. The id line is ASCII
 * (connection ids and event ids), so its length is its byte length.
 */
function oneChunk(head: string, body: string | Buffer): string | Buffer {
  if (typeof body === 'string') return head + body;
  const chunk = Buffer.allocUnsafe(head.length + body.length);
  chunk.write(head, 0, 'latin1');
  body.copy(chunk, head.length);
  return chunk;
}

/**
 * Writes to a socket within one tick are corked and sent together when the tick ends: a fan-out
 * of N events to one socket becomes one syscall, and Node skips its own per-write cork timer.
 */
let corkedThisTick: SseConnection[] = [];

function corkForTick(conn: SseConnection): void {
  conn.res.cork();
  corkedThisTick.push(conn);
  if (corkedThisTick.length === 1) process.nextTick(uncorkAll);
}

function uncorkAll(): void {
  const list = corkedThisTick;
  corkedThisTick = [];
  for (const conn of list) conn.uncork();
}
