// Over 450 lines: the seed streams of one pod (open, fan-out, heartbeats, local sweep, drain, close); handshake and registry are apart.
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Config } from '../../shared/config';
import type {
  ConnectionRecord,
  EngineEvent,
  Engine,
  Subscription,
} from '../../shared/engine/engine';
import { topics } from '../../shared/protocol';
import { EngineError, GatewayError, errors } from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import type { Metrics } from '../../shared/metrics';
import {
  TOKEN_TYPES,
  type SSEEventType,
  type TokenClaims,
  type TokenType,
} from '../../shared/types';
import { BackgroundWork } from '../background';
import type { DrainState } from '../drainState';
import { OVERFLOW, SseConnection, type ConnectionOwner, type SendQueueLimits } from './connection';
import type { ParsedEventId } from './cursor';
import type { EventFilter } from './eventFilter';
import { eventBody, wireEventName } from './frame';
import { RegistryUpkeep, type LapsedListener, type TrackedStream } from './registryUpkeep';
import {
  ResumeHandshake,
  connectionEventFrame,
  reconnectRetryLine,
  statusBody,
} from './resumeHandshake';
import type { Replay } from './replay';

export type { LapsedListener, TrackedStream } from './registryUpkeep';

export interface HubDeps {
  config: Config;
  engine: Engine;
  logger: Logger;
  metrics: Metrics;
  /** The app's: no new streams while draining. */
  drain: DrainState;
}

/** Why a connection left; the stale ones are counted in mcpgw_stale_connections_removed_total. */
export type RemovalReason =
  | 'client-closed'
  | 'socket-error'
  | 'token-expired'
  | 'dead-socket'
  | 'stuck'
  | 'slow-consumer'
  | 'open-failed'
  | 'replaced'
  | 'draining'
  | 'shutdown';

const STALE_REASONS: ReadonlySet<RemovalReason> = new Set([
  'token-expired',
  'dead-socket',
  'stuck',
]);

/** Event names counted under their own label; anything else a worker publishes counts as 'other'. */
const SEED_EVENT_NAMES: ReadonlySet<string> = new Set<SSEEventType>([
  'mcp-response',
  'mcp-notification',
  'mcp-error',
  'heartbeat',
  'tool-result',
  'connection-status',
]);

/** A heartbeat for a stream whose filter leaves heartbeats out: an SSE comment, no event. */
const HEARTBEAT_COMMENT = Buffer.from(': heartbeat\n\n');

export interface LocalStats {
  totalConnections: number;
  connectionsByType: Record<TokenType, number>;
}

/**
 * The pod's registry of its open SSE streams. It holds one engine subscription for the three
 * token-type broadcast topics (each broadcast framed once, the same bytes written to every
 * matching socket), one subscription per connection for its connection topic, and two interval
 * timers for all connections: heartbeats and the cleanup sweep.
 */
export class ConnectionHub {
  private readonly connections = new Map<string, SseConnection>();
  private readonly byType = new Map<TokenType, Set<SseConnection>>(
    TOKEN_TYPES.map((t) => [t, new Set<SseConnection>()]),
  );
  private readonly typeByTopic = new Map<string, TokenType>(
    TOKEN_TYPES.map((t) => [topics.tokenType(t), t]),
  );
  private readonly config: Config;
  private readonly engine: Engine;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private broadcastSubscription: Subscription | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private cleanupTimer: NodeJS.Timeout | undefined;
  private readonly queueLimits: SendQueueLimits;
  private sweeping = false;
  private readonly drainState: DrainState;
  /** No new streams before start() and after close(). */
  private closed = true;
  /** Replays, catch-ups, registering again and releases still running (awaited by close()). */
  private readonly background = new BackgroundWork();
  private readonly registry: RegistryUpkeep;
  private readonly handshake: ResumeHandshake;
  /** Token-type topic positions about to be read for the streams opening now (typeTopicStart). */
  private readonly typeTopicReads = new Map<TokenType, Promise<string>>();
  /** Told by every connection whose client left: one object for all of them. */
  private readonly connectionOwner: ConnectionOwner = {
    onClientGone: (conn, reason) => this.remove(conn, reason),
  };

