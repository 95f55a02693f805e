import type { Router } from 'express';
import { Router as createRouter } from 'express';
import type { RouteContext } from '../routes/context';
import { legacySseRoutes, endLapsedLegacySessions } from './legacySse';
import { ListenHub } from './listen';
import type { McpRouteContext } from './mcpContext';
import { McpReplyRouter } from './replyRouter';
import { McpSessionStore } from './sessions';
import { PodLiveness } from './standaloneLock';
import { McpStreamKeeper } from './stream';
import { streamableHttpRoutes } from './streamableHttp';

/** Keep-alive comments at least this often, whatever HEARTBEAT_INTERVAL_MS says. */
const MAX_KEEPALIVE_MS = 15_000;

export interface McpTransports {
  /** /mcp (Streamable HTTP), /sse and /messages (legacy HTTP+SSE). */
  router: Router;
  /** Starts the pod's liveness key (standalone-stream lock takeover). */
  start(): Promise<void>;
  /**
   * Drain: ends the session streams (GET /mcp, /sse, subscriptions/listen) at once; they
   * reconnect elsewhere.
   */
  drain(): Promise<void>;
  /**
   * Ends the open MCP streams, letting running calls finish within DRAIN_WINDOW_MS, and waits
   * for their locks, sessions and registry entries to be released.
   */
  close(): Promise<void>;
}

/** The MCP standard transports of a gateway pod (see streamableHttp.ts and legacySse.ts). */
export function createMcpTransports(route: RouteContext): McpTransports {
  const keepAliveMs = Math.min(route.config.heartbeatIntervalMs, MAX_KEEPALIVE_MS);
  const ctx: McpRouteContext = {
    ...route,
    sessions: new McpSessionStore(
      route.engine,
      route.config.mcpSessionTtlS * 1000,
      route.config.mcpStreamTtlS * 1000,
    ),
    replies: new McpReplyRouter(route.engine, route.config.podId),
    keeper: new McpStreamKeeper(keepAliveMs),
    lockTtlMs: Math.max(3 * keepAliveMs, 3000),
    liveness: new PodLiveness(route.engine.kv, route.config.podId),
    listens: new ListenHub(route.engine),
  };
  route.hub.onLapsed((records) => endLapsedLegacySessions(ctx, records));
  const router = createRouter();
  router.use(streamableHttpRoutes(ctx));
  router.use(legacySseRoutes(ctx));
  return {
    router,
    start: () => ctx.liveness.start(),
    drain: () => ctx.keeper.endSessionStreams(),
    close: async () => {
      await ctx.keeper.close(route.config.drainWindowMs);
      await ctx.replies.close();
      await ctx.listens.close();
      await ctx.liveness.stop();
    },
  };
}
