import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';

export type InstalledHandler = (request: unknown, extra: unknown) => Promise<unknown>;

/**
 * The handler the SDK's McpServer installed for a method. The SDK has no public way to extend
 * a handler it installs, so this reads Protocol's handler map; it fails at startup (and in
 * every test) should an SDK upgrade rename it, never silently.
 */
export function installedHandler(server: McpServer, method: string): InstalledHandler {
  const handlers = (
    server.server as unknown as { _requestHandlers?: Map<string, InstalledHandler> }
  )._requestHandlers;
  const handler = handlers?.get(method);
  if (!handler) throw new Error(`The MCP SDK installed no ${method} handler to extend`);
  return handler;
}
