import { randomUUID } from 'node:crypto';
import { loadConfig, type Config } from '../../../shared/config';
import { MemoryEngine } from '../../../shared/engine/memory';
import type { EngineEvent, Subscription } from '../../../shared/engine/engine';
import { topics } from '../../../shared/protocol';
import { createLogger, silentLogger } from '../../../shared/logger';
import { createMetrics, type Metrics } from '../../../shared/metrics';
import type { ClientMessage, CommandEnvelope, TokenType } from '../../../shared/types';
import { createWorker, type Worker } from '../../../worker/worker';
import { waitFor } from '../../../devSupport/waitFor';

/** A published event as a client would read it: the SSE event name and the parsed data. */
export interface SeenEvent {
  id: string;
  event: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  data: any;
}

export interface Token {
  type: TokenType;
  tools?: string[];
  sub?: string;
}

export const TEAM: Token = { type: 'team' };
export const READONLY: Token = { type: 'readonly' };

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    POD_ID: 'worker-test',
    CLAIM_IDLE_MS: '40',
    MAX_DELIVERIES: '3',
    WORKER_CONCURRENCY: '8',
    LOG_LEVEL: 'error',
    ...env,
  });
}

export async function startMemoryEngine(): Promise<MemoryEngine> {
  const engine = new MemoryEngine({ historyMaxLen: 1000, historyTtlS: 3600 });
  await engine.start();
  return engine;
}

export function envelope(
  connectionId: string,
  message: ClientMessage,
  token: Token = TEAM,
  requestId: string = randomUUID(),
): CommandEnvelope {
  return {
    requestId,
    connectionId,
    sub: token.sub ?? `${token.type}-token`,
    tokenType: token.type,
    ...(token.tools ? { tools: token.tools } : {}),
    message,
    enqueuedAt: Date.now(),
  };
}

/** Every event published to one connection's topic, in order. */
export class EventCollector {
  readonly events: SeenEvent[] = [];
  private subscription?: Subscription;

  static async open(engine: MemoryEngine, connectionId: string): Promise<EventCollector> {
    const collector = new EventCollector();
    collector.subscription = await engine.subscribe(
      [topics.connection(connectionId)],
      (e: EngineEvent) => {
        collector.events.push({ id: e.id, event: e.event, data: JSON.parse(e.data) });
      },
    );
    return collector;
  }

  of(requestId: string): SeenEvent[] {
    return this.events.filter((e) => e.data.requestId === requestId);
  }

  /** The final event of a request: anything but a progress event. */
  async final(requestId: string, timeoutMs = 5000): Promise<SeenEvent> {
    await waitFor(
      () => this.finals(requestId).length > 0,
      timeoutMs,
      `final event of ${requestId}`,
    );
    return this.finals(requestId)[0];
  }

  finals(requestId: string): SeenEvent[] {
    return this.of(requestId).filter((e) => !e.data.metadata?.progress);
  }

  async close(): Promise<void> {
    await this.subscription?.close();
  }
}

/** A memory engine, N workers on it, and one client connection's event stream. */
export class WorkerHarness {
  private constructor(
    readonly connectionId: string,
    readonly engine: MemoryEngine,
    readonly workers: Worker[],
    readonly metrics: Metrics[],
    readonly events: EventCollector,
  ) {}

  static async start(
    options: { workers?: number; env?: Record<string, string> } = {},
  ): Promise<WorkerHarness> {
    const engine = await startMemoryEngine();
    const count = options.workers ?? 1;
    const workers: Worker[] = [];
    const metrics: Metrics[] = [];
    for (let i = 0; i < count; i += 1) {
      const config = { ...testConfig(options.env), podId: `worker-${i}` };
      const m = createMetrics('worker');
      metrics.push(m);
      workers.push(
        createWorker({
          config,
          engine,
          logger: process.env.WORKER_TEST_LOG ? createLogger('debug') : silentLogger(),
          metrics: m,
        }),
      );
    }
    await Promise.all(workers.map((w) => w.start()));
    const connectionId = randomUUID();
    const events = await EventCollector.open(engine, connectionId);
    return new WorkerHarness(connectionId, engine, workers, metrics, events);
  }

  /** Enqueues a command as the gateway would; returns its requestId. */
  async send(
    message: ClientMessage,
    token: Token = TEAM,
    connectionId = this.connectionId,
  ): Promise<string> {
    const command = envelope(connectionId, message, token);
    await this.engine.enqueueCommand(command);
    return command.requestId;
  }

  /** Sends a request and waits for its final event. */
  async request(message: ClientMessage, token: Token = TEAM): Promise<SeenEvent> {
    return this.events.final(await this.send(message, token));
  }

  /** tools/call; returns the final event. */
  async call(
    name: string,
    args: Record<string, unknown> = {},
    token: Token = TEAM,
  ): Promise<SeenEvent> {
    return this.request({ method: 'tools/call', params: { name, arguments: args } }, token);
  }

  /** tools/call that must succeed; returns the structuredContent. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async ok(name: string, args: Record<string, unknown> = {}, token: Token = TEAM): Promise<any> {
    const seen = await this.call(name, args, token);
    if (seen.event !== 'tool-result') {
      throw new Error(`${name} failed: ${JSON.stringify(seen.data.error ?? seen.data)}`);
    }
    return seen.data.result.structuredContent;
  }

  async idle(): Promise<void> {
    await waitFor(
      async () => {
        const backlog = await this.engine.commandBacklog();
        return backlog.waiting === 0 && backlog.pending === 0;
      },
      5000,
      'command queue drained',
    );
  }

  async stop(): Promise<void> {
    await this.events.close();
    await Promise.all(this.workers.map((w) => w.stop()));
    await this.engine.close();
  }
}

/** Sum of a counter (optionally one label value) over the harness's metrics registries. */
export async function counterValue(
  metrics: Metrics[],
  name: 'commandsCompleted' | 'commandsDeadLettered',
  labels: Record<string, string> = {},
): Promise<number> {
  let total = 0;
  for (const m of metrics) {
    const { values } = await m[name].get();
    for (const v of values) {
      const seen = v.labels as Record<string, string | number | undefined>;
      const matches = Object.entries(labels).every(([k, want]) => seen[k] === want);
      if (matches) total += v.value;
    }
  }
  return total;
}
