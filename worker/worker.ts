import type { Config } from '../shared/config';
import type { CommandConsumer, Engine, QueuedCommand } from '../shared/engine/engine';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import { BacklogStore } from './backlog/store';
import { Dispatcher, WORKER_ERROR_CODES, publishCommandError } from './dispatcher';
import { createBacklogServer } from './mcp/backlogServer';
import { InProcessTransport } from './mcp/inProcessTransport';

export interface WorkerDeps {
  config: Config;
  engine: Engine;
  logger: Logger;
  metrics: Metrics;
}

export interface Worker {
  /** Connects the MCP server to its in-process transport and starts consuming commands. */
  start(): Promise<void>;
  /** Stops taking commands, waits for those in hand, closes the MCP server. Idempotent. */
  stop(): Promise<void>;
  /** True from stop() on (the worker's /ready answers 503 then). */
  isStopping(): boolean;
}

/**
 * A worker: consumes commands from the engine, runs each against the backlog MCP server and
 * publishes the results to the client's connection.
 *
 * At-least-once in, effects once: a command already marked processed is acked without running
 * again; one that is not is dispatched, its results published, then marked processed. A
 * handler rejects (the engine redelivers) only when publishing or the store fails; tool errors
 * are results. After config.maxDeliveries the engine dead-letters it and the client gets an
 * mcp-error.
 */
export function createWorker(deps: WorkerDeps): Worker {
  const { config, engine, metrics } = deps;
  const logger = deps.logger.child({ component: 'worker' });
  const server = createBacklogServer(new BacklogStore(engine.store));
  const transport = new InProcessTransport();
  const dispatcher = new Dispatcher({ engine, transport, logger });
  let consumer: CommandConsumer | undefined;
  let started = false;
  let stopping = false;

  async function handleCommand({ command, deliveries }: QueuedCommand): Promise<void> {
    if (await engine.isProcessed(command.requestId)) {
      // A redelivery of a command whose results were published: ack, publish nothing new.
      metrics.commandsCompleted.inc({ outcome: 'duplicate' });
      return;
    }
    let outcome;
    try {
      outcome = await dispatcher.dispatch(command);
      // Final events already marked it processed atomically; notifications publish none.
      if (outcome === 'notification') await engine.markProcessed(command.requestId);
    } catch (err) {
      logger.warn('command failed, left for redelivery', {
        requestId: command.requestId,
        method: command.message?.method,
        deliveries,
        error: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }
    metrics.commandsCompleted.inc({ outcome });
    metrics.commandDuration.observe(Math.max(0, Date.now() - command.enqueuedAt) / 1000);
  }

  async function onDeadLetter({ command, deliveries }: QueuedCommand): Promise<void> {
    logger.error('command dead-lettered', {
      requestId: command.requestId,
      method: command.message?.method,
      deliveries,
    });
    metrics.commandsDeadLettered.inc();
    // A notification never gets a response, not even this one.
    if (command.message?.method?.startsWith('notifications/')) return;
    await publishCommandError(engine, command, {
      code: WORKER_ERROR_CODES.internalError,
      message: `Command failed after ${deliveries} deliveries`,
    });
  }

  return {
    async start() {
      if (started) throw new Error('Worker already started');
      started = true;
      await server.connect(transport);
      await dispatcher.start();
      consumer = engine.consumeCommands(handleCommand, {
        consumerId: config.podId,
        concurrency: config.workerConcurrency,
        claimIdleMs: config.claimIdleMs,
        maxDeliveries: config.maxDeliveries,
        onDeadLetter,
      });
      logger.info('worker consuming commands', {
        podId: config.podId,
        concurrency: config.workerConcurrency,
      });
    },

    async stop() {
      if (stopping) return;
      stopping = true;
      await consumer?.stop();
      if (dispatcher.runningCount > 0) {
        logger.warn('closing MCP server with calls still running', {
          calls: dispatcher.runningCount,
        });
      }
      await server.close();
      logger.info('worker stopped', { podId: config.podId });
    },

    isStopping: () => stopping,
  };
}
