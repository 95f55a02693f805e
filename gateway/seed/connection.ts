import type { ServerResponse } from 'node:http';
import type { Subscription } from '../../shared/engine/engine';
import type { TokenType } from '../../shared/types';
import { OVERFLOW, SKIPPED, SseWriter, type PeerClose, type SendQueueLimits } from '../sse/writer';
import { START_CURSOR, formatEventId, isAfter, type StreamCursor } from './cursor';
import type { EventFilter } from './eventFilter';
import { SSE_HEADERS, idLine } from './frame';

export { OVERFLOW, SKIPPED, type SendQueueLimits } from '../sse/writer';

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

/** The hub's one handler for every connection whose client left (no closure per connection). */
export interface ConnectionOwner {
  onClientGone(conn: SseConnection, reason: PeerClose): void;
}

type ConnectionState = 'opening' | 'open' | 'closed';

/** An event that arrived while the connection was opening, delivered (deduplicated) on open. */
interface HeldEvent {
  fromTypeTopic: boolean;
  id: string;
  event: string;
  body: string | Buffer;
  progressOf?: string;
}

/**
 * One seed SSE stream: its cursor and the events held while it opens, on top of the SSE writer
 * (framing, send queue, backpressure). One object per open stream; the hub owns timers,
 * subscriptions and the decision to close. Past the send queue's limits an offer returns
 * OVERFLOW and the hub closes the stream.
 */
export class SseConnection extends SseWriter {
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
  /**
   * The wire event names this stream is limited to (`?events=`); null: all. A filtered event
   * still moves the cursor, so ids stay resume points and a replay skips it again.
   */
  filter: EventFilter = null;

  /** Where the stream stands (a StreamCursor, kept as two fields: one object less per stream). */
  private cursorConnection: string;
  private cursorTokenType: string;
  /** Live events are held (not written) while opening and while a replay runs. */
  private holding = true;
  private held: HeldEvent[] | null = null;
  /** Until the head is sent; then the HTTP layer's objects are let go of. */
  private res: ServerResponse | null;

  constructor(
    identity: ConnectionIdentity,
    res: ServerResponse,
    limits: SendQueueLimits,
    private readonly owner: ConnectionOwner,
    /** Where a resumed connection's client stands; a new connection starts at START_CURSOR. */
    cursor: StreamCursor = START_CURSOR,
  ) {
    super(limits);
    this.res = res;
    this.watchResponse(res);
    this.cursorConnection = cursor.connection;
    this.cursorTokenType = cursor.tokenType;
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
    return formatEventId(this.connectionId, this.position);
  }

  /** Where the stream stands (a copy). */
  get position(): StreamCursor {
    return { connection: this.cursorConnection, tokenType: this.cursorTokenType };
  }

  /** Sets where the token-type topic starts for this connection (its last id at connect time). */
  startTypeTopicAt(id: string): void {
    this.cursorTokenType = id;
  }

  /**
   * Writes the headers and the first events (each at the current cursor). Unless `keepHolding`
   * (a replay follows, then releaseHeld), then writes the events that arrived while opening,
   * deduplicated against the cursor. Returns OVERFLOW when those did not fit.
   */
  open(firstEventBodies: string | string[], keepHolding = false): number {
    const res = this.res;
    this.res = null;
    // A client gone meanwhile (or a HEAD request) is removed through onPeerClose.
    if (this.state !== 'opening' || !res || !this.sendHead(res, SSE_HEADERS, 'close')) {
      return SKIPPED;
    }
    this.state = 'open';
    let result = SKIPPED;
    for (const body of typeof firstEventBodies === 'string' ? [firstEventBodies] : firstEventBodies)
      result = this.writeFrame(idLine(this.eventId), body);
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
      result = this.deliver(e.fromTypeTopic, e.id, e.event, e.body, e.progressOf);
      if (result === OVERFLOW) break;
    }
    return result;
  }

  /**
   * Writes a replayed (history) event while live events are held. The caller awaits drained()
   * whenever the socket is blocked, so a replay never fills the send queue.
   */
  replay(
    fromTypeTopic: boolean,
    id: string,
    event: string,
    body: string | Buffer,
    progressOf?: string,
  ): number {
    return this.offer(fromTypeTopic, id, event, body, progressOf);
  }

  /**
   * Offers an engine event: from the connection topic (`fromTypeTopic` false) or the token-type
   * topic. Events at or before the cursor were delivered already (or precede the connection).
   * While opening or replaying, live events are held (bounded) and written afterwards.
   * `progressOf` names the request of a progress event: while it waits in a backed-up queue,
   * a newer progress of that request replaces it (latest wins; results are never dropped).
   */
  deliver(
    fromTypeTopic: boolean,
    id: string,
    event: string,
    body: string | Buffer,
    progressOf?: string,
  ): number {
    if (this.holding && this.state !== 'closed') {
      this.held ??= [];
      if (this.held.length >= this.limits.maxEvents) return OVERFLOW;
      this.held.push({ fromTypeTopic, id, event, body, progressOf });
      return SKIPPED;
    }
    return this.offer(fromTypeTopic, id, event, body, progressOf);
  }

  /** False when the stream's filter leaves this wire event name out. */
  wants(event: string): boolean {
    return this.filter === null || this.filter.has(event);
  }

  private offer(
    fromTypeTopic: boolean,
    id: string,
    event: string,
    body: string | Buffer,
    progressOf?: string,
  ): number {
    if (this.state !== 'open') return SKIPPED;
    if (fromTypeTopic) {
      if (!isAfter(id, this.cursorTokenType)) return SKIPPED;
      this.cursorTokenType = id;
    } else {
      if (!isAfter(id, this.cursorConnection)) return SKIPPED;
      this.cursorConnection = id;
    }
    if (this.filter !== null && !this.filter.has(event)) return SKIPPED;
    return this.writeFrame(idLine(this.eventId), body, progressOf);
  }

  /**
   * Writes an event of this pod's own (heartbeat, connection-status) at the current cursor.
   * A droppable event (heartbeat) is skipped while the socket is backed up.
   */
  sendLocal(body: string | Buffer, droppable: boolean): number {
    if (this.state !== 'open' || (droppable && this.isBlocked)) return SKIPPED;
    return this.writeFrame(idLine(this.eventId), body);
  }

  /** Writes an SSE comment (no event, no id: clients ignore it); skipped while backed up. */
  sendComment(body: Buffer): number {
    if (this.state !== 'open' || this.isBlocked) return SKIPPED;
    return this.writeFrame('', body);
  }

  /** Ends the stream gracefully (what was written still reaches the client). */
  end(): void {
    this.state = 'closed';
    this.held = null;
    this.res = null;
    this.endWire();
  }

  /** Drops the socket at once (dead, stuck or slow clients). */
  destroy(): void {
    this.state = 'closed';
    this.held = null;
    this.res = null;
    this.destroyWire();
  }

  protected onPeerClose(reason: PeerClose): void {
    this.res = null;
    this.owner.onClientGone(this, reason);
  }
}
