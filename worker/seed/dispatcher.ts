import {
  ErrorCode,
  LATEST_PROTOCOL_VERSION,
  type CallToolResult,
  type JSONRPCNotification,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { parseSeedCancel, type SeedCancel } from '../../shared/engine/cancellations';
import type { Engine } from '../../shared/engine/engine';
import { topics } from '../../shared/protocol';
import { isEventTooLarge } from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import { CONTROL_EVENTS, RPC_ERRORS, SEED_EVENTS, type ErrorDetail } from '../../shared/protocol';
import { ERROR_MESSAGE_MAX_CHARS, truncate } from '../../shared/text';
import type { SeedCommand } from '../../shared/types';
import type { ControlTopicRouter } from '../controlTopic';
import type { InProcessTransport } from '../server/inProcessTransport';
import { authInfoForCommand } from '../server/requestContext';
import type { DispatchOutcome } from '../outcomes';
import { publishCallEvent } from '../callEvents';
import { runToolCall, toolCallOutcome, toolErrorText } from '../toolCallRunner';
import type { ToolPermissions } from '../toolPermissions';

export interface DispatcherDeps {
  engine: Pick<Engine, 'publish'>;
  transport: InProcessTransport;
  /** Learnt here at start (the seed API's server), used by MCP sessions too. */
  permissions: ToolPermissions;
  /** Seed-API cancels arrive on the workers' control topic. */
  control: ControlTopicRouter;
  logger: Logger;
}

interface RunningCall {
  connectionId: string;
  clientMessageId?: string | number;
  jsonRpcId: number;
}

/** The "MCP error <code>: <message>" text the SDK puts in the isError result of a thrown McpError. */
const SDK_ERROR_TEXT = /^MCP error (-?\d+): ([\s\S]*)$/;

/**
 * Runs one seed-API command against the MCP server (through the in-process transport) and
 * publishes what the client should see on its connection's topic:
 * - tools/call: `tool-result` (progress first, as `tool-result` with metadata.progress);
 * - any other request: `mcp-response`;
 * - any failure: `mcp-error`, error: { code, message } (codes: RPC_ERRORS);
 * - `notifications/*`: forwarded, nothing published.
 * It resolves once everything is published; it rejects only when publishing (or the transport)
 * fails, so the caller leaves the command to be delivered again.
 */
export class Dispatcher {
  /** Our requestId -> the call running for it in this process, for notifications/cancelled. */
  private readonly running = new Map<string, RunningCall>();

  constructor(private readonly deps: DispatcherDeps) {
    // Cancels come from any gateway to every worker; the one running the call acts on it.
    deps.control.on(CONTROL_EVENTS.seedCancel, (data) => {
      const cancel = parseSeedCancel(data);
      if (cancel) this.cancel(cancel);
    });
  }

  /** MCP handshake with the server, then learns its tools. Call once, after connect(). */
  async start(): Promise<void> {
    const { transport } = this.deps;
    const init = await transport.request('initialize', {
      protocolVersion: LATEST_PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: 'mcpgw-worker-dispatcher', version: '0.1.0' },
    }).reply;
    if ('error' in init) throw new Error(`MCP initialize failed: ${init.error.message}`);
    transport.notify('notifications/initialized');
    this.deps.permissions.learn(await this.listAllTools());
  }

  async dispatch(command: SeedCommand): Promise<DispatchOutcome> {
    const method = command.message?.method;
    if (typeof method !== 'string' || method.length === 0) {
      await this.publishError(command, {
        code: RPC_ERRORS.invalidRequest,
        message: 'Message has no method',
      });
      return 'error';
    }
    if (method.startsWith('notifications/')) {
      this.handleNotification(command);
      return 'notification';
    }
    if (method === 'initialize') {
      // The seed API's MCP server is one for every connection, initialized once by this worker:
      // a client's initialize would replace what every other client's calls run under.
      await this.publishError(command, {
        code: RPC_ERRORS.invalidRequest,
        message:
          'initialize is not available on /mcp/sse/send: the seed API needs no handshake ' +
          '(send tools/list or tools/call directly); for an MCP session of your own, use /mcp',
      });
      return 'error';
    }
    if (method === 'logging/setLevel') {
      // One server for every connection (its level would be everyone's), and the seed stream
      // carries progress and results, no log messages.
      await this.publishError(command, {
        code: RPC_ERRORS.methodNotFound,
        message:
          'logging/setLevel is not available on /mcp/sse/send: the seed API sends no log ' +
          'messages; for log messages at a level of your own, use an MCP session on /mcp',
      });
      return 'error';
    }
    if (method === 'tools/call') return this.callTool(command);
    if (method === 'tools/list') return this.listTools(command);
    return this.forward(command);
  }

  /** Calls in progress in this process (for tests and shutdown logs). */
  get runningCount(): number {
    return this.running.size;
  }

  // ---- methods ----

  private async callTool(command: SeedCommand): Promise<DispatchOutcome> {
    const params = command.message.params ?? {};
    const { name, arguments: args } = params;
    if (typeof name !== 'string' || name.length === 0) {
      return this.fail(
        command,
        RPC_ERRORS.invalidParams,
        'tools/call needs params.name, a tool name',
      );
    }
    if (args !== undefined && !isPlainObject(args)) {
      return this.fail(
        command,
        RPC_ERRORS.invalidParams,
        'tools/call params.arguments must be an object',
        name,
      );
    }
    if (!this.deps.permissions.isKnown(name)) {
      return this.fail(
        command,
        RPC_ERRORS.methodNotFound,
        `Tool not found: ${truncate(name)}`,
        name,
      );
    }
    const refusal = this.deps.permissions.refusal(command, name);
    if (refusal) return this.fail(command, refusal.code, refusal.message, name);

    const reply = await runToolCall(
      this.deps.transport,
      command,
      // Our requestId is the progress token: unique, and it names the command in logs.
      { name, arguments: args ?? {}, _meta: { progressToken: command.requestId } },
      {
        onNotification: (notification, outbox) => {
          if (notification.method !== 'notifications/progress') return;
          const progress = progressEvent(command, name, notification);
          outbox.push(() =>
            this.publish(command, SEED_EVENTS.toolProgress, progress, { final: false }),
          );
        },
        onStart: (jsonRpcId) =>
          this.running.set(command.requestId, {
            connectionId: command.connectionId,
            clientMessageId: command.message.id,
            jsonRpcId,
          }),
        onEnd: () => this.running.delete(command.requestId),
      },
    );
    if ('error' in reply) {
      await this.publishError(command, reply.error, name);
      return toolCallOutcome(reply);
    }
    const result = reply.result as CallToolResult;
    if (result.isError) {
      await this.publishError(command, toolErrorDetail(result), name, result);
      return 'error';
    }
    await this.publish(command, SEED_EVENTS.toolResult, {
      type: 'tool-result',
      method: name,
      requestId: command.requestId,
      ...clientId(command),
      result,
      timestamp: now(),
    });
    return 'ok';
  }

  /** tools/list, filtered to the tools this token may call. */
  private async listTools(command: SeedCommand): Promise<DispatchOutcome> {
    const reply = await this.deps.transport.request('tools/list', command.message.params, {
      extra: { authInfo: authInfoForCommand(command) },
    }).reply;
    if ('error' in reply) {
      await this.publishError(command, reply.error);
      return 'error';
    }
    const tools = this.deps.permissions.visibleTools(command, reply.result.tools as Tool[]);
    await this.publishResponse(command, { ...reply.result, tools });
    return 'ok';
  }

  /** Any other request goes to the server as it is (ping, initialize, ...). */
  private async forward(command: SeedCommand): Promise<DispatchOutcome> {
    const { method, params } = command.message;
    const reply = await this.deps.transport.request(method, params, {
      extra: { authInfo: authInfoForCommand(command) },
    }).reply;
    if ('error' in reply) {
      const error =
        reply.error.code === ErrorCode.MethodNotFound
          ? { code: reply.error.code, message: `Method not found: ${truncate(method)}` }
          : reply.error;
      await this.publishError(command, error);
      return 'error';
    }
    await this.publishResponse(command, reply.result);
    return 'ok';
  }

  /**
   * notifications/cancelled naming one of this connection's running calls (by our requestId,
   * or by the client's own message id) aborts it; its command then publishes a -32800
   * mcp-error. Calls running in other worker processes are not reached from here.
   * Every other notification is forwarded to the server.
   */
  private handleNotification(command: SeedCommand): void {
    const { method, params } = command.message;
    if (method !== 'notifications/cancelled') {
      this.deps.transport.notify(method, params, { authInfo: authInfoForCommand(command) });
      return;
    }
    // Gateways publish cancels to every worker; one that came through the queue still works here.
    const target = params?.requestId;
    this.cancel({
      connectionId: command.connectionId,
      target: typeof target === 'string' || typeof target === 'number' ? target : undefined,
      reason: typeof params?.reason === 'string' ? params.reason : undefined,
    });
  }

  /** Aborts the calls running here that the cancel names (a call, or every call of a connection). */
  private cancel({ connectionId, target, reason }: SeedCancel): void {
    for (const [requestId, call] of this.running) {
      if (call.connectionId !== connectionId) continue;
      if (target !== undefined && requestId !== target && call.clientMessageId !== target) continue;
      this.deps.transport.cancel(call.jsonRpcId, reason);
    }
  }

  private async listAllTools(): Promise<Tool[]> {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const reply = await this.deps.transport.request('tools/list', cursor ? { cursor } : undefined)
        .reply;
      if ('error' in reply) throw new Error(`MCP tools/list failed: ${reply.error.message}`);
      tools.push(...(reply.result.tools as Tool[]));
      cursor = typeof reply.result.nextCursor === 'string' ? reply.result.nextCursor : undefined;
    } while (cursor);
    return tools;
  }

  // ---- publishing ----

  private async fail(
    command: SeedCommand,
    code: number,
    message: string,
    tool?: string,
  ): Promise<DispatchOutcome> {
    await this.publishError(command, { code, message }, tool);
    return 'error';
  }

  private publishResponse(command: SeedCommand, result: unknown): Promise<void> {
    return this.publish(command, SEED_EVENTS.mcpResponse, {
      type: 'mcp-response',
      method: command.message.method,
      requestId: command.requestId,
      ...clientId(command),
      result,
      timestamp: now(),
    });
  }

  /** `tool` names the tool of a failed tools/call; `result` is the isError result, when any. */
  private publishError(
    command: SeedCommand,
    error: ErrorDetail,
    tool?: string,
    result?: CallToolResult,
  ): Promise<void> {
    return publishCommandError(this.deps.engine, command, error, { tool, result });
  }

  /**
   * A final event (the result or error; not progress) marks the command processed in the same
   * atomic step, so a redelivery after a crash never publishes a second result.
   */
  private async publish(
    command: SeedCommand,
    event: string,
    data: object,
    { final = true } = {},
  ): Promise<void> {
    await publishCallEvent(
      this.deps.engine,
      this.deps.logger,
      command,
      {
        topic: topics.connection(command.connectionId),
        event,
        data,
        options: final ? { completesRequest: command.requestId } : undefined,
        final,
      },
      (detail) => this.publishError(command, resultTooLarge(event, detail)),
    );
  }
}

