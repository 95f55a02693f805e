import { randomUUID } from 'node:crypto';
import { Router, type Request, type RequestHandler, type Response } from 'express';
import type { Subscription } from '../../shared/engine/engine';
import { ZERO_EVENT_ID, isEventId } from '../../shared/engine/eventId';
import { errors } from '../../shared/errors';
import {
  DEFAULT_STREAMABLE_VERSION,
  STANDALONE_STREAM,
  STREAMABLE_PROTOCOL_VERSIONS,
  isModernVersion,
  mcpNames,
  newRequestStreamId,
  requestStreamReplies,
} from '../../shared/mcpTransports';
import { MCP_EVENTS } from '../../shared/protocol';
import { truncate } from '../../shared/text';
import type { TokenClaims } from '../../shared/types';
import { admissionLimits } from '../admission';
import { replyJson } from '../jsonReply';
import { claimsOf } from '../middleware/auth';
import { jsonBody } from '../routes/context';
import { enqueueRequests, handleClientMessages } from './commands';
import { selectEra, type StandardHeaders } from './eraSelection';
import { mcpRouteGuards, type McpRouteContext } from './mcpContext';
import { serveModernRequest } from './modernEra';
import {
  accepts,
  isRequest,
  jsonRpcErrors,
  parseMessages,
  requireJsonContent,
  type IncomingRequest,
} from './protocol';
import { StreamRelay } from './relay';
import type { ReplyRoute } from './replyRouter';
import { acquireStandaloneLock } from './standaloneLock';
import { McpSseStream } from './stream';

const TOKEN_EXPIRED = 'token expired; reconnect with a new token';

const SUPPORTED = new Set<string>(STREAMABLE_PROTOCOL_VERSIONS);
/** Revisions whose clients expect a priming event (an id with empty data) on each stream. */
const PRIMING_FROM = '2025-11-25';

/**
 * Streamable HTTP at /mcp. MCP 2026-07-28 requests (the version in each request's `_meta`) are
 * told apart in the POST handler and served statelessly (modernEra.ts, listen.ts). The rest is
 * MCP 2025-11-25 (accepting 2025-06-18 and 2025-03-26 clients), with no sticky sessions: the session lives in the engine, each request's replies travel through a
 * per-request stream topic (so any pod can resume it), workers run the calls.
 *
 * - POST: initialize creates a session (Mcp-Session-Id); requests get an SSE stream (or a JSON
 *   body when the client accepts only JSON) carrying progress and the replies, then it ends;
 *   notifications and responses get 202.
 * - GET: the session's standalone stream (one per session, cluster-wide: 409 for a second while
 *   the first one's pod runs), or with Last-Event-ID the replay of the stream that id belongs
 *   to, then its live rest.
 *
 * Every SSE response is a stream in the connection registry (MAX_CONNECTIONS_PER_TOKEN, stats,
 * token expiry at the cleanup sweep).
 * - DELETE: ends the session everywhere.
 */
