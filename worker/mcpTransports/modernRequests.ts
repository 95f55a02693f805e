import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type {
  JSONRPCNotification,
  JSONRPCRequest,
  RequestId,
  Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Engine } from '../../shared/engine/engine';
import type { Logger } from '../../shared/logger';
import {
  MAX_RESOURCE_SUBSCRIPTIONS,
  MCP_LOG_LEVELS,
  RESOURCE_URI_MAX_CHARS,
  MCP_META,
  SPENT_STREAM_TTL_MS,
  SUPPORTED_PROTOCOL_VERSIONS,
  type ListenFilter,
  type McpCancel,
} from '../../shared/mcpTransports';
import { CONTROL_EVENTS, MCP_EVENTS, RPC_ERRORS, type ErrorDetail } from '../../shared/protocol';
import { ERROR_MESSAGE_MAX_CHARS, truncate } from '../../shared/text';
import type { McpCommand } from '../../shared/types';
import type { ControlTopicRouter } from '../controlTopic';
import { errorOutcome, type DispatchOutcome } from '../outcomes';
import { InProcessTransport, type ServerReply } from '../server/inProcessTransport';
import { ROUND_SERVER_CLIENT_CAPABILITIES } from '../server/inputRequired';
import { authInfoForCommand } from '../server/requestContext';
import { Outbox, runToolCall } from '../toolCallRunner';
import { changePublisher, isChangeNotification, publishChange } from './changes';
import {
  paramHeaderDeclarations,
  paramHeaderMismatch,
  type ParamHeaderDeclaration,
} from './paramHeaders';
import type { ToolPermissions } from '../toolPermissions';
import { errorReply, publishToRequestStream } from './requestStream';
import {
  TASK_TTL_MS,
  TASKS_EXTENSION,
  TaskStore,
  declaresTasks,
  detailedTask,
  taskSupportOf,
  tasksRequired,
  type TaskOutcome,
  type TaskSupport,
} from '../../shared/mcpTasks';

/** MCP tool names are at most 128 characters: a longer one names no tool (and is not echoed). */
const TOOL_NAME_MAX_CHARS = 128;

/**
 * A cancel that arrives before its request runs (closed while queued) is remembered this long,
 * at most this many, by every worker: whichever takes the request then drops it.
 */
const EARLY_CANCEL_TTL_MS = 60_000;
const EARLY_CANCELS_MAX = 10_000;

/** The revision the SDK 1.x server is initialized with (the newest it knows). */
const SERVER_SIDE_VERSION = '2025-11-25';

/**
 * Every client capability, declared once when the worker's 1.x server is initialized: the 1.x
 * server refuses server -> client requests the client did not declare, while in 2026-07-28 each
 * request declares its own, which the input-required round checks (-32021).
 */

/** Caching hints (SEP-2549) of a cacheable result. */
export interface CacheHint {
  ttlMs: number;
  cacheScope: 'public' | 'private';
}

/**
 * The hints a cacheable result gets unless the server's own result carries them: a minute,
 * private (lists are filtered by each token's permissions). A change within the minute is told
 * to listen streams.
 */
export const DEFAULT_CACHE_HINT: CacheHint = { ttlMs: 60_000, cacheScope: 'private' };

/** The results that carry caching hints in 2026-07-28. */
const CACHEABLE_METHODS: ReadonlySet<string> = new Set([
  'server/discover',
  'tools/list',
  'prompts/list',
  'resources/list',
  'resources/templates/list',
  'resources/read',
]);

/**
 * One round of a 2026-07-28 request that may need input from the client (SEP-2322): the
 * contract of worker/server/inputRequired.ts's InputRequiredRound.
 */
export interface InputRound {
  /** The params for the 1.x server (inputResponses, requestState removed); throws RoundError. */
  serverParams(): Record<string, unknown>;
  /** A server -> client request of the handler: answered from inputResponses, or pending. */
  request(message: {
    method: string;
    params?: Record<string, unknown>;
  }): Promise<Record<string, unknown>>;
  /** The final outcome: the handler's result, or an InputRequiredResult; rejects RoundError. */
  settle(result: Promise<Record<string, unknown>>): Promise<Record<string, unknown>>;
}

