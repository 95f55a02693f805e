import type { Engine, KeyValueStore } from './engine/engine';
import {
  MCP_META,
  MODERN_RPC_ERRORS,
  MODERN_SESSION,
  mcpNames,
  type McpCancel,
} from './mcpTransports';
import { CONTROL_EVENTS, RPC_ERRORS, topics, type ErrorDetail } from './protocol';
import { truncate } from './text';

/** The Tasks extension of MCP 2026-07-28 (SEP-2663): its id in capabilities and tool `_meta`. */
export const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';

/** How long a task (its record and outcome) lives after it is created. */
export const TASK_TTL_MS = 60 * 60_000;
/** The polling interval suggested to clients. */
export const TASK_POLL_INTERVAL_MS = 1_000;

/**
 * How a tool takes part in tasks, declared by the server in the tool's
 * `_meta["io.modelcontextprotocol/tasks"].taskSupport`: `optional` runs as a task when the
 * request declares the extension (and at once otherwise), `required` only as a task (-32021
 * otherwise). Any other tool always runs at once.
 */
export type TaskSupport = 'optional' | 'required';

export type TaskStatus = 'working' | 'completed' | 'failed' | 'cancelled';

/** What is stored when a task is created: who owns it and where it runs. */
export interface TaskRecord {
  taskId: string;
  /** The token's subject: only it sees and cancels the task. */
  sub: string;
  /** The stream id of the tools/call that created it: a cancel names it to the worker. */
  streamId: string;
  /** ISO 8601. */
  createdAt: string;
  ttlMs: number;
  /** The identity of the server running it: every 2026-07-28 result names it in `_meta`. */
  serverInfo?: Record<string, unknown>;
}

/** How a task ended: the first outcome stored wins (a cancel and a completion may race). */
export type TaskOutcome =
  | { status: 'completed'; at: string; result: Record<string, unknown> }
  | { status: 'failed'; at: string; error: Record<string, unknown> }
  | { status: 'cancelled'; at: string; statusMessage?: string };

/** A task as tasks/get answers it (SEP-2663's DetailedTask, without `resultType`). */
export interface DetailedTask {
  taskId: string;
  status: TaskStatus;
  statusMessage?: string;
  createdAt: string;
  lastUpdatedAt: string;
  ttlMs: number;
  pollIntervalMs: number;
  result?: Record<string, unknown>;
  error?: Record<string, unknown>;
}

/**
 * Tasks in the engine's key/value store, shared by every worker and outliving any pod: a
 * record (written once, when the task is created) and an outcome (written once, by whoever
 * ends the task first: the worker running it, or a cancel from any pod), both expiring
 * `ttlMs` after creation. Writing each only if absent is what makes a redelivered command
 * find its task again and a late completion lose to an earlier cancel.
 */
export class TaskStore {
  constructor(private readonly kv: KeyValueStore) {}

  /**
   * Creates the task unless it exists (the same command delivered again); returns the stored
   * record either way.
   */
  async create(record: TaskRecord): Promise<TaskRecord> {
    const key = mcpNames.taskKey(record.taskId);
    if (await this.kv.set(key, JSON.stringify(record), record.ttlMs, 'ifAbsent')) return record;
    const existing = await this.record(record.taskId);
    // Gone between the two calls (expired): stored again, as it is being run again.
    if (!existing) {
      await this.kv.set(key, JSON.stringify(record), record.ttlMs);
      return record;
    }
    return existing;
  }

  /** The task's record, whoever owns it. */
  async record(taskId: string): Promise<TaskRecord | undefined> {
    return parse<TaskRecord>(await this.kv.get(mcpNames.taskKey(taskId)));
  }

  /** The task's record if `sub` owns it; another token's task reads as absent. */
  async owned(taskId: string, sub: string): Promise<TaskRecord | undefined> {
    const record = await this.record(taskId);
    return record?.sub === sub ? record : undefined;
  }

  async outcome(taskId: string): Promise<TaskOutcome | undefined> {
    return parse<TaskOutcome>(await this.kv.get(mcpNames.taskOutcomeKey(taskId)));
  }

  /** Ends the task unless it has ended; true when this outcome is the one stored. */
  async settle(record: TaskRecord, outcome: TaskOutcome): Promise<boolean> {
    const left = Date.parse(record.createdAt) + record.ttlMs - Date.now();
    if (left <= 0) return false;
    return this.kv.set(
      mcpNames.taskOutcomeKey(record.taskId),
      JSON.stringify(outcome),
      left,
      'ifAbsent',
    );
  }

  /** The task as tasks/get shows it. */
  async detailed(record: TaskRecord): Promise<DetailedTask> {
    return detailedTask(record, await this.outcome(record.taskId));
  }
}

