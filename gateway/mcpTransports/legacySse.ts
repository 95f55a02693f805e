import { Router } from 'express';
import type { ConnectionRecord } from '../../shared/engine/engine';
import { errors } from '../../shared/errors';
import { LEGACY_STREAM, mcpNames } from '../../shared/mcpTransports';
import { MCP_EVENTS } from '../../shared/protocol';
import { admissionLimits } from '../admission';
import { claimsOf } from '../middleware/auth';
import { jsonBody } from '../routes/context';
import type { TrackedStream } from '../seed/hub';
import { enqueueRequests, handleClientMessages } from './commands';
import { mcpRouteGuards, type McpRouteContext } from './mcpContext';
import { attachChanges } from './streamableHttp';
import { isRequest, jsonRpcErrors, parseMessages, requireJsonContent } from './protocol';
import { McpSseStream } from './stream';

/**
 * The legacy HTTP+SSE transport (MCP 2024-11-05): GET /sse opens the session's stream, whose
 * first event `endpoint` names where to POST (`/messages?sessionId=...`). A POST may land on
 * any pod: it answers 202 and queues the request; the worker publishes the reply to the
 * session's topic, which the pod holding the SSE socket writes as `event: message`.
 *
 * The session lives as long as that socket: the stream is in the connection registry under the
 * session id, and a POST answers 404 (the client reconnects) once it is not, i.e. at once when
 * the stream closed or its pod shut down, within the cleanup sweep when its pod was killed.
 * Only the stream's keep-alive ticks slide the session's TTL, never a POST.
 */
export function legacySseRoutes(ctx: McpRouteContext): Router {
  const router = Router();
  const common = mcpRouteGuards(ctx);

  router.get('/sse', ...common, async (req, res) => {
    const claims = claimsOf(res);
    if (ctx.drain.active) throw errors.unavailable('This gateway is shutting down');
    const sessionId = await ctx.sessions.create(claims, 'sse');
    const stream = new McpSseStream(req, res, 'session', ctx.config.sendQueueMaxBytes);
    let tracked: TrackedStream | undefined;
    let subscription: { close(): Promise<void> } | undefined;
    try {
      tracked = await ctx.hub.track(claims, 'legacy-sse', sessionId, () =>
        stream.endWith('token expired; reconnect with a new token'),
      );
      const topic = mcpNames.streamTopic(sessionId, LEGACY_STREAM);
      subscription = await ctx.engine.subscribe([topic], (event) => {
        if (event.event === MCP_EVENTS.response || event.event === MCP_EVENTS.notification) {
          stream.event(undefined, 'message', event.data);
        } else if (event.event === MCP_EVENTS.sessionEnded) {
          stream.end();
        }
      });
    } catch (err) {
      await Promise.allSettled([ctx.sessions.forget(sessionId), tracked?.release()]);
      throw err;
    }
    const held = { subscription, tracked };
    // The socket was the session: it ends with it (awaited on shutdown).
    stream.onClose(() =>
      Promise.allSettled([
        held.subscription.close(),
        ctx.sessions.forget(sessionId),
        held.tracked.release(),
      ]),
    );
    stream.onTick = () => void ctx.sessions.touch(sessionId).catch(() => undefined);
    stream.open(ctx.metrics);
    stream.event(undefined, 'endpoint', `/messages?sessionId=${sessionId}`);
    ctx.keeper.add(stream);
    await attachChanges(ctx, sessionId, stream);
  });

  router.post(
    '/messages',
    ...common,
    requireJsonContent(),
    jsonBody(ctx.config),
    async (req, res) => {
      const claims = claimsOf(res);
      const sessionId = req.query.sessionId;
      if (typeof sessionId !== 'string' || sessionId === '') {
        throw errors.badRequest('The sessionId query parameter is required');
      }
      const [, stream] = await Promise.all([
        ctx.sessions.load(sessionId, claims, 'sse', false),
        ctx.engine.getConnection(sessionId),
      ]);
      // The stream is gone (its pod died): nothing would carry the reply.
      if (!stream) throw errors.notFound('Session not found');
      const { messages } = parseMessages(req.body);
      await handleClientMessages(ctx.engine, sessionId, messages, ctx.config.eventMaxBytes);
      const requests = messages.filter(isRequest);
      if (requests.length > 0) {
        await enqueueRequests(
          ctx.engine,
          ctx.metrics,
          admissionLimits(ctx.config),
          claims,
          sessionId,
          LEGACY_STREAM,
          requests,
        );
      }
      res.status(202).type('text/plain').send('Accepted');
    },
  );

  router.use(jsonRpcErrors(['/sse', '/messages']));
  return router;
}

/** The sweep found legacy streams of a dead pod: their sessions end with them. */
export async function endLapsedLegacySessions(
  ctx: McpRouteContext,
  records: ConnectionRecord[],
): Promise<void> {
  await Promise.allSettled(
    records
      .filter((record) => record.transport === 'legacy-sse')
      .map((record) => ctx.sessions.forget(record.connectionId)),
  );
}
