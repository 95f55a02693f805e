import type { Config } from '../shared/config';
import type { Engine, PublishOptions } from '../shared/engine/engine';
import type { Logger } from '../shared/logger';
import { SPENT_STREAM_TTL_MS, mcpNames } from '../shared/mcpTransports';
import type { Metrics } from '../shared/metrics';
import { MCP_EVENTS, RPC_ERRORS, SEED_EVENTS, topics } from '../shared/protocol';
import { truncate } from '../shared/text';
import type { CommandEnvelope } from '../shared/types';

/** What the client of a lost command is told (README: Redis modes). */
export const LOST_COMMAND_ERROR = {
  code: RPC_ERRORS.commandLost,
  message:
    'The command was lost in a Redis failover before it was replicated: it may not have run. ' +
    'Retry it (check its effect first if it must not run twice).',
} as const;

/**
 * Tells the clients of commands this process accepted and Redis then lost (Engine.onCommandsLost)
 * that they will get no result: a JSON-RPC error -32012 on the channel the result would have
 * taken, published through the engine so that it reaches the client whichever pod holds its
 * stream. A seed command's connection topic gets an `mcp-error` with its requestId; an MCP
 * transport request's stream gets a JSON-RPC error reply with the request's id (it ends a
 * POST's stream like any reply). The error marks the request done, so a copy of the command
 * that a worker still holds (read before the failover) is acked without running; a worker
 * already running it may still publish its result after the error (README: Redis modes).
 * Notifications get no answer (none is awaited); they are counted all the same.
 */
export function answerLostCommands(deps: {
  config: Config;
  engine: Engine;
  logger: Logger;
  metrics: Metrics;
}): void {
  const { config, engine, metrics } = deps;
  const logger = deps.logger.child({ component: 'lost-commands' });
  engine.onCommandsLost((commands) => {
    metrics.commandsLost.inc(commands.length);
    for (const command of commands) {
      if (command.message.method.startsWith('notifications/')) continue;
      const [topic, event, data, options] = lostAnswer(command, config.mcpStreamTtlS * 1000);
      engine.publish(topic, event, data, options).catch((error: unknown) => {
        logger.warn('could not answer a lost command', {
          requestId: command.requestId,
          error: error instanceof Error ? error.message : String(error),
        });
      });
    }
  });
}

/** Where the lost command's error goes and what it says: [topic, event, data, options]. */
function lostAnswer(
  command: CommandEnvelope,
  streamTtlMs: number,
): [string, string, string, PublishOptions] {
  const { id, method } = command.message;
  const completes: PublishOptions = { completesRequest: command.requestId };
  if (!command.mcp) {
    const data = {
      type: SEED_EVENTS.mcpError,
      method: truncate(method),
      requestId: command.requestId,
      ...(id !== undefined ? { id } : {}),
      error: LOST_COMMAND_ERROR,
      timestamp: new Date().toISOString(),
    };
    return [
      topics.connection(command.connectionId),
      SEED_EVENTS.mcpError,
      JSON.stringify(data),
      completes,
    ];
  }
  const { sessionId, streamId, replyTopic, era } = command.mcp;
  const reply = { jsonrpc: '2.0', id: id ?? null, error: LOST_COMMAND_ERROR };
  const options: PublishOptions = {
    ...completes,
    // As the worker would have kept it: a 2026 stream's history only bridges the routing.
    historyTtlMs: era === 'modern' ? SPENT_STREAM_TTL_MS : streamTtlMs,
    ...(replyTopic !== undefined ? { copyTo: replyTopic } : {}),
  };
  return [
    mcpNames.streamTopic(sessionId, streamId),
    MCP_EVENTS.response,
    JSON.stringify(reply),
    options,
  ];
}
