// Over 450 lines: one consumer's scheduling (read loops, fair slots, reclaim rounds, acks per turn, stop) that only reads well whole; its Redis calls are in partitionGroup.ts.
import type Redis from 'ioredis';
import type { Logger } from '../../logger';
import type { CommandConsumer, CommandHandler, ConsumeOptions, QueuedCommand } from '../engine';
import type { CommandQueue } from './commandQueue';
import { closeConnection } from './connections';
import type { CommandPartitionKeys } from './keys';
import {
  BLOCK_MS,
  fieldValue,
  isNoGroup,
  parseCommand,
  PartitionGroup,
  type StreamEntry,
} from './partitionGroup';
import type { ScriptedRedis } from './scripts';

/** The reclaim round never runs more often than this, whatever claimIdleMs is. */
const MIN_RECLAIM_INTERVAL_MS = 5;
/**
 * Commands held back (their token at its per-token cap) are at most this many times
 * `concurrency`: the reader goes on reading past them to reach other tokens' commands behind
 * them, so one busy token never leaves a free slot idle while another token's command waits.
 * The bound keeps hoarding small (a held command is not available to another worker): with the
 * default limits, one token cannot fill it (MAX_INFLIGHT_PER_TOKEN 32, 8 of them running).
 */
const HELD_FACTOR = 4;
/** Read errors are retried after a delay growing up to this. */
const MAX_RETRY_DELAY_MS = 2000;
/** Idle consumers of the groups are pruned this often (partitionGroup.ts). */
const PRUNE_INTERVAL_MS = 5 * 60 * 1000;

/** A command taken from a partition: its entry id there (ids are unique only per stream). */
interface Taken extends QueuedCommand {
  group: PartitionGroup;
  entryId: string;
}

/** Commands whose handlers finished in one turn, and when their acks were sent. */
interface AckBatch {
  commands: Taken[];
  done: Promise<void>;
}

export interface ConsumerDeps {
  /** Shared command connection: acks, reclaims, CLIENT UNBLOCK. */
  commands: ScriptedRedis;
  /**
   * This consumer's own connections, for the blocking XREADGROUPs only: one per partition of
   * queue.partitions (a Cluster cannot read streams of different slots in one XREADGROUP).
   */
  blocking: Redis[];
  queue: CommandQueue;
  logger: Logger;
}

/**
 * One worker's consumer of the command streams (one per partition, COMMAND_PARTITIONS):
 * - a read loop per partition on its own connection, taking as many commands as there are
 *   free slots (with one partition one XREADGROUP ... BLOCK; with several, see takeOrWait),
 *   the slots shared by every partition: handlers run at most `concurrency` at once, at most
 *   `maxPerToken` of one token (the others of that token wait in hand, oldest first, while
 *   other tokens' commands start); resolved => XACK + XDEL + in-flight release (the commands
 *   finished in one turn together, one script call per partition), rejected => the entry
 *   stays pending;
 * - a reclaim round every claimIdleMs/3, over each partition in turn (starting with the next
 *   one each round): keeps the entries it holds claimed (a slow handler is not a dead worker),
 *   moves entries delivered maxDeliveries times to the partition's dead-letter stream, and
 *   XCLAIMs entries idle for claimIdleMs (left by a dead worker or a failed handler). A
 *   partition beyond this process's count that holds commands (a larger COMMAND_PARTITIONS
 *   used before or elsewhere) is found there and drained (drain()).
 * Each partition's Redis calls are its PartitionGroup's. Redis errors are logged and retried;
 * nothing here throws into the process.
 */
