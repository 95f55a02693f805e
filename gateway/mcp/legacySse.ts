import { Router } from 'express';
import { errors } from '../../shared/errors';
import { LEGACY_STREAM, MCP_EVENTS, mcpNames } from '../../shared/mcp';
import { admissionLimits } from '../admission';
import { claimsOf } from '../middleware/auth';
import { guarded, jsonBody, requireReady } from '../routes/context';
import { enqueueRequests, handleClientMessages } from './commands';
import type { McpRouteContext } from './mcpContext';
import {
  checkOrigin,
  isRequest,
  jsonRpcErrors,
  parseMessages,
  requireJsonContent,
} from './protocol';
import { McpSseStream } from './stream';

/**
 * The legacy HTTP+SSE transport (MCP 2024-11-05): GET /sse opens the session's stream, whose
 * first event `endpoint` names where to POST (`/messages?sessionId=...`). A POST may land on
 * any pod: it answers 202 and queues the request; the worker publishes the reply to the
 * session's topic, which the pod holding the SSE socket writes as `event: message`. The session
 * lives as long as that socket (its TTL refreshed by the keep-alive ticks).
 */
export function legacySseRoutes(ctx: McpRouteContext): Router {
  const router = Router();
  const common = [
    checkOrigin(ctx.config.allowedOrigins),
    ...guarded(ctx),
    requireReady(ctx.engine),
  ];

  router.get('/sse', ...common, async (req, res) => {
    const claims = claimsOf(res);
    if (ctx.hub.draining) throw errors.unavailable('This gateway is shutting down');
    const sessionId = await ctx.sessions.create(claims, 'sse');
    const topic = mcpNames.streamTopic(sessionId, LEGACY_STREAM);
    const stream = new McpSseStream(req, res, 'session', ctx.config.sendQueueMaxBytes);
    let subscription: { close(): Promise<void> };
    try {
      subscription = await ctx.engine.subscribe([topic], (event) => {
        if (event.event === MCP_EVENTS.response || event.event === MCP_EVENTS.notification) {
          stream.event(undefined, 'message', event.data);
        } else if (event.event === MCP_EVENTS.sessionEnded) {
          stream.end();
        }
      });
    } catch (err) {
      await ctx.sessions.end(sessionId, LEGACY_STREAM).catch(() => undefined);
      throw err;
    }
    stream.onClose(() => {
      void subscription.close();
      // The socket was the session: it ends with it.
      ctx.sessions.end(sessionId, LEGACY_STREAM).catch(() => undefined);
    });
    stream.onTick = () => void ctx.sessions.touch(sessionId).catch(() => undefined);
    stream.open(ctx.metrics);
    stream.event(undefined, 'endpoint', `/messages?sessionId=${sessionId}`);
    ctx.keeper.add(stream);
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
      await ctx.sessions.load(sessionId, claims, 'sse');
      const { messages } = parseMessages(req.body);
      await handleClientMessages(ctx.engine, sessionId, messages);
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

  router.use(['/sse', '/messages'], jsonRpcErrors());
  return router;
}
