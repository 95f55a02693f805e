import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import type { Engine, EngineEvent, Subscription } from '../../shared/engine/engine';
import { errors } from '../../shared/errors';
import {
  CHANGE_EVENT,
  CHANGE_NOTIFICATIONS,
  MCP_META,
  MODERN_SESSION,
  SUBSCRIPTIONS_EVENT,
  changesOf,
  mcpNames,
  newRequestStreamId,
  type ListenFilter,
  type McpChange,
  type McpSubscriptionsChanged,
} from '../../shared/mcpTransports';
import type { TokenClaims } from '../../shared/types';
import { replyJson } from '../jsonReply';
import { enqueueModernRequest } from './commands';
import { modernReplyStatus, type ModernRequest } from './eraSelection';
import type { McpRouteContext } from './mcpContext';
import { accepts } from './protocol';
import { StreamRelay } from './relay';
import { SessionStreams } from './sessionNotifications';
import { McpSseStream } from './stream';

const ACKNOWLEDGED = 'notifications/subscriptions/acknowledged';
const TOKEN_EXPIRED = 'token expired; listen again with a new token';

/** A listen stream of this process, as the hub sees it. */
export interface ListenEntry {
  /** What the server honored of what the client asked for. */
  filter: ListenFilter;
  deliver(change: McpChange): void;
}

type ListFlag = Exclude<keyof ListenFilter, 'resourceSubscriptions'>;

/**
 * The change notifications (list changed, resource updated) of every worker, heard by this
 * gateway process over one subscription to mcpNames.changesTopic (not one per stream), and
 * handed to each of its listen streams whose filter takes them, found by the change's flag or
 * URI (indexes, not a scan of the streams); and to the 2025 sessions' streams held here
 * (`sessions`), with the news that a session's subscriptions changed.
 */
export class ListenHub {
  private readonly entries = new Set<ListenEntry>();
  private readonly byFlag = new Map<ListFlag, Set<ListenEntry>>();
  private readonly byUri = new Map<string, Set<ListenEntry>>();
  private subscribing?: Promise<Subscription>;
  private closed = false;
  /** The 2025 sessions' streams of this process. */
  readonly sessions: SessionStreams;

