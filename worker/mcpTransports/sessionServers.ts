import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { randomUUID } from 'node:crypto';
import type { JSONRPCRequest, RequestId, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Engine } from '../../shared/engine/engine';
import type { Logger } from '../../shared/logger';
import { RPC_ERRORS, type ErrorDetail } from '../../shared/protocol';
import { truncate } from '../../shared/text';
import {
  mcpNames,
  type McpCancel,
  type McpClientResponse,
  type McpSessionInit,
  type McpSessionRecord,
} from '../../shared/mcpTransports';
import { MCP_EVENTS, CONTROL_EVENTS } from '../../shared/protocol';
import type { McpCommand } from '../../shared/types';
import type { ControlTopicRouter } from '../controlTopic';
import { InProcessTransport, type ServerReply } from '../server/inProcessTransport';
import { authInfoForCommand } from '../server/requestContext';
import type { DispatchOutcome } from '../outcomes';
import { runToolCall, toolCallOutcome, type Outbox } from '../toolCallRunner';
import type { ToolPermissions } from '../toolPermissions';
import { changePublisher } from './changes';
import { errorReply, publishToRequestStream } from './requestStream';
import {
  passesSessionLevel,
  recordSessionLogLevel,
  sessionLogLevel,
  setLevelRefusal,
} from './sessionLogging';
import { SUBSCRIPTION_METHODS, SessionSubscriptions } from './resourceSubscriptions';

/** A session's server is closed after this long without a request (rebuilt when needed). */
export const SESSION_IDLE_MS = 10 * 60_000;
/** At most this many session servers per worker; the least recently used idle ones go first. */
export const MAX_CACHED_SESSIONS = 1000;
const SWEEP_EVERY_MS = 30_000;
/** MCP tool names are at most 128 characters: a longer one names no tool (and is not echoed). */
const TOOL_NAME_MAX_CHARS = 128;

export interface McpSessionServersDeps {
  engine: Pick<Engine, 'publish' | 'kv' | 'sets'>;
  /** The permission rule of every transport. */
  permissions: Pick<ToolPermissions, 'refusal' | 'visibleTools'>;
  /** Cancels and client replies arrive on the workers' control topic. */
  control: ControlTopicRouter;
  /** Builds the one MCP server definition (createBacklogServer, or MCP_SERVER_MODULE's). */
  createServer: () => McpServer | Promise<McpServer>;
  logger: Logger;
  sessionTtlMs: number;
  /** History lifetime of the stream topics (how long a stream stays resumable). */
  streamTtlMs: number;
  /** A request to a session's server running longer is cancelled (TOOL_TIMEOUT_MS). */
  requestTimeoutMs?: number;
  now?: () => number;
}

/** Puts a message on a running call's stream; `before` runs first (in the stream's order). */
type CallForwarder = (message: object, before?: () => Promise<unknown>) => void;

interface SessionEntry {
  sessionId: string;
  server: McpServer;
  transport: InProcessTransport;
  lastUsed: number;
  /** The client's JSON-RPC id (JSON) -> this transport's id, for notifications/cancelled. */
  running: Map<string, number>;
  /** This transport's id of a running call -> how to put a message on that call's stream. */
  calls: Map<number, CallForwarder>;
  /** Id on the wire of a server -> client request -> the server's own id for it. */
  outgoing: Map<string, RequestId>;
}

/**
 * Serves MCP transport commands (`command.mcp` set) of any session, on any worker.
 *
 * The SDK keeps a session's initialization in its McpServer's memory, so each session gets its
 * own McpServer behind an InProcessTransport, built on first use from the session record in the
 * engine (initialize replayed with the client's capabilities and info), cached, and closed when
 * idle. Replies and progress are published as JSON-RPC messages on the request's stream topic;
 * a final reply marks the command processed in the same atomic step (as on the seed path).
 * What the client sends a running call (notifications/cancelled, replies to the server's own
 * requests for sampling or elicitation) arrives on a topic every worker hears; the worker
 * running the call acts on it, wherever the client's POST landed.
 */
export class McpSessionServers {
  private readonly sessions = new Map<string, SessionEntry>();
  private readonly building = new Map<string, Promise<SessionEntry | undefined>>();
  private lastSweep = 0;
  private readonly now: () => number;
  private readonly subscriptions: SessionSubscriptions;

  constructor(private readonly deps: McpSessionServersDeps) {
    this.now = deps.now ?? Date.now;
    this.subscriptions = new SessionSubscriptions(deps.engine, deps.sessionTtlMs);
    deps.control.on(CONTROL_EVENTS.mcpCancel, (data) => this.onCancel(data));
    deps.control.on(CONTROL_EVENTS.clientResponse, (data) => this.onClientResponse(data));
  }

