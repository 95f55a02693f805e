import { engineErrors } from '../../errors';
import type { CommandEnvelope } from '../../types';
import type { AdmissionLimits } from '../engine';
import { COMMAND_GROUP, type RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/** Dead letters kept for inspection; older ones are trimmed. */
export const DEAD_LETTER_MAX_LEN = 10_000;

/** The gateway-to-worker side of the command stream: enqueue, idempotency marks, backlog. */
export class CommandQueue {
  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
    /** How long a processed request id is remembered (as long as the history, like memory). */
    private readonly processedTtlMs: number,
  ) {}

  /**
   * Queues commands of one token, all or none, after the admission check of `limits` (in the
   * same Lua step). The stream is never trimmed: the queue's bound is that admission check.
   */
  async enqueue(commands: CommandEnvelope[], limits?: AdmissionLimits): Promise<void> {
    const sub = commands[0].sub;
    const args: (string | number)[] = [
      limits?.maxQueued ?? 0,
      limits?.maxInFlightPerToken ?? 0,
      Math.max(1, Math.round(limits?.inFlightLeaseMs ?? 1)),
      sub,
    ];
    for (const command of commands) args.push(command.requestId, JSON.stringify(command));
    const [outcome] = (await this.redis.enqueueCommands(
      this.keys.commands,
      this.keys.inFlight(sub),
      ...args,
    )) as [string, number?];
    if (outcome === 'queue_full') throw engineErrors.queueFull(limits?.maxQueued ?? 0);
    if (outcome === 'inflight') throw engineErrors.inFlightLimit(limits?.maxInFlightPerToken ?? 0);
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

  async markProcessed(requestId: string): Promise<void> {
    await this.redis.set(this.keys.processed(requestId), '1', 'PX', this.processedTtlMs);
  }

  async isProcessed(requestId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.processed(requestId))) === 1;
  }

  async backlog(): Promise<{ waiting: number; pending: number; deadLettered: number }> {
    const replies = await this.redis
      .pipeline()
      .xlen(this.keys.commands)
      .xlen(this.keys.deadLetters)
      .xinfo('GROUPS', this.keys.commands)
      .exec();
    if (!replies) throw new Error('commandBacklog: pipeline was discarded');
    const [[queueError, queueLength], [deadError, deadLength], [, groups]] = replies;
    if (queueError) throw queueError;
    if (deadError) throw deadError;
    const length = Number(queueLength);
    // XINFO GROUPS fails when the stream does not exist: nothing pending then.
    const group = Array.isArray(groups) ? findGroup(groups as unknown[][]) : undefined;
    if (!group) return { waiting: length, pending: 0, deadLettered: Number(deadLength) };
    const pending = Number(group.get('pending') ?? 0);
    const lag = group.get('lag');
    // lag (never delivered) is null when Redis cannot tell; acked entries are deleted, so the
    // stream then holds exactly the waiting plus the pending ones.
    const waiting = typeof lag === 'number' ? lag : Math.max(0, length - pending);
    return { waiting, pending, deadLettered: Number(deadLength) };
  }
}

/** The `workers` group's fields from an XINFO GROUPS reply (flat [name, value, ...] arrays). */
function findGroup(groups: unknown[][]): Map<string, unknown> | undefined {
  for (const flat of groups) {
    const fields = new Map<string, unknown>();
    for (let i = 0; i < flat.length; i += 2) fields.set(String(flat[i]), flat[i + 1]);
    if (fields.get('name') === COMMAND_GROUP) return fields;
  }
  return undefined;
}
