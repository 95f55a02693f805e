import type Redis from 'ioredis';
import type { Logger } from '../../logger';
import type { EngineEvent, EventListener, Subscription } from '../engine';
import type { RedisKeys } from './keys';

/**
 * The local listeners of one channel, and the promise that its Redis subscription is confirmed.
 * One listener (a connection's own topic, the common case) is held without a Set: with 10,000
 * connections the per-channel state is most of what an idle stream costs here.
 */
interface TopicListeners {
  readonly channel: string;
  listeners: TopicSubscription | Set<TopicSubscription> | null;
  readonly subscribed: Promise<void>;
}

/**
 * One subscribe() call: its listener and the channels it joined. An object rather than closures,
 * so an idle subscription is one small object; being its own listener entry, one function
 * subscribed twice stays two entries.
 */
class TopicSubscription implements Subscription {
  private closed = false;

  constructor(
    private readonly subscriber: Subscriber,
    readonly listener: EventListener,
    /** A single channel (the common case) or several. */
    private readonly joined: TopicListeners | TopicListeners[],
  ) {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (Array.isArray(this.joined)) {
      for (const topicListeners of this.joined)
        this.subscriber.removeListener(topicListeners, this);
    } else {
      this.subscriber.removeListener(this.joined, this);
    }
  }
}

/** Channels to SUBSCRIBE in the next flush, and the promise their subscribers wait on. */
interface SubscribeBatch {
  readonly channels: string[];
  readonly confirmed: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

const NEWLINE = 10;

/** Channels per SUBSCRIBE/UNSUBSCRIBE command: few round trips, no giant single command. */
const CHANNELS_PER_COMMAND = 5000;

/**
 * All of a pod's subscriptions on one subscriber connection: one Redis subscription per topic,
 * shared by every local listener of that topic (ref-counted). SUBSCRIBE and UNSUBSCRIBE are
 * collected over the current turn of the event loop and sent as a few multi-channel commands,
 * so 20,000 connections opening at once cost a handful of round trips, not 20,000.
 *
 * After a reconnect ioredis re-subscribes every channel it had (autoResubscribe); the local
 * listener map is untouched by it, so listeners keep receiving.
 */
export class Subscriber {
  private readonly byChannel = new Map<string, TopicListeners>();
  /**
   * Cluster: shard channels (SSUBSCRIBE on the slot's master, one channel per command since a
   * command's channels must share a slot). Single Redis: plain channels, many per command.
   */
  private readonly sharded: boolean;
  private readonly channelsPerCommand: number;
  private subscribeBatch?: SubscribeBatch;
  private readonly unsubscribeChannels = new Set<string>();
  /**
   * Channels whose UNSUBSCRIBE has not settled yet. A Cluster client retries a command until a
   * shard's new master answers, so an unsubscribe sent while a master fails over may land after
   * a later subscribe to the same channel (a stream resumed meanwhile) and cancel it: the
   * subscribe waits for it instead.
   */
  private readonly unsubscribing = new Map<string, Promise<void>>();
  private flushScheduled = false;

  constructor(
    private readonly connection: Redis,
    private readonly keys: RedisKeys,
    private readonly logger: Logger,
  ) {
    this.sharded = keys.hashTags;
    this.channelsPerCommand = this.sharded ? 1 : CHANNELS_PER_COMMAND;
    connection.on(this.sharded ? 'smessage' : 'message', (channel: string, message: string) =>
      this.deliver(channel, message),
    );
  }

  async subscribe(topics: string[], listener: EventListener): Promise<Subscription> {
    const joined: TopicListeners[] = [];
    for (const topic of new Set(topics)) {
      const channel = this.keys.channel(topic);
      let topicListeners = this.byChannel.get(channel);
      if (!topicListeners) {
        const subscribed = this.requestSubscribe(channel);
        topicListeners = { channel, listeners: null, subscribed };
        this.byChannel.set(channel, topicListeners);
      }
      joined.push(topicListeners);
    }
    const subscription = new TopicSubscription(
      this,
      listener,
      joined.length === 1 ? joined[0] : joined,
    );
    const confirmations = new Set<Promise<void>>();
    for (const topicListeners of joined) {
      addListener(topicListeners, subscription);
      confirmations.add(topicListeners.subscribed);
    }
    try {
      await (confirmations.size === 1 ? joined[0].subscribed : Promise.all(confirmations));
    } catch (error) {
      await subscription.close();
      throw error;
    }
    return subscription;
  }

  /** Drops every local listener (the connection is about to close). */
  clear(): void {
    this.byChannel.clear();
    this.unsubscribeChannels.clear();
    this.unsubscribing.clear();
  }