  async close(): Promise<void> {
    const entries = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(entries.map((entry) => entry.server.close().catch(() => undefined)));
  }

  async dispatch(command: McpCommand): Promise<DispatchOutcome> {
    this.sweep();
    const method = command.message.method;
    if (method === 'initialize') return this.initialize(command);
    const sessionId = command.mcp.sessionId;
    const entry = await this.entryFor(sessionId);
    if (!entry) {
      await this.publishError(command, {
        code: RPC_ERRORS.sessionNotFound,
        message: 'Session not found',
      });
      return 'error';
    }
    entry.lastUsed = this.now();
    if (method === 'tools/call') return this.callTool(command, entry);
    if (method === 'tools/list') return this.listTools(command, entry);
    if (method === 'logging/setLevel') return this.setLogLevel(command, entry);
    const subscription = SUBSCRIPTION_METHODS.has(method);
    const refusal = subscription ? await this.subscriptions.refusal(command) : undefined;
    if (refusal) {
      await this.publishError(command, refusal);
      return 'error';
    }
    const reply = await entry.transport.request(method, command.message.params, {
      extra: { authInfo: authInfoForCommand(command) },
    }).reply;
    // What the server accepted is kept in the engine, for the session's GET stream on any pod.
    const unrecorded =
      subscription && !('error' in reply) ? await this.subscriptions.apply(command) : undefined;
    if (unrecorded) {
      await this.publishError(command, unrecorded);
      return 'error';
    }
    await this.publishReply(command, reply);
    return 'error' in reply ? 'error' : 'ok';
  }

  /** The reply of a command the engine dead-lettered. */
  async publishDeadLetter(command: McpCommand, deliveries: number): Promise<void> {
    await this.publishError(command, {
      code: RPC_ERRORS.internalError,
      message: `Command failed after ${deliveries} deliveries`,
    });
  }

  // ---- methods ----

  private async initialize(command: McpCommand): Promise<DispatchOutcome> {
    const { sessionId } = command.mcp;
    const entry = await this.newEntry(sessionId);
    const reply = await entry.transport.request('initialize', command.message.params).reply;
    if ('error' in reply) {
      await entry.server.close();
      await this.publishReply(command, reply);
      return 'error';
    }
    entry.transport.notify('notifications/initialized');
    const params = command.message.params ?? {};
    await this.recordInit(sessionId, {
      protocolVersion: String(reply.result.protocolVersion),
      capabilities: asObject(params.capabilities),
      clientInfo: asObject(params.clientInfo),
    });
    const previous = this.sessions.get(sessionId);
    this.sessions.set(sessionId, entry);
    if (previous) void previous.server.close().catch(() => undefined);
    await this.publishReply(command, reply);
    return 'ok';
  }

  private async callTool(command: McpCommand, entry: SessionEntry): Promise<DispatchOutcome> {
    const params = command.message.params ?? {};
    // The SDK's schema check would answer -32603 (its zod error is not an McpError).
    if (typeof params.name !== 'string') {
      await this.publishError(command, {
        code: RPC_ERRORS.invalidParams,
        message: 'tools/call params.name must be a string (the tool name)',
      });
      return 'error';
    }
    if (params.name.length > TOOL_NAME_MAX_CHARS) {
      await this.publishError(command, {
        code: RPC_ERRORS.invalidParams,
        message: `Tool not found: ${truncate(params.name)}`,
      });
      return 'error';
    }
    const refusal = this.deps.permissions.refusal(command, params.name);
    if (refusal) {
      await this.publishError(command, refusal);
      return 'error';
    }
    // What the call sends the client before its reply (progress, log messages, requests for
    // sampling or elicitation) is published in order on its stream.
    const key = runningKey(command.message.id);
    // Log messages below the level the client set (on whichever worker) are dropped. Read from
    // the session record at the call's first log message: a call that logs nothing costs nothing.
    let logLevel: Promise<string | undefined> | undefined;
    const levelOfSession = () =>
      (logLevel ??= sessionLogLevel(this.deps.engine.kv, entry.sessionId));
    const forwarder =
      (outbox: Outbox): CallForwarder =>
      (message, before) =>
        outbox.push(async () => {
          await before?.();
          await this.publish(command, MCP_EVENTS.notification, message, false);
        });
    let callId: number | undefined;
    const reply = await runToolCall(entry.transport, command, params, {
      onNotification: (notification, outbox) => {
        if (notification.method !== 'notifications/message') {
          forwarder(outbox)(notification);
          return;
        }
        // In the outbox, so it keeps its place among the call's other messages.
        outbox.push(async () => {
          if (!passesSessionLevel(notification, await levelOfSession())) return;
          await this.publish(command, MCP_EVENTS.notification, notification, false);
        });
      },
      onStart: (jsonRpcId, outbox) => {
        callId = jsonRpcId;
        entry.running.set(key, jsonRpcId);
        entry.calls.set(jsonRpcId, forwarder(outbox));
      },
      onEnd: () => {
        entry.running.delete(key);
        if (callId !== undefined) entry.calls.delete(callId);
        entry.lastUsed = this.now();
      },
    });
    if ('error' in reply && reply.error.code === RPC_ERRORS.requestCancelled) {
      // MCP sends no reply to a cancelled request: only tell the gateway the stream is done.
      await this.publish(command, MCP_EVENTS.cancelled, { id: command.message.id }, true);
      return 'cancelled';
    }
    await this.publishReply(command, reply);
    return toolCallOutcome(reply);
  }

