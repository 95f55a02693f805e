import type Redis from 'ioredis';
import type { CommandEnvelope } from '../../types';
import { assertOneToken } from '../admission';
import type {
  AdmissionLimits,
  CommandConsumer,
  CommandHandler,
  CommandPort,
  ConsumeOptions,
} from '../engine';
import type { EngineGate } from '../gate';
import { validateConsumeOptions } from '../limits';
import { RedisCommandConsumer } from './commandConsumer';
import type { CommandQueue } from './commandQueue';
import { type ConnectionContext, openConnection, unavailable } from './connections';
import { COMMAND_GROUP, type RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

export interface RedisCommandsDeps {
  context: ConnectionContext;
  /** The engine's connection for ordinary commands and scripts. */
  commands: ScriptedRedis;
  keys: RedisKeys;
  queue: CommandQueue;
  /** How long a processed request id is remembered (as long as the history, like memory). */
  processedTtlMs: number;
  gate: EngineGate;
}

/**
 * The Redis engine's command port: the command stream, its consumers (one blocking connection
 * each), the requests' done-keys and the backlog.
 */
export class RedisCommands implements CommandPort {
  private readonly consumers = new Set<RedisCommandConsumer>();

  constructor(private readonly deps: RedisCommandsDeps) {}

  enqueueCommand(command: CommandEnvelope, limits?: AdmissionLimits): Promise<void> {
    return this.enqueueCommands([command], limits);
  }

  async enqueueCommands(commands: CommandEnvelope[], limits?: AdmissionLimits): Promise<void> {
    this.deps.gate.assertOpen();
    assertOneToken(commands);
    if (commands.length === 0) return;
    try {
      await this.deps.queue.enqueue(commands, limits);
    } catch (error) {
      throw unavailable('Command queue unavailable', error);
    }
  }

  consumeCommands(handler: CommandHandler, options: ConsumeOptions): CommandConsumer {
    // Refused as soon as close() begins: it would otherwise start a consumer close() never stops.
    this.deps.gate.assertNotClosing();
    // Redis names each consumer in the group: it must have a name.
    if (!options.consumerId) throw new RangeError('consumerId is required');
    validateConsumeOptions(options);
    const { context, commands, keys, queue } = this.deps;
    const blocking: Redis = openConnection(context, 'blocking', `consumer:${options.consumerId}`);
    const deps = { commands, blocking, keys, queue, logger: context.logger };
    const consumer: RedisCommandConsumer = new RedisCommandConsumer(deps, handler, options, () =>
      this.consumers.delete(consumer),
    );
    this.consumers.add(consumer);
    return consumer;
  }

  /** Stops every consumer and waits for the commands in hand to finish (and be acked). */
  async stopConsumers(): Promise<void> {
    await Promise.all([...this.consumers].map((consumer) => consumer.stop()));
  }

  async markProcessed(requestId: string): Promise<void> {
    await this.deps.commands.set(
      this.deps.keys.processed(requestId),
      '1',
      'PX',
      this.deps.processedTtlMs,
    );
  }

  async isProcessed(requestId: string): Promise<boolean> {
    return (await this.deps.commands.exists(this.deps.keys.processed(requestId))) === 1;
  }

  async commandBacklog(): Promise<{ waiting: number; pending: number; deadLettered: number }> {
    const replies = await this.deps.commands
      .pipeline()
      .xlen(this.deps.keys.commands)
      .xlen(this.deps.keys.deadLetters)
      .xinfo('GROUPS', this.deps.keys.commands)
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