export type InputRoundFactory = (opts: {
  secret: string;
  method: string;
  params: Record<string, unknown>;
  clientCapabilities: Record<string, unknown>;
  /** The token's subject: a requestState issued to another subject is refused. */
  principal: string;
}) => InputRound;

export interface ModernRequestsDeps {
  /** publish: request streams, changes, task cancels; kv: tasks (shared/mcpTasks.ts). */
  engine: Pick<Engine, 'publish' | 'kv'>;
  permissions: Pick<ToolPermissions, 'refusal' | 'visibleTools'>;
  /** Cancels (a closed response stream) arrive on the workers' control topic. */
  control: ControlTopicRouter;
  /** Builds the worker's one MCP server (the same definition as the other transports). */
  createServer: () => McpServer | Promise<McpServer>;
  logger: Logger;
  /** A request running longer is cancelled (TOOL_TIMEOUT_MS). */
  requestTimeoutMs?: number;
  /**
   * Signs the requestState of input-required rounds (JWT_SECRET), the same on every worker;
   * without one, no rounds (server -> client requests are refused).
   */
  secret: string | undefined;
  /**
   * Server -> client requests (elicitation, sampling, roots) as InputRequiredResults. Without
   * it they are refused at once (method not found), as the seed API refuses them.
   */
  inputRounds?: InputRoundFactory;
  cacheHint?: CacheHint;
  /** How long a task lives after it is created (default TASK_TTL_MS). */
  taskTtlMs?: number;
}

/** The worker's 1.x server, initialized once for the 2026 era, and what it said about itself. */
interface ModernServer {
  server: McpServer;
  transport: InProcessTransport;
  capabilities: Record<string, unknown>;
  serverInfo: Record<string, unknown>;
  instructions?: string;
}

/** A request running on this worker: how to cancel it. */
interface Running {
  transportId?: number;
  cancel?: (reason: string) => void;
  round?: InputRound;
  /** A cancel that came after it was listed, before it started: applied when it starts. */
  cancelledWith?: string;
}

/** What the worker's 2026 layer keeps of each tool's definition. */
interface ToolFacts {
  /** Its `x-mcp-header` declarations (undefined: an invalid definition). */
  headers: ParamHeaderDeclaration[] | undefined;
  taskSupport: TaskSupport | undefined;
}

/**
 * Serves stateless MCP 2026-07-28 requests (`command.mcp.era === 'modern'`) on any worker,
 * with one SDK 1.x McpServer per worker: the 1.x server knows nothing of the 2026 revision, so
 * this is where its wire rules are kept (the gateway checked the envelope and headers):
 *
 * - server/discover from the server's own initialize answer (capabilities, instructions,
 *   serverInfo) and the revisions /mcp serves; subscriptions/listen's acknowledgment (the filter
 *   honored against the server's capabilities; the gateway keeps the stream);
 * - other requests run on the 1.x server with the token's permissions and the tool timeout (a
 *   tools/call once its `Mcp-Param-*` headers match its `x-mcp-header` arguments);
 *   progress (and log messages, only when `_meta` asks for a log level) go on the request's
 *   stream before the result; results get `resultType`, the serverInfo `_meta` and, when
 *   cacheable, the SEP-2549 hints; 2025-only fields the 2026 schema does not allow are dropped;
 * - change notifications the server emits (list changed, resource updated) go to every gateway
 *   on mcpNames.changesTopic, for their listen streams;
 * - server -> client requests become InputRequiredResults through an InputRound (SEP-2322); one
 *   refused for a capability the client lacks fails the request (-32021);
 * - a client that closed the response stream cancels the request (its handler's signal), or
 *   drops it if it had not started here yet.
 */
export class ModernRequests {
  private serving?: Promise<ModernServer>;
  /** By stream id (unique per request, cluster-wide). */
  private readonly running = new Map<string, Running>();
  /** Running requests with an input round, by their 1.x transport id. */
  private readonly rounds = new Map<number, Running>();
  /** Each tool's header declarations and task support, until a change. */
  private toolFacts?: Promise<Map<string, ToolFacts>>;
  /** Stream ids of requests cancelled before they ran here -> when (oldest first). */
  private readonly earlyCancels = new Map<string, number>();
  private readonly cacheHint: CacheHint;
  private readonly tasks: TaskStore;
  private readonly taskTtlMs: number;