  constructor(private readonly engine: Pick<Engine, 'subscribe' | 'sets'>) {
    this.sessions = new SessionStreams(engine.sets);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Resolves once the process's subscription is confirmed (made on first use). */
  async ready(): Promise<void> {
    if (this.closed) throw errors.unavailable('This gateway is shutting down');
    if (!this.subscribing) {
      const subscribing = this.engine.subscribe([mcpNames.changesTopic], this.dispatch);
      this.subscribing = subscribing;
      // A failed subscription (engine down) is asked again by the next listen.
      subscribing.catch(() => {
        if (this.subscribing === subscribing) this.subscribing = undefined;
      });
    }
    await this.subscribing;
  }

  /** Delivers matching changes to `entry` until the returned function is called. */
  add(entry: ListenEntry): () => void {
    this.entries.add(entry);
    const { filter } = entry;
    for (const flag of LIST_FLAGS) if (filter[flag] === true) indexed(this.byFlag, flag).add(entry);
    for (const uri of filter.resourceSubscriptions ?? []) indexed(this.byUri, uri).add(entry);
    return () => {
      if (!this.entries.delete(entry)) return;
      for (const flag of LIST_FLAGS) unindex(this.byFlag, flag, entry);
      for (const uri of filter.resourceSubscriptions ?? []) unindex(this.byUri, uri, entry);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.entries.clear();
    this.byFlag.clear();
    this.byUri.clear();
    const subscribing = this.subscribing;
    this.subscribing = undefined;
    await subscribing?.then((subscription) => subscription.close()).catch(() => undefined);
  }

  private readonly dispatch = (event: EngineEvent): void => {
    if (event.event === SUBSCRIPTIONS_EVENT) {
      const sessionId = parseSubscriptionsChanged(event.data);
      if (sessionId !== undefined) this.sessions.subscriptionsChanged(sessionId);
      return;
    }
    if (event.event !== CHANGE_EVENT) return;
    if (this.entries.size === 0 && this.sessions.size === 0) return;
    for (const change of changesOf(event.data)) {
      for (const entry of this.listenersOf(change)) entry.deliver(change);
      this.sessions.change(change);
    }
  };

  /** The listen streams a change goes to. */
  private listenersOf(change: McpChange): Iterable<ListenEntry> {
    const flag = CHANGE_NOTIFICATIONS[change.method];
    if (flag === undefined) return [];
    if (flag !== 'resourceSubscriptions') return this.byFlag.get(flag) ?? [];
    const uri = change.params?.uri;
    return (typeof uri === 'string' && this.byUri.get(uri)) || [];
  }
}

const LIST_FLAGS: readonly ListFlag[] = [
  'toolsListChanged',
  'promptsListChanged',
  'resourcesListChanged',
];

function indexed<K>(index: Map<K, Set<ListenEntry>>, key: K): Set<ListenEntry> {
  let entries = index.get(key);
  if (!entries) index.set(key, (entries = new Set()));
  return entries;
}

function unindex<K>(index: Map<K, Set<ListenEntry>>, key: K, entry: ListenEntry): void {
  const entries = index.get(key);
  entries?.delete(entry);
  if (entries?.size === 0) index.delete(key);
}

function parseSubscriptionsChanged(data: string): string | undefined {
  try {
    const payload = JSON.parse(data) as McpSubscriptionsChanged;
    return typeof payload?.sessionId === 'string' ? payload.sessionId : undefined;
  } catch {
    return undefined;
  }
}

/**
 * subscriptions/listen (SEP-2567), the 2026-07-28 stream of change notifications that replaces
 * the standalone GET stream. A worker answers the request with the acknowledgment (the filter
 * its server can honor, which needs the server's capabilities); this pod then keeps the stream:
 * the acknowledgment first, then each change any worker's server emits that the filter takes,
 * tagged with the subscription id (the request's id), with keep-alive comments. The stream counts
 * toward MAX_CONNECTIONS_PER_TOKEN; it ends when the client closes it, when its token expires,
 * or when this pod drains or stops, then with the empty result that ends a subscription
 * gracefully (the client listens again, on another pod). A filter nothing of which can be
 * honored gets the acknowledgment and that result at once.
 */
export async function serveListen(
  ctx: McpRouteContext,
  req: Request,
  res: Response,
  claims: TokenClaims,
  request: ModernRequest,
): Promise<void> {
  if (!accepts(req).sse) {
    throw errors.notAcceptable(
      'subscriptions/listen answers with an SSE stream: Accept must include text/event-stream',
    );
  }
  // A draining pod opens no new streams: the client listens on another pod.
  if (ctx.drain.active) throw errors.unavailable('This gateway is shutting down');
  const subscriptionId = request.id;
  const streamId = newRequestStreamId(1);
  const topic = mcpNames.streamTopic(MODERN_SESSION, streamId);
  const stream = new McpSseStream(req, res, 'session', ctx.config.sendQueueMaxBytes);
  const tracked = await ctx.hub.track(claims, 'streamable-http', randomUUID(), () =>
    stream.endWith(TOKEN_EXPIRED),
  );
  stream.onClose(() => tracked.release());
  await ctx.listens.ready();

  const write = (message: object) => stream.event(undefined, 'message', JSON.stringify(message));
  const start = (ack: string, { filter, serverInfo }: Acknowledgment) => {
    if (stream.closed) return;
    stream.open(ctx.metrics);
    stream.event(undefined, 'message', ack);
    const meta = {
      [MCP_META.subscriptionId]: subscriptionId,
      ...(serverInfo !== undefined ? { [MCP_META.serverInfo]: serverInfo } : {}),
    };
    stream.onEnd = () =>
      write({
        jsonrpc: '2.0',
        id: subscriptionId,
        result: { resultType: 'complete', _meta: meta },
      });
    if (!hasAny(filter)) {
      stream.end();
      return;
    }
    const remove = ctx.listens.add({
      filter,
      deliver: (change) => write(tagged(change, subscriptionId)),
    });
    stream.onClose(remove);
    ctx.keeper.add(stream);
  };
  const relay = new StreamRelay(
    {
      message: (_entryId, data) => {
        const ack = acknowledgmentOf(data);
        if (ack) start(data, ack);
        else if (!res.destroyed && !res.writableEnded)
          replyJson(res, modernReplyStatus(data), data);
      },
      done: () => route.close(),
    },
    1,
  );
  const route = await ctx.replies.route(topic, relay.listener);
  stream.onClose(() => route.close());
  if (stream.closed) return;
  await enqueueModernRequest(ctx, claims, streamId, request);
}

/** What a worker's acknowledgment says: the honored filter and the server's identity. */
interface Acknowledgment {
  filter: ListenFilter;
  serverInfo?: unknown;
}

/** A worker's acknowledgment, or undefined for another reply (an error). */
function acknowledgmentOf(data: string): Acknowledgment | undefined {
  try {
    const message = JSON.parse(data) as {
      method?: unknown;
      params?: { notifications?: unknown; _meta?: Record<string, unknown> };
    };
    if (message.method !== ACKNOWLEDGED) return undefined;
    const filter = message.params?.notifications;
    return {
      filter: typeof filter === 'object' && filter !== null ? (filter as ListenFilter) : {},
      serverInfo: message.params?._meta?.[MCP_META.serverInfo],
    };
  } catch {
    return undefined;
  }
}

function hasAny(filter: ListenFilter): boolean {
  return (
    filter.toolsListChanged === true ||
    filter.promptsListChanged === true ||
    filter.resourcesListChanged === true ||
    (filter.resourceSubscriptions?.length ?? 0) > 0
  );
}

/** A change as a listen stream carries it: its subscription id in `_meta`. */
function tagged(change: McpChange, subscriptionId: string | number): object {
  const params = change.params ?? {};
  const meta = typeof params._meta === 'object' && params._meta !== null ? params._meta : {};
  return {
    jsonrpc: '2.0',
    method: change.method,
    params: { ...params, _meta: { ...meta, [MCP_META.subscriptionId]: subscriptionId } },
  };
}