  constructor(deps: HubDeps) {
    this.config = deps.config;
    this.engine = deps.engine;
    this.logger = deps.logger.child({ component: 'sse-hub' });
    this.metrics = deps.metrics;
    this.drainState = deps.drain;
    this.registry = new RegistryUpkeep({
      ...deps,
      logger: this.logger,
      background: this.background,
      local: {
        registeredIds: () =>
          [...this.connections.values()].filter((c) => c.registered).map((c) => c.connectionId),
        recordOf: (id) => {
          const conn = this.connections.get(id);
          return conn && !conn.isClosed ? this.recordOf(conn) : undefined;
        },
      },
    });
    this.handshake = new ResumeHandshake({
      engine: deps.engine,
      logger: this.logger,
      metrics: deps.metrics,
      onOverflow: (conn) => this.closeSlowConsumer(conn),
      onCatchUpFailed: (conn) => this.closeConnection(conn, 'stuck'),
    });
    this.queueLimits = {
      maxBytes: deps.config.sendQueueMaxBytes,
      maxEvents: deps.config.sendQueueMaxEvents,
    };
    // A Redis that restarted without persistence forgot the registry: tell it again at once,
    // so /send to these connections does not answer 404 until the next sweep.
    // Events published while the subscriber was down never reached this pod: each open stream
    // replays its topics from its cursor (live events held meanwhile, then deduplicated).
    this.engine.onReconnect(() => {
      this.registry.registerAllAgain();
      for (const conn of this.connections.values()) {
        if (conn.registered) void this.background.run(this.handshake.catchUp(conn));
      }
    });
  }

  /** Subscribes to the broadcast topics and starts the heartbeat and cleanup timers. */
  async start(): Promise<void> {
    if (this.broadcastSubscription) return;
    this.closed = false;
    this.broadcastSubscription = await this.engine.subscribe([...this.typeByTopic.keys()], (ev) =>
      this.onBroadcast(ev),
    );
    this.heartbeatTimer = setInterval(() => this.sendHeartbeats(), this.config.heartbeatIntervalMs);
    this.heartbeatTimer.unref();
    this.cleanupTimer = setInterval(() => void this.sweep(), this.config.cleanupIntervalMs);
    this.cleanupTimer.unref();
  }

  private recordOf(conn: SseConnection): ConnectionRecord {
    return {
      connectionId: conn.connectionId,
      sub: conn.sub,
      tokenType: conn.tokenType,
      podId: this.config.podId,
      connectedAt: conn.connectedAt,
      transport: 'seed',
      resumable: this.config.resumeGraceMs > 0,
    };
  }