  constructor(private readonly deps: ModernRequestsDeps) {
    this.cacheHint = deps.cacheHint ?? DEFAULT_CACHE_HINT;
    this.tasks = new TaskStore(deps.engine.kv);
    this.taskTtlMs = deps.taskTtlMs ?? TASK_TTL_MS;
    deps.control.on(CONTROL_EVENTS.mcpCancel, (data) => this.onCancel(data));
  }

  async close(): Promise<void> {
    const serving = this.serving;
    this.serving = undefined;
    const served = await serving?.catch(() => undefined);
    await served?.server.close().catch(() => undefined);
  }

  async dispatch(command: McpCommand): Promise<DispatchOutcome> {
    const served = await this.server();
    const method = command.message.method;
    if (method === 'server/discover') {
      await this.publishResult(command, served, {
        supportedVersions: [...SUPPORTED_PROTOCOL_VERSIONS],
        capabilities: await this.capabilitiesFor(command, served),
        ...(served.instructions !== undefined ? { instructions: served.instructions } : {}),
      });
      return 'ok';
    }
    if (method === 'subscriptions/listen') return this.acknowledgeListen(command, served);
    return this.run(command, served);
  }

  /** The reply of a command the engine dead-lettered; a task's command fails its task. */
  async publishDeadLetter(command: McpCommand, deliveries: number): Promise<void> {
    const error = {
      code: RPC_ERRORS.internalError,
      message: `Command failed after ${deliveries} deliveries`,
    };
    if (command.message.method === 'tools/call') {
      const task = await this.tasks.owned(command.requestId, command.sub);
      if (task) {
        await this.tasks.settle(task, { status: 'failed', at: new Date().toISOString(), error });
        return; // its client heard the CreateTaskResult: the task's outcome is the answer
      }
    }
    await this.publishError(command, error);
  }

  // ---- methods ----

  /**
   * The listen stream's first message, SEP-2567's acknowledgment: what of the asked filter the
   * server can honor (its listChanged / subscribe capabilities), tagged with the subscription id
   * (the request's id). The gateway holds the stream and delivers the changes.
   */
  private async acknowledgeListen(
    command: McpCommand,
    served: ModernServer,
  ): Promise<DispatchOutcome> {
    const filter = listenFilterOf(command.message.params?.notifications);
    if (!filter) {
      await this.publishError(command, {
        code: RPC_ERRORS.invalidParams,
        message: "Invalid params: 'notifications' is required and must be a SubscriptionFilter",
      });
      return 'error';
    }
    const uris = filter.resourceSubscriptions ?? [];
    if (uris.length > MAX_RESOURCE_SUBSCRIPTIONS || uris.some(tooLong)) {
      await this.publishError(command, {
        code: RPC_ERRORS.invalidParams,
        message:
          `Invalid params: resourceSubscriptions names at most ${MAX_RESOURCE_SUBSCRIPTIONS} ` +
          `URIs of at most ${RESOURCE_URI_MAX_CHARS} characters each`,
      });
      return 'error';
    }
    const honored = honoredFilter(filter, served.capabilities);
    if (honored.resourceSubscriptions) {
      honored.resourceSubscriptions = await subscribableUris(
        served.transport,
        command,
        honored.resourceSubscriptions,
      );
      if (honored.resourceSubscriptions.length === 0) delete honored.resourceSubscriptions;
    }
    const id = command.message.id ?? null;
    const ack = {
      jsonrpc: '2.0',
      method: 'notifications/subscriptions/acknowledged',
      params: {
        notifications: honored,
        // The server's identity too: the gateway ends the subscription with a result that
        // names it, like every 2026 result.
        _meta: { [MCP_META.subscriptionId]: id, [MCP_META.serverInfo]: served.serverInfo },
      },
    };
    await this.publish(command, MCP_EVENTS.response, ack, true);
    return 'ok';
  }