export function streamableHttpRoutes(ctx: McpRouteContext): Router {
  const router = Router();
  const common = mcpRouteGuards(ctx);

  const rpcErrors = jsonRpcErrors(['/mcp']);
  const post: RequestHandler = async (req, res) => {
    const claims = claimsOf(res);
    const accept = accepts(req);
    if (!accept.sse && !accept.json) {
      throw errors.notAcceptable('Accept must include application/json or text/event-stream');
    }
    // The JSON-RPC shape first (ids and methods bounded), then the era, per request (MCP
    // 2026-07-28): a request naming its version in `_meta` is served statelessly; the rest is
    // the 2025 session transport's, unchanged.
    const { messages, batch } = parseMessages(req.body);
    const era = selectEra(req.body, standardHeadersOf(req));
    if (era.era === 'modern') {
      if (era.kind === 'notification') res.status(202).end();
      else await serveModernRequest(ctx, req, res, claims, era.request);
      return;
    }
    const initialize = messages.find((m) => m.method === 'initialize');
    if (initialize) {
      if (messages.length > 1 || !isRequest(initialize)) {
        throw errors.badRequest('initialize must be sent alone, as a request');
      }
      const params = { ...(initialize.params ?? {}) };
      // Offer our newest revision to a client asking for one we do not serve over /mcp.
      if (!SUPPORTED.has(String(params.protocolVersion))) {
        params.protocolVersion = STREAMABLE_PROTOCOL_VERSIONS[0];
      }
      const sessionId = await ctx.sessions.create(claims, 'streamable-http');
      const stream = accept.sse ? requestStream(ctx, req, res) : undefined;
      if (stream) await listStream(ctx, claims, stream);
      await answerRequests(ctx, req, res, {
        claims,
        sessionId,
        version: String(params.protocolVersion),
        requests: [{ ...initialize, params }],
        batch: false,
        stream,
      });
      return;
    }
    const requests = messages.filter(isRequest);
    // An SSE answer is listed in the registry while the session is looked up (one round trip
    // to the engine for both); a refusal (429) counts only once the session is known, and the
    // listing is released when the response closes, whatever ends it.
    const stream = accept.sse && requests.length > 0 ? requestStream(ctx, req, res) : undefined;
    const listed = stream && listStream(ctx, claims, stream);
    listed?.catch(() => undefined); // thrown below, after the session's own errors
    const { sessionId } = await ctx.sessions.fromHeader(req, claims);
    const version = protocolVersionOf(req);
    await handleClientMessages(ctx.engine, sessionId, messages, ctx.config.eventMaxBytes);
    if (requests.length === 0) {
      res.status(202).end();
      return;
    }
    await listed;
    await answerRequests(ctx, req, res, { claims, sessionId, version, requests, batch, stream });
  };
  ctx.hotRoutes.post(
    router,
    '/mcp',
    [...common, requireJsonContent(), jsonBody(ctx.config), post],
    [rpcErrors],
  );

  router.get('/mcp', ...common, async (req, res) => {
    refuseModernEra(req);
    const claims = claimsOf(res);
    if (!accepts(req).sse) throw errors.notAcceptable('Accept must include text/event-stream');
    // A draining pod opens no new streams: the client retries on another pod.
    if (ctx.drain.active) throw errors.unavailable('This gateway is shutting down');
    const { sessionId } = await ctx.sessions.fromHeader(req, claims);
    const version = protocolVersionOf(req);
    const lastEventId = req.get('last-event-id');
    if (lastEventId === undefined || lastEventId === '') {
      await openStandaloneStream(ctx, req, res, claims, sessionId, version);
      return;
    }
    const sep = lastEventId.indexOf('_');
    const streamId = sep > 0 ? lastEventId.slice(0, sep) : '';
    const afterId = lastEventId.slice(sep + 1);
    if (sep < 0 || !isEventId(afterId)) throw errors.badRequest('Invalid Last-Event-ID');
    if (streamId === STANDALONE_STREAM) {
      await openStandaloneStream(ctx, req, res, claims, sessionId, version, afterId);
      return;
    }
    const replies = requestStreamReplies(streamId);
    if (replies === undefined) throw errors.badRequest('Invalid Last-Event-ID');
    await resumeRequestStream(ctx, req, res, claims, sessionId, streamId, replies, afterId);
  });

  router.delete('/mcp', ...common, async (req, res) => {
    refuseModernEra(req);
    const claims = claimsOf(res);
    const { sessionId } = await ctx.sessions.fromHeader(req, claims);
    protocolVersionOf(req);
    await ctx.sessions.end(sessionId);
    res.status(200).end();
  });

  router.all('/mcp', (_req, res) => {
    res.set('Allow', 'GET, POST, DELETE').status(405);
    res.json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed' }, id: null });
  });

  router.use(rpcErrors);
  return router;
}

/** SEP-2243's standard headers of a request. */
function standardHeadersOf(req: Request): StandardHeaders {
  return {
    protocolVersion: req.get('mcp-protocol-version'),
    method: req.get('mcp-method'),
    name: req.get('mcp-name'),
  };
}

/**
 * A GET or DELETE naming a 2026-07-28 protocol version: that revision has no session and no
 * standalone stream, so 405 (its spec's answer to both), whatever Mcp-Session-Id says.
 */
function refuseModernEra(req: Request): void {
  const version = req.get('mcp-protocol-version')?.trim();
  if (version !== undefined && isModernVersion(version)) {
    throw errors.rpc(
      405,
      -32000,
      `Method not allowed: protocol revision ${truncate(version)} has no ${req.method} on /mcp ` +
        '(no sessions; subscriptions/listen is a POST)',
    );
  }
}