  private async listTools(command: McpCommand, entry: SessionEntry): Promise<DispatchOutcome> {
    const reply = await entry.transport.request('tools/list', command.message.params, {
      extra: { authInfo: authInfoForCommand(command) },
    }).reply;
    if ('error' in reply) {
      await this.publishReply(command, reply);
      return 'error';
    }
    const tools = this.deps.permissions.visibleTools(command, reply.result.tools as Tool[]);
    await this.publishReply(command, { ...reply, result: { ...reply.result, tools } });
    return 'ok';
  }

  /**
   * logging/setLevel: checked, answered by the session's server (which refuses it when it has no
   * `logging` capability), then kept in the session record before the reply, so the client's
   * next call applies it on any worker.
   */
  private async setLogLevel(command: McpCommand, entry: SessionEntry): Promise<DispatchOutcome> {
    const params = command.message.params;
    const refusal = setLevelRefusal(params);
    if (refusal) {
      await this.publishError(command, refusal);
      return 'error';
    }
    const reply = await entry.transport.request('logging/setLevel', params, {
      extra: { authInfo: authInfoForCommand(command) },
    }).reply;
    if ('result' in reply) {
      const { engine, sessionTtlMs } = this.deps;
      const level = String(params?.level);
      if (!(await recordSessionLogLevel(engine.kv, entry.sessionId, level, sessionTtlMs))) {
        // Ended meanwhile: nothing to keep the level in.
        await this.publishError(command, {
          code: RPC_ERRORS.sessionNotFound,
          message: 'Session not found',
        });
        return 'error';
      }
    }
    await this.publishReply(command, reply);
    return 'error' in reply ? 'error' : 'ok';
  }

  /** A client's notifications/cancelled, heard by every worker: acted on where the call runs. */
  private onCancel(data: string): void {
    const cancel = parseControl<McpCancel>(data);
    const entry = cancel && this.sessions.get(cancel.sessionId);
    if (!entry) return;
    const id = entry.running.get(runningKey(cancel.requestId));
    if (id !== undefined) entry.transport.cancel(id, cancel.reason);
  }

  /** A client's reply to a server request, heard by every worker: taken where it was asked. */
  private onClientResponse(data: string): void {
    const response = parseControl<McpClientResponse>(data);
    const entry = response && this.sessions.get(response.sessionId);
    if (!entry) return;
    const wireId = String(response.message.id);
    const serverId = entry.outgoing.get(wireId);
    if (serverId === undefined) return;
    entry.outgoing.delete(wireId);
    entry.transport.receive({ ...response.message, id: serverId } as ServerReply);
  }

  /**
   * A server -> client request made by a running call: put on that call's stream under an id
   * unique across workers (two workers may serve one session, each numbering from 0); the
   * client's POSTed reply comes back through the worker topic. Requests outside a call are
   * refused (no stream to carry them).
   */
  private relayServerRequest(
    entry: SessionEntry,
    request: JSONRPCRequest,
    relatedRequestId?: RequestId,
  ): boolean {
    const forward =
      typeof relatedRequestId === 'number' ? entry.calls.get(relatedRequestId) : undefined;
    if (!forward) return false;
    const wireId = `srv-${randomUUID()}`;
    entry.outgoing.set(wireId, request.id);
    // Recorded before the client can see it: the gateway lets through only responses to ids
    // recorded here (each once), so clients cannot post unsolicited responses to every worker.
    const key = mcpNames.serverRequestKey(entry.sessionId, wireId);
    forward({ ...request, id: wireId }, () =>
      this.deps.engine.kv.set(key, '1', this.deps.sessionTtlMs),
    );
    return true;
  }

