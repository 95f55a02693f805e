// MCP_SERVER_MODULE=examples/echo-server.mjs npm start: the workers serve this server.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';

export default function createMcpServer() {
  const server = new McpServer({ name: 'echo', version: '1.0.0' });
  const echo = { inputSchema: { text: z.string() }, annotations: { readOnlyHint: true } };
  server.registerTool('echo', echo, ({ text }) => ({
    content: [{ type: 'text', text: `echo: ${text}` }],
  }));
  return server;
}