  private deliver(channel: string, message: string): void {
    const topicListeners = this.byChannel.get(channel);
    if (!topicListeners) return;
    // "<id>\n<event>\n<data>" (publishEvent.lua); data may itself hold newlines. A copy of
    // another topic's event (PublishOptions.copyTo) is "\n<topic>\n" followed by that.
    let topic: string | undefined;
    let start = 0;
    if (message.charCodeAt(0) === NEWLINE) {
      const topicEnd = message.indexOf('\n', 1);
      if (topicEnd < 0) {
        this.logger.warn('malformed event payload ignored', { channel });
        return;
      }
      topic = message.slice(1, topicEnd);
      start = topicEnd + 1;
    }
    const idEnd = message.indexOf('\n', start);
    const eventEnd = message.indexOf('\n', idEnd + 1);
    if (idEnd < 0 || eventEnd < 0) {
      this.logger.warn('malformed event payload ignored', { channel });
      return;
    }
    // Frozen: the same object goes to every listener, none may alter it.
    const event: EngineEvent = Object.freeze({
      topic: topic ?? this.keys.topicOfChannel(channel),
      id: message.slice(start, idEnd),
      event: message.slice(idEnd + 1, eventEnd),
      data: message.slice(eventEnd + 1),
    });
    const listeners = topicListeners.listeners;
    if (listeners instanceof Set) {
      for (const subscription of listeners) this.notify(subscription, event);
    } else if (listeners) {
      this.notify(listeners, event);
    }
  }

  private notify(subscription: TopicSubscription, event: EngineEvent): void {
    try {
      subscription.listener(event);
    } catch (error) {
      // A listener's failure is its own: the other listeners still get the event.
      this.logger.warn('event listener threw', { topic: event.topic, error: String(error) });
    }
  }

  /** Called by a closing subscription: the channel is released with its last listener. */
  removeListener(topicListeners: TopicListeners, subscription: TopicSubscription): void {
    const listeners = topicListeners.listeners;
    if (listeners instanceof Set) {
      listeners.delete(subscription);
      if (listeners.size > 0) return;
    } else if (listeners !== subscription) {
      return;
    }
    topicListeners.listeners = null;
    // Only the current holder of the channel may release it (a failed batch may have replaced it).
    if (this.byChannel.get(topicListeners.channel) !== topicListeners) return;
    this.byChannel.delete(topicListeners.channel);
    this.unsubscribeChannels.add(topicListeners.channel);
    this.scheduleFlush();
  }

  private requestSubscribe(channel: string): Promise<void> {
    if (!this.subscribeBatch) this.subscribeBatch = newBatch();
    this.subscribeBatch.channels.push(channel);
    this.scheduleFlush();
    return this.subscribeBatch.confirmed;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate, not nextTick: gathers everything asked for while handling this I/O turn.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    // Unsubscribes go first: a channel released and taken again in one turn ends subscribed.
    const released = [...this.unsubscribeChannels].filter(
      (channel) => !this.byChannel.has(channel),
    );
    this.unsubscribeChannels.clear();
    for (const chunk of chunks(released, this.channelsPerCommand)) {
      const sent = this.sharded
        ? this.connection.sunsubscribe(...chunk)
        : this.connection.unsubscribe(...chunk);
      const settled = sent.then(
        () => undefined,
        (error: unknown) => {
          // Harmless: a stray subscription only delivers messages nobody listens to.
          this.logger.debug('unsubscribe failed', { error: String(error) });
        },
      );
      for (const channel of chunk) this.unsubscribing.set(channel, settled);
      void settled.then(() => {
        for (const channel of chunk) {
          if (this.unsubscribing.get(channel) === settled) this.unsubscribing.delete(channel);
        }
      });
    }

    const batch = this.subscribeBatch;
    this.subscribeBatch = undefined;
    if (!batch) return;
    const sent = chunks(batch.channels, this.channelsPerCommand).map((chunk) => {
      const send = () =>
        this.sharded ? this.connection.ssubscribe(...chunk) : this.connection.subscribe(...chunk);
      const pending = chunk.flatMap((channel) => this.unsubscribing.get(channel) ?? []);
      return pending.length > 0 ? Promise.all(pending).then(send) : send();
    });
    Promise.all(sent).then(
      () => batch.resolve(),
      (error: unknown) => {
        // Forget the topics of this batch, so the next subscriber asks Redis again.
        for (const channel of batch.channels) {
          if (this.byChannel.get(channel)?.subscribed === batch.confirmed) {
            this.byChannel.delete(channel);
          }
        }
        batch.reject(error);
      },
    );
  }
}

/** Adds a listener to a channel: a Set only from the second listener on. */
function addListener(topicListeners: TopicListeners, subscription: TopicSubscription): void {
  const listeners = topicListeners.listeners;
  if (listeners === null) topicListeners.listeners = subscription;
  else if (listeners instanceof Set) listeners.add(subscription);
  else topicListeners.listeners = new Set([listeners, subscription]);
}

function newBatch(): SubscribeBatch {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const confirmed = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers handle the rejection; this keeps a batch nobody awaits from being "unhandled".
  confirmed.catch(() => undefined);
  return { channels: [], confirmed, resolve, reject };
}

function chunks<T>(items: T[], size: number): T[][] {
  const result: T[][] = [];
  for (let i = 0; i < items.length; i += size) result.push(items.slice(i, i + size));
  return result;
}
