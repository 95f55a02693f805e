import { DEFAULT_EVENT_MAX_BYTES, DEFAULT_HISTORY_MAX_BYTES } from '../../config';
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
import type { CommandEnvelope } from '../../types';
import { EngineGate } from '../gate';
import { validateByteLimits, validateHistoryOptions } from '../limits';
import { CommandQueue } from './commandQueue';
import { memoryCommandPort } from './commands';
import { ConnectionRegistry } from './connectionRegistry';
import { MemoryDocumentStore } from './documentStore';
import { EventLog } from './eventLog';
import { memoryEventPort } from './events';
import { ExpiringSet } from './expiringSet';
import { MemoryKeyValueStore } from './keyValueStore';
import { MemoryMemberSets } from './memberSets';
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

// The command, event and registry ports are its parts' (assemblePorts), not methods here.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface MemoryEngine extends CommandPort, EventPort, RegistryPort {}

/**
 * The single-process engine (the default): everything lives in this process's memory, with
 * the same observable semantics as the Redis engine, so test/contract runs against both.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class MemoryEngine implements Engine {
  readonly kind = 'memory' as const;
  readonly store: DocumentStore = new MemoryDocumentStore();
  readonly kv: KeyValueStore = new MemoryKeyValueStore();
  readonly sets: MemberSets = new MemoryMemberSets();
  readonly counters: WindowCounters = new MemoryWindowCounters();

  private readonly log: EventLog;
  private readonly pubSub = new LocalPubSub();
  private readonly queue = new CommandQueue();
  private readonly gate = new EngineGate();
  private started = false;
  private closing?: Promise<void>;

  constructor(options: MemoryEngineOptions) {
    const { historyMaxLen, historyTtlS } = options;
    const historyMaxBytes = options.historyMaxBytes ?? DEFAULT_HISTORY_MAX_BYTES;
    const eventMaxBytes = options.eventMaxBytes ?? DEFAULT_EVENT_MAX_BYTES;
    validateByteLimits(historyMaxBytes, eventMaxBytes);
    validateHistoryOptions(historyMaxLen, historyTtlS);
    this.log = new EventLog(historyMaxLen, historyTtlS * 1000, historyMaxBytes);
    const processed = new ExpiringSet(historyTtlS * 1000);
    assemblePorts(this, {
      commands: memoryCommandPort(this.queue, processed, this.gate),
      events: memoryEventPort(this.log, this.pubSub, processed, eventMaxBytes, this.gate),
      registry: new ConnectionRegistry(),
    });
  }

  /** Topics whose history is held (for tests). */
  get topicCount(): number {
    return this.log.topicCount;
  }

  async start(): Promise<void> {
    this.started = true;
  }

  isReady(): boolean {
    return this.started && !this.closing;
  }

  /** Memory never loses its connection to itself. */
  onReconnect(_listener: () => void): void {}

  /** Memory loses nothing it accepted while the process lives. */
  onCommandsLost(_listener: (commands: CommandEnvelope[]) => void): void {}

  close(): Promise<void> {
    if (!this.closing) {
      this.gate.closing = true;
      this.closing = this.shutdown();
    }
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    // Handlers still running may publish their results: let them, then shut the doors.
    await this.queue.stopAll();
    this.gate.closed = true;
    this.pubSub.clear();
  }
}