  /** Stops the timers, closes every stream and releases their engine state. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeatTimer);
    clearInterval(this.cleanupTimer);
    this.heartbeatTimer = this.cleanupTimer = undefined;
    for (const conn of [...this.connections.values()]) this.closeConnection(conn, 'shutdown');
    const subscription = this.broadcastSubscription;
    this.broadcastSubscription = undefined;
    await Promise.allSettled([subscription?.close(), this.background.settled()]);
  }

  /**
   * Graceful drain (SIGTERM): stops taking streams, tells every open stream `draining` with an
   * SSE `retry:` hint, then closes them in random order spread over config.drainWindowMs (one
   * interval timer for all), so their reconnects do not land on the other pods at once. Their
   * registry entries stay for the resume window: the clients resume on another pod.
   */
  async drain(): Promise<void> {
    this.drainState.start();
    const open = [...this.connections.values()].filter((c) => c.state === 'open');
    for (let i = open.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [open[i], open[j]] = [open[j], open[i]];
    }
    const windowMs = this.config.drainWindowMs;
    for (const conn of open) {
      conn.sendLocal(
        reconnectRetryLine() +
          statusBody(conn.connectionId, 'draining', 'This gateway is shutting down; reconnect'),
        false,
      );
    }
    this.logger.info('Draining SSE streams', { count: open.length, windowMs });
    if (open.length === 0) return;
    await new Promise<void>((resolve) => {
      const started = Date.now();
      let next = 0;
      const tick = () => {
        const elapsed = Date.now() - started;
        const due =
          windowMs <= 0 ? open.length : Math.ceil((open.length * elapsed) / windowMs) || 1;
        while (next < Math.min(due, open.length)) this.closeConnection(open[next++], 'draining');
        if (next >= open.length) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(tick, Math.max(10, Math.min(250, windowMs / open.length)));
      tick();
    });
  }

  /**
   * Lists a stream of another transport in the registry (see RegistryUpkeep.track); refused
   * once the hub closed. Draining is checked by the routes: a POST's stream may still finish.
   */
  async track(...args: Parameters<RegistryUpkeep['track']>): Promise<TrackedStream> {
    if (this.closed) {
      throw errors.unavailable('This gateway is not accepting new streams; reconnect', 1);
    }
    return this.registry.track(...args);
  }

  /** Runs `listener` with the open entries of dead pods each sweep finds. */
  onLapsed(listener: LapsedListener): void {
    this.registry.onLapsed(listener);
  }

  /**
   * The longest a closed connection stays resumable: RESUME_GRACE_MS after its close, then
   * dropped by the next sweep (one cleanup interval at most later). Its history is kept as long.
   */
  private get resumeWindowMs(): number {
    return this.config.resumeGraceMs + this.config.cleanupIntervalMs;
  }

  get size(): number {
    return this.connections.size;
  }

  has(connectionId: string): boolean {
    return this.connections.has(connectionId);
  }

  localStats(): LocalStats {
    const connectionsByType = {} as Record<TokenType, number>;
    for (const [type, set] of this.byType) connectionsByType[type] = set.size;
    return { totalConnections: this.connections.size, connectionsByType };
  }

  /**
   * Opens an SSE stream on `res`, or resumes the connection named by a Last-Event-ID. Throws a
   * GatewayError (before any header is written) when the pod cannot take it.
   *
   * Order matters for exactly-once delivery: the connection is listed for broadcasts and
   * subscribed to its topic first (live events arriving meanwhile are held); a new connection
   * then reads the token-type topic's position, a resumed one reads both topics' history after
   * its cursor; after the first events (welcome, or resume status and the replay) the held
   * events newer than the cursor are written.
   *
   * A resume of a connection the registry no longer knows (its resume window passed) opens a new
   * connection, announced by `connection-status` `history-lost` before its welcome.
   */
  async open(
    res: ServerResponse,
    claims: TokenClaims,
    clientIP: string,
    resumeFrom?: ParsedEventId,
    filter: EventFilter = null,
  ): Promise<void> {
    if (this.closed || this.drainState.active) {
      throw errors.unavailable('This gateway is not accepting new streams; reconnect', 1);
    }
    if (!this.engine.isReady()) throw errors.unavailable('Event engine not ready');

    let previous: ConnectionRecord | undefined;
    if (resumeFrom) {
      try {
        previous = await this.engine.getConnection(resumeFrom.connectionId);
      } catch {
        throw errors.unavailable('Could not look the connection up; retry');
      }
      if (previous && (previous.sub !== claims.sub || previous.tokenType !== claims.type)) {
        throw errors.forbidden('This connection was opened by another token');
      }
      const stale = previous && this.connections.get(previous.connectionId);
      // The client came back before this pod noticed its old socket was gone.
      if (stale) {
        stale.registered = false;
        this.closeConnection(stale, 'replaced');
      }
    }
    const resumed = previous !== undefined && resumeFrom !== undefined;
    const conn = new SseConnection(
      {
        connectionId: previous?.connectionId ?? randomUUID(),
        sub: claims.sub,
        tokenType: claims.type,
        expiresAtMs: claims.exp === undefined ? undefined : claims.exp * 1000,
        clientIP,
        connectedAt: previous?.connectedAt ?? Date.now(),
      },
      res,
      this.queueLimits,
      this.connectionOwner,
      resumed ? resumeFrom.cursor : undefined,
    );
    conn.filter = filter;
    this.add(conn);

    const id = conn.connectionId;
    let history: Replay | undefined;
    try {
      const subscription = await this.engine.subscribe([topics.connection(id)], (ev) =>
        this.onConnectionEvent(conn, ev),
      );
      conn.subscription = subscription;
      if (conn.isClosed) {
        await subscription.close();
        return abandonOpening(res);
      }
      // The rest in one round trip: the history (or the token-type topic's position), the
      // registration and the TTL do not depend on each other. All settle before going on, so
      // a failure never leaves a registration landing after the stream was given up.
      // Registered before the welcome: a client may POST /send as soon as it knows the id.
      // A resumed connection is registered again: it now lives on this pod, and its history
      // gets its full TTL back (capped to the resume window when it closed).
      const [first, registration, ttl] = await Promise.allSettled([
        resumed
          ? this.handshake.readMissed(conn, resumeFrom.cursor)
          : this.typeTopicStart(conn.tokenType),
        this.registry.registerLimited(this.recordOf(conn)),
        resumed ? this.engine.capHistoryTtl(topics.connection(id)) : undefined,
      ]);
      conn.registered = registration.status === 'fulfilled';
      for (const step of [registration, first, ttl]) {
        if (step.status === 'rejected') throw step.reason;
      }
      if (first.status === 'fulfilled') {
        if (typeof first.value === 'string') conn.startTypeTopicAt(first.value);
        else history = first.value;
      }
      if (conn.isClosed) {
        if (!resumed) await this.engine.unregisterConnection(id);
        return abandonOpening(res);
      }
    } catch (err) {
      // A resume's entry stays for another attempt: marked closed (resumable) by the release
      // if this pod registered it, else as it was. A new connection's entry goes.
      if (!resumed && conn.registered) {
        conn.registered = false;
        void this.background.run(this.engine.unregisterConnection(id).catch(() => undefined));
      }
      this.remove(conn, 'open-failed');
      if (err instanceof GatewayError || err instanceof EngineError) throw err;
      this.logger.error('SSE connection setup failed', { connectionId: id, error: String(err) });
      throw errors.unavailable('Could not open the event stream; retry');
    }

    this.metrics.connectionsOpen.inc({ token_type: conn.tokenType, transport: 'seed' });
    // winston builds and formats an entry before its level is checked: a storm of opens pays
    // for thousands of dropped lines unless asked first.
    if (this.logger.isInfoEnabled()) {
      this.logger.info(resumed ? 'SSE Connection Resumed' : 'SSE Connection Added', {
        connectionId: id,
        sub: conn.sub,
        tokenType: conn.tokenType,
        clientIP: conn.clientIP,
        totalConnections: this.connections.size,
      });
    }
    if (resumeFrom) {
      this.metrics.resumes.inc({
        outcome: !resumed || history?.truncated ? 'history_lost' : 'resumed',
      });
    }
    const replay = this.handshake.open(conn, resumeFrom, resumed ? history : undefined);
    if (replay) void this.background.run(this.handshake.writeReplay(conn, replay));
  }

  /**
   * Where a new stream starts in its token-type topic: the topic's last id, read after the
   * stream's subscription is confirmed. Streams asking in the same turn (one SUBSCRIBE batch)
   * share one read, sent on the next turn: it follows every one's confirmation, so it is a valid
   * start for each. An opening burst costs a read per batch instead of one per stream (fewer
   * commands and less garbage held across the wait), and the streams share the id string.
   */
  private typeTopicStart(type: TokenType): Promise<string> {
    let read = this.typeTopicReads.get(type);
    if (!read) {
      read = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.typeTopicReads.delete(type);
        return this.engine.lastEventId(topics.tokenType(type));
      });
      this.typeTopicReads.set(type, read);
    }
    return read;
  }

  /** Writes a heartbeat to every open stream that is not backed up: one body for all of them. */
  sendHeartbeats(): void {
    if (this.connections.size === 0) return;
    const body = Buffer.from(
      eventBody(
        'heartbeat',
        JSON.stringify({ type: 'heartbeat', timestamp: new Date().toISOString() }),
      ),
    );
    let count = 0;
    let bytes = 0;
    for (const conn of this.connections.values()) {
      const written = conn.wants('heartbeat')
        ? conn.sendLocal(body, true)
        : conn.sendComment(HEARTBEAT_COMMENT);
      if (written > 0) {
        count++;
        bytes += written;
      }
    }
    this.metrics.heartbeats.inc(count);
    this.metrics.eventsWritten.inc({ event: 'heartbeat' }, count);
    this.metrics.eventBytesWritten.inc(bytes);
  }

  /**
   * The cleanup sweep: closes streams whose token expired, whose socket is gone, or whose send
   * queue has not drained since the previous sweep; then keeps this pod's registry entries alive
   * and drops the entries of pods that stopped touching theirs.
   */
  async sweep(): Promise<void> {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    try {
      const now = Date.now();
      for (const conn of [...this.connections.values()]) {
        if (conn.state !== 'open') continue;
        if (conn.expiresAtMs !== undefined && conn.expiresAtMs <= now) {
          this.closeConnection(conn, 'token-expired', 'Token expired; reconnect with a new token');
        } else if (conn.isSocketGone()) {
          this.closeConnection(conn, 'dead-socket');
        } else if (conn.isStuck()) {
          this.closeConnection(conn, 'stuck');
        }
      }
      await this.registry.sweep(now);
    } catch (err) {
      this.logger.warn('Connection cleanup sweep failed', { error: String(err) });
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Closes a stream: a `connection-status` event first when `statusMessage` is given (and the
   * socket can take it), then a graceful end, or an immediate destroy for broken or slow sockets.
   */
  closeConnection(conn: SseConnection, reason: RemovalReason, statusMessage?: string): void {
    if (conn.state === 'closed') return;
    if (conn.state === 'opening') {
      // open() notices after its current await and answers 503 if the client is still there.
      this.remove(conn, reason);
      return;
    }
    if (statusMessage !== undefined) {
      conn.sendLocal(statusBody(conn.connectionId, reason, statusMessage), false);
    }
    this.remove(conn, reason);
    if (reason === 'dead-socket' || reason === 'stuck' || reason === 'slow-consumer') {
      conn.destroy();
    } else {
      conn.end();
    }
  }

  private onBroadcast(ev: EngineEvent): void {
    const type = this.typeByTopic.get(ev.topic);
    const targets = type && this.byType.get(type);
    if (!targets || targets.size === 0) return;
    const started = performance.now();
    const event = wireEventName(ev.event);
    const body = Buffer.from(eventBody(event, ev.data));
    let count = 0;
    let bytes = 0;
    let overflowed: SseConnection[] | undefined;
    for (const conn of targets) {
      const written = conn.deliver(true, ev.id, event, body);
      if (written > 0) {
        count++;
        bytes += written;
      } else if (written === OVERFLOW) {
        (overflowed ??= []).push(conn);
      }
    }
    for (const conn of overflowed ?? []) this.closeSlowConsumer(conn);
    this.metrics.eventsWritten.inc({ event: 'broadcast' }, count);
    this.metrics.eventBytesWritten.inc(bytes);
    this.metrics.broadcastFanoutDuration.observe((performance.now() - started) / 1000);
  }

  private onConnectionEvent(conn: SseConnection, ev: EngineEvent): void {
    const [body, progressOf, event] = connectionEventFrame(ev);
    const written = conn.deliver(false, ev.id, event, body, progressOf);
    if (written === OVERFLOW) return this.closeSlowConsumer(conn);
    if (written > 0) {
      this.metrics.eventsWritten.inc({ event: SEED_EVENT_NAMES.has(event) ? event : 'other' });
      this.metrics.eventBytesWritten.inc(written);
    }
  }

  private closeSlowConsumer(conn: SseConnection): void {
    this.metrics.slowConsumerDisconnects.inc();
    this.closeConnection(conn, 'slow-consumer');
  }

  private add(conn: SseConnection): void {
    this.connections.set(conn.connectionId, conn);
    this.byType.get(conn.tokenType)?.add(conn);
  }

  /** Forgets a connection locally at once; its engine state is released in the background. */
  private remove(conn: SseConnection, reason: RemovalReason): void {
    // A resumed connection reuses the id: only the entry of this very object is ours to drop.
    const listed = this.connections.get(conn.connectionId) === conn;
    if (conn.state === 'closed' && !listed) return;
    const wasOpen = conn.state === 'open';
    conn.state = 'closed';
    if (listed) this.connections.delete(conn.connectionId);
    this.byType.get(conn.tokenType)?.delete(conn);

    if (STALE_REASONS.has(reason)) this.metrics.staleConnectionsRemoved.inc({ reason });
    if (wasOpen) {
      this.metrics.connectionsOpen.dec({ token_type: conn.tokenType, transport: 'seed' });
    }
    if (wasOpen && this.logger.isInfoEnabled()) {
      this.logger.info('SSE Connection Removed', {
        connectionId: conn.connectionId,
        sub: conn.sub,
        tokenType: conn.tokenType,
        clientIP: conn.clientIP,
        totalConnections: this.connections.size,
        duration: Date.now() - conn.connectedAt,
        reason,
      });
    }
    void this.background.run(this.release(conn));
  }

  /**
   * Closes the connection's subscription. Its registry entry stops counting as open at once; it
   * is dropped at once only without a resume window, else it stays resumable and the sweeps
   * drop it once the window passed (no timer per connection), so the client may resume on any
   * pod and commands sent meanwhile still land in its history. That history's TTL is capped to
   * the window (results published later too), instead of HISTORY_TTL_S: a resume lifts the cap.
   */
  private async release(conn: SseConnection): Promise<void> {
    const subscription = conn.subscription;
    conn.subscription = undefined;
    const registered = conn.registered;
    conn.registered = false;
    // Kept whatever the reason: after token-expired, a new token of the same sub resumes.
    try {
      await Promise.all([
        subscription?.close(),
        registered ? this.engine.markConnectionClosed(conn.connectionId) : undefined,
        registered
          ? this.engine.capHistoryTtl(topics.connection(conn.connectionId), this.resumeWindowMs)
          : undefined,
      ]);
    } catch (err) {
      this.logger.warn('Releasing a closed connection failed', {
        connectionId: conn.connectionId,
        error: String(err),
      });
    }
  }
}

/** A stream closed while opening: nothing to do if the client left, else a 503 to retry. */
function abandonOpening(res: ServerResponse): void {
  if (res.destroyed || res.writableEnded) return;
  throw errors.unavailable('This gateway is shutting down; reconnect', 1);
}
