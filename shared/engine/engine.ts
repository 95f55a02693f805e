import type { CommandEnvelope, TokenType } from '../types';

/**
 * The one contract between the gateway, the worker and the bus that joins them.
 *
 * Two implementations: `memory` (one process, the default) and `redis` (many pods).
 * Everything engine-specific (keys, Lua, raw replies) stays inside the implementation;
 * test/contract runs the same suite against both.
 */
export interface Engine {
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

  // ---- commands: gateway -> worker, at-least-once ----

  /**
   * Appends a command to the shared queue; `enqueueCommands([command], limits)`.
   */
  enqueueCommand(command: CommandEnvelope, limits?: AdmissionLimits): Promise<void>;
  /**
   * Appends commands of one token (same tokenId) to the shared queue, all or none. With
   * `limits`, admission is checked and counted in the same atomic step: past `maxQueued` it
   * throws a GatewayError `queue_full` (503), past `maxInFlightPerToken` `inflight_limit`
   * (429), and nothing is queued. A command counts as in flight for its token from here until
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

  // ---- events: worker/gateway -> every subscribed gateway ----

  /**
   * Writes the event to the topic's capped history and publishes it, atomically. Returns its id.
   * With `completesRequest`, the same atomic step also marks that request processed, so a
   * worker that dies right after publishing a final result never has it published twice.
   */
  publish(topic: string, event: string, data: string, options?: PublishOptions): Promise<string>;
  /** Delivers every event published on these topics after the returned promise resolves. */
  subscribe(topics: string[], listener: EventListener): Promise<Subscription>;
  /**
   * Events of a topic with ids greater than `afterId`, oldest first, at most `limit`.
   * `truncated` is true when events after `afterId` were dropped by retention.
   */
  readHistory(topic: string, afterId: string, limit: number): Promise<HistoryPage>;
  /** Id of the newest event of the topic, or ZERO_EVENT_ID when it has none. */
  lastEventId(topic: string): Promise<string>;

  // ---- registry of live connections, cluster-wide ----

  registerConnection(record: ConnectionRecord): Promise<void>;
  unregisterConnection(connectionId: string): Promise<void>;
  getConnection(connectionId: string): Promise<ConnectionRecord | undefined>;
  /**
   * Marks connections as still alive (called by the owning pod every cleanup interval).
   * Returns the ids the registry does not know (lost with a Redis restart): the owner
   * registers those again.
   */
  touchConnections(connectionIds: string[]): Promise<string[]>;
  /** Drops registry entries not touched for `staleAfterMs` (their pod died). Returns their ids. */
  sweepConnections(staleAfterMs: number): Promise<string[]>;
  clusterStats(): Promise<ClusterStats>;

  // ---- durable documents (the backlog) ----

  readonly store: DocumentStore;

  // ---- short-lived values with a TTL (MCP sessions, stream locks) ----

  readonly kv: KeyValueStore;
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
  /** Engine's id of this queue entry (a stream id in Redis). */
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
   * At most this many handlers of one token (tokenId) run at once in this consumer, so one
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

export interface ConnectionRecord {
  connectionId: string;
  tokenId: string;
  tokenType: TokenType;
  podId: string;
  /** Epoch ms. */
  connectedAt: number;
}

export interface ClusterStats {
  totalConnections: number;
  connectionsByType: Record<TokenType, number>;
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
