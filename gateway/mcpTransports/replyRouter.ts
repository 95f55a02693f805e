import { randomBytes } from 'node:crypto';
import type { Engine, EngineEvent, EventListener, Subscription } from '../../shared/engine/engine';
import { errors } from '../../shared/errors';
import { mcpNames } from '../../shared/mcpTransports';

/** A request stream's place in the router, released when its response closes. */
export interface ReplyRoute {
  close(): void;
}

/**
 * The events of the request streams this gateway process answers, over one subscription: each
 * POST's commands name this process's reply topic (McpRoute.replyTopic), the workers copy the
 * stream's events there (PublishOptions.copyTo), and they are handed to the stream's listener
 * by the topic they were published to. No SUBSCRIBE per request. The streams' own topics still
 * get every event (and keep the history), so a resume on any pod subscribes to the stream topic
 * as before.
 */
export class McpReplyRouter {
  /** Unique per process: a pod restarted under the same POD_ID hears nothing of its former self. */
  readonly topic: string;
  private readonly listeners = new Map<string, EventListener>();
  private subscribing?: Promise<Subscription>;
  private closed = false;

  constructor(
    private readonly engine: Pick<Engine, 'subscribe'>,
    podId: string,
  ) {
    this.topic = mcpNames.replyTopic(podId, randomBytes(6).toString('hex'));
  }

  /**
   * Routes the events of `streamTopic` to `listener` from when the returned promise resolves
   * (the process's subscription confirmed): queue the requests after that.
   */
  async route(streamTopic: string, listener: EventListener): Promise<ReplyRoute> {
    await this.subscribed();
    this.listeners.set(streamTopic, listener);
    return {
      close: () => {
        if (this.listeners.get(streamTopic) === listener) this.listeners.delete(streamTopic);
      },
    };
  }

  /** Ends the subscription (the pod shuts down). */
  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    const subscribing = this.subscribing;
    this.subscribing = undefined;
    await subscribing?.then((subscription) => subscription.close()).catch(() => undefined);
  }

  private subscribed(): Promise<Subscription> {
    if (this.closed) return Promise.reject(errors.unavailable('This gateway is shutting down'));
    if (!this.subscribing) {
      const subscribing = this.engine.subscribe([this.topic], this.dispatch);
      this.subscribing = subscribing;
      // A failed subscription (engine down) is asked again by the next request.
      subscribing.catch(() => {
        if (this.subscribing === subscribing) this.subscribing = undefined;
      });
    }
    return this.subscribing;
  }

  private readonly dispatch = (event: EngineEvent): void => {
    this.listeners.get(event.topic)?.(event);
  };
}
