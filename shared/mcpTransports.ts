import { randomBytes } from 'node:crypto';

/**
 * What the gateway's MCP transports (gateway/mcpTransports) and the workers' per-session servers
 * (worker/mcpTransports) agree on: session records, stream ids, topics and key names.
 */

/** Streamable HTTP revisions served at /mcp (newest first; the first is offered by default). */
export const STREAMABLE_PROTOCOL_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26'] as const;
/** Assumed when a Streamable HTTP request carries no MCP-Protocol-Version header (per spec). */
export const DEFAULT_STREAMABLE_VERSION = '2025-03-26';

/**
 * Revisions served statelessly at /mcp (MCP 2026-07-28 and later: no session, the version and
 * client capabilities in each request's `_meta`), chosen per request (see eraSelection.ts).
 */
export const MODERN_PROTOCOL_VERSIONS = ['2026-07-28'] as const;

/** What server/discover (and an unsupported-version error) lists: every revision /mcp serves. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly string[] = [
  ...MODERN_PROTOCOL_VERSIONS,
  ...STREAMABLE_PROTOCOL_VERSIONS,
];

/** Whether a revision belongs to the stateless era (revisions are ISO dates: ordered as text). */
export function isModernVersion(version: string): boolean {
  return version >= MODERN_PROTOCOL_VERSIONS[0];
}

/** The reserved `_meta` keys of MCP 2026-07-28 requests, results and notifications. */
export const MCP_META = {
  protocolVersion: 'io.modelcontextprotocol/protocolVersion',
  clientInfo: 'io.modelcontextprotocol/clientInfo',
  clientCapabilities: 'io.modelcontextprotocol/clientCapabilities',
  logLevel: 'io.modelcontextprotocol/logLevel',
  serverInfo: 'io.modelcontextprotocol/serverInfo',
  subscriptionId: 'io.modelcontextprotocol/subscriptionId',
} as const;

/** JSON-RPC error codes MCP 2026-07-28 adds. */
export const MODERN_RPC_ERRORS = {
  /** An MCP-Protocol-Version, Mcp-Method or Mcp-Name header missing or not matching the body. */
  headerMismatch: -32020,
  /** The request needs a client capability its `_meta` does not declare. */
  missingClientCapability: -32021,
  /** A protocol version this server does not serve (data: supported, requested). */
  unsupportedProtocolVersion: -32022,
} as const;

/** MCP's logging levels, least severe first (a client's level lets through itself and above). */
export const MCP_LOG_LEVELS: readonly string[] = [
  'debug',
  'info',
  'notice',
  'warning',
  'error',
  'critical',
  'alert',
  'emergency',
];

/** The request methods of MCP 2026-07-28; any other method is answered -32601 with 404. */
export const MODERN_REQUEST_METHODS: ReadonlySet<string> = new Set([
  'server/discover',
  'subscriptions/listen',
  'tools/list',
  'tools/call',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'completion/complete',
  // The Tasks extension (SEP-2663); tasks/result and tasks/list do not exist in it.
  'tasks/get',
  'tasks/update',
  'tasks/cancel',
]);

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * A header value as SEP-2243 encodes it (`Mcp-Name`, `Mcp-Param-*`): plain, or
 * `=?base64?<UTF-8 as canonical base64>?=`. Undefined for a malformed encoded value.
 */
export function decodeHeaderValue(value: string): string | undefined {
  if (!(value.startsWith('=?base64?') && value.endsWith('?=') && value.length >= 11)) return value;
  const encoded = value.slice('=?base64?'.length, -2);
  if (!BASE64.test(encoded)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(encoded, 'base64'));
  } catch {
    return undefined;
  }
}

/**
 * The stream topics of 2026-07-28 requests live under this pseudo session (there is none):
 * `mcp:stateless:<streamId>`, one random stream id per request.
 */
export const MODERN_SESSION = 'stateless';

