import type { Engine } from '../../shared/engine/engine';
import type { Logger } from '../../shared/logger';
import type { Metrics } from '../../shared/metrics';
import { SEED_EVENTS, progressRequestId, seedWireEvent } from '../../shared/protocol';
import type { EngineEvent } from '../../shared/engine/engine';
import { OVERFLOW, type SseConnection } from './connection';
import type { ParsedEventId } from './cursor';
import { eventBody, wireEventName } from './frame';
import { SharedHistoryReads, readMissed, type Replay } from './replay';

export interface ResumeHandshakeDeps {
  engine: Pick<Engine, 'readHistory'>;
  logger: Logger;
  metrics: Metrics;
  /** The connection's send queue overflowed (a slow consumer): the hub closes it. */
  onOverflow: (conn: SseConnection) => void;
  /** Catching up failed: the hub closes the stream so that the client resumes. */
  onCatchUpFailed: (conn: SseConnection) => void;
}

/**
 * The first events of a stream and the replays: the welcome of a new connection, the
 * `connection-status` of a resume and the missed events after its cursor (at the socket's
 * pace, live events held meanwhile), and the catch-up of open streams after Redis came back.
 */
export class ResumeHandshake {
  /** Resumes in the same turn read their token type's history once. */
  private readonly history: SharedHistoryReads;
  /** Streams catching up, each with whether another catch-up was asked for meanwhile. */
  private readonly catchingUp = new Map<SseConnection, boolean>();

  constructor(private readonly deps: ResumeHandshakeDeps) {
    this.history = new SharedHistoryReads(deps.engine);
  }

  /** Reads what a resumed connection missed since its cursor. */
  readMissed(conn: SseConnection, from: ParsedEventId['cursor']): Promise<Replay> {
    return readMissed(this.history, conn, from);
  }

  /**
   * Opens the stream with its first events. A resumed connection with history gets `resumed`
   * (and `history-lost` when some is gone) and returns the replay still to write; a new one (or
   * one whose resume window passed) gets its welcome, and nothing is left to replay.
   */
  open(
    conn: SseConnection,
    resumeFrom: ParsedEventId | undefined,
    history: Replay | undefined,
  ): Replay | undefined {
    const id = conn.connectionId;
    if (!history) {
      const first = [reconnectRetryLine() + welcomeBody(conn)];
      if (resumeFrom) {
        first.unshift(
          statusBody(id, 'history-lost', 'The connection to resume is gone; this is a new one', {
            resumedFrom: resumeFrom.connectionId,
          }),
        );
      }
      if (conn.open(first) === OVERFLOW) this.deps.onOverflow(conn);
      return undefined;
    }
    const first = [
      reconnectRetryLine() +
        statusBody(id, 'resumed', 'Connection resumed; replaying missed events', {
          missed: conn.filter
            ? history.events.filter(({ ev }) => conn.wants(replayFrame(ev)[2])).length
            : history.events.length,
        }),
    ];
    if (history.truncated) {
      first.unshift(
        statusBody(id, 'history-lost', 'Some missed events are older than the kept history'),
      );
    }
    conn.open(first, true);
    return history;
  }

  /**
   * Writes a replay at the socket's pace (waiting for it to drain whenever it is backed up, so
   * the replay never overflows the send queue), then the live events held meanwhile.
   */
  async writeReplay(conn: SseConnection, history: Replay): Promise<void> {
    let count = 0;
    let bytes = 0;
    for (const { fromTypeTopic, ev } of history.events) {
      if (conn.isClosed) return;
      const [body, progressOf, event] = replayFrame(ev);
      const written = conn.replay(fromTypeTopic, ev.id, event, body, progressOf);
      if (written > 0) {
        count++;
        bytes += written;
      }
      if (conn.isBlocked) await conn.drained();
    }
    this.deps.metrics.eventsWritten.inc({ event: 'replay' }, count);
    this.deps.metrics.eventBytesWritten.inc(bytes);
    if (conn.isClosed) return;
    if (conn.releaseHeld() === OVERFLOW) this.deps.onOverflow(conn);
  }

  /**
   * After Redis came back: replays what an open stream missed while the subscriber was down.
   * One catch-up per stream at a time; one asked for meanwhile runs after it (it may follow a
   * later gap than the one being closed).
   */
  async catchUp(conn: SseConnection): Promise<void> {
    if (this.catchingUp.has(conn)) {
      this.catchingUp.set(conn, true);
      return;
    }
    try {
      do {
        this.catchingUp.set(conn, false);
        await this.catchUpOnce(conn);
      } while (this.catchingUp.get(conn) === true && conn.state === 'open');
    } finally {
      this.catchingUp.delete(conn);
    }
  }

