import type { EngineEvent, EventListener, Subscription } from '../engine';
import { Fifo } from './fifo';

/** A subscription's listener; an object so one function subscribed twice stays two entries. */
interface ListenerEntry {
  readonly listener: EventListener;
}

/** Live fan-out of published events to in-process listeners (Redis: PUBLISH/SUBSCRIBE). */
export class LocalPubSub {
  private readonly listenersByTopic = new Map<string, Set<ListenerEntry>>();
  /** Events waiting for fan-out; see deliver(). */
  private readonly outbox = new Fifo<EngineEvent>();
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
   * every listener sees a topic's events in id order, as over Redis.
   */
  deliver(event: EngineEvent): void {
    if (!this.listenersByTopic.has(event.topic)) return;
    this.outbox.push(event);
    if (this.delivering) return;
    this.delivering = true;
    for (let next = this.outbox.shift(); next; next = this.outbox.shift()) this.fanOut(next);
    this.delivering = false;
  }

  /** Drops every subscription. */
  clear(): void {
    this.listenersByTopic.clear();
  }

  private fanOut(event: EngineEvent): void {
    const listeners = this.listenersByTopic.get(event.topic);
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
