import type { EngineEvent, EventListener, Subscription } from '../engine';
import { Fifo } from './fifo';

/** A subscription's listener; an object so one function subscribed twice stays two entries. */
interface ListenerEntry {
  readonly listener: EventListener;
}

/** Live fan-out of published events to in-process listeners (Redis: PUBLISH/SUBSCRIBE). */
export class LocalPubSub {
  private readonly listenersByTopic = new Map<string, Set<ListenerEntry>>();
  /** Events waiting for fan-out, each with the topic whose listeners get it; see deliver(). */
  private readonly outbox = new Fifo<[string, EngineEvent]>();
  private delivering = false;

  subscribe(topics: string[], listener: EventListener): Subscription {
    const entry: ListenerEntry = { listener };
    const uniqueTopics = [...new Set(topics)];
    for (const topic of uniqueTopics) {
      let listeners = this.listenersByTopic.get(topic);
      if (!listeners) {
        listeners = new Set();
        this.listenersByTopic.set(topic, listeners);
      }
      listeners.add(entry);
    }
    let closed = false;
    return {
      close: async () => {
        if (closed) return;
        closed = true;
        for (const topic of uniqueTopics) this.removeListener(topic, entry);
      },
    };
  }

  /**
   * Hands the event to every listener of its topic, synchronously. A listener that publishes
   * in turn only queues its event: the outermost call delivers the queue in publish order, so
   * every listener sees a topic's events in id order, as over Redis. `toTopic`: whose listeners
   * get it (another topic's for a copy, see PublishOptions.copyTo).
   */
  deliver(event: EngineEvent, toTopic = event.topic): void {
    if (!this.listenersByTopic.has(toTopic)) return;
    this.outbox.push([toTopic, event]);
    if (this.delivering) return;
    this.delivering = true;
    for (let next = this.outbox.shift(); next; next = this.outbox.shift()) {
      this.fanOut(next[0], next[1]);
    }
    this.delivering = false;
  }

  /** Drops every subscription. */
  clear(): void {
    this.listenersByTopic.clear();
  }

  private fanOut(topic: string, event: EngineEvent): void {
    const listeners = this.listenersByTopic.get(topic);
    if (!listeners) return;
    for (const entry of listeners) {
      try {
        entry.listener(event);
      } catch {
        // A listener's failure is its own: the publisher and the other listeners carry on.
      }
    }
  }

  private removeListener(topic: string, entry: ListenerEntry): void {
    const listeners = this.listenersByTopic.get(topic);
    if (!listeners) return;
    listeners.delete(entry);
    if (listeners.size === 0) this.listenersByTopic.delete(topic);
  }
}