export function detailedTask(record: TaskRecord, outcome: TaskOutcome | undefined): DetailedTask {
  const task: DetailedTask = {
    taskId: record.taskId,
    status: outcome?.status ?? 'working',
    createdAt: record.createdAt,
    lastUpdatedAt: outcome?.at ?? record.createdAt,
    ttlMs: record.ttlMs,
    pollIntervalMs: TASK_POLL_INTERVAL_MS,
  };
  if (outcome?.status === 'completed') task.result = outcome.result;
  if (outcome?.status === 'failed') task.error = outcome.error;
  if (outcome?.status === 'cancelled' && outcome.statusMessage) {
    task.statusMessage = outcome.statusMessage;
  }
  return task;
}

/** A tool's declared task support, from its definition's `_meta`. */
export function taskSupportOf(tool: { _meta?: unknown }): TaskSupport | undefined {
  const meta = tool._meta;
  if (typeof meta !== 'object' || meta === null) return undefined;
  const declared = (meta as Record<string, unknown>)[TASKS_EXTENSION];
  if (typeof declared !== 'object' || declared === null) return undefined;
  const support = (declared as Record<string, unknown>).taskSupport;
  return support === 'optional' || support === 'required' ? support : undefined;
}

/** Whether a 2026 request's client capabilities declare the Tasks extension. */
export function declaresTasks(clientCapabilities: Record<string, unknown>): boolean {
  const extensions = clientCapabilities.extensions;
  if (typeof extensions !== 'object' || extensions === null || Array.isArray(extensions)) {
    return false;
  }
  const tasks = (extensions as Record<string, unknown>)[TASKS_EXTENSION];
  return typeof tasks === 'object' && tasks !== null;
}

function parse<T>(json: string | undefined): T | undefined {
  if (json === undefined) return undefined;
  try {
    return JSON.parse(json) as T;
  } catch {
    return undefined;
  }
}

/** The methods of the Tasks extension: answered by the gateway, from the engine. */
export const TASK_METHODS: ReadonlySet<string> = new Set([
  'tasks/get',
  'tasks/update',
  'tasks/cancel',
]);

export type TaskReply =
  { result: Record<string, unknown> } | { error: ErrorDetail & { data?: unknown } };

/**
 * -32021: the request needs the Tasks extension its client capabilities do not declare, with
 * the capabilities it needs in `data` (SEP-2575's shape).
 */
export function tasksRequired(what: string): ErrorDetail & { data: unknown } {
  return {
    code: MODERN_RPC_ERRORS.missingClientCapability,
    message: `${what}: declare the ${TASKS_EXTENSION} extension in the request's client capabilities`,
    data: { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } },
  };
}

/**
 * tasks/get, tasks/update and tasks/cancel of token `sub`, answered from the engine by any pod
 * (no worker is involved: polling takes no worker slot). A task of another token is as unknown
 * as one that never was (or expired): -32602. A cancel stores the task's end (unless it ended)
 * and tells every worker, on their control topic, to stop the call where it runs; if none runs
 * it, the stored end keeps it from running again.
 */
export async function answerTaskRequest(
  engine: Pick<Engine, 'kv' | 'publish'>,
  sub: string,
  method: string,
  params: Record<string, unknown>,
): Promise<TaskReply> {
  const meta = isObject(params._meta) ? params._meta : {};
  const capabilities = isObject(meta[MCP_META.clientCapabilities])
    ? meta[MCP_META.clientCapabilities]
    : {};
  if (!declaresTasks(capabilities as Record<string, unknown>)) {
    return { error: tasksRequired(`${method} belongs to the Tasks extension`) };
  }
  const { taskId } = params;
  if (typeof taskId !== 'string' || taskId === '') {
    return invalid(`Invalid params: ${method} needs params.taskId (a string)`);
  }
  if (method === 'tasks/update' && !isObject(params.inputResponses)) {
    return invalid('Invalid params: tasks/update needs params.inputResponses (an object)');
  }
  const tasks = new TaskStore(engine.kv);
  const record = await tasks.owned(taskId, sub);
  if (!record) return invalid(`Unknown task: ${truncate(taskId)}`);
  const named = (result: Record<string, unknown>) => ({
    result: {
      ...result,
      resultType: 'complete',
      _meta: { [MCP_META.serverInfo]: record.serverInfo ?? {} },
    },
  });
  if (method === 'tasks/get') return named({ ...(await tasks.detailed(record)) });
  if (method === 'tasks/cancel') {
    const cancelled = await tasks.settle(record, {
      status: 'cancelled',
      at: new Date().toISOString(),
      statusMessage: 'Cancelled by the client',
    });
    if (cancelled) {
      const cancel: McpCancel = {
        sessionId: MODERN_SESSION,
        requestId: record.taskId,
        streamId: record.streamId,
        reason: 'the task was cancelled (tasks/cancel)',
      };
      await engine.publish(topics.workers, CONTROL_EVENTS.mcpCancel, JSON.stringify(cancel));
    }
  }
  // tasks/update: no task here ever waits on input, so no response is outstanding and every
  // one given is ignored, as the extension says; the ack is the same empty result.
  return named({});
}

function invalid(message: string): TaskReply {
  return { error: { code: RPC_ERRORS.invalidParams, message } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