/** The request's MCP-Protocol-Version (the spec's default when absent); 400 when unsupported. */
function protocolVersionOf(req: Request): string {
  const version = req.get('mcp-protocol-version');
  if (version === undefined) return DEFAULT_STREAMABLE_VERSION;
  if (!SUPPORTED.has(version)) {
    throw errors.badRequest(
      `Unsupported MCP-Protocol-Version: ${truncate(version)} (supported: ${STREAMABLE_PROTOCOL_VERSIONS.join(', ')})`,
    );
  }
  return version;
}

interface RequestBatch {
  claims: TokenClaims;
  sessionId: string;
  version: string;
  requests: IncomingRequest[];
  batch: boolean;
  /** The SSE stream answering them, listed in the registry; none: one JSON body answers. */
  stream?: McpSseStream;
}

/**
 * Routes a new request stream's events to its relay first (this pod's reply router: the
 * commands name its topic, the worker copies the stream's events there), then queues the
 * requests, then relays the stream's messages: as SSE events with ids `<streamId>_<entryId>`,
 * or gathered into one JSON body. The worker writes them to the stream topic's history and
 * publishes them there too, so the stream can be resumed on any pod with a GET and
 * Last-Event-ID if this pod dies.
 */
async function answerRequests(
  ctx: McpRouteContext,
  req: Request,
  res: Response,
  batch: RequestBatch,
): Promise<void> {
  const { sessionId, requests } = batch;
  const streamId = newRequestStreamId(requests.length);
  const topic = mcpNames.streamTopic(sessionId, streamId);
  const enqueue = () =>
    enqueueRequests(
      ctx.engine,
      ctx.metrics,
      admissionLimits(ctx.config),
      batch.claims,
      sessionId,
      streamId,
      requests,
      ctx.replies.topic,
    );

  const { stream } = batch;
  if (!stream) {
    const replies: string[] = [];
    const held: { route?: ReplyRoute } = {};
    const relay = new StreamRelay(
      {
        message: (_id, data, kind) => {
          if (kind === MCP_EVENTS.response) replies.push(data);
        },
        done: () => {
          held.route?.close();
          // A JSON body cannot be resumed: once the replies are in, the history has served.
          ctx.sessions.streamSpent(sessionId, streamId);
          if (res.writableEnded || res.destroyed) return;
          res.set('Mcp-Session-Id', sessionId);
          if (replies.length === 0) res.status(202).end();
          else replyJson(res, 200, batch.batch ? `[${replies.join(',')}]` : replies[0]);
        },
      },
      requests.length,
    );
    held.route = await ctx.replies.route(topic, relay.listener);
    res.once('close', () => held.route?.close());
    try {
      await enqueue();
    } catch (err) {
      held.route.close();
      throw err;
    }
    return;
  }

  // The stream opens only once the requests are admitted (a refusal still gets its HTTP status);
  // what a fast worker sends before that waits here, in order.
  let early: (() => void)[] | undefined = [];
  const later = (write: () => void) => (early ? early.push(write) : write());
  const relay = new StreamRelay(
    {
      message: (entryId, data) =>
        later(() => stream.event(`${streamId}_${entryId}`, 'message', data)),
      done: () =>
        later(() => {
          stream.end();
          ctx.sessions.streamSpent(sessionId, streamId);
        }),
    },
    requests.length,
  );
  // Routed first; released when the response closes, a refusal's included.
  await listenStream(stream, () => ctx.replies.route(topic, relay.listener));
  await enqueue();
  if (stream.closed) return; // the client left meanwhile; the replies wait in the topic's history
  stream.open(ctx.metrics, { 'Mcp-Session-Id': sessionId });
  if (batch.version >= PRIMING_FROM) stream.prime(`${streamId}_${ZERO_EVENT_ID}`);
  ctx.keeper.add(stream);
  const waiting = early;
  early = undefined;
  for (const write of waiting) write();
}

/** A GET with a request stream's Last-Event-ID: what that stream missed, then its live rest. */
async function resumeRequestStream(
  ctx: McpRouteContext,
  req: Request,
  res: Response,
  claims: TokenClaims,
  sessionId: string,
  streamId: string,
  replies: number,
  afterId: string,
): Promise<void> {
  const topic = mcpNames.streamTopic(sessionId, streamId);
  const stream = requestStream(ctx, req, res);
  const relay = new StreamRelay(
    {
      message: (entryId, data) => stream.event(`${streamId}_${entryId}`, 'message', data),
      done: () => {
        stream.end();
        ctx.sessions.streamSpent(sessionId, streamId);
      },
    },
    replies,
    afterId,
  );
  await listStream(ctx, claims, stream);
  await listenStream(stream, () => subscribe(ctx, topic, relay));
  stream.open(ctx.metrics, { 'Mcp-Session-Id': sessionId });
  ctx.keeper.add(stream);
  await relay.replay(ctx.engine, topic);
}

