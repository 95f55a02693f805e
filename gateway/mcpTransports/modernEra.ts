import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import { errors } from '../../shared/errors';
import { TASK_METHODS, answerTaskRequest } from '../../shared/mcpTasks';
import {
  MODERN_REQUEST_METHODS,
  MODERN_SESSION,
  mcpNames,
  newRequestStreamId,
  type McpCancel,
} from '../../shared/mcpTransports';
import { CONTROL_EVENTS, MCP_EVENTS, RPC_ERRORS, topics } from '../../shared/protocol';
import { truncate } from '../../shared/text';
import type { TokenClaims } from '../../shared/types';
import { replyJson } from '../jsonReply';
import { enqueueModernRequest } from './commands';
import { modernReplyStatus, type ModernRequest } from './eraSelection';
import { serveListen } from './listen';
import type { McpRouteContext } from './mcpContext';
import { accepts } from './protocol';
import { StreamRelay } from './relay';
import type { ReplyRoute } from './replyRouter';
import { McpSseStream } from './stream';

const TOKEN_EXPIRED = 'token expired; send the request again with a new token';

/**
 * Serves a stateless MCP 2026-07-28 request (its envelope and headers checked by selectEra) on
 * this pod: no session, nothing looked up. server/discover and every other request go through
 * the command queue to any worker (admission limits, token permissions, the tool timeout, dead
 * letters), which runs it on its MCP server; subscriptions/listen is listen.ts's; the Tasks
 * extension's tasks/* are answered here from the engine (shared/mcpTasks.ts).
 *
 * The response head waits for the first message from the worker: a final reply alone is a
 * JSON body, with the status the spec gives its error; notifications first (progress, log
 * messages) open an SSE stream (when the client accepts one; a JSON-only client gets the reply
 * alone). No event ids, no resumption. A client that closes the response before the reply
 * cancels the request on the worker running it (a cancel on the workers' control topic).
 */
export async function serveModernRequest(
  ctx: McpRouteContext,
  req: Request,
  res: Response,
  claims: TokenClaims,
  request: ModernRequest,
): Promise<void> {
  if (!MODERN_REQUEST_METHODS.has(request.method)) {
    throw errors.rpc(
      404,
      RPC_ERRORS.methodNotFound,
      `Method not found: ${truncate(request.method)} (not a method of protocol revision ${request.version})`,
    );
  }
  if (request.method === 'subscriptions/listen') {
    await serveListen(ctx, req, res, claims, request);
    return;
  }
  if (TASK_METHODS.has(request.method)) {
    // A task lives in the engine: any pod answers from there, without a worker.
    const reply = await answerTaskRequest(ctx.engine, claims.sub, request.method, request.params);
    const data = JSON.stringify({ jsonrpc: '2.0', id: request.id, ...reply });
    replyJson(res, modernReplyStatus(data), data);
    return;
  }
  const accept = accepts(req);
  const streamId = newRequestStreamId(1);
  const topic = mcpNames.streamTopic(MODERN_SESSION, streamId);
  let finished = false;
  let cancelled = false;
  // The client left before the reply: the worker running the request is told to stop it.
  const onGone = () => {
    if (finished || cancelled) return;
    cancelled = true;
    const cancel: McpCancel = {
      sessionId: MODERN_SESSION,
      requestId: request.id,
      streamId,
      reason: 'the client closed the response stream',
    };
    ctx.engine
      .publish(topics.workers, CONTROL_EVENTS.mcpCancel, JSON.stringify(cancel))
      .catch((err: unknown) =>
        ctx.logger.warn('cancel of a closed 2026-07-28 request not published', {
          error: err instanceof Error ? err.message : String(err),
        }),
      );
  };

  // The response as a stream, opened only if notifications come first. A POST that may become
  // a stream counts toward MAX_CONNECTIONS_PER_TOKEN from the start (429 before anything is
  // queued), until its response ends, whatever ends it.
  const stream = accept.sse
    ? new McpSseStream(req, res, 'request', ctx.config.sendQueueMaxBytes)
    : undefined;
  let opened = false;
  if (stream) {
    stream.onClose(onGone);
    try {
      const tracked = await ctx.hub.track(claims, 'streamable-http', randomUUID(), () =>
        stream.endWith(TOKEN_EXPIRED),
      );
      stream.onClose(() => tracked.release());
    } catch (err) {
      finished = true; // refused (429): nothing was queued, nothing to cancel
      throw err;
    }
  } else {
    res.once('close', onGone);
  }
  const openStream = (): McpSseStream | undefined => {
    if (!stream || stream.closed) return undefined;
    if (!opened) {
      opened = true;
      stream.open(ctx.metrics);
      ctx.keeper.add(stream);
    }
    return stream;
  };
  const held: { route?: ReplyRoute } = {};
  const relay = new StreamRelay(
    {
      message: (_entryId, data, kind) => {
        if (kind === MCP_EVENTS.notification) {
          openStream()?.event(undefined, 'message', data);
          return;
        }
        finished = true;
        if (opened || !accept.json) openStream()?.event(undefined, 'message', data);
        else if (!res.destroyed && !res.writableEnded) {
          replyJson(res, modernReplyStatus(data), data);
        }
      },
      done: () => {
        finished = true;
        held.route?.close();
        if (opened) stream?.end();
        else if (!res.destroyed && !res.writableEnded) res.status(202).end();
      },
    },
    1,
  );
  held.route = await ctx.replies.route(topic, relay.listener);
  res.once('close', () => held.route?.close());
  if (stream?.closed || res.destroyed) {
    held.route.close(); // gone already: nothing to run
    return;
  }
  try {
    await enqueueModernRequest(
      ctx,
      claims,
      streamId,
      request,
      request.method === 'tools/call' ? paramHeadersOf(req) : undefined,
    );
  } catch (err) {
    finished = true;
    held.route.close();
    throw err;
  }
}

/** At most this many `Mcp-Param-*` headers are passed on (a tool declares a few). */
const MAX_PARAM_HEADERS = 64;

/** A request's `Mcp-Param-*` headers, by lowercased name (the worker checks them). */
function paramHeadersOf(req: Request): Record<string, string> {
  const headers: Record<string, string> = {};
  let count = 0;
  for (const [name, value] of Object.entries(req.headers)) {
    if (!name.startsWith('mcp-param-') || value === undefined) continue;
    if (++count > MAX_PARAM_HEADERS) {
      throw errors.badRequest(`At most ${MAX_PARAM_HEADERS} Mcp-Param-* headers`);
    }
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}
