import { engineErrors } from '../../errors';
import type { CommandEnvelope } from '../../types';
import { validateConsumeOptions } from '../limits';
import type {
  AdmissionLimits,
  CommandConsumer,
  CommandHandler,
  ConsumeOptions,
  QueuedCommand,
} from '../engine';
import { Fifo } from './fifo';
import { StreamIdGenerator } from './streamId';

/** Dead letters kept for inspection; older ones are dropped (Redis: a capped stream). */
const DEAD_LETTER_MAX = 10_000;
/** The reclaim sweep never runs more often than this, whatever claimIdleMs is. */
const MIN_RECLAIM_INTERVAL_MS = 5;

/** A queued command, serialized once so every delivery hands out a fresh copy (as Redis does). */
interface QueueEntry {
  deliveryId: string;
  /** Enqueue order across tokens. */
  seq: number;
  sub: string;
  requestId: string;
  payload: string;
}

/** A delivered, not yet acked command (Redis: an entry of the consumer group's PEL). */
interface PendingEntry extends QueueEntry {
  deliveries: number;
  deliveredAt: number;
  /** True while a handler runs it. Such an entry is never reclaimed: in one process its
   * consumer is known to be alive, so taking it would only run the command twice. */
  inHand: boolean;
}

/**
 * The command queue of the memory engine, a copy of a Redis stream read by one consumer group:
 * `waiting` holds commands never delivered, `pending` those delivered and not acked. Consumers
 * compete for waiting commands; rejected ones are reclaimed by whichever consumer's sweep finds
 * them idle for claimIdleMs, and dead-lettered once they have had maxDeliveries tries.
 * Waiting commands are kept per token, so a consumer whose cap for one token is reached takes
 * the oldest command of another token instead. Admission (queue size, a token's commands in
 * flight) is checked and counted at enqueue, and released at ack or dead letter.
 */
export class CommandQueue {
  private readonly ids = new StreamIdGenerator();
  /** Never-delivered commands by token (Map order: first seen), each oldest first. */
  private readonly waiting = new Map<string, Fifo<QueueEntry>>();
  private waitingCount = 0;
  private seq = 0;
  /** Per token: requestId -> when it stops counting (epoch ms), while limits are in force. */
  private readonly inFlight = new Map<string, Map<string, number>>();
  /** Insertion order is delivery-id order, like the Redis consumer's XPENDING scan. */
  private readonly pending = new Map<string, PendingEntry>();
  private readonly deadLetters = new Fifo<QueuedCommand>();
  private readonly consumers: QueueConsumer[] = [];
  /** Round-robin start, so competing consumers share the work. */
  private nextConsumer = 0;

  /** Queues commands of one token, all or none, after the admission check of `limits`. */
  enqueue(commands: CommandEnvelope[], limits?: AdmissionLimits): void {
    if (commands.length === 0) return;
    const now = Date.now();
    const sub = commands[0].sub;
    const maxQueued = limits?.maxQueued ?? 0;
    if (maxQueued > 0 && this.waitingCount + this.pending.size + commands.length > maxQueued) {
      throw engineErrors.queueFull(maxQueued);
    }
    const maxInFlight = limits?.maxInFlightPerToken ?? 0;
    if (maxInFlight > 0) {
      const held = this.inFlight.get(sub) ?? new Map<string, number>();
      for (const [requestId, until] of held) if (until <= now) held.delete(requestId);
      if (held.size + commands.length > maxInFlight) throw engineErrors.inFlightLimit(maxInFlight);
      for (const { requestId } of commands)
        held.set(requestId, now + (limits?.inFlightLeaseMs ?? 0));
      this.inFlight.set(sub, held);
    }
    let fifo = this.waiting.get(sub);
    if (!fifo) {
      fifo = new Fifo<QueueEntry>();
      this.waiting.set(sub, fifo);
    }
    for (const command of commands) {
      fifo.push({
        deliveryId: this.ids.next(now),
        seq: this.seq++,
        sub,
        requestId: command.requestId,
        payload: JSON.stringify(command),
      });
    }
    this.waitingCount += commands.length;
    this.dispatch();
  }