  // ---- session servers ----

  private async entryFor(sessionId: string): Promise<SessionEntry | undefined> {
    const cached = this.sessions.get(sessionId);
    if (cached) return cached;
    let building = this.building.get(sessionId);
    if (!building) {
      building = this.rebuild(sessionId).finally(() => this.building.delete(sessionId));
      this.building.set(sessionId, building);
    }
    return building;
  }

  /** A session's server, rebuilt from its record: initialize replayed as the client sent it. */
  private async rebuild(sessionId: string): Promise<SessionEntry | undefined> {
    const json = await this.deps.engine.kv.get(mcpNames.sessionKey(sessionId));
    if (json === undefined) return undefined;
    const record = JSON.parse(json) as McpSessionRecord;
    const entry = await this.newEntry(sessionId);
    if (record.init) {
      const reply = await entry.transport.request('initialize', {
        protocolVersion: record.init.protocolVersion,
        capabilities: record.init.capabilities,
        clientInfo: record.init.clientInfo,
      }).reply;
      if ('error' in reply) {
        await entry.server.close();
        throw new Error(`Replaying initialize failed: ${reply.error.message}`);
      }
      entry.transport.notify('notifications/initialized');
    }
    this.sessions.set(sessionId, entry);
    return entry;
  }

  private async newEntry(sessionId: string): Promise<SessionEntry> {
    const server = await this.deps.createServer();
    const transport = new InProcessTransport({ requestTimeoutMs: this.deps.requestTimeoutMs });
    const entry: SessionEntry = {
      sessionId,
      server,
      transport,
      lastUsed: this.now(),
      running: new Map(),
      calls: new Map(),
      outgoing: new Map(),
    };
    transport.onServerRequest = (request, related) =>
      this.relayServerRequest(entry, request, related);
    // A change the session's server announces reaches the 2026-07-28 listen streams too.
    transport.onServerNotification = changePublisher(this.deps.engine, this.deps.logger);
    await server.connect(transport);
    return entry;
  }

  private async recordInit(sessionId: string, init: McpSessionInit): Promise<void> {
    const key = mcpNames.sessionKey(sessionId);
    const json = await this.deps.engine.kv.get(key);
    if (json === undefined) return; // ended meanwhile: nothing to resurrect
    const record = { ...(JSON.parse(json) as McpSessionRecord), init };
    await this.deps.engine.kv.set(key, JSON.stringify(record), this.deps.sessionTtlMs, 'ifPresent');
  }

  /** Closes idle session servers (no call running), and the oldest idle ones past the cap. */
  private sweep(): void {
    const now = this.now();
    if (now - this.lastSweep < SWEEP_EVERY_MS && this.sessions.size <= MAX_CACHED_SESSIONS) return;
    this.lastSweep = now;
    const idle = [...this.sessions.entries()]
      .filter(([, entry]) => entry.running.size === 0)
      .sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    let excess = this.sessions.size - MAX_CACHED_SESSIONS;
    for (const [sessionId, entry] of idle) {
      if (entry.lastUsed > now - SESSION_IDLE_MS && excess <= 0) break;
      excess -= 1;
      this.sessions.delete(sessionId);
      void entry.server.close().catch(() => undefined);
    }
  }

  // ---- publishing ----

  private publishReply(command: McpCommand, reply: ServerReply): Promise<void> {
    if ('error' in reply) return this.publishError(command, reply.error);
    // The transport numbered the request itself: the client gets its own id back.
    return this.publish(
      command,
      MCP_EVENTS.response,
      { ...reply, id: command.message.id ?? null },
      true,
    );
  }

  private publishError(command: McpCommand, error: ErrorDetail): Promise<void> {
    return this.publish(command, MCP_EVENTS.response, errorReply(command, error), true);
  }

  private publish(
    command: McpCommand,
    event: string,
    message: object,
    final: boolean,
  ): Promise<void> {
    return publishToRequestStream(
      this.deps,
      command,
      { event, data: message, final },
      this.deps.streamTtlMs,
    );
  }
}

function parseControl<T extends { sessionId: string }>(data: string): T | undefined {
  try {
    const payload = JSON.parse(data) as T;
    return typeof payload?.sessionId === 'string' ? payload : undefined;
  } catch {
    return undefined;
  }
}

function runningKey(id: unknown): string {
  return JSON.stringify(id ?? null);
}

function asObject(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}