  private async catchUpOnce(conn: SseConnection): Promise<void> {
    if (conn.state !== 'open') return;
    conn.hold();
    try {
      const history = await this.readMissedRetrying(conn);
      if (history.truncated && conn.state === 'open') {
        conn.sendLocal(
          statusBody(conn.connectionId, 'history-lost', 'Events were lost while Redis was down'),
          false,
        );
      }
      await this.writeReplay(conn, history);
    } catch (err) {
      if (conn.state !== 'open') return;
      this.deps.logger.warn('Catching up after a reconnect failed; closing the stream to resume', {
        connectionId: conn.connectionId,
        error: String(err),
      });
      this.deps.onCatchUpFailed(conn);
    }
  }

  /**
   * The catch-up's read, tried again for a while: on a Redis Cluster the engine reports the
   * reconnect of its shard subscribers also while a shard has no master yet (a failover under
   * way), and every read of that shard's topics fails until its replica is promoted. Closing
   * the stream at once would make every client reading such a topic resume.
   */
  private async readMissedRetrying(conn: SseConnection): Promise<Replay> {
    const deadline = Date.now() + CATCH_UP_RETRY_FOR_MS;
    for (;;) {
      try {
        return await this.readMissed(conn, conn.position);
      } catch (error) {
        if (conn.state !== 'open' || Date.now() + CATCH_UP_RETRY_MS > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, CATCH_UP_RETRY_MS));
      }
    }
  }
}

/**
 * How long, and how often, a failed catch-up read is tried again before its stream is closed:
 * longer than a Cluster failover with the default `cluster-node-timeout` (15 s) and election.
 */
const CATCH_UP_RETRY_FOR_MS = 30_000;
const CATCH_UP_RETRY_MS = 500;

/**
 * The SSE body of an event of a connection (or token-type) topic, and for progress the request
 * it is about (the send queue coalesces queued progress per request).
 */
export function connectionEventFrame(ev: EngineEvent): EventFrame {
  const event = wireEventName(seedWireEvent(ev.event));
  const body = eventBody(event, ev.data);
  const progressOf = ev.event === SEED_EVENTS.toolProgress ? progressRequestId(ev.data) : undefined;
  return [body, progressOf, event];
}

/** An event's SSE body, the request a progress event is about, and its wire event name. */
export type EventFrame = [string, string | undefined, string];

/**
 * Frames of replayed events, kept while the event is: a broadcast replayed to thousands of
 * resumed streams (the same object, their history reads being shared) is framed once.
 */
const replayFrames = new WeakMap<EngineEvent, EventFrame>();

function replayFrame(ev: EngineEvent): EventFrame {
  let frame = replayFrames.get(ev);
  if (!frame) replayFrames.set(ev, (frame = connectionEventFrame(ev)));
  return frame;
}

/** The shortest and the spread of the reconnection times told to clients. */
const RETRY_MIN_MS = 250;
const RETRY_SPREAD_MS = 750;

/**
 * The SSE `retry:` field, sent with a stream's first event and with `draining`: how long the
 * client waits before reconnecting when the stream is cut. Without it EventSource waits 3 s;
 * a random value under 1 s brings a dead pod's clients back at once, yet spread over 0.75 s
 * rather than all in one burst on the surviving pods.
 */
export function reconnectRetryLine(): string {
  return `retry: ${RETRY_MIN_MS + Math.floor(Math.random() * RETRY_SPREAD_MS)}\n`;
}

/** The first event of a new connection: its id, for /mcp/sse/send. */
function welcomeBody(conn: SseConnection): string {
  return eventBody(
    'mcp-notification',
    JSON.stringify({
      type: 'mcp-notification',
      connectionId: conn.connectionId,
      tokenType: conn.tokenType,
      message: 'SSE connection established',
      timestamp: new Date(conn.connectedAt).toISOString(),
    }),
  );
}

/** A `connection-status` event of this pod's own. */
export function statusBody(
  connectionId: string,
  status: string,
  message: string,
  extra?: Record<string, unknown>,
): string {
  return eventBody(
    'connection-status',
    JSON.stringify({
      type: 'connection-status',
      status,
      connectionId,
      message,
      ...extra,
      timestamp: new Date().toISOString(),
    }),
  );
}
