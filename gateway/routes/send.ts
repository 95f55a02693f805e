import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { z } from 'zod';
import { errors } from '../../shared/errors';
import { MAX_MESSAGE_ID_CHARS, MAX_METHOD_CHARS, truncate } from '../../shared/text';
import { publishSeedCancel } from '../../shared/engine/cancellations';
import type { CommandEnvelope } from '../../shared/types';
import { admissionLimits, enqueueAdmitted } from '../admission';
import { replyJson } from '../jsonReply';
import { claimsOf } from '../middleware/auth';
import { parseBody } from '../validation';
import { guarded, jsonBody, requireReady, type RouteContext } from './context';

// The method and id come back in the command's events: bounded (MCP method names are short).
const sendBody = z.object({
  connectionId: z.string().min(1).max(128),
  message: z.object({
    method: z.string().min(1).max(MAX_METHOD_CHARS),
    params: z.record(z.string(), z.unknown()).optional(),
    id: z.union([z.string().max(MAX_MESSAGE_ID_CHARS), z.number()]).optional(),
  }),
});

/** notifications/cancelled names the call by our requestId or the client's own message id. */
const cancelParams = z.object({
  requestId: z.union([z.string().max(MAX_MESSAGE_ID_CHARS), z.number()]),
  reason: z.string().optional(),
});

/**
 * POST /mcp/sse/send: queues a command for the workers; its results arrive on the connection's
 * stream. The connection may live on any pod, but only the token (sub) that opened it may send.
 * Admission (COMMAND_QUEUE_MAX: 503, MAX_INFLIGHT_PER_TOKEN: 429, both with Retry-After) is
 * decided before anything is queued.
 */
export function sendRoutes(ctx: RouteContext): Router {
  const router = Router();
  const limits = admissionLimits(ctx.config);
  ctx.hotRoutes.post(router, '/mcp/sse/send', [
    ...guarded(ctx),
    requireReady(ctx.engine),
    jsonBody(ctx.config),
    async (req, res) => {
      const claims = claimsOf(res);
      const body = parseBody(sendBody, req.body);
      const connection = await ctx.engine.getConnection(body.connectionId);
      if (!connection) throw errors.notFound(`Unknown connectionId ${truncate(body.connectionId)}`);
      if (connection.sub !== claims.sub) {
        throw errors.forbidden('This connection was opened by another token');
      }
      const command: CommandEnvelope = {
        requestId: randomUUID(),
        connectionId: body.connectionId,
        sub: claims.sub,
        tokenType: claims.type,
        ...(claims.tools ? { tools: claims.tools } : {}),
        message: body.message,
        enqueuedAt: Date.now(),
      };
      if (command.message.method === 'notifications/cancelled') {
        // Straight to every worker: the queue would hand it to any one, not the one running it.
        const { requestId: target, reason } = parseBody(cancelParams, command.message.params ?? {});
        await publishSeedCancel(ctx.engine, { connectionId: command.connectionId, target, reason });
      } else {
        await enqueueAdmitted(ctx.engine, ctx.metrics, limits, [command]);
      }
      if (ctx.logger.isLevelEnabled('debug')) {
        // The requestId the client gets back, so one command can be followed through the worker.
        ctx.logger
          .child({ requestId: command.requestId, connectionId: command.connectionId })
          .debug('command accepted', {
            method: command.message.method,
            sub: command.sub,
            tokenType: command.tokenType,
          });
      }
      replyJson(res, 202, JSON.stringify({ requestId: command.requestId }));
    },
  ]);
  return router;
}