/** What a subscriptions/listen stream asks for (SEP-2567's SubscriptionFilter). */
export interface ListenFilter {
  toolsListChanged?: boolean;
  promptsListChanged?: boolean;
  resourcesListChanged?: boolean;
  resourceSubscriptions?: string[];
}

/** The change notifications a listen stream may carry, and the filter flag that selects each. */
export const CHANGE_NOTIFICATIONS: Readonly<Record<string, keyof ListenFilter>> = {
  'notifications/tools/list_changed': 'toolsListChanged',
  'notifications/prompts/list_changed': 'promptsListChanged',
  'notifications/resources/list_changed': 'resourcesListChanged',
  'notifications/resources/updated': 'resourceSubscriptions',
};

/** A change notification a server emitted on some worker, published on mcpNames.changesTopic. */
export interface McpChange {
  method: string;
  params?: Record<string, unknown>;
}

/**
 * The changes of one event on mcpNames.changesTopic: a worker publishes those its server
 * emitted together (one entity change: its resources and the list) as one array; a single
 * change object is taken too. Malformed entries are left out.
 */
export function changesOf(data: string): McpChange[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return [];
  }
  const list = Array.isArray(parsed) ? parsed : [parsed];
  return list.filter(
    (change): change is McpChange =>
      typeof change === 'object' &&
      change !== null &&
      typeof (change as McpChange).method === 'string',
  );
}

/**
 * Resource subscriptions a 2025 session may hold at once (resources/subscribe past it gets
 * -32602), and URIs one 2026-07-28 listen may name in resourceSubscriptions.
 */
export const MAX_RESOURCE_SUBSCRIPTIONS = 100;
/** A subscribed URI longer than this is refused (-32602). */
export const RESOURCE_URI_MAX_CHARS = 2048;

/** A `subscriptions` event on mcpNames.changesTopic: a session's subscriptions changed. */
export interface McpSubscriptionsChanged {
  sessionId: string;
}

/** Whether a listen stream with this (honored) filter gets the change. */
export function listenAccepts(filter: ListenFilter, change: McpChange): boolean {
  const flag = CHANGE_NOTIFICATIONS[change.method];
  if (flag === undefined) return false;
  if (flag !== 'resourceSubscriptions') return filter[flag] === true;
  const uri = change.params?.uri;
  return typeof uri === 'string' && (filter.resourceSubscriptions ?? []).includes(uri);
}

export type McpTransportKind = 'streamable-http' | 'sse';

/** A session as stored in the engine's key/value store, under sessionKey(id), sliding TTL. */
export interface McpSessionRecord {
  /** The token subject that created it: only that subject may use it. */
  sub: string;
  transport: McpTransportKind;
  createdAt: number;
  /** Set by the worker that answered `initialize`; replayed to rebuild the session elsewhere. */
  init?: McpSessionInit;
  /** The client's `logging/setLevel` (2025 revisions): applied by every worker serving it. */
  logLevel?: string;
  /**
   * Set once the session subscribed to a resource: each request of the session then slides the
   * TTL of its subscription set (mcpNames.subscriptionsKey) with the record's.
   */
  subscribes?: true;
}

export interface McpSessionInit {
  protocolVersion: string;
  capabilities: Record<string, unknown>;
  clientInfo: Record<string, unknown>;
}

/** 128 random bits, hex: session ids. */
export function newSessionId(): string {
  return randomBytes(16).toString('hex');
}

const SESSION_ID = /^[0-9a-f]{32}$/;

export function isSessionId(text: string): boolean {
  return SESSION_ID.test(text);
}

/**
 * Stream ids within a session. A POST's stream: 16 random hex digits, plus `n<count>` when the
 * POST carried more than one request (so a resumed stream knows how many replies end it). The
 * standalone GET stream is `get`, the legacy SSE stream `sse`. No stream id holds `_`, which
 * separates it from the engine event id in the SSE `id:` (`<streamId>_<entryId>`).
 */
