import type Redis from 'ioredis';
import { DEFAULT_EVENT_MAX_BYTES, DEFAULT_HISTORY_MAX_BYTES } from '../../config';
import { EngineError, engineErrors } from '../../errors';
import type { Logger } from '../../logger';
import type { Metrics } from '../../metrics';
import type { CommandEnvelope } from '../../types';
import { assertOneToken } from '../admission';
import { REGISTRY_PORT_METHODS, assemblePort } from '../assemble';
import type {
  AdmissionLimits,
  CommandConsumer,
  CommandHandler,
  ConsumeOptions,
  DocumentStore,
  Engine,
  EventListener,
  HistoryPage,
  KeyValueStore,
  PublishOptions,
  RegistryPort,
  Subscription,
  WindowCounters,
} from '../engine';
import {
  assertPositiveTtl,
  validateByteLimits,
  validateConsumeOptions,
  validateHistoryOptions,
} from '../limits';
import { RedisCommandConsumer } from './commandConsumer';
import { CommandQueue } from './commandQueue';
import {
  type ConnectionContext,
  closeConnection,
  openConnection,
  redactUrl,
  whenReady,
} from './connections';
import { RedisDocumentStore } from './documentStore';
import { EventLog } from './eventLog';
import { RedisKeyValueStore } from './keyValueStore';
import { type RedisKeys, redisKeys } from './keys';
import { ConnectionRegistry } from './connectionRegistry';
import { type ScriptedRedis, defineScripts } from './scripts';
import { Subscriber } from './pubSub';
import { RedisWindowCounters } from './windowCounters';

export interface RedisEngineOptions {
  url: string;
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
  /** How long start() waits for Redis before failing (default 30 s). */
  startTimeoutMs?: number;
}

const DEFAULT_START_TIMEOUT_MS = 30_000;