  consume(handler: CommandHandler, options: ConsumeOptions): CommandConsumer {
    validateConsumeOptions(options);
    const consumer = new QueueConsumer(this, handler, options);
    this.consumers.push(consumer);
    this.dispatch();
    return consumer;
  }

  backlog(): { waiting: number; pending: number; deadLettered: number } {
    return {
      waiting: this.waitingCount,
      pending: this.pending.size,
      deadLettered: this.deadLetters.length,
    };
  }

  /** Stops every consumer and waits for their handlers. */
  async stopAll(): Promise<void> {
    // A copy: each stop() detaches its consumer from this.consumers.
    await Promise.all([...this.consumers].map((consumer) => consumer.stop()));
  }

  /** @internal Called by a consumer as it stops. */
  detach(consumer: QueueConsumer): void {
    const index = this.consumers.indexOf(consumer);
    if (index >= 0) this.consumers.splice(index, 1);
  }

  /** Gives waiting commands to consumers with free capacity, round-robin. */
  dispatch(): void {
    while (this.waitingCount > 0) {
      const taken = this.takeForNextConsumer();
      if (!taken) return;
      const { consumer, entry } = taken;
      const pending: PendingEntry = { ...entry, deliveries: 1, deliveredAt: 0, inHand: false };
      this.pending.set(entry.deliveryId, pending);
      this.deliver(consumer, pending);
    }
  }

  /**
   * @internal The consumer's periodic sweep (Redis: XPENDING + XCLAIM): takes pending commands idle
   * for claimIdleMs, or dead-letters them once they have had maxDeliveries tries.
   */
  reclaimIdle(consumer: QueueConsumer): void {
    const { claimIdleMs, maxDeliveries } = consumer.options;
    const now = Date.now();
    for (const entry of this.pending.values()) {
      if (entry.inHand || now - entry.deliveredAt < claimIdleMs) continue;
      if (entry.deliveries >= maxDeliveries) {
        this.deadLetter(consumer, entry);
        continue;
      }
      if (!consumer.hasCapacity()) break;
      if (!consumer.mayRun(entry.sub)) continue;
      entry.deliveries += 1;
      this.deliver(consumer, entry);
    }
  }

  /** The next consumer (round-robin) with a free slot, and the waiting command it takes. */
  private takeForNextConsumer(): { consumer: QueueConsumer; entry: QueueEntry } | undefined {
    const count = this.consumers.length;
    for (let i = 0; i < count; i += 1) {
      const index = (this.nextConsumer + i) % count;
      const consumer = this.consumers[index];
      if (!consumer.hasCapacity()) continue;
      const entry = this.takeOldestFor(consumer);
      if (entry) {
        this.nextConsumer = (index + 1) % count;
        return { consumer, entry };
      }
    }
    return undefined;
  }

  /** The oldest waiting command of a token this consumer may run one more of. */
  private takeOldestFor(consumer: QueueConsumer): QueueEntry | undefined {
    let oldest: { sub: string; fifo: Fifo<QueueEntry> } | undefined;
    for (const [sub, fifo] of this.waiting) {
      if (!consumer.mayRun(sub)) continue;
      if (!oldest || fifo.at(0).seq < oldest.fifo.at(0).seq) oldest = { sub, fifo };
    }
    if (!oldest) return undefined;
    const entry = oldest.fifo.shift() as QueueEntry;
    if (oldest.fifo.length === 0) this.waiting.delete(oldest.sub);
    this.waitingCount -= 1;
    return entry;
  }

  /** The command no longer counts against its token's in-flight limit. */
  private release(entry: QueueEntry): void {
    const held = this.inFlight.get(entry.sub);
    if (!held) return;
    held.delete(entry.requestId);
    if (held.size === 0) this.inFlight.delete(entry.sub);
  }

