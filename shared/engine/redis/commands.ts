import type Redis from 'ioredis';
import { assertOneToken } from '../admission';
import type { CommandPort } from '../engine';
import type { EngineGate } from '../gate';
import { validateConsumeOptions } from '../limits';
import { RedisCommandConsumer } from './commandConsumer';
import type { CommandQueue, QueuedEntries } from './commandQueue';
import { type ConnectionContext, openConnection, unavailable } from './connections';
import { COMMAND_GROUP, type CommandPartitionKeys, type RedisKeys } from './keys';
import type { LostCommandWatch } from './lostCommands';
import type { ScriptedRedis } from './scripts';

export interface RedisCommandPortDeps {
  context: ConnectionContext;
  /** The engine's connection for ordinary commands and scripts. */
  redis: ScriptedRedis;
  keys: RedisKeys;
  queue: CommandQueue;
  /** How long a processed request id is remembered (as long as the history, like memory). */
  processedTtlMs: number;
  gate: EngineGate;
  /** Watches what this process enqueued, for a failover that loses it. */
  lostWatch: LostCommandWatch;
}

export interface RedisCommandPort extends CommandPort {
  /** Stops every consumer and waits for the commands in hand to finish (and be acked). */
  stopConsumers(): Promise<void>;
}

/**
 * The Redis engine's command port: the command streams, their consumers (one blocking
 * connection per partition each), the requests' done-keys and the backlog.
 */
export function redisCommandPort(deps: RedisCommandPortDeps): RedisCommandPort {
  const { context, redis, keys, queue, processedTtlMs, gate, lostWatch } = deps;
  const consumers = new Set<RedisCommandConsumer>();
  const port: RedisCommandPort = {
    enqueueCommand(command, limits) {
      return port.enqueueCommands([command], limits);
    },

    async enqueueCommands(commands, limits) {
      gate.assertOpen();
      assertOneToken(commands);
      if (commands.length === 0) return;
      let queued: QueuedEntries;
      try {
        queued = await queue.enqueue(commands, limits);
      } catch (error) {
        throw unavailable('Command queue unavailable', error);
      }
      lostWatch.remember(commands, queued);
    },

    consumeCommands(handler, options) {
      // Refused as soon as close() begins: else it would start a consumer close() never stops.
      gate.assertNotClosing();
      // Redis names each consumer in the group: it must have a name.
      if (!options.consumerId) throw new RangeError('consumerId is required');
      validateConsumeOptions(options);
      const blocking: Redis[] = queue.partitions.map(({ index }) =>
        openConnection(
          context,
          'blocking',
          index === 0
            ? `consumer:${options.consumerId}`
            : `consumer:${options.consumerId}:${index}`,
        ),
      );
      const consumerDeps = { commands: redis, blocking, queue, logger: context.logger };
      const consumer: RedisCommandConsumer = new RedisCommandConsumer(
        consumerDeps,
        handler,
        options,
        () => consumers.delete(consumer),
      );
      consumers.add(consumer);
      return consumer;
    },

    async markProcessed(requestId) {
      await redis.set(keys.processed(requestId), '1', 'PX', processedTtlMs);
    },

    async isProcessed(requestId) {
      return (await redis.exists(keys.processed(requestId))) === 1;
    },

    async commandBacklog() {
      // Summed over every partition that may hold commands; one pipeline each (one slot).
      const partitions = await queue.partitionsInUse();
      const counts = await Promise.all(partitions.map((partition) => backlogOf(redis, partition)));
      return counts.reduce((sum, count) => ({
        waiting: sum.waiting + count.waiting,
        pending: sum.pending + count.pending,
        deadLettered: sum.deadLettered + count.deadLettered,
      }));
    },

    async stopConsumers() {
      await Promise.all([...consumers].map((consumer) => consumer.stop()));
    },
  };
  return port;
}

interface Backlog {
  waiting: number;
  pending: number;
  deadLettered: number;
}

async function backlogOf(redis: ScriptedRedis, partition: CommandPartitionKeys): Promise<Backlog> {
  const replies = await redis
    .pipeline()
    .xlen(partition.commands)
    .xlen(partition.deadLetters)
    .xinfo('GROUPS', partition.commands)
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

/** The `workers` group's fields from an XINFO GROUPS reply (flat [name, value, ...] arrays). */
function findGroup(groups: unknown[][]): Map<string, unknown> | undefined {
  for (const flat of groups) {
    const fields = new Map<string, unknown>();
    for (let i = 0; i < flat.length; i += 2) fields.set(String(flat[i]), flat[i + 1]);
    if (fields.get('name') === COMMAND_GROUP) return fields;
  }
  return undefined;
}