  private async run(command: McpCommand, served: ModernServer): Promise<DispatchOutcome> {
    const method = command.message.method;
    const params = command.message.params ?? {};
    const meta = asObject(params._meta);
    let asTask = false;
    if (method === 'tools/call') {
      const refusal =
        this.toolCallRefusal(command, params) ?? (await this.paramHeaderRefusal(command, served));
      if (refusal) {
        await this.publishError(command, refusal);
        return 'error';
      }
      const support = (await this.toolFactsOf(command, served)).get(
        String(params.name),
      )?.taskSupport;
      asTask = support !== undefined && declaresTasks(asObject(meta[MCP_META.clientCapabilities]));
      if (support === 'required' && !asTask) {
        await this.publishError(
          command,
          tasksRequired(`Tool ${String(params.name)} runs only as a task`),
        );
        return 'error';
      }
    }
    const { secret } = this.deps;
    // A task's handler outlives its request: no input rounds (their requests are refused).
    const round =
      secret === undefined || asTask
        ? undefined
        : this.deps.inputRounds?.({
            secret,
            method,
            params,
            clientCapabilities: asObject(meta[MCP_META.clientCapabilities]),
            principal: command.sub,
          });
    let serverParams = params;
    try {
      if (round) serverParams = round.serverParams();
    } catch (err) {
      await this.publishError(command, rpcErrorOf(err));
      return 'error';
    }
    // A 2025-era client's `task` hint means nothing in 2026-07-28 (the server alone decides on
    // a task): the 1.x server, which would take it for its own in-process tasks, never sees it.
    if (method === 'tools/call' && 'task' in serverParams) {
      const { task: _hint, ...rest } = serverParams;
      serverParams = rest;
    }

    const logLevel = typeof meta[MCP_META.logLevel] === 'string' ? meta[MCP_META.logLevel] : null;
    const forward = (notification: JSONRPCNotification, outbox: Outbox) => {
      if (isChangeNotification(notification)) {
        this.toolsChanged(notification);
        outbox.push(() => publishChange(this.deps.engine, notification));
      } else if (isRequestScoped(notification, logLevel as string | null)) {
        outbox.push(() => this.publish(command, MCP_EVENTS.notification, notification, false));
      }
    };
    const { streamId } = command.mcp;
    // Closed while queued (or while checked above): dropped. From here on, no await until it
    // is listed as running, so a cancel finds it one way or the other.
    if (this.earlyCancels.delete(streamId)) {
      await this.publish(command, MCP_EVENTS.cancelled, { id: command.message.id }, true);
      return 'cancelled';
    }
    if (asTask) return this.runTask(command, served, serverParams);
    const running: Running = {};
    this.running.set(streamId, running);
    let reply: Promise<ServerReply>;
    if (method === 'tools/call') {
      reply = runToolCall(served.transport, command, serverParams, {
        onNotification: forward,
        onStart: (transportId) => this.started(running, served, transportId, round),
      });
    } else {
      const outbox = new Outbox();
      const call = served.transport.request(method, serverParams, {
        extra: { authInfo: authInfoForCommand(command) },
        onNotification: (notification) => forward(notification, outbox),
      });
      this.started(running, served, call.id, round);
      reply = call.reply.then(async (settled) => {
        await outbox.settle();
        return settled;
      });
    }
    try {
      return await this.answer(command, served, method, reply, round, running);
    } finally {
      this.running.delete(streamId);
      if (running.transportId !== undefined) this.rounds.delete(running.transportId);
    }
  }

  // ---- tasks (the Tasks extension, SEP-2663) ----

  /**
   * A tools/call run as a task: the task is stored (durably, before anything is answered), the
   * CreateTaskResult ends the request's stream, and the tool runs on here, its outcome stored
   * for tasks/get. The command stays unacked until then: a worker that dies holding it has it
   * reclaimed by another, which finds the task and runs the tool again unless its outcome was
   * stored (a tool is re-run only if its result was not recorded).
   */
  private async runTask(
    command: McpCommand,
    served: ModernServer,
    params: Record<string, unknown>,
  ): Promise<DispatchOutcome> {
    const { streamId } = command.mcp;
    const record = await this.tasks.create({
      taskId: command.requestId,
      sub: command.sub,
      streamId,
      createdAt: new Date().toISOString(),
      ttlMs: this.taskTtlMs,
      serverInfo: served.serverInfo,
    });
    const running: Running = {};
    this.running.set(streamId, running);
    try {
      // Listed as running before the outcome is read: a cancel stored after this read finds it.
      const ended = await this.tasks.outcome(record.taskId);
      const created = { resultType: 'task', ...detailedTask(record, ended) };
      delete created.result;
      delete created.error;
      await this.publishResult(command, served, created, 'tools/call', false);
      if (ended) return 'ok'; // a redelivery of a task that ended (or was cancelled while queued)

      const reply = runToolCall(served.transport, command, params, {
        // Nobody listens to the request's stream any more: only changes are passed on.
        onNotification: (notification, outbox) => {
          if (!isChangeNotification(notification)) return;
          this.toolsChanged(notification);
          outbox.push(() => publishChange(this.deps.engine, notification));
        },
        onStart: (transportId) => this.started(running, served, transportId, undefined),
      });
      // An infrastructure failure throws: the command is delivered again, the tool re-run.
      const settled = await reply;
      const at = new Date().toISOString();
      let outcome: TaskOutcome;
      if ('result' in settled) {
        outcome = { status: 'completed', at, result: settled.result as Record<string, unknown> };
      } else if (settled.error.code === RPC_ERRORS.requestCancelled) {
        outcome = { status: 'cancelled', at, statusMessage: settled.error.message };
      } else {
        outcome = { status: 'failed', at, error: boundedError(settled.error) };
      }
      await this.tasks.settle(record, outcome);
      return outcome.status === 'completed' && outcome.result.isError !== true ? 'ok' : 'error';
    } finally {
      this.running.delete(streamId);
    }
  }

