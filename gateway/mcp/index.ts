import type { Router } from 'express';
import { Router as createRouter } from 'express';
import type { RouteContext } from '../routes/context';
import { legacySseRoutes } from './legacySse';
import type { McpRouteContext } from './mcpContext';
import { McpSessionStore } from './sessions';
import { McpStreamKeeper } from './stream';
import { streamableHttpRoutes } from './streamableHttp';

/** Keep-alive comments at least this often, whatever HEARTBEAT_INTERVAL_MS says. */
const MAX_KEEPALIVE_MS = 15_000;

export interface McpTransports {
  /** /mcp (Streamable HTTP), /sse and /messages (legacy HTTP+SSE). */
  router: Router;
  /** Ends the open MCP streams, letting running calls finish within DRAIN_WINDOW_MS. */
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
    keeper: new McpStreamKeeper(keepAliveMs),
    lockTtlMs: Math.max(3 * keepAliveMs, 3000),
  };
  const router = createRouter();
  router.use(streamableHttpRoutes(ctx));
  router.use(legacySseRoutes(ctx));
  return { router, close: () => ctx.keeper.close(route.config.drainWindowMs) };
}
