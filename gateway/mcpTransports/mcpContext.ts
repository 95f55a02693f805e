import type { RequestHandler } from 'express';
import { OriginPolicy, originGuard } from '../middleware/cors';
import { guarded, requireReady, type RouteContext } from '../routes/context';
import type { ListenHub } from './listen';
import type { McpReplyRouter } from './replyRouter';
import type { McpSessionStore } from './sessions';
import type { PodLiveness } from './standaloneLock';
import type { McpStreamKeeper } from './stream';

/** What the MCP transport routes share. */
export interface McpRouteContext extends RouteContext {
  sessions: McpSessionStore;
  /** This process's one subscription for the replies of the POSTs it answers. */
  replies: McpReplyRouter;
  keeper: McpStreamKeeper;
  /** TTL of the one-GET-stream-per-session lock, refreshed on every keep-alive tick. */
  lockTtlMs: number;
  /** Whether the pod holding a standalone-stream lock still runs. */
  liveness: PodLiveness;
  /** This process's one subscription to the servers' change notifications (listen streams). */
  listens: ListenHub;
}

/**
 * What every request of either MCP transport passes first: the origin policy (DNS rebinding),
 * authentication, the rate limit and authorization, and an engine that answers.
 */
export function mcpRouteGuards(ctx: McpRouteContext): RequestHandler[] {
  return [originGuard(new OriginPolicy(ctx.config)), ...guarded(ctx), requireReady(ctx.engine)];
}
