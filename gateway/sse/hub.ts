import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Config } from '../../shared/config';
import type {
  ConnectionRecord,
  EngineEvent,
  Engine,
  StreamTransport,
  Subscription,
} from '../../shared/engine/engine';
import { publishSeedCancel } from '../../shared/engine/cancellations';
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
import { OVERFLOW, SseConnection, type SendQueueLimits } from './connection';
import type { ParsedEventId } from './cursor';
import { readMissed, type Replay } from './replay';
import { eventBody } from './frame';
import { SEED_EVENTS, progressRequestId, seedWireEvent } from '../../shared/protocol';

export interface HubDeps {
  config: Config;
  engine: Engine;
  logger: Logger;
  metrics: Metrics;
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

/**
 * The SSE body of an event of a connection (or token-type) topic, and for progress the request
 * it is about (the send queue coalesces queued progress per request).
 */
function connectionEventFrame(ev: EngineEvent): [string, string | undefined] {
  const body = eventBody(seedWireEvent(ev.event), ev.data);
  const progressOf = ev.event === SEED_EVENTS.toolProgress ? progressRequestId(ev.data) : undefined;
  return [body, progressOf];
}

/**
 * A stream of another transport (MCP's GET /mcp, POST /mcp SSE streams, GET /sse) listed in
 * the registry through the hub, so one mechanism counts, keeps alive, expires and sweeps every
 * stream kind.
 */
export interface TrackedStream {
  readonly connectionId: string;
  /** Drops the registry entry (awaited on shutdown). Idempotent. */
  release(): Promise<void>;
}

interface TrackedEntry {
  record: ConnectionRecord;
  expiresAtMs: number | undefined;
  /** Ends the stream (token expired); its close handler calls release(). */
  end: (reason: 'token-expired') => void;
  registered: boolean;
}

/** Told about open entries of dead pods the sweep found (e.g. to end their MCP sessions). */
export type LapsedListener = (records: ConnectionRecord[]) => Promise<void>;

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
  /** Open streams of the other transports on this pod, by registry id. */
  private readonly tracked = new Map<string, TrackedEntry>();
  private readonly lapsedListeners: LapsedListener[] = [];
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
  private isDraining = false;
  /** No new streams before start() and after close(). */
  private closed = true;
  /** Engine clean-up of closed connections still running (awaited by close()). */
  private readonly releasing = new Set<Promise<void>>();

