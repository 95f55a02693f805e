import type { Engine, Subscription } from '../shared/engine/engine';
import { topics } from '../shared/protocol';

/** Handles the data of one event kind of the workers' control topic. */
export type ControlHandler = (data: string) => void;

/**
 * The one subscription of a worker to its control topic (topics.workers): cancels and client
 * replies that any gateway publishes to every worker. Each event kind goes to the one handler
 * registered for it; kinds nobody registered are ignored.
 */
export class ControlTopicRouter {
  private readonly handlers = new Map<string, ControlHandler>();
  private subscription?: Subscription;

  constructor(private readonly engine: Pick<Engine, 'subscribe'>) {}

  on(event: string, handler: ControlHandler): void {
    if (this.handlers.has(event)) throw new Error(`Control event ${event} already has a handler`);
    this.handlers.set(event, handler);
  }

  async start(): Promise<void> {
    this.subscription = await this.engine.subscribe([topics.workers], (event) =>
      this.handlers.get(event.event)?.(event.data),
    );
  }

  async stop(): Promise<void> {
    await this.subscription?.close();
    this.subscription = undefined;
  }
}
