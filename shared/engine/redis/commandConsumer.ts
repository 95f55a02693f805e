// Over 450 lines: one Redis consumer loop (read, fair slots, reclaim, dead letters, acks) that only reads well whole.
import type Redis from 'ioredis';
import type { Logger } from '../../logger';
import type { CommandEnvelope } from '../../types';
import type { CommandConsumer, CommandHandler, ConsumeOptions, QueuedCommand } from '../engine';
import { DEAD_LETTER_MAX_LEN, type CommandQueue } from './commandQueue';
import { closeConnection } from './connections';
import { COMMAND_GROUP, type RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/** How long one XREADGROUP waits for new commands; also bounds how long stop() can take. */
const BLOCK_MS = 1000;
/** Stale pending entries looked at per reclaim round. */
const PENDING_SCAN_COUNT = 100;
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
/** Consumers of the group with nothing pending and idle this long are forgotten... */
const IDLE_CONSUMER_MS = 60 * 60 * 1000;
/** ...checked this often. */
const PRUNE_INTERVAL_MS = 5 * 60 * 1000;

/** Raw stream entry: [id, [field, value, ...]] (fields null for an entry deleted meanwhile). */
type StreamEntry = [string, string[] | null];
/** XREADGROUP reply: [[stream, entries]]. */
type ReadReply = [string, StreamEntry[]][];
/** Extended XPENDING reply row: [id, consumer, idle ms, delivery count]. */
type PendingRow = [string, string, number, number];
/** deadLetterCommands.lua reply row. */
type DeadLetterRow = [string, string, number];

/** Commands whose handlers finished in one turn, and when their acks were sent. */
interface AckBatch {
  commands: QueuedCommand[];
  done: Promise<void>;
}

export interface ConsumerDeps {
  /** Shared command connection: acks, reclaims, CLIENT UNBLOCK. */
  commands: ScriptedRedis;
  /** This consumer's own connection, for the blocking XREADGROUP only. */
  blocking: Redis;
  keys: RedisKeys;
  queue: CommandQueue;
  logger: Logger;
}

/**
 * One worker's consumer of the command stream:
 * - a read loop on its own connection: XREADGROUP ... BLOCK for as many commands as it has free
 *   slots, handlers run at most `concurrency` at once, at most `maxPerToken` of one token
 *   (the others of that token wait in hand, oldest first, while other tokens' commands start);
 *   resolved => XACK + XDEL + in-flight release (the commands finished in one turn together),
 *   rejected => the entry stays pending;
 * - a reclaim round every claimIdleMs/3: keeps the entries it holds claimed (a slow handler is
 *   not a dead worker), moves entries delivered maxDeliveries times to the dead-letter stream,
 *   and XCLAIMs entries idle for claimIdleMs (left by a dead worker or a failed handler).
 * Redis errors are logged and retried; nothing here throws into the process.
 */
export class RedisCommandConsumer implements CommandConsumer {
  /** Taken (delivered or claimed) but waiting for a free slot. */
  private readonly queued: QueuedCommand[] = [];
  /** Delivery ids whose handler is running. */
  private readonly running = new Set<string>();
  /** Running handlers per token (sub), for the per-token cap. */
  private readonly runningByToken = new Map<string, number>();
  /** Handler runs and dead-letter callbacks, awaited by stop(). */
  private readonly work = new Set<Promise<void>>();
  private readonly readLoop: Promise<void>;
  private readonly reclaimTimer: NodeJS.Timeout;
  private reclaiming?: Promise<void>;
  private reclaimFailing = false;
  private lastPruneAt = 0;
  private stopRequested = false;
  private stopping?: Promise<void>;
  /** Wakes the read loop from waiting for a slot or from a retry delay. */
  private wakeReader?: () => void;
  /** CLIENT ID of the blocking connection, to interrupt its XREADGROUP on stop. */
  private blockingClientId?: number;
  /** Acks gathered in this turn, sent together (see ack()). */
  private acks?: AckBatch;

  constructor(
    private readonly deps: ConsumerDeps,
    private readonly handler: CommandHandler,
    private readonly options: ConsumeOptions,
    private readonly onStopped: () => void,
  ) {
    deps.blocking.on('close', () => (this.blockingClientId = undefined));
    this.readLoop = this.read();
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

  private async read(): Promise<void> {
    const { blocking, keys, logger } = this.deps;
    let failures = 0;
    while (!this.stopRequested) {
      const free = this.freeSlots();
      if (free <= 0) {
        await this.pause();
        continue;
      }
      try {
        if (this.blockingClientId === undefined) {
          this.blockingClientId = Number(await blocking.call('CLIENT', ['ID']));
        }
        const reply = (await blocking.call('XREADGROUP', [
          'GROUP',
          COMMAND_GROUP,
          this.options.consumerId,
          'COUNT',
          free,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          keys.commands,
          '>',
        ])) as ReadReply | null;
        failures = 0;
        for (const [, entries] of reply ?? []) {
          for (const entry of entries) this.take(entry, 1);
        }
      } catch (error) {
        if (this.stopRequested) break;
        if (isNoGroup(error) && (await this.tryEnsureGroup())) continue;
        failures += 1;
        if (failures === 1) {
          logger.warn('command read failed; retrying', {
            consumerId: this.options.consumerId,
            error: String(error),
          });
        }
        await this.pause(Math.min(100 * 2 ** (failures - 1), MAX_RETRY_DELAY_MS));
      }
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
    return Math.min(concurrency - this.running.size - runnable, concurrency * HELD_FACTOR - held);
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
        if (this.wakeReader === done) this.wakeReader = undefined;
        resolve();
      };
      this.wakeReader = done;
    });
  }

  private async tryEnsureGroup(): Promise<boolean> {
    try {
      await this.deps.queue.ensureGroup();
      return true;
    } catch {
      return false;
    }
  }

  // ---- running handlers ----

  private take(entry: StreamEntry, deliveries: number): void {
    const [deliveryId, fields] = entry;
    if (!fields) return;
    const command = parseCommand(fieldValue(fields, 'c'));
    if (!command) {
      this.deps.logger.error('unreadable command moved to the dead-letter stream', { deliveryId });
      this.track(this.deadLetterAtOnce(deliveryId));
      return;
    }
    this.queued.push({ deliveryId, command, deliveries });
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

  private run(queued: QueuedCommand): void {
    const { deliveryId } = queued;
    const token = queued.command.sub;
    this.running.add(deliveryId);
    this.runningByToken.set(token, (this.runningByToken.get(token) ?? 0) + 1);
    const task = Promise.resolve()
      .then(() => this.handler(queued))
      .then(
        () => this.ack(queued),
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
        this.wakeReader?.();
      });
    this.track(task);
  }

  /**
   * Acks with every other command finished in this turn of the event loop: one script call
   * (ackCommands.lua) for all of them.
   */
  private ack(queued: QueuedCommand): Promise<void> {
    if (!this.acks) {
      const batch: AckBatch = { commands: [], done: Promise.resolve() };
      batch.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.acks = undefined;
        return this.sendAcks(batch.commands);
      });
      this.acks = batch;
    }
    this.acks.commands.push(queued);
    return this.acks.done;
  }

  private async sendAcks(batch: QueuedCommand[]): Promise<void> {
    const { commands, keys, logger } = this.deps;
    const inFlightKeys: string[] = [];
    const keyIndex = new Map<string, number>();
    const args: (string | number)[] = [];
    for (const { deliveryId, command } of batch) {
      const key = keys.inFlight(command.sub);
      let index = keyIndex.get(key);
      if (index === undefined) {
        inFlightKeys.push(key);
        // KEYS[1] is the command stream: the sets start at 2.
        index = inFlightKeys.length + 1;
        keyIndex.set(key, index);
      }
      args.push(index, deliveryId, command.requestId);
    }
    try {
      await commands.ackCommands(
        1 + inFlightKeys.length,
        keys.commands,
        ...inFlightKeys,
        COMMAND_GROUP,
        ...args,
      );
    } catch (error) {
      // Redelivered later; the worker's processed-request record makes that harmless.
      logger.warn('command ack failed', {
        deliveryIds: batch.map((queued) => queued.deliveryId),
        error: String(error),
      });
    }
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

  private async reclaim(): Promise<void> {
    const { commands, keys } = this.deps;
    const { consumerId, claimIdleMs, maxDeliveries } = this.options;
    const held = this.heldIds();
    if (held.size > 0) {
      await commands.keepCommandsClaimed(keys.commands, COMMAND_GROUP, consumerId, ...held);
    }

    const stale = (await commands.xpending(
      keys.commands,
      COMMAND_GROUP,
      'IDLE',
      claimIdleMs,
      '-',
      '+',
      PENDING_SCAN_COUNT,
    )) as PendingRow[];
    const toDeadLetter: string[] = [];
    const toClaim: string[] = [];
    const deliveriesById = new Map<string, number>();
    for (const [id, , , deliveries] of stale) {
      if (held.has(id)) continue;
      deliveriesById.set(id, deliveries);
      if (deliveries >= maxDeliveries) toDeadLetter.push(id);
      else toClaim.push(id);
    }

    if (toDeadLetter.length > 0) {
      const moved = (await commands.deadLetterCommands(
        keys.commands,
        keys.deadLetters,
        COMMAND_GROUP,
        claimIdleMs,
        maxDeliveries,
        DEAD_LETTER_MAX_LEN,
        keys.inFlightPrefix,
        ...toDeadLetter,
      )) as DeadLetterRow[];
      for (const [deliveryId, payload, deliveries] of moved) {
        this.notifyDeadLetter(deliveryId, payload, deliveries);
      }
    }

    const free = this.freeSlots();
    if (free > 0 && toClaim.length > 0 && !this.stopRequested) {
      // min-idle-time again: an entry another worker claimed meanwhile is not taken twice.
      const claimed = (await commands.call('XCLAIM', [
        keys.commands,
        COMMAND_GROUP,
        consumerId,
        claimIdleMs,
        ...toClaim.slice(0, free),
      ])) as (StreamEntry | null)[];
      for (const entry of claimed) {
        if (entry) this.take(entry, (deliveriesById.get(entry[0]) ?? 0) + 1);
      }
    }

    if (Date.now() - this.lastPruneAt >= PRUNE_INTERVAL_MS) {
      this.lastPruneAt = Date.now();
      await commands.pruneIdleConsumers(keys.commands, COMMAND_GROUP, IDLE_CONSUMER_MS);
    }
  }

  /** Ids this consumer is responsible for right now (running or waiting for a slot). */
  private heldIds(): Set<string> {
    const ids = new Set(this.running);
    for (const queued of this.queued) ids.add(queued.deliveryId);
    return ids;
  }

  private async onReclaimError(error: unknown): Promise<void> {
    if (isNoGroup(error)) {
      await this.tryEnsureGroup();
      return;
    }
    if (this.reclaimFailing) return;
    this.reclaimFailing = true;
    this.deps.logger.warn('command reclaim failed; retrying', {
      consumerId: this.options.consumerId,
      error: String(error),
    });
  }

  private notifyDeadLetter(deliveryId: string, payload: string, deliveries: number): void {
    const command = parseCommand(payload);
    if (!command) return;
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

  private async deadLetterAtOnce(deliveryId: string): Promise<void> {
    const { commands, keys } = this.deps;
    try {
      await commands.deadLetterCommands(
        keys.commands,
        keys.deadLetters,
        COMMAND_GROUP,
        0,
        0,
        DEAD_LETTER_MAX_LEN,
        keys.inFlightPrefix,
        deliveryId,
      );
    } catch (error) {
      this.deps.logger.warn('dead-lettering failed', { deliveryId, error: String(error) });
    }
  }

  // ---- stopping ----

  private async shutdown(): Promise<void> {
    this.stopRequested = true;
    clearInterval(this.reclaimTimer);
    this.wakeReader?.();
    await this.interruptRead();
    await this.reclaiming;
    // Work may finish and start queued commands while we wait: loop until none is left.
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
    await closeConnection(this.deps.blocking);
    this.onStopped();
  }

  /**
   * Ends a blocked XREADGROUP early: CLIENT UNBLOCK makes it return empty, so no entry is
   * delivered to a consumer that is going away. If that is not possible (Redis down), the
   * blocking connection is dropped after at most one BLOCK period.
   */
  private async interruptRead(): Promise<void> {
    const { commands, blocking } = this.deps;
    const clientId = this.blockingClientId;
    if (clientId !== undefined && commands.status === 'ready') {
      await commands.call('CLIENT', ['UNBLOCK', clientId]).catch(() => undefined);
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), BLOCK_MS + 500);
    });
    const stillBlocked = await Promise.race([this.readLoop.then(() => false), timedOut]);
    clearTimeout(timer);
    if (stillBlocked) {
      blocking.disconnect();
      await this.readLoop;
    }
  }
}

function isNoGroup(error: unknown): boolean {
  return String(error).includes('NOGROUP');
}

function fieldValue(fields: string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function parseCommand(payload: string | undefined): CommandEnvelope | undefined {
  if (payload === undefined) return undefined;
  try {
    return JSON.parse(payload) as CommandEnvelope;
  } catch {
    return undefined;
  }
}
