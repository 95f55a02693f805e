import type { CommandEnvelope, TokenType } from '../types';

/**
 * The one contract between the gateway, the worker and the bus that joins them, assembled from
 * small ports (lifecycle, commands, events, registry, documents, key-value, counters): a caller
 * takes the port it needs. Each engine is its parts assembled (assemble.ts binds each port's
 * methods from the part implementing it).
 *
 * Two implementations: `memory` (one process, the default) and `redis` (many pods).
 * Everything engine-specific (keys, Lua, raw replies) stays inside the implementation;
 * test/contract runs the same suite against both, one part per port.
 */
export interface Engine
  extends
    EngineLifecycle,
    CommandPort,
    EventPort,
    RegistryPort,
    DocumentsPort,
    KeyValuePort,
    SetsPort,
    CountersPort {}

/** Starting, readiness and stopping of the backing store. */
export interface EngineLifecycle {
  readonly kind: 'memory' | 'redis';

  /** Connects; resolves once commands can be enqueued and events published. */
  start(): Promise<void>;
  /** True while the backing store answers (the gateway's and worker's /ready). */
  isReady(): boolean;
  /** Stops consumers, drops subscriptions, closes connections. Idempotent. */
  close(): Promise<void>;
  /**
   * Runs `listener` each time the connection to the backing store is re-established after a
   * loss (Redis restart or failover), so callers can restore what the store may have lost.
   * Never called by the memory engine.
   */
  onReconnect(listener: () => void): void;
  /**
   * Runs `listener` with the commands this process enqueued (accepted: 202, or a POST stream
   * opened) that the backing store then lost before any worker finished them: a Redis failover
   * to a replica that had not yet received them, or a restart without persistence. Checked
   * after each reconnect, for commands enqueued within the last minute (lostCommands.ts); their
   * message carries only its id and method. Never called by the memory engine.
   */
  onCommandsLost(listener: (commands: CommandEnvelope[]) => void): void;
}

/** Commands: gateway -> worker, at-least-once. */
export interface CommandPort {
  /**
   * Appends a command to the shared queue; `enqueueCommands([command], limits)`.
   */
  enqueueCommand(command: CommandEnvelope, limits?: AdmissionLimits): Promise<void>;
  /**
   * Appends commands of one token (same sub) to the shared queue, all or none. With
   * `limits`, admission is checked and counted in the same atomic step: past `maxQueued` it
   * throws an EngineError `queue_full`, past `maxInFlightPerToken` `inflight_limit`, and
   * nothing is queued. A command counts as in flight for its token from here until
   * it is acked or dead-lettered (or, if that never happens, `inFlightLeaseMs` later).
   */
  enqueueCommands(commands: CommandEnvelope[], limits?: AdmissionLimits): Promise<void>;
  /**
   * Starts a consumer. The handler resolving acks the command; rejecting leaves it pending,
   * so it is delivered again (to any consumer) once idle for `claimIdleMs`. A command delivered
   * more than `maxDeliveries` times goes to the dead-letter queue and `onDeadLetter` runs instead.
   */
  consumeCommands(handler: CommandHandler, options: ConsumeOptions): CommandConsumer;
  /** Records that a request's effects were applied and its result published (idempotency). */
  markProcessed(requestId: string): Promise<void>;
  isProcessed(requestId: string): Promise<boolean>;
  /** Commands waiting or pending, for metrics and tests. */
  commandBacklog(): Promise<{ waiting: number; pending: number; deadLettered: number }>;
}

/** Events: worker/gateway -> every subscribed gateway, with history. */
export interface EventPort {
  /**
   * Writes the event to the topic's capped history and publishes it, atomically. Returns its id.
   * With `completesRequest`, the same atomic step also marks that request processed, so a
   * worker that dies right after publishing a final result never has it published twice.
   * History is capped by count (historyMaxLen) and by bytes of event names and data
   * (historyMaxBytes; the newest event is always kept); what either drops is reported as
   * `truncated` to readers behind it. Data over eventMaxBytes is refused before anything is
   * written: the promise rejects with an EngineError `event_too_large`.
   */
  publish(topic: string, event: string, data: string, options?: PublishOptions): Promise<string>;
  /**
   * Caps how long the topic's history lives: `ttlMs` from now, and from each later publish
   * whatever TTL it asks for, until lifted; holds for a topic with no history yet too (for
   * `ttlMs`). Without `ttlMs`, lifts the cap and restarts the engine's history TTL. For a closed
   * connection's topic: its history goes with its resume window, not an hour later.
   */
  capHistoryTtl(topic: string, ttlMs?: number): Promise<void>;
  /** Delivers every event published on these topics after the returned promise resolves. */
  subscribe(topics: string[], listener: EventListener): Promise<Subscription>;
  /**
   * Events of a topic with ids greater than `afterId`, oldest first, at most `limit`.
   * `truncated` is true when events after `afterId` were dropped by retention.
   */
  readHistory(topic: string, afterId: string, limit: number): Promise<HistoryPage>;
  /** Id of the newest event of the topic, or ZERO_EVENT_ID when it has none. */
  lastEventId(topic: string): Promise<string>;
}

