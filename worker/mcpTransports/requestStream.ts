import type { Engine, PublishOptions } from '../../shared/engine/engine';
import type { Logger } from '../../shared/logger';
import { mcpNames } from '../../shared/mcpTransports';
import { MCP_EVENTS, RPC_ERRORS, type ErrorDetail } from '../../shared/protocol';
import { ERROR_MESSAGE_MAX_CHARS, truncate } from '../../shared/text';
import type { McpCommand } from '../../shared/types';
import { publishCallEvent } from '../callEvents';

/**
 * Publishes one message of an MCP transport request's stream (a 2025 session's or a 2026
 * request's): on the stream's topic, with the history it keeps for `historyTtlMs`, and copied to
 * the reply topic of the gateway that took the POST (it subscribes to no per-request topic; a pod
 * resuming the stream elsewhere subscribes to the topic itself). A final message over
 * EVENT_MAX_BYTES is replaced by an error saying so.
 */
export async function publishToRequestStream(
  deps: { engine: Pick<Engine, 'publish'>; logger: Logger },
  command: McpCommand,
  /**
   * `completesRequest` (default: `final`) marks the command processed with the message: not
   * so for a task's CreateTaskResult, which ends the request's stream while the command runs on.
   */
  message: { event: string; data: object; final: boolean; completesRequest?: boolean },
  historyTtlMs: number,
): Promise<void> {
  const { sessionId, streamId, replyTopic } = command.mcp;
  const topic = mcpNames.streamTopic(sessionId, streamId);
  const options: PublishOptions = {
    historyTtlMs,
    ...((message.completesRequest ?? message.final) ? { completesRequest: command.requestId } : {}),
    ...(replyTopic !== undefined ? { copyTo: replyTopic } : {}),
  };
  const call = { topic, event: message.event, data: message.data, final: message.final, options };
  await publishCallEvent(deps.engine, deps.logger, command, call, async (detail) => {
    const error = {
      code: RPC_ERRORS.resultTooLarge,
      message: `The reply was not sent: ${detail}. Ask for less at a time.`,
    };
    const reply = { jsonrpc: '2.0', id: command.message.id ?? null, error };
    await deps.engine.publish(topic, MCP_EVENTS.response, JSON.stringify(reply), options);
  });
}

/**
 * The JSON-RPC error reply that ends a request's stream, its message bounded (messages may quote
 * what the client sent).
 */
export function errorReply(command: McpCommand, error: ErrorDetail & { data?: unknown }): object {
  const bounded = { ...error, message: truncate(error.message, ERROR_MESSAGE_MAX_CHARS) };
  return { jsonrpc: '2.0', id: command.message.id ?? null, error: bounded };
}
