import type Redis from 'ioredis';
import type { CommandEnvelope } from '../../types';
import type { ConsumeOptions } from '../engine';
import { COMMAND_GROUP, type CommandPartitionKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/** How long one blocking read waits for new commands; also bounds how long a stop can take. */
export const BLOCK_MS = 1000;
/** Stale pending entries looked at per reclaim round. */
const PENDING_SCAN_COUNT = 100;
/** Dead letters kept for inspection (per partition); older ones are trimmed. */
const DEAD_LETTER_MAX_LEN = 10_000;
/** Consumers of the group with nothing pending and idle this long are forgotten. */
const IDLE_CONSUMER_MS = 60 * 60 * 1000;

/** Raw stream entry: [id, [field, value, ...]] (fields null for an entry deleted meanwhile). */
export type StreamEntry = [string, string[] | null];
/** XREADGROUP reply: [[stream, entries]]. */
type ReadReply = [string, StreamEntry[]][];
/** Extended XPENDING reply row: [id, consumer, idle ms, delivery count]. */
type PendingRow = [string, string, number, number];
/** deadLetterCommands.lua reply row: [entry id, payload, deliveries]. */
export type DeadLetterRow = [string, string, number];

/** An entry to ack: its id and the command it holds (for its token's in-flight set). */
export interface AckEntry {
  entryId: string;
  command: CommandEnvelope;
}

/** What a partition's stale pending entries call for (those this consumer holds left out). */
export interface StaleEntries {
  /** Delivered maxDeliveries times: for the dead-letter stream. */
  toDeadLetter: string[];
  /** Idle for claimIdleMs, left by a dead worker or a failed handler: to take over. */
  toClaim: string[];
  /** The delivery count of each, as XPENDING reported it. */
  deliveriesById: Map<string, number>;
}

export type GroupOptions = Pick<ConsumeOptions, 'consumerId' | 'claimIdleMs' | 'maxDeliveries'>;

/**
 * One consumer's side of one partition's consumer group: the Redis calls that read, take,
 * ack, keep, reclaim and dead-letter its entries, one round trip each. Scheduling (slots,
 * fairness, which partition when) is the consumer's (commandConsumer.ts).
 */
export class PartitionGroup {
  constructor(
    readonly partition: CommandPartitionKeys,
    /** The shared command connection: scripts, XPENDING, XCLAIM, XGROUP. */
    private readonly redis: ScriptedRedis,
    private readonly options: GroupOptions,
  ) {}

  /**
   * The engine's id of one of this partition's entries: stream ids are unique only within
   * their stream, so beyond partition 0 (whose ids stay plain stream ids) the partition is
   * named in front.
   */
  deliveryIdOf(entryId: string): string {
    const { index } = this.partition;
    return index === 0 ? entryId : `${index}/${entryId}`;
  }

  /** One blocking XREADGROUP for up to `count` new entries, on `connection` (its own). */
  async readBlocking(connection: Redis, count: number): Promise<StreamEntry[]> {
    const reply = (await connection.call('XREADGROUP', [
      'GROUP',
      COMMAND_GROUP,
      this.options.consumerId,
      'COUNT',
      count,
      'BLOCK',
      BLOCK_MS,
      'STREAMS',
      this.partition.commands,
      '>',
    ])) as ReadReply | null;
    return (reply ?? []).flatMap(([, entries]) => entries);
  }

  /** Waits (XREAD BLOCK, which takes nothing) for a new entry after `waitFrom`. */
  async waitForNew(connection: Redis, waitFrom: string): Promise<void> {
    await connection.call('XREAD', [
      'COUNT',
      1,
      'BLOCK',
      BLOCK_MS,
      'STREAMS',
      this.partition.commands,
      waitFrom,
    ]);
  }

  /**
   * Takes up to `count` new entries without blocking (takeCommands.lua); if none, also the id
   * after which the partition's next new entry will come.
   */
  async take(count: number): Promise<{ entries: StreamEntry[]; waitFrom: string }> {
    const [entries, waitFrom] = await this.redis.takeCommands(
      this.partition.commands,
      COMMAND_GROUP,
      this.options.consumerId,
      count,
    );
    return { entries, waitFrom };
  }

  /** XACK + XDEL + in-flight release of handled entries, one script call (ackCommands.lua). */
  async ack(batch: readonly AckEntry[]): Promise<void> {
    const inFlightKeys: string[] = [];
    const keyIndex = new Map<string, number>();
    const args: (string | number)[] = [];
    for (const { entryId, command } of batch) {
      const key = this.partition.inFlight(command.sub);
      let index = keyIndex.get(key);
      if (index === undefined) {
        inFlightKeys.push(key);
        // KEYS[1] is the command stream: the sets start at 2.
        index = inFlightKeys.length + 1;
        keyIndex.set(key, index);
      }
      args.push(index, entryId, command.requestId);
    }
    await this.redis.ackCommands(
      1 + inFlightKeys.length,
      this.partition.commands,
      ...inFlightKeys,
      COMMAND_GROUP,
      ...args,
    );
  }

  /** Resets the idle time of the entries held here: a slow handler is not a dead worker. */
  async keepClaimed(held: readonly string[]): Promise<void> {
    await this.redis.keepCommandsClaimed(
      this.partition.commands,
      COMMAND_GROUP,
      this.options.consumerId,
      ...held,
    );
  }

  /** The pending entries idle for claimIdleMs (one XPENDING), but for those in `held`. */
  async staleEntries(held: readonly string[]): Promise<StaleEntries> {
    const { claimIdleMs, maxDeliveries } = this.options;
    const stale = (await this.redis.xpending(
      this.partition.commands,
      COMMAND_GROUP,
      'IDLE',
      claimIdleMs,
      '-',
      '+',
      PENDING_SCAN_COUNT,
    )) as PendingRow[];
    const heldIds = new Set(held);
    const result: StaleEntries = { toDeadLetter: [], toClaim: [], deliveriesById: new Map() };
    for (const [id, , , deliveries] of stale) {
      if (heldIds.has(id)) continue;
      result.deliveriesById.set(id, deliveries);
      if (deliveries >= maxDeliveries) result.toDeadLetter.push(id);
      else result.toClaim.push(id);
    }
    return result;
  }

  /**
   * Moves entries to the dead-letter stream if they are still idle for claimIdleMs and
   * delivered maxDeliveries times (rechecked in the script: another worker may race).
   */
  deadLetterStale(entryIds: readonly string[]): Promise<DeadLetterRow[]> {
    return this.deadLetter(this.options.claimIdleMs, this.options.maxDeliveries, entryIds);
  }

  /** Moves one entry to the dead-letter stream whatever its idle time and deliveries. */
  async deadLetterNow(entryId: string): Promise<void> {
    await this.deadLetter(0, 0, [entryId]);
  }

  /**
   * Takes over entries (XCLAIM) still idle for claimIdleMs: min-idle-time again, so an entry
   * another worker claimed meanwhile is not taken twice. Null for an entry deleted meanwhile.
   */
  async claim(entryIds: readonly string[]): Promise<(StreamEntry | null)[]> {
    return (await this.redis.call('XCLAIM', [
      this.partition.commands,
      COMMAND_GROUP,
      this.options.consumerId,
      this.options.claimIdleMs,
      ...entryIds,
    ])) as (StreamEntry | null)[];
  }

  /** Whether the partition's stream holds no entry (XLEN). */
  async isEmpty(): Promise<boolean> {
    return (await this.redis.xlen(this.partition.commands)) === 0;
  }

  /** Forgets the group's consumers that hold nothing and have been idle for long. */
  async pruneIdleConsumers(): Promise<void> {
    await this.redis.pruneIdleConsumers(this.partition.commands, COMMAND_GROUP, IDLE_CONSUMER_MS);
  }

  /**
   * Creates the consumer group (and stream) unless it exists. From id 0, so commands queued
   * before any worker started, or after a Redis restart lost the group, are not skipped.
   */
  async ensureGroup(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.partition.commands, COMMAND_GROUP, '0', 'MKSTREAM');
    } catch (error) {
      if (!String(error).includes('BUSYGROUP')) throw error;
    }
  }

  private async deadLetter(
    minIdleMs: number,
    minDeliveries: number,
    entryIds: readonly string[],
  ): Promise<DeadLetterRow[]> {
    return (await this.redis.deadLetterCommands(
      this.partition.commands,
      this.partition.deadLetters,
      COMMAND_GROUP,
      minIdleMs,
      minDeliveries,
      DEAD_LETTER_MAX_LEN,
      this.partition.inFlightPrefix,
      ...entryIds,
    )) as DeadLetterRow[];
  }
}

/** Whether a Redis error says the stream or its consumer group is missing. */
export function isNoGroup(error: unknown): boolean {
  return String(error).includes('NOGROUP');
}

/** A field's value in a stream entry's [field, value, ...] list. */
export function fieldValue(fields: string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** The command a stream entry carries, or undefined if it cannot be read. */
export function parseCommand(payload: string | undefined): CommandEnvelope | undefined {
  if (payload === undefined) return undefined;
  try {
    return JSON.parse(payload) as CommandEnvelope;
  } catch {
    return undefined;
  }
}
