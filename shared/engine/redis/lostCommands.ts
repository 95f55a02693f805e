import type { Logger } from '../../logger';
import type { CommandEnvelope } from '../../types';
import type { QueuedEntries } from './commandQueue';
import type { RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/**
 * How long after its enqueue a command is watched. Redis replicates asynchronously: a failover
 * can lose only what the promoted replica had not yet received, i.e. the last moments of writes
 * before the master died (its replication lag, normally milliseconds). A minute covers that with
 * a wide margin; the time the failover itself takes does not count (see `suspectLoss`).
 */
export const LOSS_WATCH_WINDOW_MS = 60_000;
/** At most this many commands are watched per process (the oldest are let go first). */
export const LOSS_WATCH_MAX = 10_000;
/**
 * How often the watch lets go of the commands a worker finished (their done-key is set): one
 * batch of EXISTS for all watched commands, so that a later loss of the done-key (a restart
 * without persistence) is not mistaken for a loss of the command, whose result went out.
 */
export const SETTLE_INTERVAL_MS = 2000;
/** A check that failed while a loss is suspected (Redis still down) is tried again this much later. */
export const CHECK_RETRY_MS = 1000;

/** What a listener gets for each lost command: the envelope, its message without params. */
export type LostCommandsListener = (commands: CommandEnvelope[]) => void;

interface Watched {
  /** The envelope as enqueued, its message reduced to id and method (what an answer needs). */
  command: CommandEnvelope;
  stream: string;
  entryId: string;
  /** Epoch ms of the enqueue. */
  at: number;
}

/**
 * The commands this process enqueued recently, and the check that tells which of them a Redis
 * failover (or a restart without persistence) lost. Cheap on the hot path: `remember` is an
 * array push (the enqueue script already returns the entry ids); Redis is asked in batches, off
 * the request path: every SETTLE_INTERVAL_MS, which commands have their done-key (those are let
 * go: their result was published with it, in one step), and after a reconnect, which are lost.
 *
 * A command is lost when its stream entry is gone and its done-key is not set: a worker sets
 * the done-key (with the final result, or before acking a duplicate or a notification) before
 * its ack deletes the entry, and replication keeps that order, so a server that lacks both
 * never had the command, nor the record that it was finished (a result published in the same
 * unreplicated moment may still have gone out live: README, Redis modes).
 */
export class LostCommandWatch {
  /** Oldest first, from `first` on (those before were let go, and are cut off the array in bulk). */
  private watched: Watched[] = [];
  private first = 0;
  /** The connection dropped since the last check: keep every entry, however old, until then. */
  private suspect = false;
  private checking?: Promise<void>;
  private checkAgain = false;
  private settling = false;
  private settleTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly listeners: LostCommandsListener[] = [];

  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
    private readonly logger: Logger,
    private readonly windowMs = LOSS_WATCH_WINDOW_MS,
    private readonly maxWatched = LOSS_WATCH_MAX,
  ) {}

  onLost(listener: LostCommandsListener): void {
    this.listeners.push(listener);
  }

  /** Starts letting go of finished commands every SETTLE_INTERVAL_MS. */
  start(intervalMs = SETTLE_INTERVAL_MS): void {
    this.settleTimer ??= setInterval(() => void this.settle(), intervalMs).unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.settleTimer);
    clearTimeout(this.retryTimer);
    this.settleTimer = this.retryTimer = undefined;
  }

  /** Watches commands just queued (in order, as `queued` lists their entries). */
  remember(commands: CommandEnvelope[], queued: QueuedEntries, now = Date.now()): void {
    commands.forEach((command, i) => {
      const entryId = queued.entryIds[i];
      if (entryId === undefined) return;
      const { id, method } = command.message;
      const message = id === undefined ? { method } : { id, method };
      this.watched.push({
        command: { ...command, message },
        stream: queued.stream,
        entryId,
        at: now,
      });
    });
    this.prune(now);
  }

  /**
   * The connection to Redis dropped: what was watched stays watched until the next check, even
   * past the window (a failover takes longer than the replication lag it may lose).
   */
  suspectLoss(): void {
    this.suspect = true;
  }

  /** True from a dropped connection until a check succeeded. */
  get lossSuspected(): boolean {
    return this.suspect;
  }

  /**
   * Asks Redis which watched commands it no longer has (after a reconnect), tells the listeners
   * about those and stops watching them. One check at a time; one asked meanwhile runs after.
   * A check that fails (Redis still or again down) leaves everything watched, and is tried again
   * CHECK_RETRY_MS later while a loss is suspected.
   */
  check(): Promise<void> {
    if (this.checking) {
      this.checkAgain = true;
      return this.checking;
    }
    const run = async () => {
      do {
        this.checkAgain = false;
        await this.checkOnce();
      } while (this.checkAgain);
    };
    this.checking = run().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  /** Commands watched now (for tests). */
  get size(): number {
    return this.watched.length - this.first;
  }

  private async checkOnce(): Promise<void> {
    const snapshot = this.watched.slice(this.first);
    if (snapshot.length === 0) {
      this.suspect = false;
      return;
    }
    let present: boolean[];
    try {
      // Each command is one XRANGE of its entry and one EXISTS of its done-key; the commands
      // connection pipelines them (a Cluster client sends each to its slot's node).
      present = await Promise.all(
        snapshot.map(async ({ command, stream, entryId }) => {
          const [entries, done] = await Promise.all([
            this.redis.xrange(stream, entryId, entryId),
            this.redis.exists(this.keys.processed(command.requestId)),
          ]);
          return entries.length > 0 || done === 1;
        }),
      );
    } catch (error) {
      this.logger.debug('redis: could not check for lost commands yet; trying again', {
        watched: snapshot.length,
        error: error instanceof Error ? error.message : String(error),
      });
      if (this.suspect && !this.stopped) {
        this.retryTimer ??= setTimeout(() => {
          this.retryTimer = undefined;
          void this.check();
        }, CHECK_RETRY_MS).unref();
      }
      return;
    }
    const lost = new Set(snapshot.filter((_, i) => !present[i]));
    this.suspect = false;
    if (lost.size > 0) {
      this.watched = this.watched.slice(this.first).filter((entry) => !lost.has(entry));
      this.first = 0;
    }
    this.prune(Date.now());
    if (lost.size === 0) return;
    const commands = [...lost].map((entry) => entry.command);
    this.logger.warn('redis lost commands it had accepted (failover or restart)', {
      lost: commands.length,
      checked: snapshot.length,
    });
    for (const listener of this.listeners) listener(commands);
  }

  /** Lets go of the commands a worker finished (done-key set); not while a loss is suspected. */
  private async settle(): Promise<void> {
    if (this.suspect || this.checking || this.settling || this.size === 0) return;
    this.settling = true;
    try {
      const snapshot = this.watched.slice(this.first);
      const done = await Promise.all(
        snapshot.map(({ command }) => this.redis.exists(this.keys.processed(command.requestId))),
      );
      const finished = new Set(snapshot.filter((_, i) => done[i] === 1));
      if (finished.size === 0) return;
      this.watched = this.watched.slice(this.first).filter((entry) => !finished.has(entry));
      this.first = 0;
    } catch {
      // Redis is down: a reconnect's check follows.
    } finally {
      this.settling = false;
    }
  }

  /** Lets go of the oldest: past the window (unless a loss is suspected), past the maximum. */
  private prune(now: number): void {
    const { watched } = this;
    this.first = Math.max(this.first, watched.length - this.maxWatched);
    if (!this.suspect) {
      while (this.first < watched.length && watched[this.first].at < now - this.windowMs) {
        this.first += 1;
      }
    }
    // Dropped in bulk once half the array is let go: pruning stays O(1) per command on average.
    if (this.first > 1024 && this.first * 2 > watched.length) {
      this.watched = watched.slice(this.first);
      this.first = 0;
    }
  }
}