/** The relay subscribed to the stream's own topic (a resumed or standalone stream). */
function subscribe(ctx: McpRouteContext, topic: string, relay: StreamRelay): Promise<Listening> {
  return ctx.engine.subscribe([topic], relay.listener);
}

/** What feeds a stream's relay until closed: a subscription, or a route of the reply router. */
type Listening = Subscription | ReplyRoute;

/** A request stream (a POST's, or its resumption) on this response, not yet open. */
function requestStream(ctx: McpRouteContext, req: Request, res: Response): McpSseStream {
  return new McpSseStream(req, res, 'request', ctx.config.sendQueueMaxBytes);
}

/**
 * Lists the stream in the registry (429 over the per-token limit) before the response starts,
 * until the stream closes (at once if it closed meanwhile).
 */
async function listStream(
  ctx: McpRouteContext,
  claims: TokenClaims,
  stream: McpSseStream,
): Promise<void> {
  const tracked = await ctx.hub.track(claims, 'streamable-http', randomUUID(), () =>
    stream.endWith(TOKEN_EXPIRED),
  );
  stream.onClose(() => tracked.release());
}

/** Starts feeding the stream's relay, before the response starts, until the stream closes. */
async function listenStream(stream: McpSseStream, listen: () => Promise<Listening>): Promise<void> {
  const listening = await listen();
  stream.onClose(() => listening.close());
}

/**
 * The session's standalone stream for server-initiated messages. One per session across the
 * cluster: a lock in the engine naming this pod, refreshed each keep-alive tick and released
 * (awaited on shutdown) on close; a second GET gets 409 while this pod runs, and takes the lock
 * over once this pod stopped (see standaloneLock.ts). A resume with Last-Event-ID replays what
 * the stream missed meanwhile from its topic's history, so nothing is lost or repeated.
 */
async function openStandaloneStream(
  ctx: McpRouteContext,
  req: Request,
  res: Response,
  claims: TokenClaims,
  sessionId: string,
  version: string,
  afterId?: string,
): Promise<void> {
  const lock = await acquireStandaloneLock(ctx.engine.kv, ctx.liveness, sessionId, ctx.lockTtlMs);
  const topic = mcpNames.streamTopic(sessionId, STANDALONE_STREAM);
  const stream = new McpSseStream(req, res, 'session', ctx.config.sendQueueMaxBytes);
  const relay = new StreamRelay(
    {
      message: (entryId, data) => stream.event(`${STANDALONE_STREAM}_${entryId}`, 'message', data),
      done: () => stream.end(),
    },
    Infinity,
    afterId,
  );
  try {
    await listStream(ctx, claims, stream);
    await listenStream(stream, () => subscribe(ctx, topic, relay));
  } catch (err) {
    await lock.release().catch(() => undefined);
    throw err;
  }
  stream.onClose(() => lock.release());
  stream.onTick = () => {
    // Taken over (this pod was presumed dead): the client already reads another stream.
    lock.refresh().then(
      (ours) => ours || stream.end(),
      () => undefined,
    );
    ctx.sessions.touch(sessionId).catch(() => undefined);
  };
  stream.open(ctx.metrics, { 'Mcp-Session-Id': sessionId });
  if (afterId === undefined && version >= PRIMING_FROM) {
    stream.prime(`${STANDALONE_STREAM}_${ZERO_EVENT_ID}`);
  }
  ctx.keeper.add(stream);
  if (afterId !== undefined) await relay.replay(ctx.engine, topic);
  await attachChanges(ctx, sessionId, stream);
}

/**
 * The change notifications of every worker (list changes, updates of the resources the session
 * subscribed to) on a session's stream, live, until it closes. Written without an SSE id: they
 * are not in the stream topic's history, so a resume does not replay them.
 */
export async function attachChanges(
  ctx: McpRouteContext,
  sessionId: string,
  stream: McpSseStream,
): Promise<void> {
  await ctx.listens.ready();
  if (stream.closed) return;
  const detach = await ctx.listens.sessions.attach(sessionId, (data) =>
    stream.event(undefined, 'message', data),
  );
  stream.onClose(detach);
}
