import type Redis from 'ioredis';
import { DEFAULT_EVENT_MAX_BYTES, DEFAULT_HISTORY_MAX_BYTES } from '../../config';
import { engineErrors } from '../../errors';
import type { Logger } from '../../logger';
import type { Metrics } from '../../metrics';
import { assemblePorts } from '../assemble';
import type {
  CommandPort,
  DocumentStore,
  Engine,
  EventPort,
  KeyValueStore,
  MemberSets,
  RegistryPort,
  WindowCounters,
} from '../engine';
import { EngineGate } from '../gate';
import { validateByteLimits, validateHistoryOptions } from '../limits';
import { validatePartitionCount } from './commandPartitions';
import { CommandQueue } from './commandQueue';
import { type RedisCommandPort, redisCommandPort } from './commands';
import { ConnectionRegistry } from './connectionRegistry';
import {
  type ConnectionContext,
  closeConnection,
  openConnection,
  unavailable,
  whenReady,
} from './connections';
import { RedisDocumentStore } from './documentStore';
import { EventLog } from './eventLog';
import { redisEventPort } from './events';
import { RedisKeyValueStore } from './keyValueStore';
import { RedisMemberSets } from './memberSets';
import { NodeHealthProbe } from './nodeHealth';
import { type RedisKeys, redisKeys } from './keys';
import { type LostCommandsListener, LostCommandWatch } from './lostCommands';
import { type RedisTarget, describeTarget } from './redisConnections';
import { Subscriber } from './pubSub';
import { type ScriptedRedis, defineScripts } from './scripts';
import { RedisWindowCounters } from './windowCounters';

export interface RedisEngineOptions {
  /** One Redis server (REDIS_URL); the same as `target: { kind: 'url', url }`. */
  url?: string;
  /** Where Redis is: a URL, a Cluster's seed nodes or a Sentinel group (redisConnections.ts). */
  target?: RedisTarget;
  /** Starts every key and channel (REDIS_PREFIX). */
  prefix: string;
  /** Events kept per topic (exactly this many after each trim, at most ~10% more between). */
  historyMaxLen: number;
  /**
   * A topic's history expires this long after its last publish; processed request ids are
   * remembered this long too (it must exceed claimIdleMs x maxDeliveries).
   */
  historyTtlS: number;
  /** Bytes of event names and data kept per topic (default DEFAULT_HISTORY_MAX_BYTES). */
  historyMaxBytes?: number;
  /** Larger event data is refused (default DEFAULT_EVENT_MAX_BYTES). */
  eventMaxBytes?: number;
  logger: Logger;
  metrics?: Metrics;
  /**
   * Streams the command queue is spread over (COMMAND_PARTITIONS, default 1), each with its
   * own consumer group; a token's commands all go to one (a hash of its sub).
   */
  commandPartitions?: number;
  /** How long start() waits for Redis before failing (default 30 s). */
  startTimeoutMs?: number;
  /** Period of the per-node health probe, run when `metrics` is given (default 5 s). */
  healthIntervalMs?: number;
}

const DEFAULT_START_TIMEOUT_MS = 30_000;
/** How long after a Cluster's shard subscribers are re-created their SSUBSCRIBEs surely took effect. */
const RESUBSCRIBE_SETTLE_MS = 1000;
const DEFAULT_HEALTH_INTERVAL_MS = 5_000;

// The command, event and registry ports are its parts' (assemblePorts), not methods here.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface RedisEngine extends CommandPort, EventPort, RegistryPort {}