  /** The server's capabilities, with the Tasks extension when one of its tools runs as a task. */
  private async capabilitiesFor(
    command: McpCommand,
    served: ModernServer,
  ): Promise<Record<string, unknown>> {
    const facts = await this.toolFactsOf(command, served);
    if (![...facts.values()].some((tool) => tool.taskSupport !== undefined)) {
      return served.capabilities;
    }
    const extensions = { ...asObject(served.capabilities.extensions), [TASKS_EXTENSION]: {} };
    return { ...served.capabilities, extensions };
  }

  /** The server's tools changed: their facts (headers, task support) are listed again when needed. */
  private toolsChanged(notification: JSONRPCNotification): void {
    if (notification.method === 'notifications/tools/list_changed') {
      this.toolFacts = undefined;
    }
  }

  private started(
    running: Running,
    served: ModernServer,
    transportId: number,
    round: InputRound | undefined,
  ): void {
    running.transportId = transportId;
    running.cancel = (reason) => served.transport.cancel(transportId, reason);
    if (round) {
      running.round = round;
      this.rounds.set(transportId, running);
    }
    if (running.cancelledWith !== undefined) running.cancel(running.cancelledWith);
  }

  /** Publishes the request's outcome: its result (or InputRequiredResult) or error. */
  private async answer(
    command: McpCommand,
    served: ModernServer,
    method: string,
    reply: Promise<ServerReply>,
    round: InputRound | undefined,
    running: Running,
  ): Promise<DispatchOutcome> {
    let outcome: { result: Record<string, unknown> } | { error: ErrorDetail } | undefined;
    if (round) {
      const handlerResult = reply.then((settled) => {
        if ('error' in settled) throw settled.error;
        return settled.result as Record<string, unknown>;
      });
      // Once the round answered input_required, how the stopped handler ended is of no interest.
      handlerResult.catch(() => undefined);
      try {
        const result = await round.settle(handlerResult);
        // The handler waits on input the client has not given yet: it will get it in a new
        // request (a new round), so this one's handler is stopped.
        if (result.resultType === 'input_required') running.cancel?.('input required');
        outcome = { result };
      } catch (err) {
        outcome = { error: rpcErrorOf(err) };
      }
      // What the 1.x server answered after all (or how it ended) settles here; never unhandled.
      void reply.catch(() => undefined);
    } else {
      const settled = await reply;
      outcome = 'error' in settled ? { error: settled.error } : { result: settled.result };
    }
    if ('error' in outcome) {
      if (outcome.error.code === RPC_ERRORS.requestCancelled) {
        // The client closed the stream (or it was cancelled): nothing more is sent for it, the
        // gateway is only told the stream is done.
        await this.publish(command, MCP_EVENTS.cancelled, { id: command.message.id }, true);
        return 'cancelled';
      }
      await this.publishError(command, outcome.error);
      return errorOutcome(outcome.error.code);
    }
    let result = outcome.result;
    if (method === 'tools/list' && Array.isArray(result.tools)) {
      result = {
        ...result,
        tools: this.deps.permissions.visibleTools(command, result.tools as Tool[]),
      };
    }
    await this.publishResult(command, served, result, method);
    return result.isError === true ? 'error' : 'ok';
  }