export const STANDALONE_STREAM = 'get';
export const LEGACY_STREAM = 'sse';

export function newRequestStreamId(requests: number): string {
  const id = randomBytes(8).toString('hex');
  return requests > 1 ? `${id}n${requests}` : id;
}

const REQUEST_STREAM = /^[0-9a-f]{16}(?:n(\d{1,4}))?$/;

/** How many replies end a request stream, or undefined when `streamId` is not one. */
export function requestStreamReplies(streamId: string): number | undefined {
  const match = REQUEST_STREAM.exec(streamId);
  if (!match) return undefined;
  return match[1] ? Number(match[1]) : 1;
}

/**
 * How long the history of a stream that served its purpose stays: a request stream whose
 * replies were all delivered (kept briefly for a client whose connection broke as the last bytes
 * went out), or any stream of an ended session (nothing can resume it). Not MCP_STREAM_TTL_S:
 * a busy server would hold every reply of the last five minutes.
 */
export const SPENT_STREAM_TTL_MS = 10_000;

/** Engine topics and key/value keys of the MCP transports. */
export const mcpNames = {
  /** The JSON-RPC messages of one stream of one session. */
  streamTopic: (sessionId: string, streamId: string) => `mcp:${sessionId}:${streamId}`,
  sessionKey: (sessionId: string) => `mcp:session:${sessionId}`,
  /** A 2026-07-28 task (Tasks extension): its record, and its outcome once it ended. */
  taskKey: (taskId: string) => `mcp:task:${taskId}`,
  taskOutcomeKey: (taskId: string) => `mcp:task-outcome:${taskId}`,
  /** The lock of a session's standalone GET stream (one per session, cluster-wide). */
  standaloneLockKey: (sessionId: string) => `mcp:get-lock:${sessionId}`,
  /**
   * A server -> client request awaiting the client's response (its id on the wire), set by the
   * worker that sent it; the gateway takes it (deletes it) to let one response through.
   */
  serverRequestKey: (sessionId: string, wireId: string) => `mcp:srv-req:${sessionId}:${wireId}`,
  /** Present while the gateway pod runs (refreshed every second): may its locks be taken over. */
  podAliveKey: (podId: string) => `mcp:pod-alive:${podId}`,
  /** Where a gateway process hears the request streams it answers (one per process). */
  replyTopic: (podId: string, nonce: string) => `mcp:replies:${podId}:${nonce}`,
  /**
   * The change notifications (list changed, resource updated) servers emit on any worker: every
   * gateway process hears them on one subscription and hands them to its listen streams.
   */
  changesTopic: 'mcp:changes',
  /** The resource URIs a 2025 session subscribed to (an engine MemberSets set, session TTL). */
  subscriptionsKey: (sessionId: string) => `mcp:subs:${sessionId}`,
};

/** The event name of a change on mcpNames.changesTopic. */
export const CHANGE_EVENT = 'change';
/** The event name, on mcpNames.changesTopic, of a session's subscriptions changing. */
export const SUBSCRIPTIONS_EVENT = 'subscriptions';

/** A `cancel` event: notifications/cancelled for a request of the session. */
export interface McpCancel {
  sessionId: string;
  /** The client's JSON-RPC id of the request to cancel. */
  requestId: string | number;
  reason?: string;
  /**
   * A 2026-07-28 request (sessionId MODERN_SESSION): its stream id, which names it (clients'
   * JSON-RPC ids repeat across clients); set when the client closed the request's stream.
   */
  streamId?: string;
}

/** A `client-response` event: the client's reply to a server -> client request. */
export interface McpClientResponse {
  sessionId: string;
  /** The JSON-RPC response as the client sent it (its id: the one the worker put on the wire). */
  message: { jsonrpc: '2.0'; id: string | number; result?: unknown; error?: unknown };
}