/** The registry of streams, cluster-wide. */
export interface RegistryPort {
  /**
   * Lists an open stream (any transport). With `maxPerToken`, refuses it (false) when its
   * token's `sub` already has that many open streams across the cluster; an id already open
   * (registered again, e.g. after a Redis restart or a resume) is never refused nor counted twice.
   */
  registerConnection(record: ConnectionRecord, options?: RegisterOptions): Promise<boolean>;
  /**
   * The stream closed: it stops counting as open at once. A `resumable` record stays listed as
   * resumable until the sweep drops it; any other record goes at once.
   */
  markConnectionClosed(connectionId: string): Promise<void>;
  /** Drops the entry, open or resumable, at once. */
  unregisterConnection(connectionId: string): Promise<void>;
  getConnection(connectionId: string): Promise<ConnectionRecord | undefined>;
  /**
   * Marks open streams as still alive (called by the owning pod every cleanup interval).
   * Returns the ids that are not open in the registry (lost with a Redis restart, or taken for
   * a dead pod's by a sweep): the owner registers those again.
   */
  touchConnections(connectionIds: string[]): Promise<string[]>;
  /**
   * Open entries not touched for `openStaleAfterMs` (their pod died) stop counting as open:
   * resumable ones become resumable from their last touch, the others are dropped (`lapsed`).
   * Resumable entries closed more than `resumeWindowMs` ago are dropped (`expired`, their ids).
   */
  sweepConnections(options: SweepOptions): Promise<SweepResult>;
  clusterStats(): Promise<ClusterStats>;
}

/** Durable documents (the backlog). */
export interface DocumentsPort {
  readonly store: DocumentStore;
}

/** Short-lived values with a TTL (MCP sessions, stream locks). */
export interface KeyValuePort {
  readonly kv: KeyValueStore;
}

/** Small sets of strings with a TTL (an MCP session's resource subscriptions). */
export interface SetsPort {
  readonly sets: MemberSets;
}

/** Fixed-window hit counters (rate limits): cluster-wide with Redis. */
export interface CountersPort {
  readonly counters: WindowCounters;
}

export interface EngineEvent {
  topic: string;
  /** Orders events within a topic; see eventId.ts. */
  id: string;
  /** SSE event name. */
  event: string;
  /** SSE data: JSON serialized once by the publisher, passed through untouched. */
  data: string;
}

export interface PublishOptions {
  /** A command's requestId to mark processed together with this (final) event. */
  completesRequest?: string;
  /**
   * How long the topic's history lives after this publish, instead of the engine's history TTL
   * (short-lived topics, e.g. one MCP request's stream). The done-key keeps the engine's TTL.
   */
  historyTtlMs?: number;
  /**
   * Also delivers the event to the listeners of this topic, unchanged (its `topic` stays the
   * one published to, its id that topic's id); nothing is written to this topic's history.
   * One subscription to a per-process topic can then serve many short-lived topics (a gateway
   * pod's MCP request streams), while subscribers of the topic itself still get every event.
   */
  copyTo?: string;
}

export type EventListener = (event: EngineEvent) => void;

export interface Subscription {
  close(): Promise<void>;
}

export interface HistoryPage {
  events: EngineEvent[];
  truncated: boolean;
}

export interface QueuedCommand {
  /**
   * Engine's id of this queue entry (in Redis its stream id, beyond partition 0 of
   * COMMAND_PARTITIONS prefixed with `<partition>/`, so ids are unique across partitions).
   */
  deliveryId: string;
  command: CommandEnvelope;
  /** 1 on first delivery. */
  deliveries: number;
}

export type CommandHandler = (command: QueuedCommand) => Promise<void>;

export interface ConsumeOptions {
  consumerId: string;
  concurrency: number;
  claimIdleMs: number;
  maxDeliveries: number;
  onDeadLetter: (command: QueuedCommand) => Promise<void>;
  /**
   * At most this many handlers of one token (sub) run at once in this consumer, so one
   * token cannot hold every slot while another's commands wait; those of a token at its cap
   * wait (still held by this consumer, never lost or run twice) while others start. Unset:
   * no per-token cap.
   */
  maxPerToken?: number;
}

/** What enqueueCommands admits (0 = no limit). */
export interface AdmissionLimits {
  /** Commands waiting or pending in the queue, every token together. */
  maxQueued: number;
  /** Commands of one token queued or running, cluster-wide. */
  maxInFlightPerToken: number;
  /** An in-flight entry never released (e.g. a lost ack) stops counting after this. */
  inFlightLeaseMs: number;
}

export interface CommandConsumer {
  /** Stops taking commands and waits for those in hand to finish (and be acked). */
  stop(): Promise<void>;
}

/** What kind of stream a registry entry is (the `transport` label of mcpgw_connections_open). */
export const STREAM_TRANSPORTS = ['seed', 'streamable-http', 'legacy-sse'] as const;
export type StreamTransport = (typeof STREAM_TRANSPORTS)[number];