/** The error a client gets instead of a result too large to send. */
function resultTooLarge(event: string, detail: string): ErrorDetail {
  return {
    code: RPC_ERRORS.resultTooLarge,
    message: `The ${event} was not sent: ${detail}. Ask for less at a time.`,
  };
}

/** Publishes an `mcp-error` for a command (also used for dead-lettered commands). */
export async function publishCommandError(
  engine: Pick<Engine, 'publish'>,
  command: SeedCommand,
  error: ErrorDetail,
  extras: { tool?: string; result?: CallToolResult } = {},
): Promise<void> {
  // What came from the client (method, tool name) and messages that may quote it are bounded.
  const method = command.message?.method;
  const data = {
    type: 'mcp-error',
    method: typeof method === 'string' ? truncate(method) : method,
    ...(extras.tool !== undefined ? { tool: truncate(extras.tool) } : {}),
    requestId: command.requestId,
    ...clientId(command),
    error: { code: error.code, message: truncate(error.message, ERROR_MESSAGE_MAX_CHARS) },
    ...(extras.result !== undefined ? { result: extras.result } : {}),
    timestamp: now(),
  };
  const topic = topics.connection(command.connectionId);
  const completes = { completesRequest: command.requestId };
  try {
    await engine.publish(topic, SEED_EVENTS.mcpError, JSON.stringify(data), completes);
  } catch (err) {
    if (!isEventTooLarge(err) || extras.result === undefined) throw err;
    // The isError result it carries is too large: the error alone, saying so.
    const { result: _dropped, ...rest } = data as typeof data & { result?: unknown };
    const alone = { ...rest, error: resultTooLarge(SEED_EVENTS.mcpError, err.message) };
    await engine.publish(topic, SEED_EVENTS.mcpError, JSON.stringify(alone), completes);
  }
}

/** The client's own message id, echoed as `id` when it gave one. */
function clientId(command: SeedCommand): { id?: string | number } {
  const id = command.message?.id;
  return id !== undefined ? { id } : {};
}

/** An isError result as an error: the SDK's "MCP error <code>: ..." keeps its code. */
function toolErrorDetail(result: CallToolResult): ErrorDetail {
  const text = toolErrorText(result);
  const sdkError = SDK_ERROR_TEXT.exec(text);
  if (sdkError) return { code: Number(sdkError[1]), message: sdkError[2] };
  return { code: RPC_ERRORS.toolError, message: text || 'Tool failed' };
}

/** A progress notification as the seed API's `tool-result` with metadata.progress. */
function progressEvent(command: SeedCommand, tool: string, notification: JSONRPCNotification) {
  const { progress, total, message } = notification.params ?? {};
  return {
    type: 'tool-result',
    method: tool,
    requestId: command.requestId,
    ...clientId(command),
    metadata: {
      progress: {
        progress,
        ...(total !== undefined ? { total } : {}),
        ...(message !== undefined ? { message } : {}),
      },
    },
    timestamp: now(),
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function now(): string {
  return new Date().toISOString();
}
