import type { RouteContext } from '../routes/context';
import type { McpSessionStore } from './sessions';
import type { PodLiveness } from './standaloneLock';
import type { McpStreamKeeper } from './stream';

/** What the MCP transport routes share. */
export interface McpRouteContext extends RouteContext {
  sessions: McpSessionStore;
  keeper: McpStreamKeeper;
  /** TTL of the one-GET-stream-per-session lock, refreshed on every keep-alive tick. */
  lockTtlMs: number;
  /** Whether the pod holding a standalone-stream lock still runs. */
  liveness: PodLiveness;
}
