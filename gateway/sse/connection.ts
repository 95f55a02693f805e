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
  tokenId: string;
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
}

/**
 * One SSE socket: its cursor, its framing and a bounded send queue. Kept small (one object per
 * open stream); the hub owns timers, subscriptions and the decision to close.
 *
 * Writes go straight to the socket until `res.write` reports backpressure; from then on events
 * wait in the queue (id line and body as separate chunks, so broadcast bodies stay shared) until
 * the socket drains. Past `limits` the offer returns OVERFLOW and the hub closes the stream.
 */
export class SseConnection {
  readonly connectionId: string;
  readonly tokenId: string;
  readonly tokenType: TokenType;
  readonly expiresAtMs: number | undefined;
  readonly clientIP: string;
  readonly connectedAt: number;

  state: ConnectionState = 'opening';
  /** Engine state released when the connection closes. */
  subscription: Subscription | undefined;
  registered = false;

  private readonly cursor: StreamCursor = { ...START_CURSOR };
  private held: HeldEvent[] | null = null;
  private corked = false;
  private blocked = false;
  /** Blocked at the previous cleanup sweep and not drained since. */
  private stuck = false;
  /** Pending chunks while blocked, in pairs: id line, body. Null when empty. */
  private queue: Array<string | Buffer> | null = null;
  private queueHead = 0;
  private queuedBytes = 0;

  constructor(
    identity: ConnectionIdentity,
    readonly res: ServerResponse,
    private readonly limits: SendQueueLimits,
  ) {
    this.connectionId = identity.connectionId;
    this.tokenId = identity.tokenId;
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

  /** Sets where the token-type topic starts for this connection (its last id at connect time). */
  startTypeTopicAt(id: string): void {
    this.cursor.tokenType = id;
  }

  /**
   * Writes the headers and the first event, then the events that arrived while opening
   * (deduplicated against the cursor). Returns OVERFLOW when those did not fit.
   */
  open(firstEventBody: string): number {
    this.res.writeHead(200, SSE_HEADERS);
    this.state = 'open';
    let result = this.write(idLine(this.eventId), firstEventBody);
    const held = this.held;
    this.held = null;
    for (const e of held ?? []) {
      if (result === OVERFLOW) break;
      result = this.deliver(e.fromTypeTopic, e.id, e.body);
    }
    return result;
  }

  /**
   * Offers an engine event: from the connection topic (`fromTypeTopic` false) or the token-type
   * topic. Events at or before the cursor were delivered already (or precede the connection).
   */
  deliver(fromTypeTopic: boolean, id: string, body: string | Buffer): number {
    if (this.state === 'opening') {
      this.held ??= [];
      if (this.held.length >= this.limits.maxEvents) return OVERFLOW;
      this.held.push({ fromTypeTopic, id, body });
      return SKIPPED;
    }
    if (this.state === 'closed') return SKIPPED;
    if (fromTypeTopic) {
      if (!isAfter(id, this.cursor.tokenType)) return SKIPPED;
      this.cursor.tokenType = id;
    } else {
      if (!isAfter(id, this.cursor.connection)) return SKIPPED;
      this.cursor.connection = id;
    }
    return this.write(idLine(this.eventId), body);
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
    if (!this.res.writableEnded) this.res.end();
  }

  /** Drops the socket at once (dead, stuck or slow clients). */
  destroy(): void {
    this.state = 'closed';
    this.queue = null;
    this.res.destroy();
  }

  /** Ends the per-tick cork (see corkForTick). */
  uncork(): void {
    this.corked = false;
    if (!this.res.writableEnded) this.res.uncork();
  }

  private write(head: string, body: string | Buffer): number {
    const bytes = head.length + body.length;
    if (this.blocked) return this.enqueue(head, body, bytes);
    if (!this.corked) {
      this.corked = true;
      corkForTick(this);
    }
    let writable: boolean;
    if (typeof body === 'string') {
      writable = this.res.write(head + body);
    } else {
      this.res.write(head);
      writable = this.res.write(body);
    }
    if (!writable) this.block();
    return bytes;
  }

  private enqueue(head: string, body: string | Buffer, bytes: number): number {
    this.queue ??= [];
    const events = (this.queue.length - this.queueHead) / 2;
    if (events >= this.limits.maxEvents || this.queuedBytes + bytes > this.limits.maxBytes) {
      return OVERFLOW;
    }
    this.queue.push(head, body);
    this.queuedBytes += bytes;
    return bytes;
  }

  private block(): void {
    this.blocked = true;
    this.res.once('drain', () => this.flushQueue());
  }

  private flushQueue(): void {
    this.blocked = false;
    this.stuck = false;
    const queue = this.queue;
    if (!queue || this.state === 'closed') return;
    if (!this.corked) {
      this.corked = true;
      corkForTick(this);
    }
    let writable = true;
    while (writable && this.queueHead < queue.length) {
      const head = queue[this.queueHead] as string;
      const body = queue[this.queueHead + 1];
      this.queueHead += 2;
      this.queuedBytes -= head.length + body.length;
      this.res.write(head);
      writable = this.res.write(body);
    }
    if (this.queueHead >= queue.length) {
      this.queue = null;
      this.queueHead = 0;
      this.queuedBytes = 0;
    }
    if (!writable) this.block();
  }
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