  private toolCallRefusal(
    command: McpCommand,
    params: Record<string, unknown>,
  ): ErrorDetail | undefined {
    // The SDK's schema check would answer -32603 (its zod error is not an McpError).
    if (typeof params.name !== 'string') {
      return {
        code: RPC_ERRORS.invalidParams,
        message: 'tools/call params.name must be a string (the tool name)',
      };
    }
    if (params.name.length > TOOL_NAME_MAX_CHARS) {
      return {
        code: RPC_ERRORS.invalidParams,
        message: `Tool not found: ${truncate(params.name)}`,
      };
    }
    return this.deps.permissions.refusal(command, params.name);
  }

  /**
   * SEP-2243: the -32020 error when the call's `Mcp-Param-*` headers do not match the arguments
   * the tool marks with `x-mcp-header` (checked here, where the tool definitions are).
   */
  private async paramHeaderRefusal(
    command: McpCommand,
    served: ModernServer,
  ): Promise<(ErrorDetail & { data?: unknown }) | undefined> {
    const params = command.message.params ?? {};
    const declarations = (await this.toolFactsOf(command, served)).get(
      String(params.name),
    )?.headers;
    if (!declarations?.length) return undefined;
    return paramHeaderMismatch(declarations, params.arguments, command.mcp.paramHeaders ?? {});
  }

  private toolFactsOf(command: McpCommand, served: ModernServer): Promise<Map<string, ToolFacts>> {
    if (!this.toolFacts) {
      const listing = (async () => {
        const reply = await served.transport.request(
          'tools/list',
          {},
          {
            extra: { authInfo: authInfoForCommand(command) },
          },
        ).reply;
        const tools =
          'result' in reply && Array.isArray(reply.result.tools) ? reply.result.tools : [];
        return new Map(
          (tools as Tool[]).map((tool) => [
            tool.name,
            {
              headers: paramHeaderDeclarations(tool.inputSchema),
              taskSupport: taskSupportOf(tool),
            },
          ]),
        );
      })();
      this.toolFacts = listing;
      listing.catch(() => {
        if (this.toolFacts === listing) this.toolFacts = undefined;
      });
    }
    return this.toolFacts;
  }

  /** A client closed a request's response stream: its handler is cancelled where it runs. */
  private onCancel(data: string): void {
    let cancel: McpCancel;
    try {
      cancel = JSON.parse(data) as McpCancel;
    } catch {
      return;
    }
    if (typeof cancel?.streamId !== 'string') return;
    const running = this.running.get(cancel.streamId);
    if (running) {
      const reason = cancel.reason ?? 'the client closed the stream';
      if (running.cancel) running.cancel(reason);
      else running.cancelledWith = reason;
      return;
    }
    // Not running here (yet): remembered, in case this worker takes it from the queue next.
    const now = Date.now();
    for (const [streamId, at] of this.earlyCancels) {
      if (at > now - EARLY_CANCEL_TTL_MS && this.earlyCancels.size < EARLY_CANCELS_MAX) break;
      this.earlyCancels.delete(streamId);
    }
    this.earlyCancels.set(cancel.streamId, now);
  }

  /** A server -> client request of a running request: through its input round, if any. */
  private relayServerRequest(
    transport: InProcessTransport,
    request: JSONRPCRequest,
    relatedRequestId?: RequestId,
  ): boolean {
    const running =
      typeof relatedRequestId === 'number' ? this.rounds.get(relatedRequestId) : undefined;
    if (!running?.round) return false;
    running.round.request({ method: request.method, params: request.params }).then(
      (result) => transport.receive({ jsonrpc: '2.0', id: request.id, result } as ServerReply),
      // A refusal (e.g. -32021, a capability the client lacks) goes to the handler, which may
      // carry on without it; the round makes it the request's outcome if the request fails.
      (err: unknown) =>
        transport.receive({
          jsonrpc: '2.0',
          id: request.id,
          error: rpcErrorOf(err),
        } as ServerReply),
    );
    return true;
  }

  // ---- the worker's server ----

  private server(): Promise<ModernServer> {
    if (!this.serving) {
      const serving = this.connect();
      this.serving = serving;
      serving.catch(() => {
        if (this.serving === serving) this.serving = undefined;
      });
    }
    return this.serving;
  }

