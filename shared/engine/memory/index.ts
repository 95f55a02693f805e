import { DEFAULT_EVENT_MAX_BYTES, DEFAULT_HISTORY_MAX_BYTES } from '../../config';
import { engineErrors } from '../../errors';
import { exceedsBytes, truncate } from '../../text';
import { assertPositiveTtl, validateByteLimits, validateHistoryOptions } from '../limits';
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
import { isEventId } from '../eventId';
import { CommandQueue } from './commandQueue';
import { ConnectionRegistry } from './connectionRegistry';
import { MemoryDocumentStore } from './documentStore';
import { EventLog } from './eventLog';
import { ExpiringSet } from './expiringSet';
import { MemoryKeyValueStore } from './keyValueStore';
import { LocalPubSub } from './pubSub';
import { MemoryWindowCounters } from './windowCounters';

export interface MemoryEngineOptions {
  /** Events kept per topic; older ones are dropped. */
  historyMaxLen: number;
  /** A topic not published to for this long is forgotten; processed request ids likewise. */
  historyTtlS: number;
  /** Bytes of event names and data kept per topic (default DEFAULT_HISTORY_MAX_BYTES). */
  historyMaxBytes?: number;
  /** Larger event data is refused (default DEFAULT_EVENT_MAX_BYTES). */
  eventMaxBytes?: number;
}

// The registry port is its part's (assemblePort in the constructor), not a method here each.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface MemoryEngine extends RegistryPort {}

/**
 * The single-process engine (the default): everything lives in this process's memory, with
 * the same observable semantics as the Redis engine, so test/contract runs against both.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class MemoryEngine implements Engine {
  readonly kind = 'memory' as const;
  readonly store: DocumentStore = new MemoryDocumentStore();
  readonly kv: KeyValueStore = new MemoryKeyValueStore();
  readonly counters: WindowCounters = new MemoryWindowCounters();

  private readonly events: EventLog;
  private readonly eventMaxBytes: number;
  private readonly pubSub = new LocalPubSub();
  private readonly commands = new CommandQueue();
  private readonly processed: ExpiringSet;
  private started = false;
  /** Set once consumers have stopped: from then on nothing new may be published or queued. */
  private closed = false;
  private closing?: Promise<void>;

  constructor(options: MemoryEngineOptions) {
    const { historyMaxLen, historyTtlS } = options;
    const historyMaxBytes = options.historyMaxBytes ?? DEFAULT_HISTORY_MAX_BYTES;
    this.eventMaxBytes = options.eventMaxBytes ?? DEFAULT_EVENT_MAX_BYTES;
    validateByteLimits(historyMaxBytes, this.eventMaxBytes);
    validateHistoryOptions(historyMaxLen, historyTtlS);
    this.events = new EventLog(historyMaxLen, historyTtlS * 1000, historyMaxBytes);
    this.processed = new ExpiringSet(historyTtlS * 1000);
    assemblePort<RegistryPort>(this, new ConnectionRegistry(), REGISTRY_PORT_METHODS);
  }

  /** Topics whose history is held (for tests). */
  get topicCount(): number {
    return this.events.topicCount;
  }

  async start(): Promise<void> {
    this.started = true;
  }

  isReady(): boolean {
    return this.started && !this.closing;
  }

  /** Memory never loses its connection to itself. */
  onReconnect(_listener: () => void): void {}

  close(): Promise<void> {
    if (!this.closing) this.closing = this.shutdown();
    return this.closing;
  }

  // ---- commands ----

  async enqueueCommand(command: CommandEnvelope, limits?: AdmissionLimits): Promise<void> {
    return this.enqueueCommands([command], limits);
  }

  async enqueueCommands(commands: CommandEnvelope[], limits?: AdmissionLimits): Promise<void> {
    this.assertOpen();
    assertOneToken(commands);
    this.commands.enqueue(commands, limits);
  }

  consumeCommands(handler: CommandHandler, options: ConsumeOptions): CommandConsumer {
    // Refused as soon as close() begins: it would otherwise start a consumer close() never stops.
    if (this.closing) throw engineErrors.unavailable('Engine is closed');
    return this.commands.consume(handler, options);
  }

  async markProcessed(requestId: string): Promise<void> {
    this.processed.add(requestId, Date.now());
  }

  async isProcessed(requestId: string): Promise<boolean> {
    return this.processed.has(requestId, Date.now());
  }

  async commandBacklog(): Promise<{ waiting: number; pending: number; deadLettered: number }> {
    return this.commands.backlog();
  }

  // ---- events ----

  async publish(
    topic: string,
    event: string,
    data: string,
    options?: PublishOptions,
  ): Promise<string> {
    this.assertOpen();
    const bytes = exceedsBytes(data, this.eventMaxBytes);
    if (bytes !== undefined) throw engineErrors.eventTooLarge(bytes, this.eventMaxBytes);
    const entry = this.events.append(topic, event, data, Date.now(), options?.historyTtlMs);
    if (options?.completesRequest) this.processed.add(options.completesRequest, Date.now());
    this.pubSub.deliver(entry);
    return entry.id;
  }

  async capHistoryTtl(topic: string, ttlMs?: number): Promise<void> {
    if (ttlMs !== undefined) assertPositiveTtl(ttlMs);
    this.events.capTtl(topic, ttlMs === undefined ? undefined : Math.round(ttlMs), Date.now());
  }

  async subscribe(topics: string[], listener: EventListener): Promise<Subscription> {
    this.assertOpen();
    return this.pubSub.subscribe(topics, listener);
  }

  async readHistory(topic: string, afterId: string, limit: number): Promise<HistoryPage> {
    if (!isEventId(afterId))
      throw engineErrors.invalidArgument(`Invalid event id: ${truncate(afterId)}`);
    return this.events.read(topic, afterId, limit, Date.now());
  }

  async lastEventId(topic: string): Promise<string> {
    return this.events.lastId(topic, Date.now());
  }

  // ---- lifecycle ----

  private async shutdown(): Promise<void> {
    // Handlers still running may publish their results: let them, then shut the doors.
    await this.commands.stopAll();
    this.closed = true;
    this.pubSub.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw engineErrors.unavailable('Engine is closed');
  }
}