/**
 * The engine for many pods sharing one Redis. Connections: one for commands (auto-pipelined
 * normal traffic and Lua scripts), one in subscriber mode for every subscription of this
 * process, and one per command consumer for its blocking XREADGROUP. Key layout: keys.ts.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class RedisEngine implements Engine {
  readonly kind = 'redis' as const;
  readonly store: DocumentStore;
  readonly kv: KeyValueStore;
  readonly sets: MemberSets;
  readonly counters: WindowCounters;

  private readonly context: ConnectionContext;
  private readonly commands: ScriptedRedis;
  private readonly subscriberConnection: Redis;
  private readonly subscriber: Subscriber;
  private readonly commandPort: RedisCommandPort;
  private readonly commandQueue: CommandQueue;
  private readonly keys: RedisKeys;
  private readonly startTimeoutMs: number;
  private readonly gate = new EngineGate();
  private starting?: Promise<void>;
  private closing?: Promise<void>;
  private readonly reconnectListeners: (() => void)[] = [];
  private readonly healthProbe?: NodeHealthProbe;
  private readonly lostWatch: LostCommandWatch;

  constructor(options: RedisEngineOptions) {
    const { prefix, historyMaxLen, historyTtlS, logger, metrics } = options;
    if (options.url && options.target) throw new RangeError('give url or target, not both');
    const target: RedisTarget | undefined =
      options.target ?? (options.url ? { kind: 'url', url: options.url } : undefined);
    if (!target) throw new RangeError('url or target is required');
    validateHistoryOptions(historyMaxLen, historyTtlS);
    const historyMaxBytes = options.historyMaxBytes ?? DEFAULT_HISTORY_MAX_BYTES;
    const eventMaxBytes = options.eventMaxBytes ?? DEFAULT_EVENT_MAX_BYTES;
    validateByteLimits(historyMaxBytes, eventMaxBytes);
    const commandPartitions = options.commandPartitions ?? 1;
    validatePartitionCount(commandPartitions);
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.keys = redisKeys(prefix, { hashTags: target.kind === 'cluster' });
    this.context = { target, prefix, logger, metrics };
    this.commands = defineScripts(openConnection(this.context, 'commands'));
    this.subscriberConnection = openConnection(this.context, 'subscriber');
    this.subscriber = new Subscriber(this.subscriberConnection, this.keys, logger);
    this.lostWatch = new LostCommandWatch(this.commands, this.keys, logger);
    const historyTtlMs = Math.max(1, Math.round(historyTtlS * 1000));
    const log = new EventLog(
      this.commands,
      this.keys,
      historyMaxLen,
      historyTtlMs,
      historyMaxBytes,
      eventMaxBytes,
    );
    this.commandQueue = new CommandQueue(this.commands, this.keys, commandPartitions);
    this.commandPort = redisCommandPort({
      context: this.context,
      redis: this.commands,
      keys: this.keys,
      queue: this.commandQueue,
      processedTtlMs: historyTtlMs,
      gate: this.gate,
      lostWatch: this.lostWatch,
    });
    // A Redis failure (a Cluster re-electing a shard's master answers "Too many Cluster
    // redirections") is the engine being unavailable, for the gateway a 503, not a 500.
    assemblePorts(
      this,
      {
        commands: this.commandPort,
        events: redisEventPort(log, this.subscriber, this.keys, this.gate),
        registry: new ConnectionRegistry(this.commands, this.keys),
      },
      // A caller's mistake (a RangeError or TypeError from the engine's own checks) stays one.
      (error) =>
        error instanceof RangeError || error instanceof TypeError
          ? error
          : unavailable('Redis failed', error),
    );
    this.store = new RedisDocumentStore(this.commands, this.keys);
    this.kv = new RedisKeyValueStore(this.commands, this.keys);
    this.sets = new RedisMemberSets(this.commands, this.keys);
    this.counters = new RedisWindowCounters(this.commands, this.keys);
    if (metrics) {
      this.healthProbe = new NodeHealthProbe(
        target,
        prefix,
        metrics,
        logger,
        options.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS,
      );
    }
    this.notifyReconnects();
    this.watchForLostCommands();
  }

  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  onCommandsLost(listener: LostCommandsListener): void {
    this.lostWatch.onLost(listener);
  }

  /**
   * A failover to a replica that had not yet received the last writes (or a restart without
   * persistence) loses the commands enqueued just before it: once connected again, the watch
   * asks which of the recently enqueued ones are gone (lostCommands.ts). The connection
   * dropping marks a loss as possible; being ready again checks (on a Cluster, a node's
   * connection lost starts checking at once, until the promoted replica answers).
   */
  private watchForLostCommands(): void {
    const watch = this.lostWatch;
    let everReady = false;
    this.commands.on('close', () => watch.suspectLoss());
    this.commands.on('ready', () => {
      if (everReady) void watch.check();
      everReady = true;
    });
    if (!this.keys.hashTags) return;
    // A Cluster client stays 'ready' while one shard fails over: it drops the dead node's
    // connection, and learns the promoted replica only when a command is redirected. The check
    // is that command: it fails (and is tried again) until the replica serves the slot.
    this.commands.on('-node', () => {
      if (watch.lossSuspected) return; // a check is under way, or will be tried again
      watch.suspectLoss();
      void watch.check();
    });
  }

  /**
   * After the subscriber connection comes back (ioredis has re-subscribed its channels), and
   * once commands flow again too, tells the listeners: the store may have lost data meanwhile.
   */
  private notifyReconnects(): void {
    const afterFirst = (event: string) => {
      let everReady = false;
      this.subscriberConnection.on(event, () => {
        if (!everReady) {
          everReady = true;
          return;
        }
        whenReady(this.commands, this.startTimeoutMs, 'reconnect')
          .then(() => this.resubscribed())
          .then(
            () => {
              // A restart may have lost the record of partition counts: note ours again.
              this.commandQueue.recordPartitionCount().catch(() => undefined);
              void this.lostWatch.check();
              this.tellReconnectListeners();
              // See resubscribed(): on a Cluster, catch up once more when the SSUBSCRIBEs ioredis
              // sent without waiting have surely been answered.
              if (this.keys.hashTags) {
                setTimeout(() => this.tellReconnectListeners(), RESUBSCRIBE_SETTLE_MS).unref();
              }
            },
            () => undefined, // still down: the next 'ready' tries again
          );
      });
    };
    afterFirst('ready');
    // On a Cluster, ioredis re-creates the per-master shard subscribers when the slot map
    // changes (a failover, a slot moved) and says so once they are subscribed again.
    if (this.keys.hashTags) afterFirst('subscribersReady');
  }

  private tellReconnectListeners(): void {
    if (this.closing) return;
    for (const listener of this.reconnectListeners) listener();
  }

  /**
   * Listeners catch their streams up from history, which closes the gap of the outage only if
   * the channels are subscribed again before that read: an event published between the read and
   * the SUBSCRIBE would be missed. ioredis announces 'ready' before it re-sends SUBSCRIBE, on
   * another connection than the history read: a PING on the subscriber connection, answered
   * after the SUBSCRIBE (one connection answers in order), orders them. A Cluster's shard
   * subscribers are ioredis's own connections, beyond reach of such a PING: there the listeners
   * are told once more RESUBSCRIBE_SETTLE_MS later (a catch-up finds nothing twice).
   */
  private async resubscribed(): Promise<void> {
    if (this.keys.hashTags) return;
    await this.subscriberConnection.ping();
  }

  start(): Promise<void> {
    if (this.closing) return Promise.reject(engineErrors.unavailable('Engine is closed'));
    // A failed start may be retried (Redis came up later); a successful one is shared.
    this.starting ??= this.connect().catch((error: unknown) => {
      this.starting = undefined;
      throw error;
    });
    return this.starting;
  }

  isReady(): boolean {
    return !this.closing && this.commands.status === 'ready';
  }

  close(): Promise<void> {
    this.gate.closing = true;
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- lifecycle ----

  private async connect(): Promise<void> {
    const what = `Redis engine (${describeTarget(this.context.target)})`;
    await Promise.all([
      whenReady(this.commands, this.startTimeoutMs, what),
      whenReady(this.subscriberConnection, this.startTimeoutMs, what),
    ]);
    await this.commandQueue.recordPartitionCount();
    this.healthProbe?.start();
    this.lostWatch.start();
    this.context.logger.info('redis engine connected', {
      redis: describeTarget(this.context.target),
      prefix: this.keys.prefix,
      commandPartitions: this.commandQueue.partitions.length,
    });
  }

  private async shutdown(): Promise<void> {
    // Handlers still running may publish their results: let them, then shut the doors.
    this.healthProbe?.stop();
    await this.commandPort.stopConsumers();
    this.gate.closed = true;
    this.lostWatch.stop();
    this.subscriber.clear();
    await Promise.all([closeConnection(this.subscriberConnection), closeConnection(this.commands)]);
  }
}
