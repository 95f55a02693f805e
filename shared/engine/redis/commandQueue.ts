import { engineErrors } from '../../errors';
import type { CommandEnvelope } from '../../types';
import type { AdmissionLimits } from '../engine';
import { COMMAND_GROUP, type RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/** Dead letters kept for inspection; older ones are trimmed. */
export const DEAD_LETTER_MAX_LEN = 10_000;

/** Where enqueue put commands: the stream and each command's entry id, in order. */
export interface QueuedEntries {
  stream: string;
  entryIds: string[];
}

/** The command stream itself: enqueue (with admission) and the consumer group. */
export class CommandQueue {
  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
  ) {}

  /**
   * Queues commands of one token, all or none, after the admission check of `limits` (in the
   * same Lua step). The stream is never trimmed: the queue's bound is that admission check.
   * Returns where they are, so a failover that lost them can be told (lostCommands.ts).
   */
  async enqueue(commands: CommandEnvelope[], limits?: AdmissionLimits): Promise<QueuedEntries> {
    const sub = commands[0].sub;
    const args: (string | number)[] = [
      limits?.maxQueued ?? 0,
      limits?.maxInFlightPerToken ?? 0,
      Math.max(1, Math.round(limits?.inFlightLeaseMs ?? 1)),
      sub,
    ];
    for (const command of commands) args.push(command.requestId, JSON.stringify(command));
    const stream = this.keys.commands;
    const [outcome, ...entryIds] = (await this.redis.enqueueCommands(
      stream,
      this.keys.inFlight(sub),
      ...args,
    )) as [string, ...string[]];
    if (outcome === 'queue_full') throw engineErrors.queueFull(limits?.maxQueued ?? 0);
    if (outcome === 'inflight') throw engineErrors.inFlightLimit(limits?.maxInFlightPerToken ?? 0);
    return { stream, entryIds };
  }

  /**
   * Creates the consumer group (and the stream) unless it exists. From id 0, so commands
   * queued before any worker started, or after a Redis restart lost the group, are not skipped.
   */
  async ensureGroup(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.keys.commands, COMMAND_GROUP, '0', 'MKSTREAM');
    } catch (error) {
      if (!String(error).includes('BUSYGROUP')) throw error;
    }
  }
}