  private deliver(consumer: QueueConsumer, entry: PendingEntry): void {
    entry.inHand = true;
    entry.deliveredAt = Date.now();
    const delivery: QueuedCommand = {
      deliveryId: entry.deliveryId,
      command: JSON.parse(entry.payload) as CommandEnvelope,
      deliveries: entry.deliveries,
    };
    consumer.run(
      entry.sub,
      () => consumer.handler(delivery),
      (acked) => {
        entry.inHand = false;
        // Rejected: stays pending, idle since its delivery, until a sweep reclaims it.
        if (acked) {
          this.pending.delete(entry.deliveryId);
          this.release(entry);
        }
        this.dispatch();
      },
    );
  }

  private deadLetter(consumer: QueueConsumer, entry: PendingEntry): void {
    this.pending.delete(entry.deliveryId);
    this.release(entry);
    const dead: QueuedCommand = {
      deliveryId: entry.deliveryId,
      command: JSON.parse(entry.payload) as CommandEnvelope,
      deliveries: entry.deliveries,
    };
    this.deadLetters.push(dead);
    if (this.deadLetters.length > DEAD_LETTER_MAX) this.deadLetters.shift();
    consumer.track(
      Promise.resolve()
        .then(() => consumer.options.onDeadLetter(dead))
        .catch(() => {
          // Already dead-lettered; a failing callback cannot put it back.
        }),
    );
  }
}

/** One consumer: its capacity, its in-flight work and its reclaim timer. */
class QueueConsumer implements CommandConsumer {
  private inFlight = 0;
  /** Running handlers per token, for options.maxPerToken. */
  private readonly byToken = new Map<string, number>();
  private readonly work = new Set<Promise<void>>();
  private readonly reclaimTimer: NodeJS.Timeout;
  private stopping?: Promise<void>;

  constructor(
    private readonly queue: CommandQueue,
    readonly handler: CommandHandler,
    readonly options: ConsumeOptions,
  ) {
    const interval = Math.max(MIN_RECLAIM_INTERVAL_MS, Math.floor(options.claimIdleMs / 2));
    this.reclaimTimer = setInterval(() => this.queue.reclaimIdle(this), interval);
    // The sweep alone must not keep the process alive.
    this.reclaimTimer.unref();
  }

  hasCapacity(): boolean {
    return !this.stopping && this.inFlight < this.options.concurrency;
  }

  /** Below its per-token cap for this token (always, without a cap). */
  mayRun(sub: string): boolean {
    const cap = this.options.maxPerToken;
    return cap === undefined || (this.byToken.get(sub) ?? 0) < cap;
  }

  /**
   * Runs a handler in a later microtask (so the enqueuer never runs handler code), counting it
   * against the concurrency limit until it settles; `settled` gets whether it resolved.
   */
  run(sub: string, task: () => Promise<void>, settled: (resolved: boolean) => void): void {
    this.inFlight += 1;
    this.byToken.set(sub, (this.byToken.get(sub) ?? 0) + 1);
    this.track(
      Promise.resolve()
        .then(task)
        .then(
          () => true,
          () => false,
        )
        .then((resolved) => {
          this.inFlight -= 1;
          const left = (this.byToken.get(sub) ?? 1) - 1;
          if (left > 0) this.byToken.set(sub, left);
          else this.byToken.delete(sub);
          settled(resolved);
        }),
    );
  }

  track(promise: Promise<void>): void {
    this.work.add(promise);
    const forget = () => void this.work.delete(promise);
    promise.then(forget, forget);
  }

  stop(): Promise<void> {
    if (!this.stopping) {
      clearInterval(this.reclaimTimer);
      this.queue.detach(this);
      this.stopping = this.drain();
    }
    return this.stopping;
  }

  private async drain(): Promise<void> {
    // Work may finish and (for dead letters) start more while we wait: loop until none is left.
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
  }
}
