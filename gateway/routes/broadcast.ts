import { Router } from 'express';
import { z } from 'zod';
import { topics } from '../../shared/protocol';
import { TOKEN_TYPES, type TokenType } from '../../shared/types';
import { SAFE_EVENT_NAME } from '../seed/frame';
import { replyJson } from '../jsonReply';
import { parseBody } from '../validation';
import { guarded, jsonBody, requireReady, type RouteContext } from './context';

const broadcastBody = z.object({
  message: z.looseObject({
    type: z
      .string()
      .regex(SAFE_EVENT_NAME, 'must be 1-64 characters of A-Z a-z 0-9 _ . : -')
      .optional(),
  }),
  filter: z.object({ tokenTypes: z.array(z.enum(TOKEN_TYPES)).min(1).optional() }).optional(),
});

/**
 * POST /mcp/sse/broadcast (master): publishes `message` on the broadcast topic of each matching
 * token type; every pod writes it to its matching streams as the event named `message.type`
 * (default `mcp-notification`). The data is serialized here, once.
 *
 * Reply 202 `{ status: 'published', event, tokenTypes, eventIds: { <type>: <engine event id> } }`.
 */
export function broadcastRoutes(ctx: RouteContext): Router {
  const router = Router();
  ctx.hotRoutes.post(router, '/mcp/sse/broadcast', [
    ...guarded(ctx, { types: ['master'] }),
    requireReady(ctx.engine),
    jsonBody(ctx.config),
    async (req, res) => {
      const body = parseBody(broadcastBody, req.body);
      // The client's own object (key order and all), not zod's copy of it.
      const message = (req.body as { message: Record<string, unknown> }).message;
      const event = body.message.type ?? 'mcp-notification';
      const data = JSON.stringify(
        message.timestamp === undefined
          ? { ...message, timestamp: new Date().toISOString() }
          : message,
      );
      const tokenTypes: TokenType[] = body.filter?.tokenTypes
        ? TOKEN_TYPES.filter((t) => body.filter?.tokenTypes?.includes(t))
        : [...TOKEN_TYPES];
      const ids = await Promise.all(
        tokenTypes.map((type) => ctx.engine.publish(topics.tokenType(type), event, data)),
      );
      const eventIds = Object.fromEntries(tokenTypes.map((type, i) => [type, ids[i]]));
      replyJson(res, 202, JSON.stringify({ status: 'published', event, tokenTypes, eventIds }));
    },
  ]);
  return router;
}
