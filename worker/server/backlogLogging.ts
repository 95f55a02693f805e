import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type {
  LoggingLevel,
  ServerNotification,
  ServerRequest,
} from '@modelcontextprotocol/sdk/types.js';

/** The `logger` of every backlog log message. */
export const BACKLOG_LOGGER = 'backlog';

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** What a tool says about its work: a line for people, and the ids it concerns. */
export interface LogDetails {
  message: string;
  [key: string]: unknown;
}

export type ToolLog = (level: LoggingLevel, details: LogDetails) => Promise<void>;

/**
 * A tool's log: `notifications/message` sent through the handler's extra, so it belongs to the
 * call and goes on the call's own stream, in order with its progress and before its result.
 * Which of them reach the client is the transport's business (a 2025 session's
 * `logging/setLevel`, a 2026-07-28 request's `_meta` level; none on the seed API). A message
 * that cannot be sent (the call already ended) is no failure of the tool.
 */
export function toolLog(extra: Pick<Extra, 'sendNotification'>, tool: string): ToolLog {
  return async (level, details) => {
    try {
      await extra.sendNotification({
        method: 'notifications/message',
        params: { level, logger: BACKLOG_LOGGER, data: { tool, ...details } },
      });
    } catch {
      // The call is over (cancelled, timed out): nobody is listening for its log any more.
    }
  };
}