// The registry port is its part's (assemblePort in the constructor), not a method here each.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface RedisEngine extends RegistryPort {}

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
  readonly counters: WindowCounters;

  private readonly context: ConnectionContext;
  private readonly commands: ScriptedRedis;
  private readonly subscriberConnection: Redis;
  private readonly subscriber: Subscriber;
  private readonly queue: CommandQueue;
  private readonly events: EventLog;
  private readonly consumers = new Set<RedisCommandConsumer>();
  private readonly keys: RedisKeys;
  private readonly startTimeoutMs: number;
  private starting?: Promise<void>;
  /** Set once consumers have stopped: from then on nothing new may be published or queued. */
  private closed = false;
  private closing?: Promise<void>;
  private readonly reconnectListeners: (() => void)[] = [];

  constructor(options: RedisEngineOptions) {
    const { url, prefix, historyMaxLen, historyTtlS, logger, metrics } = options;
    if (!url) throw new RangeError('url is required');
    validateHistoryOptions(historyMaxLen, historyTtlS);
    const historyMaxBytes = options.historyMaxBytes ?? DEFAULT_HISTORY_MAX_BYTES;
    const eventMaxBytes = options.eventMaxBytes ?? DEFAULT_EVENT_MAX_BYTES;
    validateByteLimits(historyMaxBytes, eventMaxBytes);
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.keys = redisKeys(prefix);
    this.context = { url, prefix, logger, metrics };
    this.commands = defineScripts(openConnection(this.context, 'commands'));
    this.subscriberConnection = openConnection(this.context, 'subscriber');
    this.subscriber = new Subscriber(this.subscriberConnection, this.keys, logger);
    const historyTtlMs = Math.max(1, Math.round(historyTtlS * 1000));
    this.queue = new CommandQueue(this.commands, this.keys, historyTtlMs);
    this.events = new EventLog(
      this.commands,
      this.keys,
      historyMaxLen,
      historyTtlMs,
      historyMaxBytes,
      eventMaxBytes,
    );
    assemblePort<RegistryPort>(
      this,
      new ConnectionRegistry(this.commands, this.keys),
      REGISTRY_PORT_METHODS,
    );
    this.store = new RedisDocumentStore(this.commands, this.keys);
    this.kv = new RedisKeyValueStore(this.commands, this.keys);
    this.counters = new RedisWindowCounters(this.commands, this.keys);
    this.notifyReconnects();
  }

  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  /**
   * After the subscriber connection comes back (ioredis has re-subscribed its channels), and
   * once commands flow again too, tells the listeners: the store may have lost data meanwhile.
   */
  private notifyReconnects(): void {
    let everReady = false;
    this.subscriberConnection.on('ready', () => {
      if (!everReady) {
        everReady = true;
        return;
      }
      whenReady(this.commands, this.startTimeoutMs, 'reconnect').then(
        () => {
          for (const listener of this.reconnectListeners) listener();
        },
        () => undefined, // still down: the next 'ready' tries again
      );
    });
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
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- commands ----

  enqueueCommand(command: CommandEnvelope, limits?: AdmissionLimits): Promise<void> {
    return this.enqueueCommands([command], limits);
  }

  async enqueueCommands(commands: CommandEnvelope[], limits?: AdmissionLimits): Promise<void> {
    this.assertOpen();
    assertOneToken(commands);
    if (commands.length === 0) return;
    try {
      await this.queue.enqueue(commands, limits);
    } catch (error) {
      throw unavailable('Command queue unavailable', error);
    }
  }

  consumeCommands(handler: CommandHandler, options: ConsumeOptions): CommandConsumer {
    // Refused as soon as close() begins: it would otherwise start a consumer close() never stops.
    if (this.closing) throw engineErrors.unavailable('Engine is closed');
    // Redis names each consumer in the group: it must have a name.
    if (!options.consumerId) throw new RangeError('consumerId is required');
    validateConsumeOptions(options);
    const blocking = openConnection(this.context, 'blocking', `consumer:${options.consumerId}`);
    const deps = {
      commands: this.commands,
      blocking,
      keys: this.keys,
      queue: this.queue,
      logger: this.context.logger,
    };
    const consumer: RedisCommandConsumer = new RedisCommandConsumer(deps, handler, options, () =>
      this.consumers.delete(consumer),
    );
    this.consumers.add(consumer);
    return consumer;
  }

  markProcessed(requestId: string): Promise<void> {
    return this.queue.markProcessed(requestId);
  }

  isProcessed(requestId: string): Promise<boolean> {
    return this.queue.isProcessed(requestId);
  }

  commandBacklog(): Promise<{ waiting: number; pending: number; deadLettered: number }> {
    return this.queue.backlog();
  }

  // ---- events ----

  publish(topic: string, event: string, data: string, options?: PublishOptions): Promise<string> {
    if (this.closed) return Promise.reject(engineErrors.unavailable('Engine is closed'));
    const completes = options?.completesRequest;
    return this.events.publish(
      topic,
      event,
      data,
      completes && this.keys.processed(completes),
      options?.historyTtlMs,
    );
  }

  async capHistoryTtl(topic: string, ttlMs?: number): Promise<void> {
    if (ttlMs !== undefined) assertPositiveTtl(ttlMs);
    try {
      await this.events.capTtl(topic, ttlMs);
    } catch (error) {
      throw unavailable('History TTL not set', error);
    }
  }

  async subscribe(topics: string[], listener: EventListener): Promise<Subscription> {
    this.assertOpen();
    try {
      return await this.subscriber.subscribe(topics, listener);
    } catch (error) {
      throw unavailable('Subscription failed', error);
    }
  }

  readHistory(topic: string, afterId: string, limit: number): Promise<HistoryPage> {
    return this.events.readHistory(topic, afterId, limit);
  }

  lastEventId(topic: string): Promise<string> {
    return this.events.lastEventId(topic);
  }

  // ---- lifecycle ----

  private async connect(): Promise<void> {
    const what = `Redis engine (${redactUrl(this.context.url)})`;
    await Promise.all([
      whenReady(this.commands, this.startTimeoutMs, what),
      whenReady(this.subscriberConnection, this.startTimeoutMs, what),
    ]);
    this.context.logger.info('redis engine connected', {
      url: redactUrl(this.context.url),
      prefix: this.keys.prefix,
    });
  }

  private async shutdown(): Promise<void> {
    // Handlers still running may publish their results: let them, then shut the doors.
    await Promise.all([...this.consumers].map((consumer) => consumer.stop()));
    this.closed = true;
    this.subscriber.clear();
    await Promise.all([closeConnection(this.subscriberConnection), closeConnection(this.commands)]);
  }

  private assertOpen(): void {
    if (this.closed) throw engineErrors.unavailable('Engine is closed');
  }
}

/** Redis failures on the request path surface as engine errors (the gateway answers 503). */
function unavailable(what: string, error: unknown): Error {
  if (error instanceof EngineError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return engineErrors.unavailable(`${what}: ${message}`);
}