export class RedisCommandConsumer implements CommandConsumer {
  /** The consumer groups of this process's partitions (queue.partitions), by index. */
  private readonly groups: PartitionGroup[];
  /** Those of partitions beyond, met in a reclaim round: one object per partition. */
  private readonly otherGroups = new Map<number, PartitionGroup>();
  /** Taken (delivered or claimed) but waiting for a free slot. */
  private readonly queued: Taken[] = [];
  /** Commands whose handler is running, by deliveryId (unique across partitions). */
  private readonly running = new Map<string, Taken>();
  /** Running handlers per token (sub), for the per-token cap. */
  private readonly runningByToken = new Map<string, number>();
  /** Slots set aside for takes in flight (several partitions: takeShare). */
  private reserved = 0;
  /** Partitions beyond this process's count being drained (drain()). */
  private readonly draining = new Set<number>();
  /** Handler runs and dead-letter callbacks, awaited by stop(). */
  private readonly work = new Set<Promise<void>>();
  private readonly readLoops: Promise<void>[];
  private readonly reclaimTimer: NodeJS.Timeout;
  private reclaiming?: Promise<void>;
  private reclaimFailing = false;
  /** Where the next reclaim round starts, so no partition always comes last. */
  private reclaimStart = 0;
  private lastPruneAt = 0;
  private stopRequested = false;
  private stopping?: Promise<void>;
  /** Wake the read loops from waiting for a slot or from a retry delay. */
  private readonly wakers = new Set<() => void>();
  /** CLIENT ID of the blocking connection (one partition), to interrupt its XREADGROUP on stop. */
  private readonly blockingClientIds: (number | undefined)[] = [];
  /** Acks gathered in this turn, sent together (see ack()). */
  private acks?: AckBatch;

