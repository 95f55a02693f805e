import type { Engine, Subscription } from '../shared/engine/engine';
import { topics } from '../shared/protocol';

/** Handles the data of one event kind of the workers' control topic. */
export type ControlHandler = (data: string) => void;

/**
 * The one subscription of a worker to its control topic (topics.workers): cancels and client
 * replies that any gateway publishes to every worker. Each event kind goes to the handlers
 * registered for it (e.g. an MCP cancel to the session servers and to the stateless 2026-07-28
 * requests, each acting on what it runs); kinds nobody registered are ignored.
 */
export class ControlTopicRouter {
  private readonly handlers = new Map<string, ControlHandler[]>();
  private subscription?: Subscription;

  constructor(private readonly engine: Pick<Engine, 'subscribe'>) {}

  on(event: string, handler: ControlHandler): void {
    const list = this.handlers.get(event);
    if (list) list.push(handler);
    else this.handlers.set(event, [handler]);
  }

  async start(): Promise<void> {
    this.subscription = await this.engine.subscribe([topics.workers], (event) => {
      for (const handler of this.handlers.get(event.event) ?? []) handler(event.data);
    });
  }

  async stop(): Promise<void> {
    await this.subscription?.close();
    this.subscription = undefined;
  }
}
