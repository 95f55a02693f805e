import { engineErrors } from '../../errors';
import type { CommandEnvelope } from '../../types';
import type { AdmissionLimits } from '../engine';
import { partitionBound, partitionOf } from './commandPartitions';
import type { CommandPartitionKeys, RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/** Where enqueue put commands: the stream and each command's entry id, in order. */
export interface QueuedEntries {
  stream: string;
  entryIds: string[];
}

/**
 * The command streams (COMMAND_PARTITIONS of them, a token's commands all in one): enqueue
 * (with admission) and the record of partition counts ever used. Their consumer groups are
 * read through partitionGroup.ts.
 */
export class CommandQueue {
  /** Partitions 0..count-1, the ones this process enqueues to and consumes. */
  readonly partitions: readonly CommandPartitionKeys[];
  /** Partitions beyond those, met in partitionsInUse(): one object per partition. */
  private readonly others = new Map<number, CommandPartitionKeys>();

  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
    partitionCount = 1,
  ) {
    this.partitions = Array.from({ length: partitionCount }, (_, i) => keys.commandPartition(i));
  }

  /**
   * Queues commands of one token, all or none, after the admission check of `limits` (in the
   * same Lua step). The stream is never trimmed: the queue's bound is that admission check,
   * each partition taking its share of maxQueued (partitionBound).
   * Returns where they are, so a failover that lost them can be told (lostCommands.ts).
   */
  async enqueue(commands: CommandEnvelope[], limits?: AdmissionLimits): Promise<QueuedEntries> {
    const sub = commands[0].sub;
    const partition = this.partitions[partitionOf(sub, this.partitions.length)];
    const args: (string | number)[] = [
      partitionBound(limits?.maxQueued ?? 0, this.partitions.length),
      limits?.maxInFlightPerToken ?? 0,
      Math.max(1, Math.round(limits?.inFlightLeaseMs ?? 1)),
      sub,
    ];
    for (const command of commands) args.push(command.requestId, JSON.stringify(command));
    const stream = partition.commands;
    const [outcome, ...entryIds] = (await this.redis.enqueueCommands(
      stream,
      partition.inFlight(sub),
      ...args,
    )) as [string, ...string[]];
    if (outcome === 'queue_full') throw engineErrors.queueFull(limits?.maxQueued ?? 0);
    if (outcome === 'inflight') throw engineErrors.inFlightLimit(limits?.maxInFlightPerToken ?? 0);
    return { stream, entryIds };
  }

  /**
   * Notes this process's partition count (when above 1) before it enqueues anything, so a
   * worker configured with fewer partitions learns that more may hold commands.
   */
  async recordPartitionCount(): Promise<void> {
    if (this.partitions.length > 1) {
      await this.redis.sadd(this.keys.commandPartitionCounts, this.partitions.length);
    }
  }

  /**
   * Every partition that may hold commands: this process's, plus those of a larger partition
   * count used before (or by other processes during a rolling change).
   */
  async partitionsInUse(): Promise<CommandPartitionKeys[]> {
    const counts = await this.redis.smembers(this.keys.commandPartitionCounts);
    const largest = Math.max(
      this.partitions.length,
      ...counts.map(Number).filter(Number.isInteger),
    );
    return Array.from({ length: largest }, (_, i) => this.partition(i));
  }

  private partition(index: number): CommandPartitionKeys {
    if (index < this.partitions.length) return this.partitions[index];
    let partition = this.others.get(index);
    if (!partition) {
      partition = this.keys.commandPartition(index);
      this.others.set(index, partition);
    }
    return partition;
  }
}