  private async connect(): Promise<ModernServer> {
    const server = await this.deps.createServer();
    const transport = new InProcessTransport({ requestTimeoutMs: this.deps.requestTimeoutMs });
    transport.onServerRequest = (request, related) =>
      this.relayServerRequest(transport, request, related);
    const publishChange = changePublisher(this.deps.engine, this.deps.logger);
    transport.onServerNotification = (notification) => {
      this.toolsChanged(notification);
      publishChange(notification);
    };
    await server.connect(transport);
    const reply = await transport.request('initialize', {
      protocolVersion: SERVER_SIDE_VERSION,
      capabilities: ROUND_SERVER_CLIENT_CAPABILITIES,
      clientInfo: { name: 'mcp-event-gateway (2026-07-28 requests)', version: '1' },
    }).reply;
    if ('error' in reply) {
      await server.close().catch(() => undefined);
      throw new Error(`The MCP server refused initialize: ${reply.error.message}`);
    }
    transport.notify('notifications/initialized');
    const init = reply.result;
    return {
      server,
      transport,
      capabilities: withoutTasks(asObject(init.capabilities)),
      serverInfo: asObject(init.serverInfo),
      ...(typeof init.instructions === 'string' ? { instructions: init.instructions } : {}),
    };
  }

  // ---- publishing ----

  private publishResult(
    command: McpCommand,
    served: ModernServer,
    result: Record<string, unknown>,
    method = command.message.method,
    completesRequest = true,
  ): Promise<void> {
    const message = {
      jsonrpc: '2.0',
      id: command.message.id ?? null,
      result: modernResult(method, result, served.serverInfo, this.cacheHint),
    };
    return this.publish(command, MCP_EVENTS.response, message, true, completesRequest);
  }

  private publishError(
    command: McpCommand,
    error: ErrorDetail & { data?: unknown },
  ): Promise<void> {
    const uri = command.message.params?.uri;
    const unknownResource =
      command.message.method === 'resources/read' &&
      (error.code === RESOURCE_NOT_FOUND || error.code === RPC_ERRORS.invalidParams) &&
      typeof uri === 'string';
    const modern = {
      ...error,
      // 2026-07-28: an unknown resource is invalid params (SEP-2164), never -32002, and names
      // the URI asked for.
      code: error.code === RESOURCE_NOT_FOUND ? RPC_ERRORS.invalidParams : error.code,
      ...(unknownResource && error.data === undefined ? { data: { uri } } : {}),
    };
    return this.publish(command, MCP_EVENTS.response, errorReply(command, modern), true);
  }

  private publish(
    command: McpCommand,
    event: string,
    message: object,
    final: boolean,
    completesRequest = final,
  ): Promise<void> {
    // Nothing resumes a 2026 stream: its history only bridges the gateway's routing.
    return publishToRequestStream(
      this.deps,
      command,
      { event, data: message, final, completesRequest },
      SPENT_STREAM_TTL_MS,
    );
  }
}

const RESOURCE_NOT_FOUND = -32002;

/**
 * A 1.x result as 2026-07-28 has it: `resultType`, the server's identity in `_meta`, caching
 * hints on cacheable results (the server's own kept when valid), and no 2025-only fields
 * (a tool's `execution`, the `tasks` capability).
 */
export function modernResult(
  method: string,
  result: Record<string, unknown>,
  serverInfo: Record<string, unknown>,
  hint: CacheHint = DEFAULT_CACHE_HINT,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...result };
  if (Array.isArray(out.tools)) {
    out.tools = out.tools.map((tool: unknown) => {
      if (!isObject(tool) || !('execution' in tool)) return tool;
      const { execution: _execution, ...rest } = tool;
      return rest;
    });
  }
  if (isObject(out.capabilities)) out.capabilities = withoutTasks(out.capabilities);
  out.resultType ??= 'complete';
  if (out.resultType === 'complete' && CACHEABLE_METHODS.has(method)) {
    const ttlMs = out.ttlMs;
    if (!(typeof ttlMs === 'number' && Number.isSafeInteger(ttlMs) && ttlMs >= 0)) {
      out.ttlMs = hint.ttlMs;
    }
    if (out.cacheScope !== 'public' && out.cacheScope !== 'private')
      out.cacheScope = hint.cacheScope;
  }
  out._meta = { ...asObject(out._meta), [MCP_META.serverInfo]: serverInfo };
  return out;
}