export interface ConnectionRecord {
  connectionId: string;
  sub: string;
  tokenType: TokenType;
  podId: string;
  /** Epoch ms. */
  connectedAt: number;
  /** seed: GET /mcp/sse; streamable-http: GET /mcp and POST /mcp SSE streams; legacy-sse: GET /sse. */
  transport: StreamTransport;
  /** Whether the entry outlives its stream for the resume window (seed streams). */
  resumable: boolean;
}

export interface RegisterOptions {
  /** Open streams one token `sub` may hold, cluster-wide. */
  maxPerToken?: number;
}

export interface SweepOptions {
  openStaleAfterMs: number;
  resumeWindowMs: number;
}

export interface SweepResult {
  /** Open entries whose pod stopped touching them. */
  lapsed: ConnectionRecord[];
  /** Ids of resumable entries dropped because their resume window passed. */
  expired: string[];
}

export interface ClusterStats {
  /** Open streams of every transport. */
  totalConnections: number;
  connectionsByType: Record<TokenType, number>;
  connectionsByTransport: Record<StreamTransport, number>;
  /** Closed streams that may still be resumed (not counted above). */
  resumableConnections: number;
  /** connectedAt of the oldest and newest open stream. */
  oldestConnection: string | null;
  newestConnection: string | null;
}

/**
 * JSON documents grouped in collections. `update` is an atomic read-modify-write: two writers
 * racing on one document both land (the loser re-runs its function on the winner's result).
 */
export interface DocumentStore {
  get<T>(collection: string, id: string): Promise<T | undefined>;
  list<T>(collection: string): Promise<T[]>;
  /**
   * One page of a collection in id order: up to `limit` documents with ids greater than
   * `afterId` (from the start when absent), and whether more follow. Reads only that page's
   * documents (Redis: the ids, then the page's values).
   */
  page<T>(collection: string, afterId: string | undefined, limit: number): Promise<DocumentPage<T>>;
  /** Inserts unless present; returns the stored document either way (idempotent create). */
  insert<T>(collection: string, id: string, doc: T): Promise<T>;
  /** Applies fn to the current document and stores the result; undefined when absent. */
  update<T>(collection: string, id: string, fn: (doc: T) => T): Promise<T | undefined>;
}

export interface DocumentPage<T> {
  docs: T[];
  /** True when documents with greater ids exist. */
  more: boolean;
}

/** How `KeyValueStore.set` treats a key that exists (or not). */
export type SetMode = 'always' | 'ifAbsent' | 'ifPresent';

/**
 * String values that expire: MCP session records (sliding TTL) and cluster-wide locks (a value
 * naming the owner, refreshed while held, released only by its owner). Expired keys read as
 * absent in both engines.
 */
export interface KeyValueStore {
  /** Stores `value` for `ttlMs`, subject to `mode` (default 'always'). True when stored. */
  set(key: string, value: string, ttlMs: number, mode?: SetMode): Promise<boolean>;
  /** The value, or undefined. With `refreshTtlMs`, also restarts its TTL (sliding expiry). */
  get(key: string, refreshTtlMs?: number): Promise<string | undefined>;
  /** Restarts the TTL when the key exists and (if given) holds `expected`. True when it did. */
  touch(key: string, ttlMs: number, expected?: string): Promise<boolean>;
  /** Deletes the key when it exists and (if given) holds `expected`. True when deleted. */
  delete(key: string, expected?: string): Promise<boolean>;
}

/** What `MemberSets.add` did. */
export type MemberAdd = 'added' | 'present' | 'full';

/**
 * Sets of strings that expire as a whole (each write restarts the set's TTL), bounded by the
 * caller at each add, atomically: two writers racing cannot take the set past its bound. A set
 * that expired, or lost its last member, reads as empty. Keys are their own namespace (not
 * KeyValueStore's).
 */
export interface MemberSets {
  /**
   * Adds `member` unless the set already holds `maxMembers` others ('full': nothing changes);
   * 'present' when it was there. Either way but 'full', the set's TTL restarts at `ttlMs`.
   */
  add(key: string, member: string, ttlMs: number, maxMembers: number): Promise<MemberAdd>;
  /** Removes `member`; true when it was there. The set's TTL is left as it is. */
  remove(key: string, member: string): Promise<boolean>;
  /** The members, in no particular order. */
  members(key: string): Promise<string[]>;
  /** Restarts the TTL of a set that exists; true when it did. */
  touch(key: string, ttlMs: number): Promise<boolean>;
  /** Drops the set. */
  delete(key: string): Promise<void>;
}

export interface WindowCount {
  /** Hits in the key's current window, this one included. */
  hits: number;
  /** When that window ends (epoch ms). */
  resetAt: number;
}

/**
 * Fixed-window counters: a key's first hit opens a window of `windowMs`; hits add up until it
 * ends, then the key starts again from zero. One atomic step per hit in both engines.
 */
export interface WindowCounters {
  /** Adds `delta` (default 1; -1 takes a hit back) to the key's current window. */
  add(key: string, windowMs: number, delta?: number): Promise<WindowCount>;
  /** Ends the key's window now. */
  reset(key: string): Promise<void>;
}