  constructor(deps: HubDeps) {
    this.config = deps.config;
    this.engine = deps.engine;
    this.logger = deps.logger.child({ component: 'sse-hub' });
    this.metrics = deps.metrics;
    this.queueLimits = {
      maxBytes: deps.config.sendQueueMaxBytes,
      maxEvents: deps.config.sendQueueMaxEvents,
    };
    // A Redis that restarted without persistence forgot the registry: tell it again at once,
    // so /send to these connections does not answer 404 until the next sweep.
    // Events published while the subscriber was down never reached this pod: each open stream
    // replays its topics from its cursor (live events held meanwhile, then deduplicated).
    this.engine.onReconnect(() => {
      const local = [...this.connections.values()].filter((c) => c.registered);
      const others = [...this.tracked.values()].filter((t) => t.registered);
      void this.registerAgain([
        ...local.map((c) => c.connectionId),
        ...others.map((t) => t.record.connectionId),
      ]);
      for (const conn of local) void this.catchUp(conn);
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
      tokenId: conn.tokenId,
      tokenType: conn.tokenType,
      podId: this.config.podId,
      connectedAt: conn.connectedAt,
      transport: 'seed',
      resumable: this.config.resumeGraceMs > 0,
    };
  }

  /** Registers again those of these connections still open here (the registry lost them). */
  private async registerAgain(connectionIds: string[]): Promise<void> {
    try {
      await Promise.all(
        connectionIds.flatMap((id) => {
          const conn = this.connections.get(id);
          if (conn && !conn.isClosed) return [this.engine.registerConnection(this.recordOf(conn))];
          const other = this.tracked.get(id);
          return other?.registered ? [this.engine.registerConnection(other.record)] : [];
        }),
      );
      this.logger.info('Registered connections again', { count: connectionIds.length });
    } catch (err) {
      this.logger.warn('Registering connections again failed', { error: String(err) });
    }
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
    await Promise.allSettled([subscription?.close(), ...this.releasing]);
  }

  /** True once draining began: /ready answers 503 and new streams are refused. */
  get draining(): boolean {
    return this.isDraining;
  }

  /** Marks the pod as draining: /ready answers 503 and new streams are refused from now on. */
  startDraining(): void {
    this.isDraining = true;
  }

  /**
   * Graceful drain (SIGTERM): stops taking streams, tells every open stream `draining` with an
   * SSE `retry:` hint, then closes them in random order spread over config.drainWindowMs (one
   * interval timer for all), so their reconnects do not land on the other pods at once. Their
   * registry entries stay for the resume window: the clients resume on another pod.
   */
  async drain(): Promise<void> {
    this.startDraining();
    const open = [...this.connections.values()].filter((c) => c.state === 'open');
    for (let i = open.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [open[i], open[j]] = [open[j], open[i]];
    }
    const windowMs = this.config.drainWindowMs;
    for (const conn of open) {
      const retryMs = 250 + Math.floor(Math.random() * 750);
      conn.sendLocal(
        `retry: ${retryMs}\n` +
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
   * An open entry untouched for two cleanup intervals belongs to a dead pod: it stops counting
   * as open (a seed connection stays resumable, and /send keeps accepting commands for it, for
   * the resume window from its last touch).
   */
  private get openStaleAfterMs(): number {
    return 2 * this.config.cleanupIntervalMs;
  }

  /**
   * Lists a stream of another transport in the registry, before its response starts: a 429
   * GatewayError when its token's sub already holds MAX_CONNECTIONS_PER_TOKEN streams of any
   * kind in the cluster. `end` is how the sweep ends it when its token expires.
   */
  async track(
    claims: TokenClaims,
    transport: Exclude<StreamTransport, 'seed'>,
    connectionId: string,
    end: (reason: 'token-expired') => void,
  ): Promise<TrackedStream> {
    // Draining is checked by the routes: a POST's stream may still finish its call here.
    if (this.closed) {
      throw errors.unavailable('This gateway is not accepting new streams; reconnect', 1);
    }
    const record: ConnectionRecord = {
      connectionId,
      tokenId: claims.sub,
      tokenType: claims.type,
      podId: this.config.podId,
      connectedAt: Date.now(),
      transport,
      resumable: false,
    };
    await this.registerLimited(record);
    const entry: TrackedEntry = {
      record,
      expiresAtMs: claims.exp === undefined ? undefined : claims.exp * 1000,
      end,
      registered: true,
    };
    this.tracked.set(connectionId, entry);
    this.metrics.connectionsOpen.inc({ token_type: claims.type, transport });
    let released: Promise<void> | undefined;
    return {
      connectionId,
      release: () => {
        released ??= this.untrack(entry);
        return released;
      },
    };
  }

  /** Runs `listener` with the open entries of dead pods each sweep finds. */
  onLapsed(listener: LapsedListener): void {
    this.lapsedListeners.push(listener);
  }

  private untrack(entry: TrackedEntry): Promise<void> {
    const { connectionId, tokenType, transport } = entry.record;
    if (this.tracked.get(connectionId) === entry) this.tracked.delete(connectionId);
    this.metrics.connectionsOpen.dec({ token_type: tokenType, transport });
    entry.registered = false;
    const releasing = this.engine.unregisterConnection(connectionId).catch((err: unknown) => {
      this.logger.warn('Releasing a closed stream failed', { connectionId, error: String(err) });
    });
    this.releasing.add(releasing);
    void releasing.finally(() => this.releasing.delete(releasing));
    return releasing;
  }

  /** Registers the record under the cluster-wide per-token limit: 429 when over it. */
  private async registerLimited(record: ConnectionRecord): Promise<void> {
    const max = this.config.maxConnectionsPerToken;
    if (!(await this.engine.registerConnection(record, { maxPerToken: max }))) {
      throw errors.tooManyConnections(max);
    }
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
  ): Promise<void> {
    if (this.closed || this.isDraining) {
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
      if (previous && (previous.tokenId !== claims.sub || previous.tokenType !== claims.type)) {
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
        tokenId: claims.sub,
        tokenType: claims.type,
        expiresAtMs: claims.exp === undefined ? undefined : claims.exp * 1000,
        clientIP,
        connectedAt: previous?.connectedAt ?? Date.now(),
      },
      res,
      this.queueLimits,
      resumed ? resumeFrom.cursor : undefined,
    );
    this.add(conn);
    res.on('close', () => this.remove(conn, 'client-closed'));
    res.on('error', () => this.remove(conn, 'socket-error'));

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
      if (resumed) history = await readMissed(this.engine, conn, resumeFrom.cursor);
      else conn.startTypeTopicAt(await this.engine.lastEventId(topics.tokenType(conn.tokenType)));
      // Registered before the welcome: a client may POST /send as soon as it knows the id.
      // A resumed connection is registered again: it now lives on this pod, and its history
      // gets its full TTL back (capped to the resume window when it closed).
      await Promise.all([
        this.registerLimited(this.recordOf(conn)),
        resumed ? this.engine.capHistoryTtl(topics.connection(id)) : undefined,
      ]);
      conn.registered = true;
      if (conn.isClosed) {
        if (!resumed) await this.engine.unregisterConnection(id);
        return abandonOpening(res);
      }
    } catch (err) {
      if (resumed) conn.registered = false; // the entry stays for another attempt
      this.remove(conn, 'open-failed');
      if (err instanceof GatewayError || err instanceof EngineError) throw err;
      this.logger.error('SSE connection setup failed', { connectionId: id, error: String(err) });
      throw errors.unavailable('Could not open the event stream; retry');
    }

    this.metrics.connectionsOpen.inc({ token_type: conn.tokenType, transport: 'seed' });
    this.logger.info(resumed ? 'SSE Connection Resumed' : 'SSE Connection Added', {
      connectionId: id,
      tokenId: conn.tokenId,
      tokenType: conn.tokenType,
      clientIP: conn.clientIP,
      totalConnections: this.connections.size,
    });
    if (resumeFrom) {
      this.metrics.resumes.inc({
        outcome: !resumed || history?.truncated ? 'history_lost' : 'resumed',
      });
    }
    if (!resumed || !history) {
      const first = [welcomeBody(conn)];
      if (resumeFrom) {
        first.unshift(
          statusBody(id, 'history-lost', 'The connection to resume is gone; this is a new one', {
            resumedFrom: resumeFrom.connectionId,
          }),
        );
      }
      if (conn.open(first) === OVERFLOW) this.closeSlowConsumer(conn);
      return;
    }
    const first = [
      statusBody(id, 'resumed', 'Connection resumed; replaying missed events', {
        missed: history.events.length,
      }),
    ];
    if (history.truncated) {
      first.unshift(
        statusBody(id, 'history-lost', 'Some missed events are older than the kept history'),
      );
    }
    conn.open(first, true);
    void this.writeReplay(conn, history);
  }

  /**
   * Writes a replay at the socket's pace (waiting for it to drain whenever it is backed up, so
   * the replay never overflows the send queue), then the live events held meanwhile.
   */
  private async writeReplay(conn: SseConnection, history: Replay): Promise<void> {
    let count = 0;
    let bytes = 0;
    for (const { fromTypeTopic, ev } of history.events) {
      if (conn.isClosed) return;
      const written = conn.replay(fromTypeTopic, ev.id, ...connectionEventFrame(ev));
      if (written > 0) {
        count++;
        bytes += written;
      }
      if (conn.isBlocked) await conn.drained();
    }
    this.metrics.eventsWritten.inc({ event: 'replay' }, count);
    this.metrics.eventBytesWritten.inc(bytes);
    if (conn.isClosed) return;
    if (conn.releaseHeld() === OVERFLOW) this.closeSlowConsumer(conn);
  }

  /** After Redis came back: replays what an open stream missed while the subscriber was down. */
  private async catchUp(conn: SseConnection): Promise<void> {
    if (conn.state !== 'open') return;
    conn.hold();
    try {
      const history = await readMissed(this.engine, conn, conn.position);
      if (history.truncated && conn.state === 'open') {
        conn.sendLocal(
          statusBody(conn.connectionId, 'history-lost', 'Events were lost while Redis was down'),
          false,
        );
      }
      await this.writeReplay(conn, history);
    } catch (err) {
      this.logger.warn('Catching up after a reconnect failed; closing the stream to resume', {
        connectionId: conn.connectionId,
        error: String(err),
      });
      this.closeConnection(conn, 'stuck');
    }
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
      const written = conn.sendLocal(body, true);
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
      for (const entry of [...this.tracked.values()]) {
        if (entry.expiresAtMs !== undefined && entry.expiresAtMs <= now) {
          this.metrics.staleConnectionsRemoved.inc({ reason: 'token-expired' });
          entry.end('token-expired');
        }
      }
      const alive: string[] = [];
      for (const conn of this.connections.values())
        if (conn.registered) alive.push(conn.connectionId);
      for (const entry of this.tracked.values())
        if (entry.registered) alive.push(entry.record.connectionId);
      const unknown = alive.length > 0 ? await this.engine.touchConnections(alive) : [];
      if (unknown.length > 0) await this.registerAgain(unknown);
      const { lapsed, expired } = await this.engine.sweepConnections({
        openStaleAfterMs: this.openStaleAfterMs,
        resumeWindowMs: this.config.resumeGraceMs,
      });
      if (lapsed.length > 0) {
        this.metrics.staleConnectionsRemoved.inc({ reason: 'pod-gone' }, lapsed.length);
        this.logger.info('Streams of a gateway that stopped are no longer counted as open', {
          count: lapsed.length,
        });
        await Promise.all(this.lapsedListeners.map((listener) => listener(lapsed)));
      }
      if (expired.length > 0) {
        this.logger.info('Removed connections not resumed in time from the registry', {
          count: expired.length,
        });
        // Nobody will read their results: stop their calls on whichever worker runs them, and
        // let their histories go (a dead pod never capped them), keeping the cap a little while
        // for the cancelled calls' last events.
        const reason = 'Connection closed and not resumed';
        await Promise.all(
          expired.flatMap((connectionId) => [
            publishSeedCancel(this.engine, { connectionId, reason }),
            this.engine.capHistoryTtl(
              topics.connection(connectionId),
              this.config.cleanupIntervalMs,
            ),
          ]),
        );
      }
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
    const body = Buffer.from(eventBody(ev.event, ev.data));
    let count = 0;
    let bytes = 0;
    let overflowed: SseConnection[] | undefined;
    for (const conn of targets) {
      const written = conn.deliver(true, ev.id, body);
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
    const [body, progressOf] = connectionEventFrame(ev);
    const written = conn.deliver(false, ev.id, body, progressOf);
    if (written === OVERFLOW) return this.closeSlowConsumer(conn);
    if (written > 0) {
      const event = seedWireEvent(ev.event);
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
      this.logger.info('SSE Connection Removed', {
        connectionId: conn.connectionId,
        tokenId: conn.tokenId,
        tokenType: conn.tokenType,
        clientIP: conn.clientIP,
        totalConnections: this.connections.size,
        duration: Date.now() - conn.connectedAt,
        reason,
      });
    }
    const releasing = this.release(conn);
    this.releasing.add(releasing);
    void releasing.finally(() => this.releasing.delete(releasing));
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

function statusBody(
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