/** A listen request's filter, or undefined when malformed. */
export function listenFilterOf(value: unknown): ListenFilter | undefined {
  if (!isObject(value)) return undefined;
  const filter: ListenFilter = {};
  for (const flag of ['toolsListChanged', 'promptsListChanged', 'resourcesListChanged'] as const) {
    const set = value[flag];
    if (set === undefined) continue;
    if (typeof set !== 'boolean') return undefined;
    filter[flag] = set;
  }
  const uris = value.resourceSubscriptions;
  if (uris !== undefined) {
    if (!Array.isArray(uris) || !uris.every((uri) => typeof uri === 'string')) return undefined;
    filter.resourceSubscriptions = uris as string[];
  }
  return filter;
}

function tooLong(uri: string): boolean {
  return uri.length > RESOURCE_URI_MAX_CHARS;
}

/**
 * The URIs of a listen the server accepts for this token: each asked of its resources/subscribe
 * handler (the backlog's checks that the token may read it), the refused ones left out, so a
 * token never hears of changes to what it cannot read. A server without the handler accepts
 * none.
 */
async function subscribableUris(
  transport: InProcessTransport,
  command: McpCommand,
  uris: string[],
): Promise<string[]> {
  const unique = [...new Set(uris)];
  const extra = { authInfo: authInfoForCommand(command) };
  const accepted = await Promise.all(
    unique.map(async (uri) => {
      const reply = await transport.request('resources/subscribe', { uri }, { extra }).reply;
      return !('error' in reply);
    }),
  );
  return unique.filter((_, i) => accepted[i]);
}

/** What of the asked filter a server with these capabilities can honor. */
export function honoredFilter(
  asked: ListenFilter,
  capabilities: Record<string, unknown>,
): ListenFilter {
  const bit = (capability: string, name: string) =>
    asObject(capabilities[capability])[name] === true;
  const honored: ListenFilter = {};
  if (asked.toolsListChanged && bit('tools', 'listChanged')) honored.toolsListChanged = true;
  if (asked.promptsListChanged && bit('prompts', 'listChanged')) honored.promptsListChanged = true;
  if (asked.resourcesListChanged && bit('resources', 'listChanged')) {
    honored.resourcesListChanged = true;
  }
  if (asked.resourceSubscriptions?.length && bit('resources', 'subscribe')) {
    honored.resourceSubscriptions = [...asked.resourceSubscriptions];
  }
  return honored;
}

/**
 * Whether a notification of a running request goes on its stream: progress always; a log
 * message only at or above the level the request's `_meta` asked for (none when it asked none).
 */
export function isRequestScoped(
  notification: JSONRPCNotification,
  logLevel: string | null,
): boolean {
  if (notification.method === 'notifications/progress') return true;
  if (notification.method !== 'notifications/message' || logLevel === null) return false;
  const level = MCP_LOG_LEVELS.indexOf(String(notification.params?.level));
  return level >= 0 && level >= MCP_LOG_LEVELS.indexOf(logLevel);
}

/** A JSON-RPC error from what a round or handler threw. */
function rpcErrorOf(err: unknown): ErrorDetail & { data?: unknown } {
  if (isObject(err) && typeof err.code === 'number' && typeof err.message === 'string') {
    return {
      code: err.code,
      message: err.message,
      ...(err.data !== undefined ? { data: err.data } : {}),
    };
  }
  return {
    code: RPC_ERRORS.internalError,
    message: err instanceof Error ? err.message : String(err),
  };
}

/** A JSON-RPC error as a task's outcome stores it (its message bounded). */
function boundedError(error: ErrorDetail & { data?: unknown }): Record<string, unknown> {
  return {
    code: error.code,
    message: truncate(error.message, ERROR_MESSAGE_MAX_CHARS),
    ...(error.data !== undefined ? { data: error.data } : {}),
  };
}

function withoutTasks(capabilities: Record<string, unknown>): Record<string, unknown> {
  if (!('tasks' in capabilities)) return capabilities;
  const { tasks: _tasks, ...rest } = capabilities;
  return rest;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asObject(value: unknown): Record<string, unknown> {
  return isObject(value) ? value : {};
}
