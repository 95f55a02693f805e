import {
  ErrorCode,
  LATEST_PROTOCOL_VERSION,
  type CallToolResult,
  type JSONRPCNotification,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { mayCallTool } from '../shared/auth';
import { parseSeedCancel, type SeedCancel } from '../shared/engine/cancellations';
import type { Engine, Subscription } from '../shared/engine/engine';
import { topics } from '../shared/engine/topics';
import { isEventTooLarge } from '../shared/errors';
import type { Logger } from '../shared/logger';
import { ERROR_MESSAGE_MAX_CHARS, truncate } from '../shared/text';
import type { CommandEnvelope, TokenClaims } from '../shared/types';
import { INFRASTRUCTURE_FAILURE_META } from './mcp/backlogServer';
import {
  REQUEST_CANCELLED,
  REQUEST_TIMED_OUT,
  type InProcessTransport,
  type ServerReply,
} from './mcp/inProcessTransport';
import { authInfoForCommand } from './mcp/requestContext';

/**
 * JSON-RPC style codes of the `mcp-error` events the worker publishes. The standard ones keep
 * their meaning; the others are in the implementation-defined server range.
 */
export const WORKER_ERROR_CODES = {
  /** A tool ran and returned isError (unknown id, ...); the event carries the result too. */
  toolError: -32000,
  /** The token may not call this tool (readonly token and a writing tool, or not allow-listed). */
  permissionDenied: -32001,
  invalidRequest: ErrorCode.InvalidRequest,
  /** Unknown method, or tools/call of an unknown tool. */
  methodNotFound: ErrorCode.MethodNotFound,
  /** Malformed params, or tool arguments failing the tool's input schema. */
  invalidParams: ErrorCode.InvalidParams,
  /** Unexpected failure; also a command dead-lettered after too many deliveries. */
  internalError: ErrorCode.InternalError,
  /** The client cancelled the call (notifications/cancelled). */
  requestCancelled: REQUEST_CANCELLED,
  /** The result (or error) is larger than EVENT_MAX_BYTES: it was not sent. */
  resultTooLarge: -32010,
  /** The call ran past TOOL_TIMEOUT_MS and was cancelled on the worker. */
  timedOut: REQUEST_TIMED_OUT,
} as const;

/** What became of a command, for metrics. */
export type DispatchOutcome = 'ok' | 'error' | 'cancelled' | 'timeout' | 'notification';

/** The outcome of a command whose request got this JSON-RPC error. */
export function errorOutcome(code: number): DispatchOutcome {
  if (code === REQUEST_CANCELLED) return 'cancelled';
  if (code === REQUEST_TIMED_OUT) return 'timeout';
  return 'error';
}

export interface DispatcherDeps {
  engine: Pick<Engine, 'publish' | 'subscribe'>;
  transport: InProcessTransport;
  logger: Logger;
}

interface RunningCall {
  connectionId: string;
  clientMessageId?: string | number;
  jsonRpcId: number;
}

export interface ErrorDetail {
  code: number;
  message: string;
}

/** The "MCP error <code>: <message>" text the SDK puts in the isError result of a thrown McpError. */
const SDK_ERROR_TEXT = /^MCP error (-?\d+): ([\s\S]*)$/;

/**
 * Runs one seed-API command against the MCP server (through the in-process transport) and
 * publishes what the client should see on its connection's topic:
 * - tools/call: `tool-result` (progress first, as `tool-result` with metadata.progress);
 * - any other request: `mcp-response`;
 * - any failure: `mcp-error`, error: { code, message } (codes: WORKER_ERROR_CODES);
 * - `notifications/*`: forwarded, nothing published.
 * It resolves once everything is published; it rejects only when publishing (or the transport)
 * fails, so the caller leaves the command to be delivered again.
 */
export class Dispatcher {
  /** Tool name -> read-only?, from the server's tools/list at start (tools are static). */
  private readonly toolReadOnly = new Map<string, boolean>();
  /** Our requestId -> the call running for it in this process, for notifications/cancelled. */
  private readonly running = new Map<string, RunningCall>();

  private cancellations?: Subscription;

  constructor(private readonly deps: DispatcherDeps) {}

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
    for (const tool of await this.listAllTools()) {
      this.toolReadOnly.set(tool.name, tool.annotations?.readOnlyHint === true);
    }
    // Cancels come from any gateway to every worker; the one running the call acts on it.
    this.cancellations = await this.deps.engine.subscribe([topics.workers], (event) => {
      const cancel = parseSeedCancel(event);
      if (cancel) this.cancel(cancel);
    });
  }

  /** Stops hearing cancellations (the calls still running finish or are aborted by close). */
  async stop(): Promise<void> {
    await this.cancellations?.close();
    this.cancellations = undefined;
  }

  async dispatch(command: CommandEnvelope): Promise<DispatchOutcome> {
    const method = command.message?.method;
    if (typeof method !== 'string' || method.length === 0) {
      await this.publishError(command, {
        code: WORKER_ERROR_CODES.invalidRequest,
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
        code: WORKER_ERROR_CODES.invalidRequest,
        message:
          'initialize is not available on /mcp/sse/send: the seed API needs no handshake ' +
          '(send tools/list or tools/call directly); for an MCP session of your own, use /mcp',
      });
      return 'error';
    }
    if (method === 'tools/call') return this.callTool(command);
    if (method === 'tools/list') return this.listTools(command);
    return this.forward(command);
  }

  /**
   * The permission rule of every transport (seed API and MCP sessions): why this command's
   * token may not call the tool, or undefined when it may (or the tool is unknown: the caller
   * reports that its own way).
   */
  toolCallRefusal(command: CommandEnvelope, tool: string): ErrorDetail | undefined {
    const readOnly = this.toolReadOnly.get(tool);
    if (readOnly === undefined) return undefined;
    const claims = claimsOf(command);
    if (mayCallTool(claims, tool, readOnly)) return undefined;
    return { code: WORKER_ERROR_CODES.permissionDenied, message: permissionMessage(claims, tool) };
  }

  /** The tools of a tools/list this command's token may call (the others are not shown). */
  visibleTools(command: CommandEnvelope, tools: Tool[]): Tool[] {
    const claims = claimsOf(command);
    return tools.filter((tool) =>
      mayCallTool(claims, tool.name, tool.annotations?.readOnlyHint === true),
    );
  }

  /** Calls in progress in this process (for tests and shutdown logs). */
  get runningCount(): number {
    return this.running.size;
  }

  // ---- methods ----

  private async callTool(command: CommandEnvelope): Promise<DispatchOutcome> {
    const params = command.message.params ?? {};
    const { name, arguments: args } = params;
    if (typeof name !== 'string' || name.length === 0) {
      return this.fail(
        command,
        WORKER_ERROR_CODES.invalidParams,
        'tools/call needs params.name, a tool name',
      );
    }
    if (args !== undefined && !isPlainObject(args)) {
      return this.fail(
        command,
        WORKER_ERROR_CODES.invalidParams,
        'tools/call params.arguments must be an object',
        name,
      );
    }
    if (!this.toolReadOnly.has(name)) {
      return this.fail(
        command,
        WORKER_ERROR_CODES.methodNotFound,
        `Tool not found: ${truncate(name)}`,
        name,
      );
    }
    const refusal = this.toolCallRefusal(command, name);
    if (refusal) return this.fail(command, refusal.code, refusal.message, name);

    // Progress is published in order, before the final event; a failed publish fails the command.
    let progressChain = Promise.resolve();
    let progressError: unknown;
    const onNotification = (notification: JSONRPCNotification) => {
      if (notification.method !== 'notifications/progress') return;
      const { progress, total, message } = notification.params ?? {};
      const data = {
        type: 'tool-result',
        method: name,
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
      progressChain = progressChain
        .then(() => this.publish(command, 'tool-result', data, { final: false }))
        .catch((err: unknown) => {
          progressError ??= err;
        });
    };

    const call = this.deps.transport.request(
      'tools/call',
      // Our requestId is the progress token: unique, and it names the command in logs.
      { name, arguments: args ?? {}, _meta: { progressToken: command.requestId } },
      { extra: { authInfo: authInfoForCommand(command) }, onNotification },
    );
    this.running.set(command.requestId, {
      connectionId: command.connectionId,
      clientMessageId: command.message.id,
      jsonRpcId: call.id,
    });
    let reply: ServerReply;
    try {
      reply = await call.reply;
    } finally {
      this.running.delete(command.requestId);
    }
    await progressChain;
    if (progressError !== undefined) throw progressError;

    if ('error' in reply) {
      await this.publishError(command, reply.error, name);
      return errorOutcome(reply.error.code);
    }
    const result = reply.result as CallToolResult;
    if (result.isError && result._meta?.[INFRASTRUCTURE_FAILURE_META] === true) {
      // Not the tool's answer: a store failure. Rejecting leaves the command to be retried.
      throw new Error(`Tool ${name} failed: ${toolErrorDetail(result).message}`);
    }
    if (result.isError) {
      await this.publishError(command, toolErrorDetail(result), name, result);
      return 'error';
    }
    await this.publish(command, 'tool-result', {
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
  private async listTools(command: CommandEnvelope): Promise<DispatchOutcome> {
    const reply = await this.deps.transport.request('tools/list', command.message.params, {
      extra: { authInfo: authInfoForCommand(command) },
    }).reply;
    if ('error' in reply) {
      await this.publishError(command, reply.error);
      return 'error';
    }
    const tools = this.visibleTools(command, reply.result.tools as Tool[]);
    await this.publishResponse(command, { ...reply.result, tools });
    return 'ok';
  }

  /** Any other request goes to the server as it is (ping, initialize, ...). */
  private async forward(command: CommandEnvelope): Promise<DispatchOutcome> {
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
  private handleNotification(command: CommandEnvelope): void {
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
    command: CommandEnvelope,
    code: number,
    message: string,
    tool?: string,
  ): Promise<DispatchOutcome> {
    await this.publishError(command, { code, message }, tool);
    return 'error';
  }

  private publishResponse(command: CommandEnvelope, result: unknown): Promise<void> {
    return this.publish(command, 'mcp-response', {
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
    command: CommandEnvelope,
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
    command: CommandEnvelope,
    event: string,
    data: object,
    { final = true } = {},
  ): Promise<void> {
    try {
      await this.deps.engine.publish(
        topics.connection(command.connectionId),
        event,
        JSON.stringify(data),
        final ? { completesRequest: command.requestId } : undefined,
      );
    } catch (err) {
      if (!isEventTooLarge(err)) throw err;
      if (!final) {
        // A progress notification too large to send is skipped; the result still follows.
        this.deps.logger.warn('progress notification over EVENT_MAX_BYTES dropped', {
          requestId: command.requestId,
          error: err.message,
        });
        return;
      }
      await this.publishError(command, resultTooLarge(event, err.message));
    }
  }
}

/** The error a client gets instead of a result too large to send. */
function resultTooLarge(event: string, detail: string): ErrorDetail {
  return {
    code: WORKER_ERROR_CODES.resultTooLarge,
    message: `The ${event} was not sent: ${detail}. Ask for less at a time.`,
  };
}

/** Publishes an `mcp-error` for a command (also used for dead-lettered commands). */
export async function publishCommandError(
  engine: Pick<Engine, 'publish'>,
  command: CommandEnvelope,
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
    await engine.publish(topic, 'mcp-error', JSON.stringify(data), completes);
  } catch (err) {
    if (!isEventTooLarge(err) || extras.result === undefined) throw err;
    // The isError result it carries is too large: the error alone, saying so.
    const { result: _dropped, ...rest } = data as typeof data & { result?: unknown };
    const alone = { ...rest, error: resultTooLarge('mcp-error', err.message) };
    await engine.publish(topic, 'mcp-error', JSON.stringify(alone), completes);
  }
}

/** The client's own message id, echoed as `id` when it gave one. */
function clientId(command: CommandEnvelope): { id?: string | number } {
  const id = command.message?.id;
  return id !== undefined ? { id } : {};
}

function claimsOf(command: CommandEnvelope): TokenClaims {
  return {
    sub: command.tokenId,
    type: command.tokenType,
    ...(command.tools ? { tools: command.tools } : {}),
  };
}

function permissionMessage(claims: TokenClaims, tool: string): string {
  if (claims.tools && !claims.tools.includes(tool)) {
    return `Permission denied: tool ${tool} is not in this token's allow-list`;
  }
  return `Permission denied: a readonly token may only call read-only tools, and ${tool} modifies data`;
}

/** An isError result as an error: the SDK's "MCP error <code>: ..." keeps its code. */
function toolErrorDetail(result: CallToolResult): ErrorDetail {
  const text = result.content
    .filter((c): c is { type: 'text'; text: string } => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
  const sdkError = SDK_ERROR_TEXT.exec(text);
  if (sdkError) return { code: Number(sdkError[1]), message: sdkError[2] };
  return { code: WORKER_ERROR_CODES.toolError, message: text || 'Tool failed' };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function now(): string {
  return new Date().toISOString();
}
