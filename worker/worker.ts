import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Config } from '../shared/config';
import type { CommandConsumer, Engine, QueuedCommand } from '../shared/engine/engine';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import { BacklogStore } from './backlog/store';
import { RPC_ERRORS } from '../shared/protocol';
import { ControlTopicRouter } from './controlTopic';
import { Dispatcher, publishCommandError } from './seed/dispatcher';
import { createBacklogServer } from './server/backlogServer';
import { InProcessTransport } from './server/inProcessTransport';
import { InputRequiredRound } from './server/inputRequired';
import { changePublisher } from './mcpTransports/changes';
import { ModernRequests } from './mcpTransports/modernRequests';
import { McpSessionServers } from './mcpTransports/sessionServers';
import { ToolPermissions } from './toolPermissions';

export interface WorkerDeps {
  config: Config;
  engine: Engine;
  logger: Logger;
  metrics: Metrics;
  /**
   * Builds an MCP server (the seed path's at start, one per MCP session); default
   * createBacklogServer. MCP_SERVER_MODULE's factory (worker/server/serverModule.ts) ignores
   * the store and may be async.
   */
  createMcpServer?: (store: BacklogStore) => McpServer | Promise<McpServer>;
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
  const createMcpServer = deps.createMcpServer ?? createBacklogServer;
  const backlogOptions = {
    limits: {
      maxProjectsPerToken: config.backlogMaxProjectsPerToken,
      maxItemsPerToken: config.backlogMaxItemsPerToken,
    },
  };
  // Built by start(): a factory may be async, and one that fails stops the worker there.
  let server: McpServer | undefined;
  // One timeout for every tool call, seed API and MCP sessions alike: the transport's.
  const transport = new InProcessTransport({ requestTimeoutMs: config.toolTimeoutMs });
  // Changes the server announces go to the 2026-07-28 listen streams, whichever API caused them.
  transport.onServerNotification = changePublisher(engine, logger);
  // One subscription to the control topic and one permission rule for both APIs.
  const control = new ControlTopicRouter(engine);
  const permissions = new ToolPermissions();
  const dispatcher = new Dispatcher({ engine, transport, permissions, control, logger });
  // MCP transport sessions (Streamable HTTP, legacy SSE): same server definition and permissions.
  const mcpSessions = new McpSessionServers({
    engine,
    permissions,
    control,
    createServer: () => createMcpServer(new BacklogStore(engine.store, backlogOptions)),
    logger,
    sessionTtlMs: config.mcpSessionTtlS * 1000,
    streamTtlMs: config.mcpStreamTtlS * 1000,
    requestTimeoutMs: config.toolTimeoutMs,
  });
  // Stateless MCP 2026-07-28 requests: one server per worker, same definition and permissions.
  const modernRequests = new ModernRequests({
    engine,
    permissions,
    control,
    createServer: () => createMcpServer(new BacklogStore(engine.store, backlogOptions)),
    logger,
    requestTimeoutMs: config.toolTimeoutMs,
    secret: config.jwtSecret,
    inputRounds: (options) => new InputRequiredRound(options),
    taskTtlMs: config.mcpTaskTtlS * 1000,
  });
  let consumer: CommandConsumer | undefined;
  let started = false;
  let stopping = false;
  // Read on each /metrics scrape: no timer. Both stop with stop().
  metrics.addReadinessCheck(() => !stopping && engine.isReady());
  metrics.setCommandBacklogSource(() => engine.commandBacklog());

  async function handleCommand({ command, deliveries }: QueuedCommand): Promise<void> {
    // Children cost an allocation per command: made only when debug lines are wanted.
    const log = logger.isLevelEnabled('debug') ? commandLogger(logger, command) : undefined;
    const started = Date.now();
    if (await engine.isProcessed(command.requestId)) {
      // A redelivery of a command whose results were published: ack, publish nothing new.
      metrics.commandsCompleted.inc({ outcome: 'duplicate' });
      log?.debug('command already processed, acked', { deliveries });
      return;
    }
    log?.debug('command started', { method: command.message?.method, deliveries });
    let outcome;
    try {
      outcome = !command.mcp
        ? await dispatcher.dispatch(command)
        : command.mcp.era === 'modern'
          ? await modernRequests.dispatch(command)
          : await mcpSessions.dispatch(command);
      // Final events already marked it processed atomically; notifications publish none.
      if (outcome === 'notification') await engine.markProcessed(command.requestId);
    } catch (err) {
      (log ?? commandLogger(logger, command)).warn('command failed, left for redelivery', {
        method: command.message?.method,
        deliveries,
        error: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }
    metrics.commandsCompleted.inc({ outcome });
    metrics.commandDuration.observe(Math.max(0, Date.now() - command.enqueuedAt) / 1000);
    log?.debug('command finished', {
      method: command.message?.method,
      outcome,
      durationMs: Date.now() - started,
    });
  }

  async function onDeadLetter({ command, deliveries }: QueuedCommand): Promise<void> {
    commandLogger(logger, command).error('command dead-lettered', {
      method: command.message?.method,
      deliveries,
    });
    metrics.commandsDeadLettered.inc();
    // A notification never gets a response, not even this one.
    if (command.message?.method?.startsWith('notifications/')) return;
    if (command.mcp) {
      const servers = command.mcp.era === 'modern' ? modernRequests : mcpSessions;
      return servers.publishDeadLetter(command, deliveries);
    }
    await publishCommandError(engine, command, {
      code: RPC_ERRORS.internalError,
      message: `Command failed after ${deliveries} deliveries`,
    });
  }

  return {
    async start() {
      if (started) throw new Error('Worker already started');
      started = true;
      server = await createMcpServer(new BacklogStore(engine.store, backlogOptions));
      await server.connect(transport);
      await dispatcher.start();
      await control.start();
      consumer = engine.consumeCommands(handleCommand, {
        consumerId: config.podId,
        concurrency: config.workerConcurrency,
        claimIdleMs: config.claimIdleMs,
        maxDeliveries: config.maxDeliveries,
        onDeadLetter,
        maxPerToken: slotsPerToken(config),
      });
      logger.info('worker consuming commands', {
        podId: config.podId,
        concurrency: config.workerConcurrency,
      });
    },

    async stop() {
      if (stopping) return;
      stopping = true;
      metrics.setCommandBacklogSource(undefined);
      await consumer?.stop();
      await control.stop();
      if (dispatcher.runningCount > 0) {
        logger.warn('closing MCP server with calls still running', {
          calls: dispatcher.runningCount,
        });
      }
      await server?.close();
      await mcpSessions.close();
      await modernRequests.close();
      logger.info('worker stopped', { podId: config.podId });
    },

    isStopping: () => stopping,
  };
}

/**
 * Slots of this worker one token may hold: WORKER_SLOTS_PER_TOKEN, but always leaving one for
 * other tokens (unless the worker has only one).
 */
export function slotsPerToken(config: Config): number {
  return Math.max(1, Math.min(config.workerSlotsPerToken, config.workerConcurrency - 1));
}

/**
 * A child logger carrying the command's requestId (the one its client got in the 202) and
 * connectionId (seed API) or sessionId (MCP transports). Never the token: the envelope holds
 * its claims only.
 */
function commandLogger(logger: Logger, command: QueuedCommand['command']): Logger {
  const target = command.mcp
    ? { sessionId: command.mcp.sessionId }
    : { connectionId: command.connectionId };
  return logger.child({ requestId: command.requestId, ...target });
}