  constructor(
    private readonly deps: ConsumerDeps,
    private readonly handler: CommandHandler,
    private readonly options: ConsumeOptions,
    private readonly onStopped: () => void,
  ) {
    this.groups = deps.queue.partitions.map(
      (partition) => new PartitionGroup(partition, deps.commands, options),
    );
    this.readLoops = this.groups.map((group, i) => {
      deps.blocking[i].on('close', () => (this.blockingClientIds[i] = undefined));
      return this.read(group, i);
    });
    const interval = Math.max(MIN_RECLAIM_INTERVAL_MS, Math.floor(options.claimIdleMs / 3));
    this.reclaimTimer = setInterval(() => this.startReclaim(), interval);
    // The timer alone must not keep the process alive.
    this.reclaimTimer.unref();
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  // ---- reading new commands ----

  /** The read loop of one partition, on blocking connection `index`. */
  private async read(group: PartitionGroup, index: number): Promise<void> {
    const { blocking, logger } = this.deps;
    const connection = blocking[index];
    let failures = 0;
    while (!this.stopRequested) {
      const free = this.freeSlots();
      if (free <= 0) {
        await this.pause();
        continue;
      }
      try {
        if (this.groups.length > 1) {
          await this.takeOrWait(connection, group, free);
        } else {
          if (this.blockingClientIds[index] === undefined) {
            this.blockingClientIds[index] = Number(await connection.call('CLIENT', ['ID']));
          }
          // One partition: one blocking XREADGROUP for up to `free` commands, one round trip.
          for (const entry of await group.readBlocking(connection, free)) {
            this.take(group, entry, 1);
          }
        }
        failures = 0;
      } catch (error) {
        if (this.stopRequested) break;
        if (isNoGroup(error) && (await this.tryEnsureGroup(group))) continue;
        failures += 1;
        if (failures === 1) {
          logger.warn('command read failed; retrying', {
            consumerId: this.options.consumerId,
            partition: group.partition.index,
            error: String(error),
          });
        }
        await this.pause(Math.min(100 * 2 ** (failures - 1), MAX_RETRY_DELAY_MS));
      }
    }
  }

  /**
   * Several partitions, each loop sharing the slots: takes its share of the free slots without
   * blocking (reserved for that one round trip, so the loops never take more than the free
   * slots between them), or, when the partition has nothing new, waits for its next entry
   * with XREAD BLOCK, which takes nothing. A wait on an idle partition so holds no slot; and
   * a slot freed wakes the paused loops in the order they paused, so a partition with a
   * backlog takes turns with the others rather than every slot.
   */
  private async takeOrWait(connection: Redis, group: PartitionGroup, free: number): Promise<void> {
    const { taken, waitFrom } = await this.takeShare(group, free);
    if (taken > 0 || this.stopRequested) return;
    await group.waitForNew(connection, waitFrom);
  }

  /**
   * Takes up to this partition's share of the `free` slots without blocking, the slots
   * reserved for that round trip. Returns how many it took and, if none, the id after which
   * the partition's next new entry will come.
   */
  private async takeShare(
    group: PartitionGroup,
    free: number,
  ): Promise<{ taken: number; waitFrom: string }> {
    const count = Math.ceil(free / this.groups.length);
    this.reserved += count;
    let entries: StreamEntry[];
    let waitFrom: string;
    try {
      ({ entries, waitFrom } = await group.take(count));
    } finally {
      this.reserved -= count;
    }
    for (const entry of entries) this.take(group, entry, 1);
    // Slots reserved but not filled: loops that paused meanwhile may fill them from theirs.
    if (entries.length < count) this.wakeReaders();
    return { taken: entries.length, waitFrom };
  }

  /**
   * Reads a partition beyond this process's count (started by a reclaim round that found
   * commands in it) like the others, without blocking, until it has nothing new.
   */
  private async drain(group: PartitionGroup): Promise<void> {
    try {
      while (!this.stopRequested) {
        const free = this.freeSlots();
        if (free <= 0) {
          await this.pause();
          continue;
        }
        if ((await this.takeShare(group, free)).taken === 0) return;
      }
    } catch (error) {
      // The next reclaim round starts it again.
      if (isNoGroup(error)) await this.tryEnsureGroup(group);
      else {
        this.deps.logger.warn('draining a command partition failed', {
          partition: group.partition.index,
          error: String(error),
        });
      }
    } finally {
      this.draining.delete(group.partition.index);
    }
  }

  /**
   * How many more commands to take: free handler slots, minus the commands in hand that could
   * take them (those of a token at its cap cannot), while the held-back ones stay within bound.
   */
  private freeSlots(): number {
    const { concurrency } = this.options;
    const runnable = this.runnableQueued();
    const held = this.queued.length - runnable;
    return Math.min(
      concurrency - this.running.size - runnable - this.reserved,
      concurrency * HELD_FACTOR - held,
    );
  }

  /** Commands in hand that would start if slots were free (their token is below its cap). */
  private runnableQueued(): number {
    const cap = this.options.maxPerToken;
    if (cap === undefined) return this.queued.length;
    const counts = new Map(this.runningByToken);
    let runnable = 0;
    for (const { command } of this.queued) {
      const count = counts.get(command.sub) ?? 0;
      if (count < cap) {
        counts.set(command.sub, count + 1);
        runnable += 1;
      }
    }
    return runnable;
  }

  /** Waits until woken (a slot freed, stop) or, given ms, until that time has passed. */
  private pause(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => done(), ms);
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      this.wakers.add(done);
    });
  }

  private wakeReaders(): void {
    for (const wake of [...this.wakers]) wake();
  }

  private async tryEnsureGroup(group: PartitionGroup): Promise<boolean> {
    try {
      await group.ensureGroup();
      return true;
    } catch {
      return false;
    }
  }

  /** The consumer group of a partition, this process's own or one beyond its count. */
  private groupOf(partition: CommandPartitionKeys): PartitionGroup {
    if (partition.index < this.groups.length) return this.groups[partition.index];
    let group = this.otherGroups.get(partition.index);
    if (!group) {
      group = new PartitionGroup(partition, this.deps.commands, this.options);
      this.otherGroups.set(partition.index, group);
    }
    return group;
  }

  // ---- running handlers ----

  private take(group: PartitionGroup, entry: StreamEntry, deliveries: number): void {
    const [entryId, fields] = entry;
    if (!fields) return;
    const deliveryId = group.deliveryIdOf(entryId);
    const command = parseCommand(fieldValue(fields, 'c'));
    if (!command) {
      this.deps.logger.error('unreadable command moved to the dead-letter stream', { deliveryId });
      this.track(this.deadLetterAtOnce(group, entryId));
      return;
    }
    this.queued.push({ deliveryId, command, deliveries, group, entryId });
    this.startQueued();
  }

  /** Starts commands in hand, oldest first, skipping those whose token is at its cap. */
  private startQueued(): void {
    const cap = this.options.maxPerToken ?? Infinity;
    while (this.running.size < this.options.concurrency) {
      const index = this.queued.findIndex(
        ({ command }) => (this.runningByToken.get(command.sub) ?? 0) < cap,
      );
      if (index < 0) return;
      this.run(this.queued.splice(index, 1)[0]);
    }
  }

  private run(taken: Taken): void {
    const { deliveryId } = taken;
    const token = taken.command.sub;
    this.running.set(deliveryId, taken);
    this.runningByToken.set(token, (this.runningByToken.get(token) ?? 0) + 1);
    // The handler sees the engine's QueuedCommand, not the partition bookkeeping.
    const queued: QueuedCommand = {
      deliveryId,
      command: taken.command,
      deliveries: taken.deliveries,
    };
    const task = Promise.resolve()
      .then(() => this.handler(queued))
      .then(
        () => this.ack(taken),
        (error: unknown) => {
          // Left pending: reclaimed once idle for claimIdleMs, or dead-lettered.
          this.deps.logger.debug('command handler failed; left pending', {
            deliveryId,
            deliveries: queued.deliveries,
            error: String(error),
          });
        },
      )
      .finally(() => {
        this.running.delete(deliveryId);
        const left = (this.runningByToken.get(token) ?? 1) - 1;
        if (left > 0) this.runningByToken.set(token, left);
        else this.runningByToken.delete(token);
        this.startQueued();
        this.wakeReaders();
      });
    this.track(task);
  }

  /**
   * Acks with every other command finished in this turn of the event loop: one script call
   * (ackCommands.lua) per partition for all of them.
   */
  private ack(taken: Taken): Promise<void> {
    if (!this.acks) {
      const batch: AckBatch = { commands: [], done: Promise.resolve() };
      batch.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.acks = undefined;
        return this.sendAcks(batch.commands);
      });
      this.acks = batch;
    }
    this.acks.commands.push(taken);
    return this.acks.done;
  }

  private async sendAcks(batch: Taken[]): Promise<void> {
    const byGroup = new Map<PartitionGroup, Taken[]>();
    for (const taken of batch) {
      const list = byGroup.get(taken.group);
      if (list) list.push(taken);
      else byGroup.set(taken.group, [taken]);
    }
    await Promise.all(
      [...byGroup].map(async ([group, list]) => {
        try {
          await group.ack(list);
        } catch (error) {
          // Redelivered later; the worker's processed-request record makes that harmless.
          this.deps.logger.warn('command ack failed', {
            deliveryIds: list.map((queued) => queued.deliveryId),
            error: String(error),
          });
        }
      }),
    );
  }

  private track(promise: Promise<void>): void {
    this.work.add(promise);
    const forget = () => void this.work.delete(promise);
    promise.then(forget, forget);
  }

  // ---- reclaiming, dead letters ----

  private startReclaim(): void {
    if (this.reclaiming || this.stopRequested) return;
    this.reclaiming = this.reclaim()
      .then(
        () => {
          this.reclaimFailing = false;
        },
        (error: unknown) => this.onReclaimError(error),
      )
      .finally(() => {
        this.reclaiming = undefined;
      });
  }

  /** One round over every partition in use, each in turn; an error on one spares the others. */
  private async reclaim(): Promise<void> {
    const partitions = await this.deps.queue.partitionsInUse();
    const prune = Date.now() - this.lastPruneAt >= PRUNE_INTERVAL_MS;
    if (prune) this.lastPruneAt = Date.now();
    const held = this.heldIdsByPartition();
    const first = this.reclaimStart % partitions.length;
    this.reclaimStart = first + 1;
    let failure: unknown;
    for (let turn = 0; turn < partitions.length && !this.stopRequested; turn += 1) {
      const group = this.groupOf(partitions[(first + turn) % partitions.length]);
      const { index } = group.partition;
      try {
        const own = index < this.groups.length;
        // A partition beyond this process's count is read here, and only while it holds some.
        if (!own && (await group.isEmpty())) continue;
        await this.reclaimPartition(group, held.get(index) ?? [], prune);
        if (!own && !this.draining.has(index) && !this.stopRequested) {
          this.draining.add(index);
          this.track(this.drain(group));
        }
      } catch (error) {
        if (isNoGroup(error)) await this.tryEnsureGroup(group);
        else failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  }

  /**
   * Keeps the entries held claimed, dead-letters the stale ones delivered maxDeliveries times,
   * claims the other stale ones (as many as there are free slots), prunes idle consumers.
   */
  private async reclaimPartition(
    group: PartitionGroup,
    held: string[],
    prune: boolean,
  ): Promise<void> {
    if (held.length > 0) await group.keepClaimed(held);

    const { toDeadLetter, toClaim, deliveriesById } = await group.staleEntries(held);

    if (toDeadLetter.length > 0) {
      const moved = await group.deadLetterStale(toDeadLetter);
      for (const [entryId, payload, deliveries] of moved) {
        this.notifyDeadLetter(group, entryId, payload, deliveries);
      }
    }

    const free = this.freeSlots();
    if (free > 0 && toClaim.length > 0 && !this.stopRequested) {
      const claimed = await group.claim(toClaim.slice(0, free));
      for (const entry of claimed) {
        if (entry) this.take(group, entry, (deliveriesById.get(entry[0]) ?? 0) + 1);
      }
    }

    if (prune) await group.pruneIdleConsumers();
  }

  /** Entry ids this consumer is responsible for right now (running or waiting for a slot). */
  private heldIdsByPartition(): Map<number, string[]> {
    const held = new Map<number, string[]>();
    for (const taken of [...this.running.values(), ...this.queued]) {
      const ids = held.get(taken.group.partition.index);
      if (ids) ids.push(taken.entryId);
      else held.set(taken.group.partition.index, [taken.entryId]);
    }
    return held;
  }

  private onReclaimError(error: unknown): void {
    if (this.reclaimFailing) return;
    this.reclaimFailing = true;
    this.deps.logger.warn('command reclaim failed; retrying', {
      consumerId: this.options.consumerId,
      error: String(error),
    });
  }

  private notifyDeadLetter(
    group: PartitionGroup,
    entryId: string,
    payload: string,
    deliveries: number,
  ): void {
    const command = parseCommand(payload);
    if (!command) return;
    const deliveryId = group.deliveryIdOf(entryId);
    const dead: QueuedCommand = { deliveryId, command, deliveries };
    this.track(
      Promise.resolve()
        .then(() => this.options.onDeadLetter(dead))
        .catch((error: unknown) => {
          // Already dead-lettered; a failing callback cannot put it back.
          this.deps.logger.warn('onDeadLetter failed', { deliveryId, error: String(error) });
        }),
    );
  }

  private async deadLetterAtOnce(group: PartitionGroup, entryId: string): Promise<void> {
    try {
      await group.deadLetterNow(entryId);
    } catch (error) {
      const deliveryId = group.deliveryIdOf(entryId);
      this.deps.logger.warn('dead-lettering failed', { deliveryId, error: String(error) });
    }
  }

  // ---- stopping ----

  private async shutdown(): Promise<void> {
    this.stopRequested = true;
    clearInterval(this.reclaimTimer);
    this.wakeReaders();
    await this.interruptReads();
    await this.reclaiming;
    // Work may finish and start queued commands while we wait: loop until none is left.
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
    await Promise.all(this.deps.blocking.map((connection) => closeConnection(connection)));
    this.onStopped();
  }

  /**
   * Ends every blocked read early. With several partitions the blocked reads are XREADs,
   * which take nothing: their connections are simply dropped. With one, CLIENT UNBLOCK makes
   * the XREADGROUP return empty, so no entry is delivered to a consumer that is going away; if
   * that is not possible (Redis down), the connection is dropped after at most one BLOCK period.
   */
  private async interruptReads(): Promise<void> {
    const { commands, blocking, queue } = this.deps;
    if (queue.partitions.length > 1) {
      for (const connection of blocking) connection.disconnect();
      await Promise.all(this.readLoops);
      return;
    }
    if (commands.status === 'ready') {
      await Promise.all(
        this.blockingClientIds.map((clientId) =>
          clientId === undefined
            ? undefined
            : commands.call('CLIENT', ['UNBLOCK', clientId]).catch(() => undefined),
        ),
      );
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), BLOCK_MS + 500);
    });
    const readsEnded = Promise.all(this.readLoops).then(() => false);
    const stillBlocked = await Promise.race([readsEnded, timedOut]);
    clearTimeout(timer);
    if (stillBlocked) {
      for (const connection of blocking) connection.disconnect();
      await readsEnded;
    }
  }
}
